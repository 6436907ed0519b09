//! The wire format: every JSON message of protocol version 1, in one place.
//!
//! `docs/PROTOCOL.md` is the normative description; every example in it is parsed by
//! `tests/protocol_doc.rs` against the types here. Field names follow the seed (`sequenceNum`,
//! `vectorClock`, `clientId`, ...), so events written by the seed's original Go server parse too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diff::Diff;
use crate::vector_clock::VectorClock;

mod encoded;
mod history;
mod presence;
pub use encoded::{EncodedEvents, EncodedFrame, FrameKind};
pub use history::{HistoryAnswer, HistoryRequest, Version, VersionAnswer, VersionRequest};
pub use presence::{
    presence_size, PresencePeer, PresenceUpdate, MAX_PRESENCE_BYTES, PRESENCE_TIMEOUT_MS,
};

/// Protocol version 1: one document per connection (`ws://{server}/sync/{documentId}`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Protocol version 2: any number of documents on one connection (`ws://{server}/sync`); every
/// message about a document names it in `documentId` ([`Scoped`]).
pub const PROTOCOL_VERSION_2: u32 = 2;

/// The largest counter (`sequenceNum`, `clientSeq`, `baseSeq`, `after`, state-vector values,
/// `nonce`) a writer may send: 2^53 - 1, the largest integer JavaScript holds exactly (section 1).
/// Client frames with a larger one are malformed.
pub const MAX_COUNTER: u64 = (1 << 53) - 1;

/// Checks a counter against [`MAX_COUNTER`].
pub fn check_counter(n: u64) -> Result<u64, String> {
    if n > MAX_COUNTER {
        return Err(format!(
            "{n} is above 9007199254740991 (2^53 - 1), the largest counter"
        ));
    }
    Ok(n)
}

fn counter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    check_counter(u64::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn optional_counter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(check_counter)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The `clientId` the server uses for changes that did not come from a client (seed convention).
pub const SERVER_CLIENT_ID: &str = "server";

/// What an event did to the document's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// The document came into existence (it did not exist, or had been deleted).
    Create,
    /// The existing document changed.
    #[default]
    Update,
    /// The document stopped existing.
    Delete,
}

/// One entry of a document's log, as the server ordered it.
///
/// Written (see `impl Serialize`) with its `vectorClock` when it carries one, else with its own
/// entry (`{clientId: sequenceNum}`, as the seed's server writes it): servers no longer put the
/// document's whole vector in every event (section 2). [`CompactEvent`] writes it without
/// `documentId` and `vectorClock`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique id (the seed uses 24 hex characters; any non-empty string is accepted).
    pub id: String,
    /// The document this event belongs to (filled from the frame or the store when a compact
    /// encoding left it out).
    #[serde(default)]
    pub document_id: String,
    /// When the server ordered the event, RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timestamp: String,
    /// Position in the document's log: starts at 1, no gaps.
    pub sequence_num: u64,
    /// Create, update or delete.
    #[serde(default)]
    pub operation: Operation,
    /// The change; `null` when `metadata` carries a whole-document snapshot, or for a delete.
    #[serde(default)]
    pub diff: Option<Diff>,
    /// A state vector after this event: origin `clientId` -> its highest `sequenceNum`. Events of
    /// this crate's servers leave it empty (it is written as the event's own entry); seed and
    /// older servers may send the document's whole vector. Readers merge it (section 6.4).
    #[serde(default)]
    pub vector_clock: VectorClock,
    /// The origin of the change (`"server"` for changes that did not come from a client).
    pub client_id: String,
    /// The origin's per-document edit counter, when the event came from a client edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_seq: Option<u64>,
    /// Seed field, carried through unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_seq: u64,
    /// Free-form; the seed puts whole documents here (`data`, `created_doc`, `deleted_doc`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

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

/// A client's state vector for one document, as sent to `POST /api/sync/{documentId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StateVector {
    /// The client this vector belongs to.
    #[serde(default)]
    pub client_id: String,
    /// The document.
    #[serde(default)]
    pub document_id: String,
    /// Origin `clientId` -> highest `sequenceNum` of that origin the client has applied.
    #[serde(default)]
    pub vector_clock: VectorClock,
    /// When the vector last changed, RFC 3339 (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

