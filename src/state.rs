//! [`StateManager`]: the confirmed document and its place in the log.
//!
//! The confirmed document is a pure function of a prefix of the server's log (DESIGN invariant 1):
//! events apply strictly in `sequenceNum` order, early ones wait in a bounded buffer, duplicates are
//! dropped, and an event that fails to apply leaves everything exactly as it was.

use crate::vec_map::VecMap;

use serde_json::Value;

use crate::diff::{self, Change, DiffError};
use crate::protocol::{Event, Quoted, Snapshot};
use crate::vector_clock::VectorClock;

/// How many early events are kept while waiting for the ones before them.
pub const DEFAULT_MAX_BUFFERED: usize = 10_000;

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The event belongs to another document.
    #[error("event {sequence_num} is for document {}, not {}", Quoted(.got), Quoted(.expected))]
    WrongDocument {
        /// This manager's document.
        expected: String,
        /// The event's document.
        got: String,
        /// The event.
        sequence_num: u64,
    },
    /// The event's diff could not be applied; the document is unchanged.
    #[error("event {sequence_num} does not apply: {source}")]
    Diff {
        /// The event.
        sequence_num: u64,
        /// The cause.
        #[source]
        source: DiffError,
    },
    /// `sequenceNum` 0 is never valid (logs start at 1).
    #[error("sequenceNum 0 is not a valid event position")]
    InvalidSequence,
    /// Too many early events are waiting for a gap to fill.
    #[error("{0} early events are buffered; resync needed")]
    BufferFull(usize),
}

/// What receiving one event did.
#[derive(Debug, Default)]
pub struct Received {
    /// Events now ready to apply, in order (the received one and any buffered ones it unblocked).
    pub ready: Ready,
    /// The event was at or below the applied position and was ignored.
    pub duplicate: bool,
    /// Events are missing between the applied position and what arrived: ask for a resync.
    pub gap: bool,
}

/// The events a [`StateManager::receive`] made ready, in order: a slice to look at, and an
/// iterator of owned events. Usually just the one received, which is kept without allocating.
#[derive(Debug, Default)]
pub struct Ready(Events);

// The one-event case is the common one: kept inline, it costs no allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
enum Events {
    #[default]
    None,
    One(Event),
    Many(Vec<Event>),
}

impl Ready {
    fn push(&mut self, event: Event) {
        self.0 = match std::mem::take(&mut self.0) {
            Events::None => Events::One(event),
            Events::One(first) => Events::Many(vec![first, event]),
            Events::Many(mut events) => {
                events.push(event);
                Events::Many(events)
            }
        };
    }
}

impl std::ops::Deref for Ready {
    type Target = [Event];

    fn deref(&self) -> &[Event] {
        match &self.0 {
            Events::None => &[],
            Events::One(event) => std::slice::from_ref(event),
            Events::Many(events) => events,
        }
    }
}

impl IntoIterator for Ready {
    type Item = Event;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Event>, std::vec::IntoIter<Event>>;

    fn into_iter(self) -> Self::IntoIter {
        let (first, rest) = match self.0 {
            Events::None => (None, Vec::new()),
            Events::One(event) => (Some(event), Vec::new()),
            Events::Many(events) => (None, events),
        };
        first.into_iter().chain(rest)
    }
}

impl<'a> IntoIterator for &'a Ready {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The confirmed document of one replica.
#[derive(Debug, Clone)]
pub struct StateManager {
    document_id: String,
    document: Option<Value>,
    applied_seq: u64,
    vector: VectorClock,
    early: VecMap<u64, Event>,
    max_buffered: usize,
}

impl StateManager {
    /// An empty replica: the document does not exist, nothing applied.
    pub fn new(document_id: impl Into<String>) -> Self {
        Self::restore(document_id, None, 0, VectorClock::new())
    }

