//! Presence on the client's side of a version 2 connection (`docs/PROTOCOL.md` 18.7): this
//! client's own state per document, sent at most once per interval (the latest wins), and
//! published again whenever the document is opened again; and the others' states, as the
//! server's `presence` frames say.

use crate::vec_map::VecMap;

use serde_json::Value;

use crate::protocol::{ErrorCode, PresencePeer, PresenceUpdate};

/// One document's presence on the connection.
#[derive(Debug, Default)]
pub(super) struct DocPresence {
    /// What the app set (`None`: nothing).
    local: Option<Value>,
    /// The server may hold a state of ours for this opening of the document.
    published: bool,
    /// `local` is not what the server has.
    dirty: bool,
    /// When a presence frame of this document was last sent.
    last_sent: Option<u64>,
    /// The server has the document open for us (`opened` seen, no `closed` since).
    open: bool,
    /// The others, by client id.
    others: VecMap<String, PresencePeer>,
}

/// What a `presence` frame changed: the others (tell the app), or a refusal to report.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub others_changed: bool,
    pub error: Option<(ErrorCode, String)>,
}

impl DocPresence {
    /// The app set its state (`None`: cleared).
    pub fn set(&mut self, state: Option<Value>) {
        self.local = state;
        self.dirty = true;
    }

    /// The app's state.
    pub fn local(&self) -> Option<&Value> {
        self.local.as_ref()
    }

    /// The others, in client id order.
    pub fn others(&self) -> Vec<PresencePeer> {
        self.others.values().cloned().collect()
    }

    /// When a coalesced update is due (`None`: nothing waits).
    pub fn due(&self, interval: u64) -> Option<u64> {
        (self.open && self.dirty).then(|| self.last_sent.map_or(0, |at| at + interval))
    }

    /// Sends the state if it changed and the interval since the last frame has passed.
    pub fn flush(&mut self, now: u64, interval: u64) -> Option<Value> {
        if self.due(interval).is_none_or(|at| now < at) {
            return None;
        }
        self.dirty = false;
        let state = match &self.local {
            Some(state) => state.clone(),
            // Nothing to clear on the server.
            None if !self.published => return None,
            None => Value::Null,
        };
        self.published = !state.is_null();
        self.last_sent = Some(now);
        Some(state)
    }

    /// The server opened the document: the others' set starts empty (a `full` frame follows
    /// when anyone is there) and our state is published again.
    pub fn opened(&mut self) -> bool {
        self.open = true;
        self.published = false;
        self.dirty = self.local.is_some();
        // A new opening: no need to wait for the last frame's interval.
        self.last_sent = None;
        self.forget_others()
    }

    /// The document is closed, or the connection is gone: the others are unknown until it is
    /// open again. Returns whether the app's view changed.
    pub fn closed(&mut self) -> bool {
        self.open = false;
        self.published = false;
        self.forget_others()
    }

    fn forget_others(&mut self) -> bool {
        let had = !self.others.is_empty();
        self.others.clear();
        had
    }

    /// A `presence` frame from the server.
    pub fn received(&mut self, now: u64, update: PresenceUpdate) -> Effects {
        let mut effects = Effects::default();
        if let Some(code) = update.code {
            let message = update.message.unwrap_or_default();
            match code {
                // Dropped, not stored: send the latest again after the interval.
                ErrorCode::RateLimited => {
                    self.dirty = true;
                    self.last_sent = Some(now);
                }
                _ => effects.error = Some((code, message)),
            }
            return effects;
        }
        if !self.open {
            return effects;
        }
        if update.full {
            effects.others_changed = self.forget_others();
        }
        for peer in update.peers {
            let changed = if peer.state.is_null() {
                self.others.remove(&peer.client_id).is_some()
            } else if self.others.get(&peer.client_id) == Some(&peer) {
                false
            } else {
                self.others.insert(peer.client_id.clone(), peer);
                true
            };
            effects.others_changed |= changed;
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peer(id: &str, state: Value) -> PresencePeer {
        PresencePeer {
            client_id: id.into(),
            state,
            since: Some("2026-01-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn updates_are_coalesced_to_one_per_interval_and_the_latest_wins() {
        let mut p = DocPresence::default();
        assert!(!p.opened());
        p.set(Some(json!(1)));
        assert_eq!(p.flush(1000, 100), Some(json!(1)));
        p.set(Some(json!(2)));
        p.set(Some(json!(3)));
        assert_eq!(p.due(100), Some(1100));
        assert_eq!(p.flush(1050, 100), None);
        assert_eq!(p.flush(1100, 100), Some(json!(3)));
        assert_eq!(p.flush(1300, 100), None, "nothing changed");
        p.set(None);
        assert_eq!(p.flush(1300, 100), Some(Value::Null));
    }

    #[test]
    fn a_reopened_document_publishes_again_and_forgets_the_others() {
        let mut p = DocPresence::default();
        p.set(Some(json!({"cursor": 4})));
        assert_eq!(p.flush(0, 100), None, "not open yet");
        p.opened();
        assert_eq!(p.flush(0, 100), Some(json!({"cursor": 4})));
        let full = PresenceUpdate {
            peers: vec![peer("bob", json!("b"))],
            full: true,
            ..PresenceUpdate::default()
        };
        assert!(p.received(0, full).others_changed);
        assert_eq!(p.others().len(), 1);
        assert!(p.closed());
        assert!(p.others().is_empty());
        assert!(!p.opened());
        assert_eq!(p.flush(10, 100), Some(json!({"cursor": 4})));
    }

    #[test]
    fn others_join_move_and_leave() {
        let mut p = DocPresence::default();
        p.opened();
        let update = |peers| PresenceUpdate {
            peers,
            ..PresenceUpdate::default()
        };
        assert!(
            p.received(0, update(vec![peer("bob", json!(1))]))
                .others_changed
        );
        assert!(
            !p.received(0, update(vec![peer("bob", json!(1))]))
                .others_changed
        );
        assert!(
            p.received(0, update(vec![peer("bob", json!(2))]))
                .others_changed
        );
        assert_eq!(p.others()[0].state, json!(2));
        assert!(
            p.received(0, update(vec![peer("bob", Value::Null)]))
                .others_changed
        );
        assert!(p.others().is_empty());
    }

    #[test]
    fn a_rate_limited_update_is_sent_again_later() {
        let mut p = DocPresence::default();
        p.opened();
        p.set(Some(json!(1)));
        assert!(p.flush(0, 100).is_some());
        let refused = PresenceUpdate {
            code: Some(ErrorCode::RateLimited),
            ..PresenceUpdate::default()
        };
        assert!(p.received(5, refused).error.is_none());
        assert_eq!(p.flush(50, 100), None);
        assert_eq!(p.flush(105, 100), Some(json!(1)));
    }
}