/// A local change a client asks the server to order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edit {
    /// Per client and document, strictly increasing; the idempotency key with the `clientId`.
    #[serde(deserialize_with = "counter")]
    pub client_seq: u64,
    /// The `sequenceNum` of the confirmed document the edit (and every earlier edit of the same
    /// submission) was made against.
    #[serde(deserialize_with = "counter")]
    pub base_seq: u64,
    /// Create, update or delete of the document.
    #[serde(default)]
    pub operation: Operation,
    /// RFC 6902 operations; empty for a delete or for an edit that rebasing reduced to nothing.
    #[serde(default)]
    pub patch: Vec<json_patch::PatchOperation>,
    /// Optional: per operation of `patch`, whether its last path token indexes an array. Sent
    /// with patches in normal form (`add`, `remove`, `replace`, `test`; array positions as
    /// numbers), it lets a server transform a stale edit instead of refusing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<bool>>,
}

/// A whole document at one point of its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The document.
    pub document_id: String,
    /// The last event folded into this snapshot.
    pub sequence_num: u64,
    /// The document, or `null` when it does not exist (never created, or deleted).
    pub document: Option<Value>,
    /// The state vector at `sequenceNum`.
    #[serde(default)]
    pub vector_clock: VectorClock,
}

/// The server's answer for one accepted (or already accepted) edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The edit.
    pub client_seq: u64,
    /// Where the edit sits in the log.
    pub sequence_num: u64,
    /// True when this was a resend of an edit ordered earlier (nothing was applied again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Error codes shared by error frames, edit rejections and HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a message of this protocol.
    MalformedFrame,
    /// A message arrived before `hello`, or a second `hello`.
    UnexpectedMessage,
    /// No protocol version in `protocolVersions` is spoken by the server.
    UnsupportedVersion,
    /// The patch is not valid RFC 6902 or does not apply to the document.
    InvalidPatch,
    /// The edit conflicts with events ordered since its `baseSeq`: rebase and resend.
    Conflict,
    /// The edit's `baseSeq` is behind events the client has not seen yet: catch up and resend.
    StaleBase,
    /// `baseSeq` is ahead of the log, or a sequence number is otherwise impossible.
    InvalidSequence,
    /// An edit to a document that does not exist (or was deleted), or a create of one that does.
    DocumentState,
    /// The document id is not valid.
    UnknownDocument,
    /// No or bad credentials.
    Unauthorized,
    /// Credentials are valid but do not grant this.
    Forbidden,
    /// The connection is bound to another `clientId`.
    ClientMismatch,
    /// A frame or document over the server's size or depth limits.
    TooLarge,
    /// Too many messages; slow down.
    RateLimited,
    /// The server failed; retry later.
    Internal,
    /// A position of the document's history that compaction removed: the server can no longer
    /// rebuild the document as of it (12.4, 18.8).
    HistoryCompacted,
    /// The edit would leave the document breaking the server's rules (its JSON Schema, or a
    /// check of the application's): nothing of it was applied.
    InvalidDocument,
    /// A code this version does not know (kept so that newer servers do not break older clients).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// True when resending the same edits later (after catching up and rebasing) can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Conflict
                | ErrorCode::StaleBase
                | ErrorCode::RateLimited
                | ErrorCode::Internal
        )
    }
}

/// The code as it is on the wire (`unknown_document`).
impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => f.write_str("unknown"),
        }
    }
}

/// Messages a client sends on `ws://{server}/sync/{documentId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// First frame: who the client is and which protocol versions it speaks.
    #[serde(rename_all = "camelCase")]
    Hello {
        /// Versions the client speaks; the server picks the highest it also speaks.
        protocol_versions: Vec<u32>,
        /// The client's stable id.
        client_id: String,
        /// Access token, when the server requires one (may also come as `?token=`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Ask for the events this client is missing (the seed's message, unchanged).
    #[serde(rename_all = "camelCase")]
    Sync {
        /// The client's state vector.
        #[serde(default)]
        vector_clock: VectorClock,
        /// When present, a plain cursor: every event with `sequenceNum > after`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "optional_counter"
        )]
        after: Option<u64>,
    },
    /// Local edits to order, in `clientSeq` order.
    Submit {
        /// The edits.
        edits: Vec<Edit>,
    },
    /// Version 2: open a document on the connection (its `documentId` is the frame's).
    Open,
    /// Version 2: stop serving a document on the connection.
    Close,
    /// Version 2: this client's presence on a document (`null`: none), relayed to the document's
    /// other peers and never stored (18.7).
    Presence {
        /// Any JSON value, at most the server's limit ([`MAX_PRESENCE_BYTES`] by default).
        state: Value,
    },
    /// Version 2: a page of a document's history (18.8).
    History(HistoryRequest),
    /// Version 2: the document as of a position of its log (18.8).
    Version(VersionRequest),
    /// Keep-alive; answered with `pong`.
    Ping {
        /// Echoed back.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "optional_counter"
        )]
        nonce: Option<u64>,
    },
}

