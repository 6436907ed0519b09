//! The rules of one document on a connection: catch-up answers (6), live delivery without gaps
//! (7.1), and the answers to submits (8).

use crate::protocol::{self, Ack, Edit, ErrorCode, FrameKind, ServerMessage};
use crate::sequencer::Rejection;
use crate::vector_clock::VectorClock;

use super::{close, close_code, Mode, ServerConnection, Task};
use crate::server::catch_up::{CatchUp, LogEvents, Page, Read, ReadResult, SnapshotPolicy, Step};
use crate::server::requests::{LiveBatch, Output, Request, Submitted};

impl<L: LiveBatch> ServerConnection<L> {
    /// Works on a document the fan-out or a gap made ready (the connection is idle).
    pub(super) fn work_on(&mut self, document_id: &str) {
        let Some(doc) = self.docs.get_mut(document_id) else {
            return;
        };
        doc.ready = false;
        if std::mem::take(&mut doc.gap) {
            // Batches that arrived meanwhile are read from the log with the gap.
            doc.live.clear();
            return self.start_repair(document_id, Vec::new());
        }
        while let Some(doc) = self.docs.get_mut(document_id) {
            let Some(batch) = doc.live.pop_front() else {
                break;
            };
            self.live_batch(document_id, batch);
            if self.docs.get(document_id).is_some_and(|doc| doc.gap) {
                let doc = self.docs.get_mut(document_id).expect("checked");
                doc.ready = true;
                self.ready.push_front(document_id.to_owned());
                break;
            }
        }
    }

    // --- catch-up (6, 13) ------------------------------------------------------------------

    pub(super) fn start_sync(
        &mut self,
        document_id: &str,
        vector: VectorClock,
        after: Option<u64>,
        resume: Option<u64>,
    ) {
        let (machine, read) = CatchUp::new(
            vector.clone(),
            after,
            resume,
            self.limits.default_page,
            SnapshotPolicy::WhenBehindOrNew,
        );
        let task = Task::Sync {
            machine: Box::new(machine),
            vector,
            after,
            resume,
        };
        self.task = Some((document_id.to_owned(), task));
        self.request(Request::Read {
            document_id: document_id.to_owned(),
            read,
        });
    }

    pub(super) fn read(&mut self, result: Result<ReadResult, (ErrorCode, String)>) {
        match self.task.take() {
            Some((
                document_id,
                Task::Sync {
                    mut machine,
                    vector,
                    after,
                    resume,
                },
            )) => {
                let step = match result {
                    Ok(found) => machine.handle(found),
                    Err((code, message)) => Step::Refused(code, message),
                };
                match step {
                    Step::Read(read) => {
                        let task = Task::Sync {
                            machine,
                            vector,
                            after,
                            resume,
                        };
                        self.task = Some((document_id.clone(), task));
                        self.request(Request::Read { document_id, read });
                    }
                    Step::Refused(code, message) => match self.mode {
                        Mode::WebSocket => self.error_about(&document_id, code, message),
                        Mode::EventStream => self.refuse(code, message),
                    },
                    Step::Page(page) => self.page(&document_id, page, vector, after, resume),
                }
            }
            Some((document_id, Task::Repair { answer })) => match result {
                Ok(ReadResult::Events(events)) => {
                    self.repaired(&document_id, LogEvents::Parsed(events), answer)
                }
                Ok(ReadResult::Encoded(events)) => {
                    self.repaired(&document_id, LogEvents::Encoded(events), answer)
                }
                Ok(_) => self.unexpected_reply(),
                Err((code, message)) => {
                    // The gap cannot be filled now; the live stream cannot go on without it.
                    self.stop_live(&document_id, Some((code, message)))
                }
            },
            Some((document_id, task @ (Task::History { .. } | Task::Version { .. }))) => {
                self.history_read(document_id, task, result)
            }
            _ => self.unexpected_reply(),
        }
    }

