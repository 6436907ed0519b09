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
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
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

/// One member of an event as written.
enum Member<'a> {
    Text(&'a str),
    Number(u64),
    Operation(Operation),
    Diff(Option<&'a Diff>),
    /// The `vectorClock` an event carries.
    Vector(&'a VectorClock),
    /// An event's own entry (`clientId`, `sequenceNum`), written as its `vectorClock` when it
    /// carries none.
    OwnEntry(&'a str, u64),
    Metadata(&'a Map<String, Value>),
}

impl Event {
    /// The members written, in the order written (`encoded.rs` reads the order back), without
    /// those left out: every member, or the compact form (no `documentId` and `vectorClock`, no
    /// `operation` when it is `update`). Both writers, serde's (servers, stores) and
    /// [`ToJson`] (the browser's events), write these.
    fn written(&self, compact: bool) -> impl Iterator<Item = (&'static str, Member<'_>)> {
        let vector = match self.vector_clock.is_empty() {
            true => Member::OwnEntry(&self.client_id, self.sequence_num),
            false => Member::Vector(&self.vector_clock),
        };
        let members = [
            ("id", Some(Member::Text(&self.id))),
            (
                "documentId",
                (!compact).then_some(Member::Text(&self.document_id)),
            ),
            (
                "timestamp",
                (!self.timestamp.is_empty()).then_some(Member::Text(&self.timestamp)),
            ),
            ("sequenceNum", Some(Member::Number(self.sequence_num))),
            (
                "operation",
                (!compact || self.operation != Operation::Update)
                    .then_some(Member::Operation(self.operation)),
            ),
            ("diff", Some(Member::Diff(self.diff.as_ref()))),
            ("vectorClock", (!compact).then_some(vector)),
            ("clientId", Some(Member::Text(&self.client_id))),
            ("clientSeq", self.client_seq.map(Member::Number)),
            (
                "serverSeq",
                (self.server_seq != 0).then_some(Member::Number(self.server_seq)),
            ),
            (
                "metadata",
                (!self.metadata.is_empty()).then_some(Member::Metadata(&self.metadata)),
            ),
        ];
        members
            .into_iter()
            .filter_map(|(key, member)| Some((key, member?)))
    }

    /// Writes the members of [`Event::written`] with serde.
    fn serialize_members<S: serde::Serializer>(
        &self,
        compact: bool,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, member) in self.written(compact) {
            map.serialize_entry(key, &member)?;
        }
        map.end()
    }
}

impl Serialize for Member<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Member::Text(text) => serializer.serialize_str(text),
            Member::Number(n) => serializer.serialize_u64(*n),
            Member::Operation(operation) => operation.serialize(serializer),
            Member::Diff(diff) => diff.serialize(serializer),
            Member::Vector(vector) => vector.serialize(serializer),
            Member::OwnEntry(client_id, sequence_num) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(client_id, sequence_num)?;
                map.end()
            }
            Member::Metadata(metadata) => metadata.serialize(serializer),
        }
    }
}

impl ToJson for Member<'_> {
    fn to_json(&self) -> Value {
        match self {
            Member::Text(text) => text.to_json(),
            Member::Number(n) => n.to_json(),
            Member::Operation(operation) => operation.to_json(),
            Member::Diff(diff) => diff.to_json(),
            Member::Vector(vector) => vector.to_json(),
            Member::OwnEntry(client_id, sequence_num) => Value::Object(Map::from_iter([(
                (*client_id).to_owned(),
                sequence_num.to_json(),
            )])),
            Member::Metadata(metadata) => metadata.to_json(),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_members(false, serializer)
    }
}

/// The event as [`Serialize`] writes it, as a value (what the browser's event listeners get).
impl ToJson for Event {
    fn to_json(&self) -> Value {
        let members = self
            .written(false)
            .map(|(key, m)| (key.to_owned(), m.to_json()));
        Value::Object(members.collect())
    }
}

/// An event written without `documentId` and `vectorClock`: how stores keep events (the document
/// is their row's; the vector is derived, section 2).
pub struct CompactEvent<'a>(pub &'a Event);

impl Serialize for CompactEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_members(true, serializer)
    }
}
