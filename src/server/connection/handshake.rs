//! The handshake (`docs/PROTOCOL.md` 5): `hello`'s checks in their order, version negotiation,
//! then the token's authorization and the welcome (version 1 opens the URL's document first).

use super::*;

impl<L: LiveBatch> ServerConnection<L> {
    pub(super) fn before_welcome(&mut self, message: ClientMessage) {
        let ClientMessage::Hello {
            protocol_versions,
            client_id,
            token,
        } = message
        else {
            return self.error(ErrorCode::UnexpectedMessage, "send hello first");
        };
        // 5.2 rule 2, in order.
        if let Some(document_id) = &self.bound {
            if let Err(reason) = validate_document_id(document_id) {
                return self.refuse(ErrorCode::UnknownDocument, reason);
            }
        }
        let per_document = self.bound.is_some();
        let Some(version) = negotiate_version(&protocol_versions, per_document) else {
            let message = if per_document {
                "this URL speaks protocol version 1 (version 2 is served at /sync)"
            } else {
                "this URL speaks protocol version 2 (version 1 is served at /sync/{documentId})"
            };
            return self.refuse(ErrorCode::UnsupportedVersion, message.into());
        };
        if let Err(reason) = validate_id(&client_id) {
            return self.refuse(
                ErrorCode::MalformedFrame,
                format!("invalid clientId: {reason}"),
            );
        }
        let token = token.or_else(|| self.url_token.take());
        self.phase = Phase::Authorizing { client_id, version };
        self.request(Request::Authorize { token });
    }

    pub(super) fn authorized(&mut self, result: Result<Credentials, (ErrorCode, String)>) {
        let Phase::Authorizing { client_id, version } =
            std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return self.unexpected_reply();
        };
        let credentials = match result {
            Ok(credentials) => credentials,
            Err((code, message)) => return self.refuse(code, message),
        };
        if let Some(named) = credentials.client_id.as_deref().filter(|n| *n != client_id) {
            return self.refuse(
                ErrorCode::ClientMismatch,
                format!("the token is for client {named}, hello says {client_id}"),
            );
        }
        if client_id == protocol::SERVER_CLIENT_ID {
            return self.refuse(
                ErrorCode::Forbidden,
                "the clientId server is reserved for changes that do not come from a client".into(),
            );
        }
        self.expires_at = credentials.expires_at;
        self.client_id = client_id;
        self.version = version;
        self.phase = Phase::Open;
        match self.bound.clone() {
            // Version 1: the URL's document opens before the welcome (its headSeq is in it).
            Some(document_id) => self.admit(document_id),
            None => {
                let welcome = ServerMessage::Welcome {
                    protocol_version: version,
                    document_id: String::new(),
                    client_id: self.client_id.clone(),
                    head_seq: None,
                };
                self.send(welcome);
            }
        }
    }
}
