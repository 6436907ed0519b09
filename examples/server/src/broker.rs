//! `EventBroker`: per-document fan-out of newly ordered events to every WebSocket and SSE
//! subscriber.
//!
//! Events are encoded once per publish, not once per subscriber: every subscriber's queue holds
//! the same reference-counted batch. Each queue is bounded in bytes (by default 1 MiB of
//! encoded events): a subscriber that falls further behind (a client that stopped reading, a
//! slow network) has its queue emptied and is told it lagged, and its connection repairs from
//! the store once it reads again. So a stalled subscriber holds at most the bound, never the
//! whole stream, and the others are not slowed by it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use eventsync::protocol::{self, Event, ServerMessage};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::Notify;
use tungstenite::Utf8Bytes;

/// The default bound of one subscriber's queue, in bytes (see [`Published::weight`]).
pub const DEFAULT_QUEUE_BYTES: usize = 1 << 20;

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
    /// `events` (consecutive, in order) with their encodings.
    fn of(events: &[Event]) -> Self {
        Published {
            frame: protocol::encode(&ServerMessage::Event {
                events: events.to_vec(),
            })
            .into(),
            frame_v2: OnceLock::new(),
            each: events.iter().map(protocol::encode).collect(),
            events: events.to_vec(),
        }
    }

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

    /// What holding this batch costs, in bytes: its encodings (the version-1 frame, each
    /// event's JSON, and the version-2 frame once made) and the parsed events (counted as
    /// their frame again).
    pub fn weight(&self) -> usize {
        let each: usize = self.each.iter().map(String::len).sum();
        3 * self.frame.len() + each
    }

    /// The highest `sequenceNum` published.
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.sequence_num)
    }
}

/// What a subscriber receives: a batch, or word that it fell behind (batches were dropped
/// from its queue: it must repair from the store).
pub type Delivery = Result<Arc<Published>, Lagged>;

/// The subscriber fell behind by more than its queue's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// One subscriber's queue.
#[derive(Default)]
struct Queue {
    batches: VecDeque<Arc<Published>>,
    bytes: usize,
    lagged: bool,
}

/// One subscriber: its queue, and the wakeup of its reader.
#[derive(Default)]
struct Subscriber {
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Subscriber {
    /// Queues `batch`; past `bound` bytes the queue is emptied and marked lagged. A lagged
    /// queue takes nothing more until its reader sees the lag: the reader's connection then
    /// repairs from the store, which already holds every batch published before that (the
    /// service publishes after committing). So a stalled subscriber costs each publish one
    /// look at its flag, not a copy of the batch and, at every bound, the emptying of its queue.
    fn push(&self, batch: &Arc<Published>, weight: usize, bound: usize) {
        let mut queue = self.queue.lock().expect("subscriber lock");
        if queue.lagged {
            return;
        }
        let dropped = if queue.bytes + weight > bound && !queue.batches.is_empty() {
            queue.bytes = 0;
            queue.lagged = true;
            std::mem::take(&mut queue.batches)
        } else {
            queue.batches.push_back(batch.clone());
            queue.bytes += weight;
            VecDeque::new()
        };
        drop(queue);
        drop(dropped);
        self.ready.notify_one();
    }

    /// The next delivery, waiting for one.
    async fn next(&self) -> Delivery {
        loop {
            {
                let mut queue = self.queue.lock().expect("subscriber lock");
                if std::mem::take(&mut queue.lagged) {
                    return Err(Lagged);
                }
                if let Some(batch) = queue.batches.pop_front() {
                    queue.bytes = queue.bytes.saturating_sub(batch.weight());
                    return Ok(batch);
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Per-document subscribers.
pub struct EventBroker {
    channels: Mutex<HashMap<String, Vec<Weak<Subscriber>>>>,
    /// The bound of each subscriber's queue, in bytes.
    queue_bytes: usize,
}

impl Default for EventBroker {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE_BYTES)
    }
}

impl EventBroker {
    /// A broker with no subscribers, whose subscribers queue at most `queue_bytes` each.
    pub fn new(queue_bytes: usize) -> Self {
        EventBroker {
            channels: Mutex::default(),
            queue_bytes: queue_bytes.max(1),
        }
    }

    /// Subscribes to a document's new events: everything published after this call, in order,
    /// until the stream is dropped.
    pub fn subscribe(&self, document_id: &str) -> BoxStream<'static, Delivery> {
        let subscriber = Arc::new(Subscriber::default());
        self.channels
            .lock()
            .expect("broker lock")
            .entry(document_id.to_owned())
            .or_default()
            .push(Arc::downgrade(&subscriber));
        stream::unfold(subscriber, |subscriber| async move {
            let delivery = subscriber.next().await;
            Some((delivery, subscriber))
        })
        .boxed()
    }

    /// Publishes ordered events to the document's subscribers (none is fine).
    pub fn publish(&self, document_id: &str, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut channels = self.channels.lock().expect("broker lock");
        let Some(subscribers) = channels.get_mut(document_id) else {
            return;
        };
        let live: Vec<Arc<Subscriber>> = subscribers.iter().filter_map(Weak::upgrade).collect();
        if live.is_empty() {
            channels.remove(document_id);
            return;
        }
        if live.len() < subscribers.len() {
            subscribers.retain(|s| s.strong_count() > 0);
        }
        // Under the lock: batches reach every queue in the order they were published.
        let published = Arc::new(Published::of(events));
        let weight = published.weight();
        for subscriber in live {
            subscriber.push(&published, weight, self.queue_bytes);
        }
    }

    /// Number of documents with subscribers (for metrics and tests).
    pub fn documents(&self) -> usize {
        self.channels.lock().expect("broker lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsync::protocol::Operation;

    fn event(seq: u64) -> Event {
        Event {
            id: format!("e{seq}"),
            document_id: "doc".into(),
            timestamp: String::new(),
            sequence_num: seq,
            operation: Operation::Update,
            diff: None,
            vector_clock: Default::default(),
            client_id: "writer".into(),
            client_seq: Some(seq),
            server_seq: seq,
            metadata: Default::default(),
        }
    }

    fn seqs(delivery: Delivery) -> Result<Vec<u64>, Lagged> {
        delivery.map(|batch| batch.events.iter().map(|e| e.sequence_num).collect())
    }

    #[tokio::test]
    async fn a_lagged_queue_takes_nothing_until_its_reader_sees_the_lag() {
        // A bound of about two batches: the third empties the queue.
        let one = Published::of(&[event(1)]).weight();
        let broker = EventBroker::new(2 * one + one / 2);
        let mut slow = broker.subscribe("doc");
        let mut fast = broker.subscribe("doc");
        for seq in 1..=2 {
            broker.publish("doc", &[event(seq)]);
            assert_eq!(seqs(fast.next().await.unwrap()), Ok(vec![seq]));
        }
        // Over the bound, then more while lagged: none of it is queued for the slow reader.
        for seq in 3..=6 {
            broker.publish("doc", &[event(seq)]);
            assert_eq!(seqs(fast.next().await.unwrap()), Ok(vec![seq]));
        }
        assert_eq!(seqs(slow.next().await.unwrap()), Err(Lagged));
        // Once it has seen the lag (and repaired from the store), it queues again.
        broker.publish("doc", &[event(7)]);
        assert_eq!(seqs(slow.next().await.unwrap()), Ok(vec![7]));
        assert_eq!(seqs(fast.next().await.unwrap()), Ok(vec![7]));
    }
}
