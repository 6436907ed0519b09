//! Presence on a version 2 connection (`docs/PROTOCOL.md` 18.7): the client's own, checked and
//! handed to the driver ([`Output::Presence`]), and the others', sent on to the client. The
//! driver keeps the table of who is where ([`crate::server::PresenceTable`]).

use serde_json::Value;

use crate::multiplex::PresenceError;

use super::*;

impl<L: LiveBatch> ServerConnection<L> {
    /// Other peers' presence on a document changed (`full`: this is all of it). Sent on if the
    /// document is open here; the connection's own client is left out.
    pub fn handle_presence(
        &mut self,
        now: u64,
        document_id: &str,
        peers: &[PresencePeer],
        full: bool,
    ) {
        self.now = self.now.max(now);
        if self.is_closed() || !self.docs.contains_key(document_id) {
            return;
        }
        let peers: Vec<PresencePeer> = peers
            .iter()
            .filter(|peer| peer.client_id != self.client_id)
            .cloned()
            .collect();
        if peers.is_empty() && !full {
            return;
        }
        let update = PresenceUpdate {
            peers,
            full,
            ..PresenceUpdate::default()
        };
        self.send_to(document_id, ServerMessage::Presence(update));
    }

    /// The client's `presence` on an open document.
    pub(super) fn presence(&mut self, document_id: &str, state: Value) {
        let checked = PresenceError::check_state(&state, self.limits.max_presence_bytes);
        if let Err(err) = checked {
            return self.refuse_presence(document_id, err.code(), err.to_string());
        }
        if let Some(doc) = self.docs.get_mut(document_id) {
            doc.presence = !state.is_null();
        }
        self.outputs.push_back(Output::Presence {
            document_id: document_id.to_owned(),
            state,
        });
    }

    /// A presence update the server does not take: the previous state stays.
    pub(super) fn refuse_presence(&mut self, document_id: &str, code: ErrorCode, message: String) {
        let update = PresenceUpdate {
            code: Some(code),
            message: Some(message),
            ..PresenceUpdate::default()
        };
        self.send_to(document_id, ServerMessage::Presence(update));
    }

    /// The others' presence on a document just opened.
    pub(super) fn presence_snapshot(&mut self, peers: Vec<PresencePeer>) {
        let Some((document_id, Task::Presence)) = self.task.take() else {
            return self.unexpected_reply();
        };
        if peers.iter().any(|peer| peer.client_id != self.client_id) {
            self.handle_presence(self.now, &document_id, &peers, true);
        }
    }

    /// When the client's presence goes if it stays silent.
    pub(super) fn presence_deadline(&self) -> Option<u64> {
        self.docs
            .values()
            .any(|doc| doc.presence)
            .then(|| self.last_heard + self.limits.presence_timeout_ms)
    }

    /// A client silent for the presence timeout loses its presence on every document (18.7); it
    /// publishes again when it speaks again.
    pub(super) fn expire_presence(&mut self, now: u64) {
        if self.presence_deadline().is_none_or(|at| now < at) {
            return;
        }
        let mut gone: Vec<String> = Vec::new();
        for (document_id, doc) in self.docs.iter_mut().filter(|(_, doc)| doc.presence) {
            doc.presence = false;
            gone.push(document_id.clone());
        }
        gone.sort();
        for document_id in gone {
            self.outputs.push_back(Output::Presence {
                document_id,
                state: Value::Null,
            });
        }
    }
}
