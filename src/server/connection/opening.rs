//! Opening and closing documents (`docs/PROTOCOL.md` 5, 18): admission (the token's rights),
//! the open with its head, and the close, asked for or not (version 2 closes one document;
//! version 1 and SSE close the connection).

use super::*;

impl<L: LiveBatch> ServerConnection<L> {
    /// Version 2: an `open`.
    pub(super) fn open(&mut self, document_id: String) {
        if self.docs.contains_key(&document_id) {
            return self.error_about(
                &document_id,
                ErrorCode::UnexpectedMessage,
                format!("{document_id} is already open on this connection"),
            );
        }
        if let Err(reason) = validate_document_id(&document_id) {
            return self.refuse_document(&document_id, ErrorCode::UnknownDocument, reason);
        }
        if self.docs.len() >= self.limits.max_documents {
            let message = format!(
                "a connection may have at most {} documents open",
                self.limits.max_documents
            );
            return self.refuse_document(&document_id, ErrorCode::TooLarge, message);
        }
        self.admit(document_id);
    }

    pub(super) fn admit(&mut self, document_id: String) {
        self.task = Some((document_id.clone(), Task::Admit));
        self.request(Request::Admit { document_id });
    }

    pub(super) fn admitted(&mut self, result: Result<Rights, (ErrorCode, String)>) {
        let Some((document_id, Task::Admit)) = self.task.take() else {
            return self.unexpected_reply();
        };
        let rights = match result {
            Ok(rights) if rights.read => rights,
            Ok(_) => {
                let message = format!("the token does not grant access to {document_id}");
                return self.refuse_document(&document_id, ErrorCode::Forbidden, message);
            }
            Err((code, message)) => return self.refuse_document(&document_id, code, message),
        };
        self.task = Some((
            document_id.clone(),
            Task::Opening {
                may_write: rights.write,
            },
        ));
        self.request(Request::Open { document_id });
    }

    pub(super) fn opened(&mut self, result: Result<u64, (ErrorCode, String)>) {
        let Some((document_id, Task::Opening { may_write })) = self.task.take() else {
            return self.unexpected_reply();
        };
        let head_seq = match result {
            Ok(head_seq) => head_seq,
            Err((code, message)) => return self.refuse_document(&document_id, code, message),
        };
        if self.mode == Mode::EventStream {
            // The catch-up from the stream's position starts at once.
            let doc = self
                .docs
                .get_mut(&document_id)
                .expect("the stream's document");
            doc.known_head = head_seq;
            let after = doc.sent;
            return self.start_sync(&document_id, VectorClock::new(), Some(after), None);
        }
        // Live events start right after headSeq (7.1).
        self.docs
            .insert(document_id.clone(), Doc::new(head_seq, head_seq, may_write));
        if self.version == protocol::PROTOCOL_VERSION_2 {
            self.send_to(&document_id, ServerMessage::Opened { head_seq });
            // The others' presence, right after `opened` (18.7).
            self.task = Some((document_id.clone(), Task::Presence));
            self.request(Request::Presence { document_id });
        } else {
            let welcome = ServerMessage::Welcome {
                protocol_version: self.version,
                document_id,
                client_id: self.client_id.clone(),
                head_seq: Some(head_seq),
            };
            self.send(welcome);
        }
    }

    /// A document cannot be served: version 2 closes it alone (`closed` with a code); version 1
    /// and SSE close the connection.
    pub(super) fn refuse_document(&mut self, document_id: &str, code: ErrorCode, message: String) {
        if self.version == protocol::PROTOCOL_VERSION_2 {
            self.close_document(document_id, Some((code, message)));
        } else {
            self.refuse(code, message);
        }
    }

    /// Version 2: the document is no longer served: at the client's request (`None`) or not.
    pub(super) fn close_document(&mut self, document_id: &str, why: Option<(ErrorCode, String)>) {
        let removed = self.docs.remove(document_id);
        if removed.as_ref().is_some_and(|doc| doc.presence) {
            self.outputs.push_back(Output::Presence {
                document_id: document_id.to_owned(),
                state: serde_json::Value::Null,
            });
        }
        let was_open = removed.is_some();
        if matches!(&self.task, Some((doc, _)) if doc == document_id) {
            self.task = None;
        }
        if was_open {
            self.outputs
                .push_back(Output::Unsubscribe(document_id.to_owned()));
        } else if why.is_none() {
            return self.error_about(
                document_id,
                ErrorCode::UnexpectedMessage,
                format!("{document_id} is not open on this connection"),
            );
        }
        let (code, message) = match why {
            Some((code, message)) => (Some(code), message),
            None => (None, String::new()),
        };
        self.send_to(document_id, ServerMessage::Closed { code, message });
    }
}