/// Defines [`ServerMessage`] (written internally tagged: `{"type": "welcome", ...}`) and a
/// private copy of its variants that serde reads externally tagged (`{"welcome": {...}}`), the
/// form [`ServerMessage::from_value`] rewrites a frame to. Serde's derive for an internally
/// tagged enum buffers the frame in its own `Content` tree and compiles every variant's parser
/// once more for it: a large share of the WebAssembly build. (The enum's name is a macro
/// variable: tests/protocol_doc.rs reads the variants after the one place that spells out
/// the enum's declaration.)
macro_rules! server_message {
    ($(#[$attr:meta])* pub enum $name:ident { $($body:tt)* }) => {
        $(#[$attr])*
        pub enum $name { $($body)* }

        #[derive(Deserialize)]
        #[serde(remote = "ServerMessage", rename_all = "camelCase")]
        #[allow(dead_code)]
        enum ExternallyTagged { $($body)* }
    };
}

server_message! {
/// Messages a server sends on `ws://{server}/sync/{documentId}`.
///
/// Read by [`ServerMessage::from_value`] (the `Deserialize` impl too): its `type` picks the
/// variant, which is read from the rest of the object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Answer to `hello`.
    #[serde(rename_all = "camelCase")]
    Welcome {
        /// The version both sides speak.
        protocol_version: u32,
        /// The document of this connection (version 1; absent in version 2).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        document_id: String,
        /// The client id bound to this connection.
        client_id: String,
        /// The document's last `sequenceNum` when the connection was accepted (version 1;
        /// absent in version 2, where `opened` says it per document).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head_seq: Option<u64>,
    },
    /// Version 2: a document was opened on the connection (the `welcome` of one document).
    #[serde(rename_all = "camelCase")]
    Opened {
        /// The document's last `sequenceNum` when it was opened: its live events start after it.
        head_seq: u64,
    },
    /// Version 2: the server no longer serves a document on this connection. Without `code`, at
    /// the client's request (`close`); with one, the server refused or stopped it.
    Closed {
        /// Why, when the server closed it on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        /// Human-readable detail.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// Catch-up: the events answering a `sync`, in `sequenceNum` order.
    #[serde(rename_all = "camelCase")]
    Events {
        /// The missing events (possibly a page of them).
        events: Vec<Event>,
        /// The document's last `sequenceNum` when the answer was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head_seq: Option<u64>,
        /// True when more `events` frames follow for the same `sync`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        has_more: bool,
    },
    /// A live event (the seed wraps it in a one-element `events` array).
    Event {
        /// The event(s), in `sequenceNum` order.
        events: Vec<Event>,
    },
    /// The whole document at a point of the log; the `events` that follow continue from it.
    Snapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// Edits of a `submit` that are in the log.
    Ack {
        /// One entry per accepted edit.
        edits: Vec<Ack>,
    },
    /// An edit of a `submit` was not ordered; neither was any later edit of that `submit`.
    #[serde(rename_all = "camelCase")]
    Reject {
        /// The first edit not ordered.
        client_seq: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        #[serde(default)]
        message: String,
        /// The document's last `sequenceNum` when the edit was refused.
        head_seq: u64,
    },
    /// Something went wrong with the connection or a frame; the connection stays usable unless the
    /// server closes it.
    Error {
        /// Machine-readable code (`unknown` when the server sent none, as the seed's server does).
        #[serde(default = "unknown_code")]
        code: ErrorCode,
        /// Human-readable detail (the seed calls this field `error`).
        #[serde(alias = "error", default)]
        message: String,
    },
    /// Answer to `ping`.
    #[serde(rename_all = "camelCase")]
    Pong {
        /// The ping's nonce.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
        /// The document's last `sequenceNum`: a client behind it missed something and resyncs
        /// (version 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head_seq: Option<u64>,
        /// Version 2: the last `sequenceNum` of every document open on the connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heads: Option<std::collections::BTreeMap<String, u64>>,
    },
    /// Version 2: other peers' presence on a document, or the refusal of this client's (18.7).
    Presence(PresenceUpdate),
    /// Version 2: the answer to a `history` request (18.8).
    History(HistoryAnswer),
    /// Version 2: the answer to a `version` request (18.8).
    Version(VersionAnswer),
    /// A message type from a newer protocol version; clients ignore it.
    Unknown,
}
}

/// The `type` of every [`ServerMessage`] but `Unknown`.
const SERVER_MESSAGE_TYPES: [&str; 13] = [
    "welcome", "opened", "closed", "events", "event", "snapshot", "ack", "reject", "error", "pong",
    "presence", "history", "version",
];

impl ServerMessage {
    /// Reads a message from a JSON object: `type` picks the variant (a type this version does not
    /// know is [`ServerMessage::Unknown`]), the other members are its fields.
    pub fn from_value(value: Value) -> Result<ServerMessage, serde_json::Error> {
        use serde::de::Error;
        let Value::Object(mut members) = value else {
            return Err(serde_json::Error::invalid_type(
                unexpected(&value),
                &"internally tagged enum ServerMessage",
            ));
        };
        let kind = match members.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(serde_json::Error::invalid_type(
                    unexpected(&other),
                    &"a message type",
                ))
            }
            None => return Err(serde_json::Error::missing_field("type")),
        };
        if !SERVER_MESSAGE_TYPES.contains(&kind.as_str()) {
            return Ok(ServerMessage::Unknown);
        }
        let mut tagged = Map::new();
        tagged.insert(kind, Value::Object(members));
        ExternallyTagged::deserialize(Value::Object(tagged))
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ServerMessage::from_value(Value::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads `T` from JSON text through a [`Value`]: every reader of text then shares serde_json's
/// one parser for `Value`, and each type's `Deserialize` is compiled once, for `Value` (reading
/// straight from text would compile it once more for the text reader, in the WebAssembly build
/// too). The errors say what is wrong without the line and column.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    T::deserialize(serde_json::from_str::<Value>(text)?)
}

/// A JSON value as serde's errors describe it.
pub(crate) fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn unknown_code() -> ErrorCode {
    ErrorCode::Unknown
}

/// Body of `POST /api/sync/{documentId}` answers and `GET /api/events/{documentId}` pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    /// A snapshot to install first, when the client is behind the retained history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// The events, in `sequenceNum` order.
    pub events: Vec<Event>,
    /// The document's last `sequenceNum`.
    pub head_seq: u64,
    /// True when a further page exists (ask again with `after` = the last `sequenceNum` here).
    #[serde(default)]
    pub has_more: bool,
}

/// Body of every HTTP error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not JSON, or not a message of this protocol (unknown `type`, missing or mistyped fields).
    #[error("malformed frame: {0}")]
    Malformed(serde_json::Error),
    /// JSON nested deeper than the parser's limit of 128 levels.
    #[error("frame nested deeper than 128 levels")]
    TooDeep,
    /// Larger than the limit the reader was given.
    #[error("frame of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl FrameError {
    /// The protocol error code a server answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::Malformed(_) => ErrorCode::MalformedFrame,
            FrameError::TooLarge { .. } | FrameError::TooDeep => ErrorCode::TooLarge,
        }
    }
}

