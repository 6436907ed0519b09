//! `PresenceHub`: the server's presence (`docs/PROTOCOL.md` 18.7), in memory and never stored.
//!
//! The rules of who is where are the core's [`PresenceTable`]; the hub keeps it behind a lock,
//! fans changes out to the document's connections (a broadcast channel per document) and, when
//! the store is shared with other server processes (PostgreSQL), relays them through the store's
//! notifications. Each process announces itself every third of the presence timeout; the peers
//! of a process not heard from for the timeout (killed, or cut off) are removed. A process that
//! starts asks the others to announce their peers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsync::protocol::PresencePeer;
use eventsync::server::{Owner, PresenceTable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::service::now_rfc3339;

/// How many changes of a document a connection may fall behind before it gets the whole set.
const CHANNEL_CAPACITY: usize = 256;

/// A change of one peer on a document, as handed to the document's connections.
pub type PresenceChange = Arc<PresencePeer>;

/// What processes tell each other (the payload of a store notification, JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "camelCase")]
enum Relay {
    /// A peer's state (`null`: it left).
    Set {
        p: u64,
        c: u64,
        d: String,
        id: String,
        s: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t: Option<String>,
    },
    /// The process is alive, and says so again within `ttl` milliseconds (its presence
    /// timeout) unless it is gone.
    Alive { p: u64, ttl: u64 },
    /// A process started: announce your peers.
    Hello { p: u64, ttl: u64 },
    /// The process is shutting down: its peers are gone.
    Bye { p: u64 },
}

impl Relay {
    fn process(&self) -> u64 {
        match self {
            Relay::Set { p, .. }
            | Relay::Alive { p, .. }
            | Relay::Hello { p, .. }
            | Relay::Bye { p } => *p,
        }
    }
}

#[derive(Default)]
struct Inner {
    table: PresenceTable,
    channels: HashMap<String, broadcast::Sender<PresenceChange>>,
    /// Other processes: when each must be heard from next (its own timeout after the last
    /// time it was).
    heard: HashMap<u64, (Instant, Duration)>,
}

/// Presence of every document (see the module documentation).
pub struct PresenceHub {
    process: u64,
    timeout: Duration,
    connections: AtomicU64,
    inner: Mutex<Inner>,
    /// Payloads to notify other processes of, in order; `None` with no other processes.
    relay: Option<mpsc::UnboundedSender<String>>,
}

impl PresenceHub {
    /// A hub for one process (`process`: its id among the processes sharing the store), with
    /// `relay` carrying what the others must hear (`None`: there are none).
    pub fn new(
        process: u64,
        timeout: Duration,
        relay: Option<mpsc::UnboundedSender<String>>,
    ) -> Self {
        PresenceHub {
            process,
            timeout,
            connections: AtomicU64::new(1),
            inner: Mutex::default(),
            relay,
        }
    }

    /// Asks the other processes to announce their peers: once this process hears them (its
    /// store's change feed listens).
    pub fn hello(&self) {
        self.send(&Relay::Hello {
            p: self.process,
            ttl: self.ttl(),
        });
    }

    /// A new id for a connection of this process.
    pub fn connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed)
    }

    fn ttl(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    fn owner(&self, connection: u64) -> Owner {
        Owner {
            process: self.process,
            connection,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("presence lock")
    }

    /// Subscribes to a document's changes and returns everyone's presence now (atomically: no
    /// change falls in between).
    pub fn subscribe(
        &self,
        document_id: &str,
    ) -> (Vec<PresencePeer>, broadcast::Receiver<PresenceChange>) {
        let mut inner = self.lock();
        let receiver = inner
            .channels
            .entry(document_id.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        (inner.table.peers(document_id), receiver)
    }

    /// Everyone's presence on a document now.
    pub fn peers(&self, document_id: &str) -> Vec<PresencePeer> {
        self.lock().table.peers(document_id)
    }

    /// A connection of this process published `state` for `client` on `document_id`.
    pub fn publish(&self, connection: u64, document_id: &str, client: &str, state: Value) {
        let owner = self.owner(connection);
        let change = {
            let mut inner = self.lock();
            let change = inner
                .table
                .set(document_id, client, owner, state, now_rfc3339);
            if let Some((document_id, peer)) = &change {
                inner.fan_out(document_id, peer);
            }
            change
        };
        if let Some((d, peer)) = change {
            self.send(&Relay::Set {
                p: self.process,
                c: connection,
                d,
                id: peer.client_id,
                s: peer.state,
                t: peer.since,
            });
        }
    }

    /// A connection of this process ended: its peers leave.
    pub fn leave(&self, connection: u64) {
        let owner = self.owner(connection);
        let changes = {
            let mut inner = self.lock();
            let changes = inner.table.remove_where(|o| o == owner);
            for (document_id, peer) in &changes {
                inner.fan_out(document_id, peer);
            }
            changes
        };
        for (d, peer) in changes {
            self.send(&Relay::Set {
                p: self.process,
                c: connection,
                d,
                id: peer.client_id,
                s: Value::Null,
                t: None,
            });
        }
    }

    /// What another process said (a store notification's payload).
    pub fn relayed(&self, payload: &str) {
        let message: Relay = match serde_json::from_str(payload) {
            Ok(message) => message,
            Err(err) => return tracing::warn!(%err, payload, "unreadable presence relay"),
        };
        let process = message.process();
        if process == self.process {
            return;
        }
        let mut inner = self.lock();
        let ttl = match &message {
            Relay::Alive { ttl, .. } | Relay::Hello { ttl, .. } => Duration::from_millis(*ttl),
            _ => inner
                .heard
                .get(&process)
                .map_or(self.timeout, |(_, ttl)| *ttl),
        };
        inner.heard.insert(process, (Instant::now(), ttl));
        match message {
            Relay::Set { c, d, id, s, t, .. } => {
                let owner = Owner {
                    process,
                    connection: c,
                };
                let change = if s.is_null() {
                    inner.table.clear(&d, &id, Some(owner))
                } else {
                    inner
                        .table
                        .set(&d, &id, owner, s, || t.unwrap_or_else(now_rfc3339))
                };
                if let Some((document_id, peer)) = change {
                    inner.fan_out(&document_id, &peer);
                }
            }
            Relay::Hello { .. } => {
                let own = inner.table.entries_of(|o| o.process == self.process);
                drop(inner);
                for (owner, (d, peer)) in own {
                    self.send(&Relay::Set {
                        p: self.process,
                        c: owner.connection,
                        d,
                        id: peer.client_id,
                        s: peer.state,
                        t: peer.since,
                    });
                }
            }
            Relay::Bye { .. } => inner.forget(process),
            Relay::Alive { .. } => {}
        }
    }

    /// Announces this process and removes the peers of processes not heard from for the timeout.
    /// Called every third of the timeout.
    pub fn tick(&self) {
        self.send(&Relay::Alive {
            p: self.process,
            ttl: self.ttl(),
        });
        let mut inner = self.lock();
        let silent: Vec<u64> = inner
            .heard
            .iter()
            .filter(|(_, (at, ttl))| at.elapsed() >= *ttl)
            .map(|(p, _)| *p)
            .collect();
        for process in silent {
            tracing::info!(
                process,
                "presence: a server process went quiet; its peers leave"
            );
            inner.forget(process);
        }
        inner
            .channels
            .retain(|_, sender| sender.receiver_count() > 0);
    }

    /// This process is shutting down: the others drop its peers at once.
    pub fn bye(&self) {
        self.send(&Relay::Bye { p: self.process });
    }

    /// How often [`PresenceHub::tick`] runs: a third of the timeout, at most a second (a peer of
    /// a process gone quiet leaves within a second of its timeout).
    pub fn tick_interval(&self) -> Duration {
        (self.timeout / 3).min(Duration::from_secs(1))
    }

    fn send(&self, message: &Relay) {
        if let Some(relay) = &self.relay {
            let _ = relay.send(serde_json::to_string(message).expect("relay messages serialize"));
        }
    }
}

impl Inner {
    fn fan_out(&mut self, document_id: &str, peer: &PresencePeer) {
        if let Some(sender) = self.channels.get(document_id) {
            if sender.send(Arc::new(peer.clone())).is_err() {
                self.channels.remove(document_id);
            }
        }
    }

    fn forget(&mut self, process: u64) {
        self.heard.remove(&process);
        let changes = self.table.remove_where(|o| o.process == process);
        for (document_id, peer) in &changes {
            self.fan_out(document_id, peer);
        }
    }
}
