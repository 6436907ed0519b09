//! [`MemoryLog`]: a whole document log and its connections in memory, a complete server for
//! tests, simulations and demos.
//!
//! Each connection is a [`ServerConnection`], the same engine the reference server drives over
//! WebSocket and SSE; this file only answers its requests from memory, at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::conflict::ShapedOp;
use crate::diff;
use crate::protocol::{self, ClientMessage, Edit, EncodedEvents, Event, ServerMessage, Snapshot};
use crate::sequencer::{order_submit, LogView, Stamp, SubmitOutcome};
use crate::vector_clock::VectorClock;

use super::catch_up::{LogHead, Read, ReadResult};
use super::connection::ServerConnection;
use super::limits::Limits;
use super::requests::{Credentials, Output, Reply, Request, Rights};

/// A connection of a [`MemoryLog`].
pub type ConnectionId = usize;

/// What a connection of a [`MemoryLog`] is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A message for a connection.
    Message(ConnectionId, ServerMessage),
    /// The server closed a connection with this WebSocket close code.
    Closed(ConnectionId, u16),
}

type Batch = Arc<[Event]>;

#[derive(Debug)]
struct Peer {
    connection: ServerConnection<Batch>,
    /// Published batches the connection has not been handed yet.
    waiting: VecDeque<Batch>,
}

/// A whole document log in memory: events, the head document, the exactly-once index, and the
/// connections of its clients.
#[derive(Debug)]
pub struct MemoryLog {
    document_id: String,
    events: Vec<Event>,
    document: Option<Value>,
    vector: VectorClock,
    edits: HashMap<String, BTreeMap<u64, u64>>,
    /// Per event, its shaped operations (see [`SubmitOutcome::shapes`]).
    shapes: Vec<Option<Vec<ShapedOp>>>,
    limits: Limits,
    peers: Vec<Option<Peer>>,
}

/// Event ids and timestamps of events ordered through [`MemoryLog::receive`].
fn memory_stamp(sequence_num: u64) -> (String, String) {
    (
        format!("ev-{sequence_num}"),
        "2026-01-01T00:00:00Z".to_owned(),
    )
}

impl MemoryLog {
    /// An empty log: the document does not exist. Its connections have the reference server's
    /// limits, but no rate limit.
    pub fn new(document_id: impl Into<String>) -> Self {
        MemoryLog {
            document_id: document_id.into(),
            events: Vec::new(),
            document: None,
            vector: VectorClock::new(),
            edits: HashMap::new(),
            shapes: Vec::new(),
            limits: Limits {
                messages_per_second: u32::MAX,
                burst: u32::MAX,
                ..Limits::default()
            },
            peers: Vec::new(),
        }
    }

    /// Sets the limits of connections opened from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Every event, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Orders a submit and appends what it accepted (the client may write).
    pub fn submit(&mut self, client_id: &str, edits: &[Edit], stamp: Stamp<'_>) -> SubmitOutcome {
        let outcome = order_submit(self, client_id, edits, true, stamp);
        self.append_shaped(&outcome.events, &outcome.shapes, outcome.document.clone());
        outcome
    }

    /// Appends ordered events and the document they lead to.
    pub fn append(&mut self, events: &[Event], document: Option<Value>) {
        let mut doc = self.document.clone();
        let mut shapes = Vec::with_capacity(events.len());
        for event in events {
            let change = diff::apply_event(doc.as_ref(), event).ok();
            shapes.push(change.as_ref().and_then(|change| {
                let before = doc.clone().unwrap_or(Value::Null);
                crate::conflict::shape(&before, &change.ops).ok()
            }));
            doc = change.and_then(|c| c.document);
        }
        self.append_shaped(events, &shapes, document);
    }

