//! History requests on the client's side of a version 2 connection (`docs/PROTOCOL.md` 18.8):
//! each request gets a `requestId`, goes out once its document is open on the server (again
//! after a reconnect, if it was unanswered), and ends exactly once: with the server's answer,
//! its refusal, or a timeout. Drivers take the ends with [`super::Multiplexer::poll_answer`].

use std::collections::VecDeque;

use crate::vec_map::VecMap;

use crate::protocol::{
    ClientMessage, ErrorCode, HistoryAnswer, HistoryRequest, Version, VersionAnswer, VersionRequest,
};

/// What to ask about a document's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// A page of events after `after` (at most `limit`; the server's default when `None`).
    Page {
        /// The position the page starts after.
        after: u64,
        /// The most events.
        limit: Option<u64>,
    },
    /// The document as of position `at`.
    Version {
        /// The position.
        at: u64,
    },
}

/// A page of history: who, when and what changed, one event per position.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The events (their `sequenceNum`, `clientId`, `timestamp`, `operation` and `diff`), in
    /// order.
    pub entries: Vec<crate::protocol::Event>,
    /// The document's last `sequenceNum`.
    pub head_seq: u64,
    /// A further page exists (ask with `after` = the last entry's `sequenceNum`).
    pub has_more: bool,
    /// Set when the events up to it were compacted: the page continues after it, and it is the
    /// oldest position [`HistoryQuery::Version`] can ask for.
    pub oldest_seq: Option<u64>,
}

/// How a request ended well.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryReply {
    /// Answers [`HistoryQuery::Page`].
    Page(HistoryPage),
    /// Answers [`HistoryQuery::Version`].
    Version(Version),
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The server refused it (`history_compacted`, `invalid_sequence`, ...).
    #[error("the server refused the history request ({code}): {message}")]
    Refused {
        /// The protocol code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The document is not on this connection (or was closed before the answer).
    #[error("{0} is not open on this connection")]
    NotOpen(String),
    /// No answer within the request timeout.
    #[error("no answer to the history request within {0} ms")]
    TimedOut(u64),
}

impl HistoryError {
    /// The protocol code that says the same (`None` for a timeout).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            HistoryError::Refused { code, .. } => Some(*code),
            HistoryError::NotOpen(_) => Some(ErrorCode::UnexpectedMessage),
            HistoryError::TimedOut(_) => None,
        }
    }
}

/// The end of one request.
pub type HistoryResult = Result<HistoryReply, HistoryError>;

#[derive(Debug)]
struct Pending {
    document_id: String,
    query: HistoryQuery,
    deadline: u64,
    sent: bool,
}

/// The connection's outstanding requests and the ends not yet taken.
#[derive(Debug, Default)]
pub(super) struct Requests {
    last_id: u64,
    pending: VecMap<u64, Pending>,
    ended: VecDeque<(u64, HistoryResult)>,
}

impl Requests {
    /// A new request; returns its id.
    pub fn add(&mut self, document_id: &str, query: HistoryQuery, deadline: u64) -> u64 {
        self.last_id += 1;
        let pending = Pending {
            document_id: document_id.to_owned(),
            query,
            deadline,
            sent: false,
        };
        self.pending.insert(self.last_id, pending);
        self.last_id
    }

    /// Ends a request at once.
    pub fn end(&mut self, id: u64, result: HistoryResult) {
        self.pending.remove(&id);
        self.ended.push_back((id, result));
    }

    /// The frames of the document's requests not sent yet (marked sent).
    pub fn unsent(&mut self, document_id: &str) -> Vec<ClientMessage> {
        let mut frames = Vec::new();
        for (id, pending) in self.pending.iter_mut() {
            if pending.sent || pending.document_id != document_id {
                continue;
            }
            pending.sent = true;
            frames.push(match pending.query {
                HistoryQuery::Page { after, limit } => ClientMessage::History(HistoryRequest {
                    request_id: *id,
                    after,
                    limit,
                }),
                HistoryQuery::Version { at } => ClientMessage::Version(VersionRequest {
                    request_id: *id,
                    at,
                }),
            });
        }
        frames
    }

    /// The connection went down: what was sent is asked again once the document is open again.
    pub fn disconnected(&mut self) {
        for pending in self.pending.values_mut() {
            pending.sent = false;
        }
    }

    /// The document left the connection: its requests fail.
    pub fn removed(&mut self, document_id: &str) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.document_id == document_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.end(id, Err(HistoryError::NotOpen(document_id.to_owned())));
        }
    }

    /// The earliest deadline.
    pub fn deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Requests past their deadline time out.
    pub fn expire(&mut self, now: u64, timeout_ms: u64) {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.end(id, Err(HistoryError::TimedOut(timeout_ms)));
        }
    }

    /// A `history` answer about `document_id`.
    pub fn history_answer(&mut self, document_id: &str, answer: HistoryAnswer) {
        if !self.is_for(answer.request_id, document_id, true) {
            return;
        }
        let result = match answer.code {
            Some(code) => Err(HistoryError::Refused {
                code,
                message: answer.message.unwrap_or_default(),
            }),
            None => Ok(HistoryReply::Page(HistoryPage {
                entries: answer.events,
                head_seq: answer.head_seq.unwrap_or_default(),
                has_more: answer.has_more,
                oldest_seq: answer.oldest_seq,
            })),
        };
        self.end(answer.request_id, result);
    }

    /// A `version` answer about `document_id`.
    pub fn version_answer(&mut self, document_id: &str, answer: VersionAnswer) {
        if !self.is_for(answer.request_id, document_id, false) {
            return;
        }
        let result = match (answer.code, answer.version) {
            (None, Some(mut version)) => {
                version.document_id = document_id.to_owned();
                Ok(HistoryReply::Version(version))
            }
            (code, _) => Err(HistoryError::Refused {
                code: code.unwrap_or(ErrorCode::Unknown),
                message: answer.message.unwrap_or_default(),
            }),
        };
        self.end(answer.request_id, result);
    }

    /// An answer to a request of ours, of its kind and document, that went out.
    fn is_for(&self, id: u64, document_id: &str, page: bool) -> bool {
        self.pending.get(&id).is_some_and(|p| {
            p.sent
                && p.document_id == document_id
                && matches!(p.query, HistoryQuery::Page { .. }) == page
        })
    }

    /// The next ended request.
    pub fn poll(&mut self) -> Option<(u64, HistoryResult)> {
        self.ended.pop_front()
    }
}

