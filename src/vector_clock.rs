//! State vectors and the missing-event computation, written once for client and server.
//!
//! A state vector maps each origin `clientId` to the highest `sequenceNum` of that origin a replica
//! has applied. Because replicas apply a document's log strictly in order, the vector's maximum is
//! also a plain cursor: everything at or below it has been applied.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::protocol::members::{object, FromJson, ToJson};
use crate::protocol::{Event, Quoted};
use crate::vec_map::VecMap;

/// A map from origin `clientId` to the highest `sequenceNum` of that origin.
///
/// A missing entry means 0: nothing of that origin is known.
///
/// Kept as a sorted `Vec` (`VecMap`): a vector names a handful of origins, and every event
/// carries one (usually of one entry), which a `BTreeMap` held in a whole node of its own.
/// Written as a JSON object in key order, as before.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorClock(VecMap<String, u64>);

impl Serialize for VectorClock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// Values above [`crate::protocol::MAX_COUNTER`] are refused (section 1). A key given twice keeps
/// its last value (as a `BTreeMap` read it).
impl<'de> Deserialize<'de> for VectorClock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = VectorClock;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of clientId to sequenceNum")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VectorClock, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((client_id, seq)) = map.next_entry::<String, u64>()? {
                    entries.push(entry(client_id, seq).map_err(serde::de::Error::custom)?);
                }
                Ok(VectorClock(VecMap::from_entries(entries)))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// An entry as read: its value at most [`crate::protocol::MAX_COUNTER`].
fn entry(client_id: String, seq: u64) -> Result<(String, u64), String> {
    match crate::protocol::check_counter(seq) {
        Ok(seq) => Ok((client_id, seq)),
        Err(err) => Err(format!("vectorClock entry {}: {err}", Quoted(&client_id))),
    }
}

/// The same as `Deserialize`, from a parsed value.
impl FromJson for VectorClock {
    fn from_json(value: serde_json::Value) -> Result<Self, crate::protocol::JsonError> {
        let entries = object(value, "a map of clientId to sequenceNum")?
            .into_iter()
            .map(|(client_id, seq)| {
                entry(client_id, u64::from_json(seq)?).map_err(serde::de::Error::custom)
            })
            .collect::<Result<Vec<_>, crate::protocol::JsonError>>()?;
        Ok(VectorClock(VecMap::from_entries(entries)))
    }
}

/// The same object `Serialize` writes, as a value.
impl ToJson for VectorClock {
    fn to_json(&self) -> serde_json::Value {
        let entries = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)));
        serde_json::Value::Object(entries.collect())
    }
}

/// How two vector clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOrder {
    /// Every entry is equal.
    Equal,
    /// `self` knows nothing `other` does not, and `other` knows more.
    Before,
    /// `self` knows more, and nothing `other` does not.
    After,
    /// Each knows something the other does not.
    Concurrent,
}

impl VectorClock {
    /// An empty vector: nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest `sequenceNum` known of `client_id` (0 when unknown).
    pub fn get(&self, client_id: &str) -> u64 {
        self.0.get(client_id).copied().unwrap_or(0)
    }

    /// Records that `client_id`'s events up to `sequence_num` are known. Never lowers an entry.
    pub fn observe(&mut self, client_id: &str, sequence_num: u64) {
        match self.0.get_mut(client_id) {
            Some(seq) => *seq = (*seq).max(sequence_num),
            None => {
                self.0.insert(client_id.to_owned(), sequence_num);
            }
        }
    }

    /// Entry-wise maximum with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        for (client_id, seq) in other.0.iter() {
            self.observe(client_id, *seq);
        }
    }

    /// Compares entry by entry (missing entries count as 0).
    pub fn compare(&self, other: &VectorClock) -> ClockOrder {
        let mut less = false;
        let mut greater = false;
        for key in self.0.keys().chain(other.0.keys()) {
            match self.get(key).cmp(&other.get(key)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => ClockOrder::Equal,
            (true, false) => ClockOrder::Before,
            (false, true) => ClockOrder::After,
            (true, true) => ClockOrder::Concurrent,
        }
    }

    /// The highest `sequenceNum` of any origin: the replica's cursor into the log.
    pub fn max_seq(&self) -> u64 {
        self.0.values().copied().max().unwrap_or(0)
    }

    /// True when no origin is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of origins named (entries of 0 included).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries, in `clientId` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0
            .iter()
            .map(|(client_id, seq)| (client_id.as_str(), *seq))
    }

    /// Whether a replica with this vector is missing the event of `client_id` at `sequence_num`:
    /// per origin, everything above its entry; every event of an origin it does not name.
    pub fn is_missing(&self, client_id: &str, sequence_num: u64) -> bool {
        sequence_num > self.get(client_id)
    }

    /// The lowest `sequenceNum` after which a replica with this vector can be missing events, given
    /// the document's own vector (`head`). `None` when nothing is missing. A store scans from here
    /// and filters with [`VectorClock::is_missing`].
    pub fn scan_floor(&self, head: &VectorClock) -> Option<u64> {
        head.0
            .iter()
            .filter(|(origin, seq)| self.get(origin) < **seq)
            .map(|(origin, _)| self.get(origin))
            .min()
    }
}