impl From<serde_json::Error> for FrameError {
    fn from(err: serde_json::Error) -> Self {
        // serde_json's own recursion limit (128) is the protocol's depth limit.
        if err.to_string().starts_with("recursion limit exceeded") {
            FrameError::TooDeep
        } else {
            FrameError::Malformed(err)
        }
    }
}

/// A message of protocol version 2 with the document it concerns: `{"type": ..., "documentId":
/// ..., ...}`. Connection-level messages (`hello`, `welcome`, `ping`, `pong`, and an `error` about
/// the connection) have none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scoped<M> {
    /// The document, for messages about one.
    #[serde(
        rename = "documentId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub document_id: Option<String>,
    /// The message.
    #[serde(flatten)]
    pub message: M,
}

/// Reads a client frame of version 2, refusing frames over `max_bytes` before parsing them.
pub fn decode_client_scoped(
    text: &str,
    max_bytes: usize,
) -> Result<Scoped<ClientMessage>, FrameError> {
    if text.len() > max_bytes {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    scoped(text, ClientMessage::deserialize)
}

/// Reads a server frame of version 2. The events of `events` and `event` frames come without
/// their `documentId` (the frame's): it is filled in.
pub fn decode_server_scoped(text: &str) -> Result<Scoped<ServerMessage>, FrameError> {
    let mut scoped: Scoped<ServerMessage> = match events_frame(text, true) {
        Some((document_id, message)) => Scoped {
            document_id,
            message,
        },
        None => scoped(text, ServerMessage::from_value)?,
    };
    if let (
        Some(document_id),
        ServerMessage::Events { events, .. }
        | ServerMessage::Event { events }
        | ServerMessage::History(HistoryAnswer { events, .. }),
    ) = (&scoped.document_id, &mut scoped.message)
    {
        for event in events.iter_mut().filter(|e| e.document_id.is_empty()) {
            event.document_id.clone_from(document_id);
        }
    }
    Ok(scoped)
}

/// A frame with a `documentId` member beside the message's own. Read through a `Value` rather
/// than serde's `flatten`, which would accept a number as `type` (a variant's index).
fn scoped<M>(
    text: &str,
    read: fn(Value) -> Result<M, serde_json::Error>,
) -> Result<Scoped<M>, FrameError> {
    let mut value: Value = serde_json::from_str(text)?;
    let document_id = match value.as_object_mut().and_then(|o| o.remove("documentId")) {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            let invalid = serde::de::Error::invalid_type(
                serde::de::Unexpected::Other(&other.to_string()),
                &"a documentId string",
            );
            return Err(FrameError::Malformed(invalid));
        }
    };
    let message = read(value)?;
    Ok(Scoped {
        document_id,
        message,
    })
}

