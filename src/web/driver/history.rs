//! Document history on the browser client (`docs/PROTOCOL.md` 18.8), the same as the native
//! one (`src/native/history.rs`): pages of who, when and what changed, the document as of any
//! position, and restoring one as a new edit. A document of a [`super::super::SyncConnection`]
//! asks over its connection; a client of its own (protocol version 1) refuses with
//! `unexpected_message`, as presence does.

use serde_json::Value;

use super::{ClientError, Doc, SyncClient};
use crate::multiplex::{HistoryError, HistoryPage, HistoryQuery, HistoryReply};
use crate::protocol::{ErrorCode, Version};
use crate::session::SessionError;

impl From<HistoryError> for ClientError {
    fn from(error: HistoryError) -> Self {
        match error {
            HistoryError::Refused { code, message } => ClientError::Refused {
                code: Some(code),
                message,
            },
            HistoryError::NotOpen(_) => ClientError::Closed,
            HistoryError::TimedOut(ms) => ClientError::Timeout(ms.min(u32::MAX as u64) as u32),
        }
    }
}

/// History of the document (a document of a [`super::super::SyncConnection`]).
impl SyncClient {
    async fn ask(&self, query: HistoryQuery) -> Result<HistoryReply, ClientError> {
        let Doc::Shared(connection, document_id) = &self.doc else {
            return Err(ClientError::Refused {
                code: Some(ErrorCode::UnexpectedMessage),
                message: "history rides on protocol version 2: open the document through a \
                          SyncConnection"
                    .into(),
            });
        };
        let answer = connection.request_history(document_id, query);
        Ok(answer.await.map_err(|_| ClientError::Closed)??)
    }

    /// A page of the document's history: the events after `after` (at most `limit`; the
    /// server's default when `None`), each with who (`client_id`), when (`timestamp`) and what
    /// changed (`operation`, `diff`). Page on with `after` = the last entry's `sequence_num`
    /// while `has_more`. When the server compacted the events up to a position, the page
    /// continues after it and says so in `oldest_seq`. Waits until the document is open and
    /// caught up; fails with [`ClientError::Timeout`] after the request timeout.
    pub async fn history(
        &self,
        after: u64,
        limit: Option<u64>,
    ) -> Result<HistoryPage, ClientError> {
        match self.ask(HistoryQuery::Page { after, limit }).await? {
            HistoryReply::Page(page) => Ok(page),
            HistoryReply::Version(_) => Err(ClientError::Closed),
        }
    }

    /// The document as of `seq` (`document`: `None` when it did not exist then), with who wrote
    /// the event at `seq` and when. A position compaction removed is refused with
    /// `history_compacted`, one ahead of the log with `invalid_sequence`
    /// ([`ClientError::Refused`]).
    pub async fn version_at(&self, seq: u64) -> Result<Version, ClientError> {
        match self.ask(HistoryQuery::Version { at: seq }).await? {
            HistoryReply::Version(version) => Ok(version),
            HistoryReply::Page(_) => Err(ClientError::Closed),
        }
    }

    /// Writes the document as of `seq` back as one new edit: the difference from the document
    /// as this client sees it now (confirmed plus pending) to the old one, queued, sent and
    /// undoable like any edit (a create or a delete when the document's existence differs).
    /// Returns its `clientSeq`. Nothing to change is [`ClientError::InvalidArgument`].
    pub async fn restore(&self, seq: u64) -> Result<u64, ClientError> {
        let old: Option<Value> = self.version_at(seq).await?.document;
        let result = self.doc.with_session(|s, now| match (s.document(), old) {
            (Some(current), Some(old)) => {
                let difference = json_patch::diff(current, &old).0;
                if difference.is_empty() {
                    return Ok(None);
                }
                s.edit(now, difference).map(Some)
            }
            (Some(_), None) => s.delete(now).map(Some),
            (None, Some(old)) => s.create(now, old).map(Some),
            (None, None) => Ok(None),
        })?;
        let restored: Option<u64> = result.map_err(|e: SessionError| ClientError::from(e))?;
        restored.ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "nothing to restore: the document already is as it was at {seq}"
            ))
        })
    }
}