    /// Sends one page of an answer and asks for the next.
    fn page(
        &mut self,
        document_id: &str,
        page: Page,
        vector: VectorClock,
        after: Option<u64>,
        resume: Option<u64>,
    ) {
        let Page {
            snapshot,
            events,
            head_seq,
            has_more,
            scanned,
        } = page;
        let position = resume.or(after).unwrap_or(0);
        let stream = self.mode == Mode::EventStream;
        let Some(doc) = self.docs.get_mut(document_id) else {
            return;
        };
        if stream && !doc.connected {
            doc.connected = true;
            let head_seq = doc.known_head;
            self.outputs.push_back(Output::Connected { head_seq });
        }
        let doc = self.docs.get_mut(document_id).expect("open");
        let snapshot_sent = snapshot.is_some();
        if let Some(snapshot) = snapshot {
            if stream && doc.streamed {
                // A stream is one sequence: a snapshot may only come first (13).
                return self.close(close::NORMAL, "fell behind the retained history");
            }
            doc.sent = doc.sent.max(snapshot.sequence_num);
            doc.streamed = true;
            self.send_to(document_id, ServerMessage::Snapshot { snapshot });
        }
        let doc = self.docs.get_mut(document_id).expect("open");
        doc.known_head = doc.known_head.max(head_seq);
        let last = events.last_seq();
        // The answer covers every missing event up to what was scanned (6.2).
        doc.sent = doc.sent.max(scanned).max(last.unwrap_or(0));
        if !stream || last.is_some() {
            doc.streamed = true;
            self.send_events(
                document_id,
                events,
                FrameKind::Events { head_seq, has_more },
            );
        }
        if !has_more || (scanned <= position && !snapshot_sent) {
            return;
        }
        if after.is_some() || snapshot_sent || stream {
            // The cursor form (after a snapshot, every later event is missing).
            self.start_sync(document_id, vector, Some(scanned), None);
        } else {
            self.start_sync(document_id, vector, None, Some(scanned));
        }
    }

    // --- live events (7) -------------------------------------------------------------------

    pub(super) fn live_batch(&mut self, document_id: &str, batch: L) {
        let Some(doc) = self.docs.get_mut(document_id) else {
            return;
        };
        let events = batch.events();
        let (first, last) = match (events.first(), events.last()) {
            (Some(first), Some(last)) => (first.sequence_num, last.sequence_num),
            _ => return,
        };
        doc.known_head = doc.known_head.max(last);
        if last <= doc.sent {
            return;
        }
        if first > doc.sent + 1 {
            // Something between was not seen: read it from the log.
            doc.gap = true;
            return;
        }
        doc.streamed = true;
        let sent = std::mem::replace(&mut doc.sent, last);
        if first == sent + 1 {
            self.outputs.push_back(Output::SendLive(batch));
        } else {
            let events = events
                .iter()
                .filter(|e| e.sequence_num > sent)
                .cloned()
                .collect();
            self.send_to(document_id, ServerMessage::Event { events });
        }
    }

    /// Reads the events after what was sent from the log, then sends `answer`.
    fn start_repair(&mut self, document_id: &str, answer: Vec<ServerMessage>) {
        let Some(after) = self.docs.get(document_id).map(|doc| doc.sent) else {
            return;
        };
        self.task = Some((document_id.to_owned(), Task::Repair { answer }));
        self.request(Request::Read {
            document_id: document_id.to_owned(),
            read: Read::Events {
                after,
                limit: self.limits.default_page.max(1),
            },
        });
    }

    fn repaired(&mut self, document_id: &str, events: LogEvents, answer: Vec<ServerMessage>) {
        let Some(doc) = self.docs.get_mut(document_id) else {
            return;
        };
        let Some(first) = events.first_seq() else {
            return self.finish(document_id, answer);
        };
        if first != doc.sent + 1 {
            // The events in between were compacted before this connection was sent them: it
            // cannot get them in order any more, so the live stream stops rather than skips
            // (7.1). The client opens it again and catches up from the snapshot.
            return self.stop_live(document_id, None);
        }
        let full = events.len() >= self.limits.default_page.max(1);
        let last = events.last_seq().unwrap_or(first);
        doc.known_head = doc.known_head.max(last);
        doc.sent = last;
        doc.streamed = true;
        self.send_events(document_id, events, FrameKind::Event);
        if full {
            self.start_repair(document_id, answer);
        } else {
            self.finish(document_id, answer);
        }
    }