/// Writes a message of version 2 about `document_id` (or about the connection, with `None`).
/// Events go compact ([`CompactEvent`]): the frame names their document, and readers derive
/// vectors (section 2).
pub fn encode_scoped(document_id: Option<&str>, message: &ServerMessage) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    enum CompactEvents<'a> {
        #[serde(rename_all = "camelCase")]
        Events {
            #[serde(skip_serializing_if = "Option::is_none")]
            document_id: Option<&'a str>,
            events: Vec<CompactEvent<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            head_seq: Option<u64>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            has_more: bool,
        },
        #[serde(rename_all = "camelCase")]
        Event {
            #[serde(skip_serializing_if = "Option::is_none")]
            document_id: Option<&'a str>,
            events: Vec<CompactEvent<'a>>,
        },
    }
    fn compact(events: &[Event]) -> Vec<CompactEvent<'_>> {
        events.iter().map(CompactEvent).collect()
    }
    match message {
        ServerMessage::Events {
            events,
            head_seq,
            has_more,
        } => encode(&CompactEvents::Events {
            document_id,
            events: compact(events),
            head_seq: *head_seq,
            has_more: *has_more,
        }),
        ServerMessage::Event { events } => encode(&CompactEvents::Event {
            document_id,
            events: compact(events),
        }),
        other => encode(&Scoped {
            document_id: document_id.map(str::to_owned),
            message: other,
        }),
    }
}

/// Reads a server frame.
pub fn decode_server(text: &str) -> Result<ServerMessage, FrameError> {
    if let Some((_, message)) = events_frame(text, false) {
        return Ok(message);
    }
    Ok(ServerMessage::from_value(serde_json::from_str(text)?)?)
}