    /// A replica restored from storage.
    pub fn restore(
        document_id: impl Into<String>,
        document: Option<Value>,
        applied_seq: u64,
        vector: VectorClock,
    ) -> Self {
        StateManager {
            document_id: document_id.into(),
            document,
            applied_seq,
            vector,
            early: VecMap::new(),
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }

    /// The document id.
    pub fn document_id(&self) -> &str {
        &self.document_id
    }

    /// The confirmed document (`None` when it does not exist).
    pub fn document(&self) -> Option<&Value> {
        self.document.as_ref()
    }

    /// The `sequenceNum` of the last applied event.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// The state vector: per origin, the highest `sequenceNum` applied.
    pub fn state_vector(&self) -> &VectorClock {
        &self.vector
    }

    /// Records that events of `client_id` up to `sequence_num` are known (never lowers an entry).
    ///
    /// This changes only what the next `sync` asks for. Events still apply strictly in order, so
    /// an entry ahead of what was applied cannot skip anything: the omitted events show up as a
    /// gap and are fetched by cursor.
    pub fn update_state_vector(&mut self, client_id: &str, sequence_num: u64) {
        self.vector.observe(client_id, sequence_num);
    }

    /// Number of early events waiting for a gap to fill.
    pub fn buffered(&self) -> usize {
        self.early.len()
    }

    /// Whether `event` is the next to apply with nothing waiting after it: then
    /// [`StateManager::receive`] would return it alone as ready, and it may be applied at once.
    pub fn is_next(&self, event: &Event) -> bool {
        event.sequence_num == self.applied_seq + 1
            && self.early.is_empty()
            && event.document_id == self.document_id
    }

    /// Takes an event from the network: drops duplicates, buffers early ones, and returns those
    /// that are now ready to apply in order. Nothing is applied yet: call [`StateManager::prepare`]
    /// and [`StateManager::commit`] for each ready event.
    pub fn receive(&mut self, event: Event) -> Result<Received, StateError> {
        if event.document_id != self.document_id {
            return Err(StateError::WrongDocument {
                expected: self.document_id.clone(),
                got: event.document_id,
                sequence_num: event.sequence_num,
            });
        }
        if event.sequence_num == 0 {
            return Err(StateError::InvalidSequence);
        }
        let mut received = Received::default();
        let next = self.applied_seq + 1;
        if event.sequence_num < next {
            received.duplicate = true;
            return Ok(received);
        }
        if event.sequence_num > next {
            if self.early.len() >= self.max_buffered
                && !self.early.contains_key(&event.sequence_num)
            {
                return Err(StateError::BufferFull(self.early.len()));
            }
            self.early.get_or_insert_with(event.sequence_num, || event);
            received.gap = true;
            return Ok(received);
        }
        if self.early.is_empty() {
            // Built in place: the event is not moved in and out of an empty `Ready` first.
            received.ready = Ready(Events::One(event));
            return Ok(received);
        }
        received.ready.push(event);
        // The early events that now follow, in one move: removing them one by one shifted the
        // rest of the buffer (584-byte events) each time, and draining a full buffer of 10,000
        // took seconds. Any at or below `next` are duplicates.
        self.early.retain_from(&(next + 1));
        let mut expect = next + 1;
        let run = self.early.drain_front_while(|seq| {
            let next_in_order = *seq == expect;
            expect += u64::from(next_in_order);
            next_in_order
        });
        for (_, event) in run {
            received.ready.push(event);
        }
        received.gap = !self.early.is_empty();
        Ok(received)
    }

    /// Computes what `event` (the next in order) does, without changing anything.
    pub fn prepare(&self, event: &Event) -> Result<Change, StateError> {
        diff::apply_event(self.document.as_ref(), event).map_err(|source| StateError::Diff {
            sequence_num: event.sequence_num,
            source,
        })
    }

    /// Makes a prepared event part of the confirmed state.
    pub fn commit(&mut self, event: &Event, change: Change) {
        debug_assert_eq!(event.sequence_num, self.applied_seq + 1);
        self.document = change.document;
        self.advance(event);
    }

    /// Moves the applied position (and the state vector) past `event`.
    fn advance(&mut self, event: &Event) {
        self.applied_seq = event.sequence_num;
        self.vector.merge(&event.vector_clock);
        self.vector.observe(&event.client_id, event.sequence_num);
    }

    /// Applies the next event in order atomically, in place (see
    /// [`diff::apply_event_in_place`]): on error nothing changes.
    pub fn apply(&mut self, event: &Event) -> Result<(), StateError> {
        debug_assert_eq!(event.sequence_num, self.applied_seq + 1);
        diff::apply_event_in_place(&mut self.document, event).map_err(|source| {
            StateError::Diff {
                sequence_num: event.sequence_num,
                source,
            }
        })?;
        self.advance(event);
        Ok(())
    }

    /// Installs a server snapshot when it is ahead of the applied position. Returns the document
    /// before it when installed, `None` when the snapshot was not newer and was ignored. The
    /// snapshot's document becomes the manager's as it is (no copy of it is made).
    pub fn install_snapshot(
        &mut self,
        snapshot: Snapshot,
    ) -> Result<Option<Option<Value>>, StateError> {
        if snapshot.document_id != self.document_id {
            return Err(StateError::WrongDocument {
                expected: self.document_id.clone(),
                got: snapshot.document_id,
                sequence_num: snapshot.sequence_num,
            });
        }
        if snapshot.sequence_num <= self.applied_seq {
            return Ok(None);
        }
        if let Some(doc) = &snapshot.document {
            diff::check_depth(doc, diff::MAX_DEPTH).map_err(|source| StateError::Diff {
                sequence_num: snapshot.sequence_num,
                source,
            })?;
        }
        let before = std::mem::replace(&mut self.document, snapshot.document);
        self.applied_seq = snapshot.sequence_num;
        self.vector.merge(&snapshot.vector_clock);
        self.early.retain_from(&(snapshot.sequence_num + 1));
        Ok(Some(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Diff;
    use crate::protocol::Operation;
    use serde_json::json;

    fn event(seq: u64, operation: Operation, patch: Value) -> Event {
        Event {
            id: format!("e{seq}"),
            document_id: "doc".into(),
            timestamp: String::new(),
            sequence_num: seq,
            operation,
            diff: Some(Diff::from_patch(serde_json::from_value(patch).unwrap())),
            vector_clock: VectorClock::from_iter([("alice".to_string(), seq)]),
            client_id: "alice".into(),
            client_seq: Some(seq),
            server_seq: 0,
            metadata: Default::default(),
        }
    }

    fn create(seq: u64, doc: Value) -> Event {
        event(
            seq,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": doc}]),
        )
    }

    fn set(seq: u64, path: &str, value: Value) -> Event {
        event(
            seq,
            Operation::Update,
            json!([{"op": "add", "path": path, "value": value}]),
        )
    }

    fn deliver(state: &mut StateManager, ev: Event) -> Received {
        let received = state.receive(ev).unwrap();
        for ready in &received.ready {
            state.apply(ready).unwrap();
        }
        received
    }

    #[test]
    fn applies_in_order_and_buffers_early_events() {
        let mut s = StateManager::new("doc");
        deliver(&mut s, create(1, json!({})));
        assert!(s.is_next(&set(2, "/a", json!(1))));
        assert!(!s.is_next(&set(3, "/b", json!(2))));
        let r = deliver(&mut s, set(3, "/b", json!(2)));
        assert!(r.gap && r.ready.is_empty());
        // Event 2 is next, but with event 3 waiting `receive` returns both.
        assert!(!s.is_next(&set(2, "/a", json!(1))));
        assert_eq!(s.applied_seq(), 1);
        assert_eq!(s.buffered(), 1);
        let r = deliver(&mut s, set(2, "/a", json!(1)));
        assert_eq!(r.ready.len(), 2);
        assert!(!r.gap);
        assert_eq!(s.document(), Some(&json!({"a": 1, "b": 2})));
        assert_eq!(s.applied_seq(), 3);
        assert_eq!(s.state_vector().get("alice"), 3);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut s = StateManager::new("doc");
        deliver(&mut s, create(1, json!({"n": 0})));
        deliver(&mut s, set(2, "/n", json!(1)));
        let r = deliver(&mut s, set(2, "/n", json!(99)));
        assert!(r.duplicate);
        assert_eq!(s.document(), Some(&json!({"n": 1})));
    }

    #[test]
    fn a_failing_event_changes_nothing() {
        let mut s = StateManager::new("doc");
        deliver(&mut s, create(1, json!({"a": [1, 2]})));
        let before = serde_json::to_string(s.document().unwrap()).unwrap();
        let bad = event(
            2,
            Operation::Update,
            json!([
                {"op": "add", "path": "/a/-", "value": 3},
                {"op": "remove", "path": "/missing"}
            ]),
        );
        let r = s.receive(bad).unwrap();
        let err = s.apply(&r.ready[0]).unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Diff {
                    sequence_num: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            serde_json::to_string(s.document().unwrap()).unwrap(),
            before
        );
        assert_eq!(s.applied_seq(), 1);
    }

    #[test]
    fn lifecycle_create_update_delete_recreate() {
        let mut s = StateManager::new("doc");
        assert_eq!(s.document(), None);
        deliver(&mut s, create(1, json!({"v": 1})));
        deliver(&mut s, set(2, "/v", json!(2)));
        assert_eq!(s.document(), Some(&json!({"v": 2})));
        deliver(&mut s, event(3, Operation::Delete, json!([])));
        assert_eq!(s.document(), None);
        // An update of a deleted document does not apply.
        let r = s.receive(set(4, "/v", json!(3))).unwrap();
        assert!(s.apply(&r.ready[0]).is_err());
        assert_eq!(s.applied_seq(), 3);
        let mut s2 = s.clone();
        deliver(&mut s2, create(4, json!({"again": true})));
        assert_eq!(s2.document(), Some(&json!({"again": true})));
    }

    #[test]
    fn other_documents_and_zero_are_refused() {
        let mut s = StateManager::new("doc");
        let mut other = create(1, json!({}));
        other.document_id = "other".into();
        assert!(matches!(
            s.receive(other),
            Err(StateError::WrongDocument { .. })
        ));
        assert!(matches!(
            s.receive(create(0, json!({}))),
            Err(StateError::InvalidSequence)
        ));
    }

    #[test]
    fn the_early_buffer_is_bounded() {
        let mut s = StateManager::new("doc");
        s.max_buffered = 2;
        deliver(&mut s, set(3, "/a", json!(1)));
        deliver(&mut s, set(4, "/a", json!(1)));
        assert!(matches!(
            s.receive(set(5, "/a", json!(1))),
            Err(StateError::BufferFull(2))
        ));
    }

    #[test]
    fn snapshots_install_only_when_newer() {
        let mut s = StateManager::new("doc");
        deliver(&mut s, create(1, json!({"x": 1})));
        deliver(&mut s, set(12, "/late", json!(true)));
        let snap = Snapshot {
            document_id: "doc".into(),
            sequence_num: 10,
            document: Some(json!({"x": 10})),
            vector_clock: VectorClock::from_iter([("bob".to_string(), 10)]),
        };
        let before = s.install_snapshot(snap.clone()).unwrap();
        assert_eq!(before, Some(Some(json!({"x": 1}))));
        assert_eq!(s.applied_seq(), 10);
        assert_eq!(s.state_vector().get("bob"), 10);
        assert_eq!(s.buffered(), 1, "events after the snapshot stay buffered");
        assert_eq!(s.install_snapshot(snap).unwrap(), None);
        deliver(&mut s, set(11, "/y", json!(11)));
        assert_eq!(s.document(), Some(&json!({"x": 10, "y": 11, "late": true})));
    }

    #[test]
    fn update_state_vector_never_lowers_and_skips_nothing() {
        let mut s = StateManager::new("doc");
        s.update_state_vector("bob", 7);
        s.update_state_vector("bob", 3);
        assert_eq!(s.state_vector().get("bob"), 7);
        assert_eq!(s.applied_seq(), 0);
        // Event 2 before 1 is still a gap: the vector hint does not let anything skip.
        assert!(deliver(&mut s, create(2, json!({}))).gap);
    }

    #[test]
    fn a_full_early_buffer_drains_in_order() {
        let mut s = StateManager::new("doc");
        deliver(&mut s, create(1, json!({})));
        for seq in 3..=DEFAULT_MAX_BUFFERED as u64 + 2 {
            s.receive(set(seq, "/a", json!(seq))).unwrap();
        }
        s.receive(set(DEFAULT_MAX_BUFFERED as u64 + 4, "/b", json!(1)))
            .unwrap_err();
        let received = deliver(&mut s, set(2, "/a", json!(2)));
        assert_eq!(received.ready.len(), DEFAULT_MAX_BUFFERED + 1);
        assert!(received
            .ready
            .windows(2)
            .all(|w| w[1].sequence_num == w[0].sequence_num + 1));
        assert!(!received.gap);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.applied_seq(), DEFAULT_MAX_BUFFERED as u64 + 2);
    }
}
