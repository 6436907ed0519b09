//! [`MemoryServer`]: many documents' logs in memory and connections of protocol version 2 to them
//! (`docs/PROTOCOL.md` section 18), for tests and simulations. Each connection is the same
//! [`ServerConnection`] engine the reference server drives at `/sync`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::protocol::{self, Event, PresencePeer};
use crate::sequencer::LogView;

use super::connection::ServerConnection;
use super::limits::Limits;
use super::memory::{ConnectionId, MemoryLog};
use super::presence::{Owner, PresenceTable};
use super::requests::{Credentials, Output, Reply, Request, Rights};

type Batch = Arc<[Event]>;

/// What a connection of a [`MemoryServer`] is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame for a connection, as the server writes it.
    Text(ConnectionId, String),
    /// The server closed a connection with this WebSocket close code.
    Closed(ConnectionId, u16),
}

#[derive(Debug)]
struct Peer {
    connection: ServerConnection<Batch>,
    waiting: VecDeque<Batch>,
    /// Presence changes of documents it has open, not handed over yet.
    presence: VecDeque<(String, PresencePeer)>,
}

/// Documents and version 2 connections in memory.
#[derive(Debug, Default)]
pub struct MemoryServer {
    logs: BTreeMap<String, MemoryLog>,
    peers: Vec<Option<Peer>>,
    limits: Limits,
    presence: PresenceTable,
}

impl MemoryServer {
    /// No documents, no connections, no rate limit.
    pub fn new() -> Self {
        MemoryServer {
            logs: BTreeMap::new(),
            peers: Vec::new(),
            limits: Limits {
                messages_per_second: u32::MAX,
                burst: u32::MAX,
                ..Limits::default()
            },
            presence: PresenceTable::new(),
        }
    }

    /// A document's log (`None` when nothing was ever written to it or read from it).
    pub fn log(&self, document_id: &str) -> Option<&MemoryLog> {
        self.logs.get(document_id)
    }

    /// A document's log, created empty when new.
    pub fn log_mut(&mut self, document_id: &str) -> &mut MemoryLog {
        self.logs
            .entry(document_id.to_owned())
            .or_insert_with(|| MemoryLog::new(document_id))
    }

    /// Opens a connection at `/sync` (version 2).
    pub fn connect(&mut self, now: u64) -> ConnectionId {
        let connection = ServerConnection::websocket(None, self.limits.clone(), None, now);
        self.peers.push(Some(Peer {
            connection,
            waiting: VecDeque::new(),
            presence: VecDeque::new(),
        }));
        self.peers.len() - 1
    }

    /// The client closed its connection (or it was lost and noticed): its presence goes at once.
    /// Returns the frames the other connections are sent because of it.
    pub fn disconnect(&mut self, id: ConnectionId, now: u64) -> Vec<Frame> {
        if let Some(peer) = self.peers.get_mut(id) {
            *peer = None;
        }
        let changes = self.presence.remove_where(|owner| owner == Self::owner(id));
        for change in changes {
            self.relay(id, change);
        }
        let mut out = Vec::new();
        for other in 0..self.peers.len() {
            self.drive(other, now, &mut out);
        }
        out
    }

    /// Time passed: the connections' timers (the `hello` deadline, token expiry, presence
    /// timeout). Returns the frames any connection is sent because of it.
    pub fn tick(&mut self, now: u64) -> Vec<Frame> {
        for peer in self.peers.iter_mut().flatten() {
            if peer.connection.poll_timeout().is_some_and(|at| now >= at) {
                peer.connection.handle_timeout(now);
            }
        }
        let mut out = Vec::new();
        for id in 0..self.peers.len() {
            self.drive(id, now, &mut out);
        }
        // What the timers changed reaches the others.
        for id in 0..self.peers.len() {
            self.drive(id, now, &mut out);
        }
        out
    }

    /// The presence table (who is on which document).
    pub fn presence(&self) -> &PresenceTable {
        &self.presence
    }

    fn owner(id: ConnectionId) -> Owner {
        Owner {
            process: 0,
            connection: id as u64,
        }
    }

    /// Hands a presence change to every connection but its publisher's.
    fn relay(&mut self, from: ConnectionId, change: (String, PresencePeer)) {
        for (id, peer) in self.peers.iter_mut().enumerate() {
            if let Some(peer) = peer.as_mut().filter(|_| id != from) {
                peer.presence.push_back(change.clone());
            }
        }
    }