/// `events` and `event` frames, the bulk of what a client reads, read straight into their
/// message. serde reads a `type`-tagged enum by first copying the whole frame into a buffer of
/// its own (its `Content`), which for a page of a catch-up costs more than reading the page.
/// Taken only for a frame that starts with its `type` (and, `scoped`, its `documentId`), as
/// servers write them; `None` for any other frame, and for one this cannot read, which then
/// goes the general way (and fails with its error).
fn events_frame(text: &str, scoped: bool) -> Option<(Option<String>, ServerMessage)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame {
        #[serde(default)]
        document_id: Option<String>,
        events: Vec<Event>,
        #[serde(default)]
        head_seq: Option<u64>,
        #[serde(default)]
        has_more: bool,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LiveFrame {
        #[serde(default)]
        document_id: Option<String>,
        events: Vec<Event>,
    }
    let rest = text.strip_prefix("{\"type\":\"event")?;
    let (live, rest) = match rest.strip_prefix("s\",") {
        Some(rest) => (false, rest),
        None => (true, rest.strip_prefix("\",")?),
    };
    if scoped && !rest.starts_with("\"documentId\":") {
        return None;
    }
    if live {
        let frame: LiveFrame = serde_json::from_str(text).ok()?;
        let document_id = frame.document_id.filter(|_| scoped);
        Some((
            document_id,
            ServerMessage::Event {
                events: frame.events,
            },
        ))
    } else {
        let frame: Frame = serde_json::from_str(text).ok()?;
        let message = ServerMessage::Events {
            events: frame.events,
            head_seq: frame.head_seq,
            has_more: frame.has_more,
        };
        Some((frame.document_id.filter(|_| scoped), message))
    }
}

