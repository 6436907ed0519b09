//! History requests on a version 2 connection (`docs/PROTOCOL.md` 18.8): a page of a document's
//! history (the page of `GET /api/events`, [`CatchUp`]) and the document as of a position
//! ([`VersionAt`]), each answered once, with the request's `requestId`, or refused with a code.

use crate::protocol::{HistoryAnswer, HistoryRequest, VersionAnswer, VersionRequest};
use crate::server::catch_up::{ReadResult, SnapshotPolicy, Step};
use crate::server::history::{VersionAt, VersionStep};

use super::*;

impl<L: LiveBatch> ServerConnection<L> {
    /// A `history` request about an open document.
    pub(super) fn history(&mut self, document_id: &str, request: HistoryRequest) {
        let limit = request.limit.map_or(self.limits.default_page, |limit| {
            usize::try_from(limit).map_or(self.limits.max_page, |l| l.min(self.limits.max_page))
        });
        let (machine, read) = CatchUp::after(request.after, limit, SnapshotPolicy::WhenBehind);
        let task = Task::History {
            machine: Box::new(machine),
            request_id: request.request_id,
        };
        self.task = Some((document_id.to_owned(), task));
        self.request(Request::Read {
            document_id: document_id.to_owned(),
            read,
        });
    }

    /// A `version` request about an open document.
    pub(super) fn version_at(&mut self, document_id: &str, request: VersionRequest) {
        let (machine, read) = VersionAt::new(request.at, self.limits.default_page);
        let task = Task::Version {
            machine: Box::new(machine),
            request_id: request.request_id,
        };
        self.task = Some((document_id.to_owned(), task));
        self.request(Request::Read {
            document_id: document_id.to_owned(),
            read,
        });
    }

    /// A request the connection does not serve (its document is not open, or it came too
    /// fast): answered at once with `code`.
    pub(super) fn refuse_history(
        &mut self,
        document_id: &str,
        message: &ClientMessage,
        code: ErrorCode,
        detail: String,
    ) {
        let answer = match message {
            ClientMessage::History(request) => ServerMessage::History(HistoryAnswer {
                request_id: request.request_id,
                code: Some(code),
                message: Some(detail),
                ..HistoryAnswer::default()
            }),
            ClientMessage::Version(request) => ServerMessage::Version(VersionAnswer {
                request_id: request.request_id,
                code: Some(code),
                message: Some(detail),
                ..VersionAnswer::default()
            }),
            _ => return self.error_about(document_id, code, detail),
        };
        self.send_to(document_id, answer);
    }

    /// A read of a history request came back.
    pub(super) fn history_read(
        &mut self,
        document_id: String,
        task: Task,
        result: Result<ReadResult, (ErrorCode, String)>,
    ) {
        match task {
            Task::History {
                mut machine,
                request_id,
            } => {
                let step = match result {
                    Ok(found) => machine.handle(found),
                    Err((code, message)) => Step::Refused(code, message),
                };
                let answer = match step {
                    Step::Read(read) => {
                        self.task = Some((
                            document_id.clone(),
                            Task::History {
                                machine,
                                request_id,
                            },
                        ));
                        return self.request(Request::Read { document_id, read });
                    }
                    Step::Page(page) => match page.events.into_events(&document_id) {
                        Ok(events) => HistoryAnswer {
                            request_id,
                            oldest_seq: page.snapshot.as_ref().map(|s| s.sequence_num),
                            events,
                            head_seq: Some(page.head_seq),
                            has_more: page.has_more,
                            ..HistoryAnswer::default()
                        },
                        Err((code, message)) => HistoryAnswer {
                            request_id,
                            code: Some(code),
                            message: Some(message),
                            ..HistoryAnswer::default()
                        },
                    },
                    Step::Refused(code, message) => HistoryAnswer {
                        request_id,
                        code: Some(code),
                        message: Some(message),
                        ..HistoryAnswer::default()
                    },
                };
                self.send_to(&document_id, ServerMessage::History(answer));
            }
            Task::Version {
                mut machine,
                request_id,
            } => {
                let step = match result {
                    Ok(found) => machine.handle(found),
                    Err((code, message)) => VersionStep::Refused(code, message),
                };
                let answer = match step {
                    VersionStep::Read(read) => {
                        self.task = Some((
                            document_id.clone(),
                            Task::Version {
                                machine,
                                request_id,
                            },
                        ));
                        return self.request(Request::Read { document_id, read });
                    }
                    VersionStep::Done(version) => VersionAnswer {
                        request_id,
                        version: Some(version),
                        ..VersionAnswer::default()
                    },
                    VersionStep::Refused(code, message) => VersionAnswer {
                        request_id,
                        code: Some(code),
                        message: Some(message),
                        ..VersionAnswer::default()
                    },
                };
                self.send_to(&document_id, ServerMessage::Version(answer));
            }
            _ => self.unexpected_reply(),
        }
    }
}
