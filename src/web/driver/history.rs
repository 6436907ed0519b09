//! Document history on the browser client (`docs/PROTOCOL.md` 18.8), the same as the native
//! one (`src/native/history.rs`): pages of who, when and what changed, the document as of any
//! position, and restoring one as a new edit. A document of a [`super::super::SyncConnection`]
//! asks over its connection; a client of its own (protocol version 1) refuses with
//! `unexpected_message`, as presence does.

use super::{ClientError, Doc, SyncClient};
use crate::multiplex::{HistoryError, HistoryQuery, HistoryReply};
use crate::protocol::ErrorCode;

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

    crate::multiplex::client_history_api!();
}