/// The history methods of both drivers' `SyncClient` (native and browser), written once: each
/// driver supplies `ask`, which sends a request over the document's connection (or refuses on
/// a client of its own) and waits for its answer.
macro_rules! client_history_api {
    () => {
        /// A page of the document's history: the events after `after` (at most `limit`; the
        /// server's default when `None`), each with who (`client_id`), when (`timestamp`) and what
        /// changed (`operation`, `diff`). Page on with `after` = the last entry's `sequence_num`
        /// while `has_more`. When the server compacted the events up to a position, the page
        /// continues after it and says so in `oldest_seq`. Waits until the document is open and
        /// caught up; fails with `ClientError::Timeout` after the request timeout.
        pub async fn history(
            &self,
            after: u64,
            limit: Option<u64>,
        ) -> Result<crate::multiplex::HistoryPage, ClientError> {
            match self
                .ask(crate::multiplex::HistoryQuery::Page { after, limit })
                .await?
            {
                crate::multiplex::HistoryReply::Page(page) => Ok(page),
                crate::multiplex::HistoryReply::Version(_) => Err(ClientError::Closed),
            }
        }

        /// The document as of `seq` (`document`: `None` when it did not exist then), with who wrote
        /// the event at `seq` and when. A position compaction removed is refused with
        /// `history_compacted`, one ahead of the log with `invalid_sequence`
        /// ([`crate::ClientError::Refused`]).
        pub async fn version_at(&self, seq: u64) -> Result<crate::protocol::Version, ClientError> {
            match self
                .ask(crate::multiplex::HistoryQuery::Version { at: seq })
                .await?
            {
                crate::multiplex::HistoryReply::Version(version) => Ok(version),
                crate::multiplex::HistoryReply::Page(_) => Err(ClientError::Closed),
            }
        }

        /// Writes the document as of `seq` back as one new edit: the difference from the document
        /// as this client sees it now (confirmed plus pending) to the old one, queued, sent and
        /// undoable like any edit (a create or a delete when the document's existence differs).
        /// Returns its `clientSeq`. Nothing to change is [`crate::ClientError::InvalidArgument`].
        pub async fn restore(&self, seq: u64) -> Result<u64, ClientError> {
            let old = self.version_at(seq).await?.document;
            let restored = self
                .doc
                .with_session(|s, now| s.restore_version(now, old))??;
            restored.ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "nothing to restore: the document already is as it was at {seq}"
                ))
            })
        }
    };
}
pub(crate) use client_history_api;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HistoryAnswer;

    #[test]
    fn each_request_ends_once_with_its_answer_refusal_or_timeout() {
        let mut requests = Requests::default();
        let page = requests.add(
            "d",
            HistoryQuery::Page {
                after: 0,
                limit: None,
            },
            100,
        );
        let version = requests.add("d", HistoryQuery::Version { at: 3 }, 100);
        let late = requests.add("e", HistoryQuery::Version { at: 1 }, 50);
        // Answers to requests not sent yet are not theirs.
        requests.history_answer(
            "d",
            HistoryAnswer {
                request_id: page,
                ..Default::default()
            },
        );
        assert!(requests.poll().is_none());
        assert_eq!(requests.unsent("d").len(), 2);
        assert!(requests.unsent("d").is_empty(), "sent once");
        requests.history_answer(
            "d",
            HistoryAnswer {
                request_id: page,
                head_seq: Some(4),
                ..Default::default()
            },
        );
        let refusal = VersionAnswer {
            request_id: version,
            code: Some(ErrorCode::HistoryCompacted),
            message: Some("gone".into()),
            ..Default::default()
        };
        // An answer about another document is not this request's.
        requests.version_answer("e", refusal.clone());
        requests.version_answer("d", refusal.clone());
        requests.version_answer("d", refusal);
        requests.expire(50, 10_000);
        let ended: Vec<(u64, HistoryResult)> = std::iter::from_fn(|| requests.poll()).collect();
        assert_eq!(ended.len(), 3, "{ended:?}");
        assert!(
            matches!(&ended[0], (id, Ok(HistoryReply::Page(p))) if *id == page && p.head_seq == 4)
        );
        assert!(
            matches!(&ended[1], (id, Err(e)) if *id == version && e.code() == Some(ErrorCode::HistoryCompacted))
        );
        assert!(matches!(&ended[2], (id, Err(HistoryError::TimedOut(_))) if *id == late));
        assert_eq!(requests.deadline(), None);
    }
}