    /// A client's frame. Returns every frame any connection is sent because of it, in order.
    pub fn receive(&mut self, id: ConnectionId, now: u64, text: &str) -> Vec<Frame> {
        let mut out = Vec::new();
        let Some(Some(peer)) = self.peers.get_mut(id) else {
            return out;
        };
        peer.connection.handle_text(now, text);
        self.drive(id, now, &mut out);
        for other in 0..self.peers.len() {
            if other != id {
                self.drive(other, now, &mut out);
            }
        }
        out
    }

    fn drive(&mut self, id: ConnectionId, now: u64, out: &mut Vec<Frame>) {
        if let Some(Some(peer)) = self.peers.get_mut(id) {
            while let Some(batch) = peer.waiting.pop_front() {
                peer.connection.handle_live(now, batch);
            }
            while let Some((document_id, change)) = peer.presence.pop_front() {
                let changes = std::slice::from_ref(&change);
                peer.connection
                    .handle_presence(now, &document_id, changes, false);
            }
        }
        loop {
            let Some(Some(peer)) = self.peers.get_mut(id) else {
                return;
            };
            let Some(output) = peer.connection.poll_output() else {
                return;
            };
            let frame = match output {
                Output::Send(message) => protocol::encode(&message),
                Output::SendTo(document_id, message) => {
                    protocol::encode_scoped(Some(&document_id), &message)
                }
                Output::SendEncoded(frame) => frame.encode(protocol::PROTOCOL_VERSION_2),
                Output::SendLive(batch) => {
                    let document_id = batch[0].document_id.clone();
                    let message = protocol::ServerMessage::Event {
                        events: batch.to_vec(),
                    };
                    protocol::encode_scoped(Some(&document_id), &message)
                }
                Output::Close { code, .. } => {
                    out.push(Frame::Closed(id, code));
                    continue;
                }
                Output::Connected { .. } | Output::Record { .. } | Output::Unsubscribe(_) => {
                    continue
                }
                Output::Presence { document_id, state } => {
                    let client = peer.connection.client_id().unwrap_or_default().to_owned();
                    let owner = Self::owner(id);
                    let stamp = || "2026-01-01T00:00:00Z".to_owned();
                    let change = self
                        .presence
                        .set(&document_id, &client, owner, state, stamp);
                    if let Some(change) = change {
                        self.relay(id, change);
                    }
                    continue;
                }
                Output::Request(request) => {
                    let reply = self.execute(id, request);
                    if let Some(Some(peer)) = self.peers.get_mut(id) {
                        if reply == Reply::Drained {
                            while let Some(batch) = peer.waiting.pop_front() {
                                peer.connection.handle_live(now, batch);
                            }
                        }
                        peer.connection.handle_reply(now, reply);
                    }
                    continue;
                }
            };
            out.push(Frame::Text(id, frame));
        }
    }

    fn execute(&mut self, id: ConnectionId, request: Request) -> Reply {
        match request {
            Request::Authorize { .. } => Reply::Authorized(Ok(Credentials::anyone())),
            Request::Admit { .. } => Reply::Admitted(Ok(Rights::all())),
            Request::Open { document_id } => {
                // Subscribed from now on: what was published before is in the head.
                Reply::Opened(Ok(self.log_mut(&document_id).head_seq()))
            }
            Request::Read { document_id, read } => {
                Reply::Read(Ok(self.log_mut(&document_id).read(read)))
            }
            Request::Submit {
                document_id,
                client_id,
                edits,
                may_write,
            } => {
                let outcome = self
                    .log_mut(&document_id)
                    .order(&client_id, &edits, may_write);
                if !outcome.events.is_empty() {
                    // Every connection gets the batch; those without the document drop it.
                    let batch: Batch = outcome.events.clone().into();
                    for peer in self.peers.iter_mut().flatten() {
                        peer.waiting.push_back(batch.clone());
                    }
                }
                Reply::Submitted((&outcome).into())
            }
            Request::DrainLive { .. } => Reply::Drained,
            Request::Presence { document_id } => {
                // Changes relayed before this are in the answer.
                if let Some(Some(peer)) = self.peers.get_mut(id) {
                    peer.presence.retain(|(doc, _)| *doc != document_id);
                }
                Reply::Presence(self.presence.peers(&document_id))
            }
        }
    }
}
