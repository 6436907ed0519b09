//! Events as the log holds them and as they are written.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::members::{read_members, FromJson, ToJson};
use crate::diff::Diff;
use crate::vector_clock::VectorClock;

/// What an event did to the document's existence, written as its name (`"create"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// The document came into existence (it did not exist, or had been deleted).
    Create,
    /// The existing document changed.
    #[default]
    Update,
    /// The document stopped existing.
    Delete,
}

/// The operations with their names on the wire.
const OPERATIONS: [(Operation, &str); 3] = [
    (Operation::Create, "create"),
    (Operation::Update, "update"),
    (Operation::Delete, "delete"),
];

impl Operation {
    /// The name on the wire (`"create"`).
    pub fn name(self) -> &'static str {
        OPERATIONS[self as usize].1
    }

    /// The operation named `name`; `unknown variant` for any other name.
    fn from_name<E: serde::de::Error>(name: &str) -> Result<Operation, E> {
        OPERATIONS
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(operation, _)| *operation)
            .ok_or_else(|| E::unknown_variant(name, &["create", "update", "delete"]))
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Read from the name where it is (every event has one: no copy of it is made).
impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Operation;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("create, update or delete")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Operation, E> {
                Operation::from_name(name)
            }
        }
        d.deserialize_str(Name)
    }
}

impl ToJson for Operation {
    fn to_json(&self) -> Value {
        Value::String(self.name().to_owned())
    }
}

impl FromJson for Operation {
    fn from_json(value: Value) -> Result<Self, serde_json::Error> {
        Operation::from_name(&String::from_json(value)?)
    }
}

/// One entry of a document's log, as the server ordered it.
///
/// Written (see `impl Serialize`) with its `vectorClock` when it carries one, else with its own
/// entry (`{clientId: sequenceNum}`, as the seed's server writes it): servers no longer put the
/// document's whole vector in every event (section 2). [`CompactEvent`] writes it without
/// `documentId` and `vectorClock`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id (the seed uses 24 hex characters; any non-empty string is accepted).
    pub id: String,
    /// The document this event belongs to (filled from the frame or the store when a compact
    /// encoding left it out).
    pub document_id: String,
    /// When the server ordered the event, RFC 3339.
    pub timestamp: String,
    /// Position in the document's log: starts at 1, no gaps.
    pub sequence_num: u64,
    /// Create, update or delete.
    pub operation: Operation,
    /// The change; `null` when `metadata` carries a whole-document snapshot, or for a delete.
    pub diff: Option<Diff>,
    /// A state vector after this event: origin `clientId` -> its highest `sequenceNum`. Events of
    /// this crate's servers leave it empty (it is written as the event's own entry); seed and
    /// older servers may send the document's whole vector. Readers merge it (section 6.4).
    pub vector_clock: VectorClock,
    /// The origin of the change (`"server"` for changes that did not come from a client).
    pub client_id: String,
    /// The origin's per-document edit counter, when the event came from a client edit.
    pub client_seq: Option<u64>,
    /// Seed field, carried through unchanged.
    pub server_seq: u64,
    /// Free-form; the seed puts whole documents here (`data`, `created_doc`, `deleted_doc`).
    pub metadata: Map<String, Value>,
}

read_members!(Event, "an event", {
    id: String = "id" required,
    document_id: String = "documentId" default,
    timestamp: String = "timestamp" default,
    sequence_num: u64 = "sequenceNum" required,
    operation: Operation = "operation" default,
    diff: Option<Diff> = "diff" default,
    vector_clock: VectorClock = "vectorClock" default,
    client_id: String = "clientId" required,
    client_seq: Option<u64> = "clientSeq" default,
    server_seq: u64 = "serverSeq" default,
    metadata: Map<String, Value> = "metadata" default,
});

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_empty_str(s: &&str) -> bool {
    s.is_empty()
}

/// An event as written: every field, or the compact form.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_id: Option<&'a str>,
    #[serde(skip_serializing_if = "is_empty_str")]
    timestamp: &'a str,
    sequence_num: u64,
    /// Left out of compact events when it is `update`, its default.
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<Operation>,
    diff: &'a Option<Diff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector_clock: Option<VectorOut<'a>>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_seq: Option<u64>,
    #[serde(skip_serializing_if = "is_zero")]
    server_seq: u64,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: &'a Map<String, Value>,
}

/// An event's `vectorClock` as written: the one it carries, or its own entry.
enum VectorOut<'a> {
    Full(&'a VectorClock),
    Own(&'a str, u64),
}

impl Serialize for VectorOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            VectorOut::Full(vector) => vector.serialize(serializer),
            VectorOut::Own(client_id, sequence_num) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(client_id, sequence_num)?;
                map.end()
            }
        }
    }
}

impl<'a> EventOut<'a> {
    fn new(event: &'a Event, compact: bool) -> Self {
        let vector = if event.vector_clock.is_empty() {
            VectorOut::Own(&event.client_id, event.sequence_num)
        } else {
            VectorOut::Full(&event.vector_clock)
        };
        EventOut {
            id: &event.id,
            document_id: (!compact).then_some(event.document_id.as_str()),
            timestamp: &event.timestamp,
            sequence_num: event.sequence_num,
            operation: (!compact || event.operation != Operation::Update)
                .then_some(event.operation),
            diff: &event.diff,
            vector_clock: (!compact).then_some(vector),
            client_id: &event.client_id,
            client_seq: event.client_seq,
            server_seq: event.server_seq,
            metadata: &event.metadata,
        }
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventOut::new(self, false).serialize(serializer)
    }
}

/// An event written without `documentId` and `vectorClock`: how stores keep events (the document
/// is their row's; the vector is derived, section 2).
pub struct CompactEvent<'a>(pub &'a Event);

impl Serialize for CompactEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventOut::new(self.0, true).serialize(serializer)
    }
}