/// Reads a client frame, refusing frames over `max_bytes` before parsing them.
pub fn decode_client(text: &str, max_bytes: usize) -> Result<ClientMessage, FrameError> {
    if text.len() > max_bytes {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    Ok(serde_json::from_str(text)?)
}

/// Writes any protocol message as one JSON frame.
pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).expect("protocol messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip_server(msg: ServerMessage) {
        let text = encode(&msg);
        assert_eq!(decode_server(&text).unwrap(), msg, "{text}");
    }

    fn round_trip_client(msg: ClientMessage) {
        let text = encode(&msg);
        assert_eq!(decode_client(&text, 1 << 20).unwrap(), msg, "{text}");
    }

    fn sample_event() -> Event {
        serde_json::from_value(json!({
            "id": "e1", "documentId": "doc", "timestamp": "2026-01-01T00:00:00Z",
            "sequenceNum": 3, "operation": "update",
            "diff": {"patch": [{"op": "add", "path": "/a", "value": 1}]},
            "vectorClock": {"alice": 3}, "clientId": "alice", "clientSeq": 7
        }))
        .unwrap()
    }

    #[test]
    fn every_client_message_round_trips() {
        round_trip_client(ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: "alice".into(),
            token: Some("t".into()),
        });
        round_trip_client(ClientMessage::Sync {
            vector_clock: VectorClock::from_iter([("alice".to_string(), 4)]),
            after: Some(4),
        });
        round_trip_client(ClientMessage::Submit {
            edits: vec![Edit {
                client_seq: 1,
                base_seq: 0,
                operation: Operation::Create,
                patch: serde_json::from_value(json!([{"op": "add", "path": "", "value": {}}]))
                    .unwrap(),
                shape: None,
            }],
        });
        round_trip_client(ClientMessage::Ping { nonce: Some(9) });
    }

    #[test]
    fn every_server_message_round_trips() {
        round_trip_server(ServerMessage::Welcome {
            protocol_version: 1,
            document_id: "doc".into(),
            client_id: "alice".into(),
            head_seq: Some(3),
        });
        round_trip_server(ServerMessage::Events {
            events: vec![sample_event()],
            head_seq: Some(3),
            has_more: true,
        });
        round_trip_server(ServerMessage::Event {
            events: vec![sample_event()],
        });
        round_trip_server(ServerMessage::Snapshot {
            snapshot: Snapshot {
                document_id: "doc".into(),
                sequence_num: 3,
                document: Some(json!({"a": 1})),
                vector_clock: VectorClock::default(),
            },
        });
        round_trip_server(ServerMessage::Ack {
            edits: vec![Ack {
                client_seq: 7,
                sequence_num: 3,
                duplicate: true,
            }],
        });
        round_trip_server(ServerMessage::Reject {
            client_seq: 8,
            code: ErrorCode::Conflict,
            message: "x".into(),
            head_seq: 4,
        });
        round_trip_server(ServerMessage::Error {
            code: ErrorCode::MalformedFrame,
            message: "bad".into(),
        });
        round_trip_server(ServerMessage::Pong {
            nonce: None,
            head_seq: Some(3),
            heads: None,
        });
    }

    /// Events are moved through the client's queues and buffers by value: the rarely used
    /// parts (the seed's MongoDB operators) are boxed so that every move stays small.
    #[test]
    fn an_event_stays_small() {
        let size = std::mem::size_of::<Event>();
        eprintln!("Event: {size} bytes");
        assert!(size <= 320, "Event is {size} bytes");
    }

    #[test]
    fn events_frames_read_the_same_the_quick_way() {
        let events = vec![sample_event()];
        let page = ServerMessage::Events {
            events: events.clone(),
            head_seq: Some(3),
            has_more: true,
        };
        let live = ServerMessage::Event { events };
        let other = r#"{"type":"events","events":[],"headSeq":null,"x":1}"#;
        for text in [encode(&page), encode(&live), other.to_string()] {
            assert!(events_frame(&text, false).is_some(), "{text}");
            let general: ServerMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(decode_server(&text).unwrap(), general, "{text}");
        }
        for message in [page, live] {
            let text = encode_scoped(Some("doc"), &message);
            assert!(events_frame(&text, true).is_some(), "{text}");
            let mut general: Scoped<ServerMessage> =
                scoped(&text, ServerMessage::from_value).unwrap();
            if let ServerMessage::Events { events, .. } | ServerMessage::Event { events } =
                &mut general.message
            {
                events.iter_mut().for_each(|e| e.document_id = "doc".into());
            }
            assert_eq!(decode_server_scoped(&text).unwrap(), general, "{text}");
        }
        // What the quick way cannot read goes the general way, with its answer.
        for bad in [
            r#"{"type":"events","events":null}"#,
            r#"{"type":"events","documentId":7,"events":[]}"#,
            r#"{"type":"event","documentId":"d","events":[{}]}"#,
        ] {
            assert!(events_frame(bad, true).is_none(), "{bad}");
            assert!(decode_server_scoped(bad).is_err(), "{bad}");
        }
        assert_eq!(
            decode_server(r#"{"type":"events","documentId":7,"events":[]}"#).unwrap(),
            ServerMessage::Events {
                events: Vec::new(),
                head_seq: None,
                has_more: false
            }
        );
    }

    #[test]
    fn unknown_server_message_types_are_readable_and_deep_frames_are_too_large() {
        let msg = decode_server(r#"{"type":"notice","who":["bob"]}"#).unwrap();
        assert_eq!(msg, ServerMessage::Unknown);
        let deep = format!(
            r#"{{"type":"ping","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            decode_client(&deep, 1 << 20).unwrap_err().code(),
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn server_messages_read_as_the_internally_tagged_derive_would() {
        // What `#[serde(tag = "type")]` derived for `ServerMessage` read; `from_value` reads the
        // same (the messages of errors may differ).
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(tag = "type", rename_all = "camelCase")]
        enum Tags {
            Welcome,
            Opened,
            Closed,
            Events,
            Event,
            Snapshot,
            Ack,
            Reject,
            Error,
            Pong,
            Presence,
            History,
            Version,
            #[serde(other)]
            Unknown,
        }
        for text in [
            r#"{"type":"welcome","protocolVersion":2,"clientId":"a","extra":[1]}"#,
            r#"{"type":"opened","headSeq":4}"#,
            r#"{"type":"closed"}"#,
            r#"{"type":"closed","code":"forbidden","message":"no"}"#,
            r#"{"type":"events","events":[],"hasMore":true}"#,
            r#"{"type":"event","events":[{"id":"e","sequenceNum":1,"clientId":"a"}]}"#,
            r#"{"type":"snapshot","snapshot":{"documentId":"d","sequenceNum":2,"document":null}}"#,
            r#"{"type":"ack","edits":[{"clientSeq":1,"sequenceNum":2}]}"#,
            r#"{"type":"reject","clientSeq":1,"code":"conflict","headSeq":3}"#,
            r#"{"type":"error","error":"boom"}"#,
            r#"{"type":"pong","heads":{"d":3}}"#,
            r#"{"type":"presence","peers":[{"clientId":"b","state":{"x":1}}],"full":true}"#,
            r#"{"type":"history","requestId":1,"events":[],"headSeq":0}"#,
            r#"{"type":"version","requestId":1,"version":{"sequenceNum":0,"document":null}}"#,
            r#"{"type":"unknown","x":1}"#,
            r#"{"type":"somethingNew"}"#,
            r#"{"headSeq":4,"type":"opened"}"#,
        ] {
            let tag: Tags = serde_json::from_str(text).unwrap();
            let read = decode_server(text);
            assert!(read.is_ok(), "{text}: {read:?}");
            if let Ok(message) = read {
                let name = serde_json::to_value(&message).unwrap()["type"].clone();
                let expected = serde_json::to_value(format!("{tag:?}")).unwrap();
                let expected = expected.as_str().unwrap();
                let expected = expected[..1].to_lowercase() + &expected[1..];
                if tag == Tags::Unknown {
                    assert_eq!(message, ServerMessage::Unknown, "{text}");
                } else {
                    assert_eq!(name, expected, "{text}");
                }
            }
        }
        for not_a_message in [
            r#"{"type":"opened"}"#,
            r#"{"type":"reject","clientSeq":"1","code":"conflict","headSeq":3}"#,
            r#"{"type":7}"#,
            r#"{"headSeq":4}"#,
            r#"[]"#,
            r#""welcome""#,
        ] {
            let err = decode_server(not_a_message).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedFrame, "{not_a_message}");
        }
    }

    #[test]
    fn seed_error_frame_parses_with_unknown_code() {
        let msg = decode_server(r#"{"type":"error","error":"boom"}"#).unwrap();
        assert_eq!(
            msg,
            ServerMessage::Error {
                code: ErrorCode::Unknown,
                message: "boom".into()
            }
        );
    }

    #[test]
    fn unknown_error_codes_from_newer_servers_parse() {
        let msg = decode_server(r#"{"type":"error","code":"brand_new","message":"m"}"#).unwrap();
        assert!(matches!(
            msg,
            ServerMessage::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn bad_frames_are_clear_errors() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"type":"submit"}"#,
            r#"{"type":"submit","edits":[{"clientSeq":-1,"baseSeq":0}]}"#,
            r#"{"type":"submit","edits":[{"clientSeq":"1","baseSeq":0}]}"#,
            r#"{"type":"hello","protocolVersions":[1]}"#,
        ] {
            let err = decode_client(bad, 1 << 20).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedFrame, "{bad}");
        }
        let err = decode_client(&"x".repeat(100), 10).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn seed_event_with_merge_patch_and_server_seq_parses() {
        let ev: Event = serde_json::from_value(json!({
            "id": "64b7f0c2a1b2c3d4e5f60718", "documentId": "64b7f0c2a1b2c3d4e5f60719",
            "timestamp": "2024-01-01T00:00:00Z", "sequenceNum": 5, "operation": "update",
            "diff": {"hasChanges": true, "version": 6, "mergePatch": "eyJhIjoxfQ==",
                     "bsonPatch": {"set": {"a": 1}, "inc": {"version": 1}}},
            "vectorClock": {"server": 5}, "clientId": "server", "serverSeq": 0, "metadata": {}
        }))
        .unwrap();
        assert_eq!(ev.sequence_num, 5);
        assert_eq!(ev.client_id, SERVER_CLIENT_ID);
        assert!(ev.diff.is_some());
    }

    #[test]
    fn counters_above_2_53_minus_1_make_a_client_frame_malformed() {
        for bad in [
            r#"{"type":"ping","nonce":9007199254740992}"#,
            r#"{"type":"sync","after":9007199254740992}"#,
            r#"{"type":"sync","vectorClock":{"a":18446744073709551615}}"#,
            r#"{"type":"submit","edits":[{"clientSeq":9007199254740992,"baseSeq":0}]}"#,
            r#"{"type":"submit","edits":[{"clientSeq":1,"baseSeq":9007199254740992}]}"#,
        ] {
            let err = decode_client(bad, 1 << 20).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedFrame, "{bad}");
            assert!(err.to_string().contains("2^53"), "{err}");
        }
        let ok = r#"{"type":"ping","nonce":9007199254740991}"#;
        assert_eq!(
            decode_client(ok, 1 << 20).unwrap(),
            ClientMessage::Ping {
                nonce: Some(MAX_COUNTER)
            }
        );
        // null still reads as absent where section 1 says so.
        let null = r#"{"type":"sync","after":null,"vectorClock":{}}"#;
        assert!(decode_client(null, 1 << 20).is_ok());
    }
}
