//! [`PresenceTable`]: who is on each document and what they show, for one server process and the
//! processes it hears from (`docs/PROTOCOL.md` 18.7). Sans IO: a driver keeps one table, feeds it
//! what its connections publish ([`super::Output::Presence`]) and what other processes relay, and
//! hands the changes it returns to the document's connections
//! ([`super::ServerConnection::handle_presence`]).
//!
//! A peer is a client on a document. Its entry belongs to the connection that published it (an
//! [`Owner`]): a client that reconnects before its old connection is noticed gone takes the entry
//! over, and the old connection's end then removes nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::protocol::PresencePeer;

/// The connection an entry belongs to: a process (`0` for a table of one process) and a
/// connection of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The server process.
    pub process: u64,
    /// The connection in that process.
    pub connection: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Owner,
    state: Value,
    since: String,
}

/// Every document's peers (see the module documentation).
#[derive(Debug, Default)]
pub struct PresenceTable {
    docs: HashMap<String, BTreeMap<String, Entry>>,
}

/// A change to relay: a document and the peer as others now see it.
pub type Change = (String, PresencePeer);

impl PresenceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `client` on `document_id` shows `state` (`null`: nothing). Returns the change to relay,
    /// or `None` when nothing changed. `since` is asked for when the peer is new (RFC 3339, now).
    pub fn set(
        &mut self,
        document_id: &str,
        client: &str,
        owner: Owner,
        state: Value,
        since: impl FnOnce() -> String,
    ) -> Option<Change> {
        if state.is_null() {
            return self.clear(document_id, client, Some(owner));
        }
        let peers = self.docs.entry(document_id.to_owned()).or_default();
        let since = match peers.get(client) {
            Some(entry) if entry.state == state && entry.owner == owner => return None,
            Some(entry) => entry.since.clone(),
            None => since(),
        };
        let peer = PresencePeer {
            client_id: client.to_owned(),
            state: state.clone(),
            since: Some(since.clone()),
        };
        peers.insert(
            client.to_owned(),
            Entry {
                owner,
                state,
                since,
            },
        );
        Some((document_id.to_owned(), peer))
    }

    /// `client` left `document_id`: when `owner` is given, only if the entry is still that
    /// connection's.
    pub fn clear(
        &mut self,
        document_id: &str,
        client: &str,
        owner: Option<Owner>,
    ) -> Option<Change> {
        let peers = self.docs.get_mut(document_id)?;
        if let Some(owner) = owner {
            if peers.get(client)?.owner != owner {
                return None;
            }
        }
        peers.remove(client)?;
        if peers.is_empty() {
            self.docs.remove(document_id);
        }
        Some((document_id.to_owned(), left(client)))
    }

    /// Removes every entry `matches` says goes (a connection that ended, a process gone quiet).
    pub fn remove_where(&mut self, matches: impl Fn(Owner) -> bool) -> Vec<Change> {
        let mut changes = Vec::new();
        self.docs.retain(|document_id, peers| {
            peers.retain(|client, entry| {
                let gone = matches(entry.owner);
                if gone {
                    changes.push((document_id.clone(), left(client)));
                }
                !gone
            });
            !peers.is_empty()
        });
        changes
    }

    /// The peers of a document with their states, in client id order.
    pub fn peers(&self, document_id: &str) -> Vec<PresencePeer> {
        self.docs.get(document_id).map_or_else(Vec::new, |peers| {
            peers
                .iter()
                .map(|(client, entry)| PresencePeer {
                    client_id: client.clone(),
                    state: entry.state.clone(),
                    since: Some(entry.since.clone()),
                })
                .collect()
        })
    }

    /// Every entry `owned` selects, as changes (to announce a process's peers to another).
    pub fn entries_of(&self, owned: impl Fn(Owner) -> bool) -> Vec<(Owner, Change)> {
        let mut out = Vec::new();
        for (document_id, peers) in &self.docs {
            for (client, entry) in peers.iter().filter(|(_, e)| owned(e.owner)) {
                let peer = PresencePeer {
                    client_id: client.clone(),
                    state: entry.state.clone(),
                    since: Some(entry.since.clone()),
                };
                out.push((entry.owner, (document_id.clone(), peer)));
            }
        }
        out
    }

    /// How many peers are on a document.
    pub fn len(&self, document_id: &str) -> usize {
        self.docs.get(document_id).map_or(0, BTreeMap::len)
    }
}

/// A peer that left: its state is `null`.
fn left(client: &str) -> PresencePeer {
    PresencePeer {
        client_id: client.to_owned(),
        state: Value::Null,
        since: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: Owner = Owner {
        process: 0,
        connection: 1,
    };
    const B: Owner = Owner {
        process: 0,
        connection: 2,
    };

    fn t0() -> String {
        "2026-01-01T00:00:00.000Z".into()
    }

    #[test]
    fn set_update_and_clear_report_changes_once() {
        let mut table = PresenceTable::new();
        let (doc, peer) = table.set("d", "alice", A, json!({"x": 1}), t0).unwrap();
        assert_eq!((doc.as_str(), peer.state), ("d", json!({"x": 1})));
        assert!(table.set("d", "alice", A, json!({"x": 1}), t0).is_none());
        let later = || "2026-01-01T00:00:09.000Z".to_owned();
        let (_, moved) = table.set("d", "alice", A, json!({"x": 2}), later).unwrap();
        assert_eq!(moved.since.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(table.peers("d").len(), 1);
        assert!(table.peers("other").is_empty());
        let (_, gone) = table.set("d", "alice", A, Value::Null, t0).unwrap();
        assert_eq!(gone.state, Value::Null);
        assert_eq!(table.len("d"), 0);
        assert!(table.clear("d", "alice", Some(A)).is_none());
    }

    #[test]
    fn a_reconnected_client_keeps_its_entry_when_the_old_connection_ends() {
        let mut table = PresenceTable::new();
        table.set("d", "alice", A, json!(1), t0);
        // The new connection takes the entry over; the old one's end removes nothing.
        assert!(table.set("d", "alice", B, json!(1), t0).is_some());
        assert!(table.remove_where(|owner| owner == A).is_empty());
        assert!(table.clear("d", "alice", Some(A)).is_none());
        assert_eq!(table.peers("d")[0].state, json!(1));
        let changes = table.remove_where(|owner| owner == B);
        assert_eq!(changes.len(), 1);
        assert_eq!(table.len("d"), 0);
    }

    #[test]
    fn removing_a_process_removes_its_peers_on_every_document() {
        let mut table = PresenceTable::new();
        let remote = |connection| Owner {
            process: 7,
            connection,
        };
        table.set("d1", "bob", remote(1), json!("b"), t0);
        table.set("d2", "carol", remote(2), json!("c"), t0);
        table.set("d1", "alice", A, json!("a"), t0);
        assert_eq!(table.entries_of(|o| o.process == 7).len(), 2);
        let mut changes = table.remove_where(|o| o.process == 7);
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(changes[0].0, "d1");
        assert_eq!(changes[1].1.client_id, "carol");
        assert_eq!(table.peers("d1").len(), 1);
        assert_eq!(table.len("d2"), 0);
    }
}