    /// The live stream of a document cannot go on in order, because its next events were
    /// compacted (`None`) or could not be read: version 2 closes the document (retryable:
    /// the client opens it again), version 1 and SSE the connection (7.1).
    fn stop_live(&mut self, document_id: &str, failure: Option<(ErrorCode, String)>) {
        match (self.version, failure) {
            (protocol::PROTOCOL_VERSION_2, failure) => {
                let why = failure.unwrap_or_else(|| {
                    let message = "fell behind the retained history: open the document again";
                    (ErrorCode::Internal, message.into())
                });
                self.close_document(document_id, Some(why));
            }
            (_, None) => self.close(close::NORMAL, "fell behind the retained history"),
            (_, Some((code, message))) => {
                self.send(ServerMessage::Error { code, message });
                self.close(close_code(code), "live events could not be read");
            }
        }
    }

    fn finish(&mut self, document_id: &str, answer: Vec<ServerMessage>) {
        for message in answer {
            self.send_to(document_id, message);
        }
    }

    // --- edits (8) -------------------------------------------------------------------------

    pub(super) fn submit(&mut self, document_id: &str, edits: Vec<Edit>) {
        let Some(first) = edits.first().map(|e| e.client_seq) else {
            // Every submit is answered: an empty one with an empty ack (8.1).
            return self.send_to(document_id, ServerMessage::Ack { edits: Vec::new() });
        };
        let may_write = self.docs.get(document_id).is_some_and(|doc| doc.may_write);
        self.task = Some((document_id.to_owned(), Task::Submit { first }));
        self.request(Request::Submit {
            document_id: document_id.to_owned(),
            client_id: self.client_id.clone(),
            edits,
            may_write,
        });
    }

    fn rejection(
        &self,
        document_id: &str,
        client_seq: u64,
        code: ErrorCode,
        message: &str,
    ) -> Rejection {
        Rejection {
            client_seq,
            code,
            message: message.to_owned(),
            head_seq: self.docs.get(document_id).map_or(0, |doc| doc.known_head),
        }
    }

    pub(super) fn rate_limited_submit(&mut self, document_id: &str, first: u64) {
        if !self.docs.contains_key(document_id) {
            return self.error(ErrorCode::RateLimited, "too many messages: slow down");
        }
        let rejection = self.rejection(
            document_id,
            first,
            ErrorCode::RateLimited,
            "too many messages: slow down",
        );
        self.answer_submit(document_id, Vec::new(), Some(rejection), None);
    }

    pub(super) fn submitted(&mut self, submitted: Submitted) {
        let Some((document_id, Task::Submit { first })) = self.task.take() else {
            return self.unexpected_reply();
        };
        match submitted {
            Submitted::Ordered {
                acks,
                rejection,
                last_seq,
            } => self.answer_submit(&document_id, acks, rejection, last_seq),
            Submitted::Refused(code, message) => {
                let rejection = self.rejection(&document_id, first, code, &message);
                self.answer_submit(&document_id, Vec::new(), Some(rejection), None)
            }
            Submitted::Unknown(message) => {
                if self.version == protocol::PROTOCOL_VERSION_2 {
                    self.close_document(&document_id, Some((ErrorCode::Internal, message)));
                } else {
                    self.close(close::INTERNAL, "storage failed during a submit");
                }
            }
        }
    }

    /// The answer to a submit (8.2): every event up to the last new one, and up to a reject's
    /// `headSeq`, first; then the ack entries; then at most one reject.
    fn answer_submit(
        &mut self,
        document_id: &str,
        acks: Vec<Ack>,
        rejection: Option<Rejection>,
        last_seq: Option<u64>,
    ) {
        let through = last_seq
            .into_iter()
            .chain(rejection.as_ref().map(|r| r.head_seq))
            .max()
            .unwrap_or(0);
        let mut answer = Vec::new();
        if !acks.is_empty() || rejection.is_none() {
            answer.push(ServerMessage::Ack { edits: acks });
        }
        if let Some(r) = rejection {
            answer.push(ServerMessage::Reject {
                client_seq: r.client_seq,
                code: r.code,
                message: r.message,
                head_seq: r.head_seq,
            });
        }
        self.task = Some((document_id.to_owned(), Task::Deliver { through, answer }));
        self.request(Request::DrainLive {
            document_id: document_id.to_owned(),
        });
    }

    pub(super) fn drained(&mut self) {
        let Some((document_id, Task::Deliver { through, answer })) = self.task.take() else {
            return self.unexpected_reply();
        };
        let Some(doc) = self.docs.get_mut(&document_id) else {
            return;
        };
        if doc.sent >= through && !doc.gap {
            self.finish(&document_id, answer);
        } else {
            doc.gap = false;
            self.start_repair(&document_id, answer);
        }
    }
}