    /// Appends ordered events with their shapes, and publishes them to every connection.
    pub fn append_shaped(
        &mut self,
        events: &[Event],
        shapes: &[Option<Vec<ShapedOp>>],
        document: Option<Value>,
    ) {
        if events.is_empty() {
            return;
        }
        self.shapes.extend(
            shapes
                .iter()
                .cloned()
                .chain(std::iter::repeat(None))
                .take(events.len()),
        );
        for event in events {
            debug_assert_eq!(event.sequence_num, self.head_seq() + 1);
            self.vector.observe(&event.client_id, event.sequence_num);
            if let Some(client_seq) = event.client_seq {
                self.edits
                    .entry(event.client_id.clone())
                    .or_default()
                    .insert(client_seq, event.sequence_num);
            }
            self.events.push(event.clone());
        }
        self.document = document;
        let batch: Batch = events.into();
        for peer in self.peers.iter_mut().flatten() {
            peer.waiting.push_back(batch.clone());
        }
    }

    /// The document at the head as a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            document_id: self.document_id.clone(),
            sequence_num: self.head_seq(),
            document: self.document.clone(),
            vector_clock: self.vector.clone(),
        }
    }

    /// Opens a connection (a client's WebSocket), at time `now` (milliseconds).
    pub fn connect(&mut self, now: u64) -> ConnectionId {
        let connection = ServerConnection::websocket(
            Some(self.document_id.clone()),
            self.limits.clone(),
            None,
            now,
        );
        self.peers.push(Some(Peer {
            connection,
            waiting: VecDeque::new(),
        }));
        self.peers.len() - 1
    }

    /// The client closed its connection.
    pub fn disconnect(&mut self, id: ConnectionId) {
        if let Some(peer) = self.peers.get_mut(id) {
            *peer = None;
        }
    }

    /// Every open connection, oldest first.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, peer)| peer.as_ref().is_some_and(|p| !p.connection.is_closed()))
            .map(|(id, _)| id)
    }

    /// The client bound to a connection by its `hello` (`None` before `welcome`).
    pub fn client_of(&self, id: ConnectionId) -> Option<&str> {
        self.peers.get(id)?.as_ref()?.connection.client_id()
    }

    /// A client's message, as a frame. Returns everything any connection is sent because of
    /// it, in order: the sender's answers (its own events before its acks), then the live
    /// events of every other connection.
    pub fn receive(&mut self, id: ConnectionId, now: u64, frame: &str) -> Vec<Delivery> {
        let mut out = Vec::new();
        let Some(Some(peer)) = self.peers.get_mut(id) else {
            return out;
        };
        peer.connection.handle_text(now, frame);
        self.drive(id, now, &mut out);
        for other in 0..self.peers.len() {
            if other != id {
                self.drive(other, now, &mut out);
            }
        }
        out
    }

    /// [`MemoryLog::receive`] for a message.
    pub fn receive_message(
        &mut self,
        id: ConnectionId,
        now: u64,
        message: &ClientMessage,
    ) -> Vec<Delivery> {
        self.receive(id, now, &protocol::encode(message))
    }

    /// Hands a connection its waiting live events and runs its outputs, answering its requests.
    fn drive(&mut self, id: ConnectionId, now: u64, out: &mut Vec<Delivery>) {
        let Some(Some(peer)) = self.peers.get_mut(id) else {
            return;
        };
        while let Some(batch) = peer.waiting.pop_front() {
            peer.connection.handle_live(now, batch);
        }
        loop {
            let Some(Some(peer)) = self.peers.get_mut(id) else {
                return;
            };
            let Some(output) = peer.connection.poll_output() else {
                return;
            };
            match output {
                Output::Send(message) => out.push(Delivery::Message(id, message)),
                Output::SendLive(batch) => out.push(Delivery::Message(
                    id,
                    ServerMessage::Event {
                        events: batch.to_vec(),
                    },
                )),
                Output::Close { code, .. } => out.push(Delivery::Closed(id, code)),
                Output::SendTo(_, message) => out.push(Delivery::Message(id, message)),
                Output::SendEncoded(frame) => match frame.to_message() {
                    Ok(message) => out.push(Delivery::Message(id, message)),
                    Err(_) => out.push(Delivery::Closed(id, super::connection::close::INTERNAL)),
                },
                Output::Connected { .. }
                | Output::Record { .. }
                | Output::Unsubscribe(_)
                | Output::Presence { .. } => {}
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
                }
            }
        }
    }

    /// Answers a connection's request from memory.
    fn execute(&mut self, id: ConnectionId, request: Request) -> Reply {
        match request {
            Request::Authorize { .. } => Reply::Authorized(Ok(Credentials::anyone())),
            Request::Admit { .. } => Reply::Admitted(Ok(Rights::all())),
            Request::Open { .. } => {
                // Subscribed from now on: what was published before is in the head.
                if let Some(Some(peer)) = self.peers.get_mut(id) {
                    peer.waiting.clear();
                }
                Reply::Opened(Ok(self.head_seq()))
            }
            Request::Read { read, .. } => Reply::Read(Ok(self.read(read))),
            Request::Submit {
                client_id,
                edits,
                may_write,
                ..
            } => Reply::Submitted((&self.order(&client_id, &edits, may_write)).into()),
            Request::DrainLive { .. } => Reply::Drained,
            // Version 2 only: a log's connections speak version 1.
            Request::Presence { .. } => Reply::Presence(Vec::new()),
        }
    }

    /// Orders a submit as a connection's request does, appends and publishes what it accepted.
    pub(crate) fn order(
        &mut self,
        client_id: &str,
        edits: &[Edit],
        may_write: bool,
    ) -> SubmitOutcome {
        let outcome = order_submit(self, client_id, edits, may_write, &mut memory_stamp);
        self.append_shaped(&outcome.events, &outcome.shapes, outcome.document.clone());
        outcome
    }

    /// Answers a read from memory.
    pub(crate) fn read(&self, read: Read) -> ReadResult {
        match read {
            Read::Head { .. } => ReadResult::Head(LogHead {
                head_seq: self.head_seq(),
                first_retained_seq: 1,
                vector: self.vector.clone(),
            }),
            // No snapshots: a new client replays the log.
            Read::Snapshot | Read::SyncSnapshot => ReadResult::Snapshot(None),
            Read::Events { after, limit } => {
                let from = (after.min(self.head_seq())) as usize;
                let to = from.saturating_add(limit).min(self.events.len());
                // As text, as the reference server's store answers: connections then send
                // pages without reading them, the way they do there.
                let mut encoded = EncodedEvents::new();
                self.events[from..to].iter().for_each(|e| encoded.push(e));
                ReadResult::Encoded(encoded)
            }
        }
    }
}

impl LogView for MemoryLog {
    fn document_id(&self) -> &str {
        &self.document_id
    }

    fn head_seq(&self) -> u64 {
        self.events.len() as u64
    }

    fn document(&self) -> Option<&Value> {
        self.document.as_ref()
    }

    fn head_vector(&self) -> &VectorClock {
        &self.vector
    }

    fn highest_client_seq(&self, client_id: &str) -> u64 {
        self.edits
            .get(client_id)
            .and_then(|m| m.keys().next_back().copied())
            .unwrap_or(0)
    }

    fn ordered_edit(&self, client_id: &str, client_seq: u64) -> Option<u64> {
        self.edits.get(client_id)?.get(&client_seq).copied()
    }

    fn origins_after(&self, sequence_num: u64) -> Vec<(String, Option<u64>)> {
        self.events[(sequence_num.min(self.head_seq()) as usize)..]
            .iter()
            .map(|e| (e.client_id.clone(), e.client_seq))
            .collect()
    }

    fn shapes_after(&self, sequence_num: u64) -> Option<Vec<Vec<ShapedOp>>> {
        self.shapes[(sequence_num.min(self.head_seq()) as usize)..]
            .iter()
            .cloned()
            .collect()
    }
}
