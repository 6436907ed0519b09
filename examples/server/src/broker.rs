//! `EventBroker`: per-document fan-out of newly ordered events to every WebSocket and SSE
//! subscriber.
//!
//! Events are encoded once per publish, not once per subscriber. A subscriber that falls more
//! than the channel's capacity behind is told it lagged and repairs from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::Utf8Bytes;
use eventsync::protocol::{self, Event, ServerMessage};
use tokio::sync::broadcast;

/// How many published batches a slow subscriber may fall behind before it must repair.
const CHANNEL_CAPACITY: usize = 1024;

/// One publish: events in order, with their encodings.
#[derive(Debug)]
pub struct Published {
    /// The events, consecutive, in `sequenceNum` order.
    pub events: Vec<Event>,
    /// The WebSocket `event` frame of protocol version 1 carrying all of them (shared by every
    /// subscriber's send).
    pub frame: Utf8Bytes,
    /// The same frame in version 2 (compact events and the frame's `documentId`), encoded when
    /// the first version-2 subscriber sends it.
    frame_v2: OnceLock<Utf8Bytes>,
    /// Each event's JSON, for SSE `event` messages.
    pub each: Vec<String>,
}

/// What the core's connection reads of a batch ([`eventsync::server::LiveBatch`]).
impl AsRef<[Event]> for Published {
    fn as_ref(&self) -> &[Event] {
        &self.events
    }
}

impl Published {
    /// The `event` frame for a connection of `version`.
    pub fn frame_for(&self, version: u32) -> Utf8Bytes {
        if version != protocol::PROTOCOL_VERSION_2 {
            return self.frame.clone();
        }
        self.frame_v2
            .get_or_init(|| {
                let document_id = self.events.first().map(|e| e.document_id.as_str());
                let events = ServerMessage::Event {
                    events: self.events.clone(),
                };
                protocol::encode_scoped(document_id, &events).into()
            })
            .clone()
    }

    /// The highest `sequenceNum` published.
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.sequence_num)
    }
}

/// Per-document broadcast channels.
#[derive(Default)]
pub struct EventBroker {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Published>>>>,
}

impl EventBroker {
    /// A broker with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to a document's new events.
    pub fn subscribe(&self, document_id: &str) -> broadcast::Receiver<Arc<Published>> {
        self.channels
            .lock()
            .expect("broker lock")
            .entry(document_id.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Publishes ordered events to the document's subscribers (none is fine).
    pub fn publish(&self, document_id: &str, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut channels = self.channels.lock().expect("broker lock");
        let Some(sender) = channels.get(document_id) else {
            return;
        };
        if sender.receiver_count() == 0 {
            channels.remove(document_id);
            return;
        }
        let published = Published {
            frame: protocol::encode(&ServerMessage::Event {
                events: events.to_vec(),
            })
            .into(),
            frame_v2: OnceLock::new(),
            each: events.iter().map(protocol::encode).collect(),
            events: events.to_vec(),
        };
        let _ = sender.send(Arc::new(published));
    }

    /// Number of documents with live channels (for metrics and tests).
    pub fn documents(&self) -> usize {
        self.channels.lock().expect("broker lock").len()
    }
}