impl FromIterator<(String, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (client_id, seq) in iter {
            clock.observe(&client_id, seq);
        }
        clock
    }
}

/// The events of `log` a replica with `vector` is missing, in `sequenceNum` order.
///
/// The seed's rule: for each origin in the vector, that origin's events above its entry; plus every
/// event of an origin the vector does not name. An empty vector means every event.
pub fn missing_events<'a>(
    log: impl IntoIterator<Item = &'a Event>,
    vector: &VectorClock,
) -> Vec<&'a Event> {
    let mut missing: Vec<&Event> = log
        .into_iter()
        .filter(|event| vector.is_missing(&event.client_id, event.sequence_num))
        .collect();
    missing.sort_by_key(|event| event.sequence_num);
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Operation;

    fn clock(entries: &[(&str, u64)]) -> VectorClock {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn event(seq: u64, origin: &str) -> Event {
        Event {
            id: format!("e{seq}"),
            document_id: "doc".into(),
            timestamp: String::new(),
            sequence_num: seq,
            operation: Operation::Update,
            diff: None,
            vector_clock: VectorClock::new(),
            client_id: origin.into(),
            client_seq: None,
            server_seq: 0,
            metadata: Default::default(),
        }
    }

    #[test]
    fn observe_never_lowers() {
        let mut c = clock(&[("a", 5)]);
        c.observe("a", 3);
        c.observe("b", 2);
        assert_eq!(c, clock(&[("a", 5), ("b", 2)]));
        assert_eq!(c.max_seq(), 5);
    }

    #[test]
    fn merge_is_entrywise_max() {
        let mut a = clock(&[("x", 1), ("y", 7)]);
        a.merge(&clock(&[("x", 4), ("z", 2)]));
        assert_eq!(a, clock(&[("x", 4), ("y", 7), ("z", 2)]));
    }

    #[test]
    fn compare_covers_all_four_orders() {
        let a = clock(&[("x", 1), ("y", 2)]);
        assert_eq!(a.compare(&clock(&[("x", 1), ("y", 2)])), ClockOrder::Equal);
        assert_eq!(a.compare(&clock(&[("x", 2), ("y", 2)])), ClockOrder::Before);
        assert_eq!(a.compare(&clock(&[("x", 1)])), ClockOrder::After);
        assert_eq!(a.compare(&clock(&[("x", 2)])), ClockOrder::Concurrent);
        // Explicit zeros equal missing entries.
        assert_eq!(
            clock(&[("x", 0)]).compare(&VectorClock::new()),
            ClockOrder::Equal
        );
    }

    #[test]
    fn missing_events_follows_the_seed_rule() {
        let log = vec![
            event(1, "a"),
            event(2, "b"),
            event(3, "a"),
            event(4, "c"),
            event(5, "b"),
        ];
        let seqs = |v: &VectorClock| -> Vec<u64> {
            missing_events(&log, v)
                .iter()
                .map(|e| e.sequence_num)
                .collect()
        };
        assert_eq!(seqs(&VectorClock::new()), vec![1, 2, 3, 4, 5]);
        // a known to 3, b known to 2, c unnamed -> everything of c, b's 5.
        assert_eq!(seqs(&clock(&[("a", 3), ("b", 2)])), vec![4, 5]);
        assert_eq!(
            seqs(&clock(&[("a", 3), ("b", 5), ("c", 4)])),
            Vec::<u64>::new()
        );
        // Results come sorted even from an unsorted log.
        let reversed: Vec<Event> = log.iter().rev().cloned().collect();
        let got: Vec<u64> = missing_events(&reversed, &clock(&[("a", 1)]))
            .iter()
            .map(|e| e.sequence_num)
            .collect();
        assert_eq!(got, vec![2, 3, 4, 5]);
    }

    #[test]
    fn reads_and_writes_a_json_object_in_key_order() {
        let read: VectorClock = serde_json::from_str(r#"{"b":2,"a":1,"c":3,"a":4}"#).unwrap();
        // A key given twice keeps its last value, as a `BTreeMap` read it.
        assert_eq!(read, clock(&[("a", 4), ("b", 2), ("c", 3)]));
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"a":4,"b":2,"c":3}"#
        );
        assert_eq!(read.len(), 3);
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            vec![("a", 4), ("b", 2), ("c", 3)]
        );
        assert_eq!(serde_json::to_string(&VectorClock::new()).unwrap(), "{}");
        assert!(serde_json::from_str::<VectorClock>(r#"{"a":9007199254740992}"#).is_err());
        assert!(serde_json::from_str::<VectorClock>(r#"["a",1]"#).is_err());
    }

    #[test]
    fn scan_floor_is_the_lowest_entry_that_misses_something() {
        let head = clock(&[("a", 9), ("b", 5), ("c", 7)]);
        assert_eq!(
            clock(&[("a", 9), ("b", 5), ("c", 7)]).scan_floor(&head),
            None
        );
        assert_eq!(
            clock(&[("a", 9), ("b", 4), ("c", 7)]).scan_floor(&head),
            Some(4)
        );
        // An unnamed origin needs a scan from the start.
        assert_eq!(clock(&[("a", 9), ("b", 5)]).scan_floor(&head), Some(0));
    }
}
