//! The wire format: every JSON message of protocol version 1, in one place.
//!
//! `docs/PROTOCOL.md` is the normative description; every example in it is parsed by
//! `tests/protocol_doc.rs` against the types here. Field names follow the seed (`sequenceNum`,
//! `vectorClock`, `clientId`, ...), so events written by the seed's original Go server parse too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vector_clock::VectorClock;

mod encoded;
mod event;
mod frame;
mod history;
mod json_error;
pub(crate) mod members;
mod presence;
mod read;
#[cfg(test)]
mod tests;
mod text;
pub use encoded::{EncodedEvents, EncodedFrame, FrameKind};
pub use event::{CompactEvent, Event, Operation};
pub use frame::{
    decode_client, decode_client_scoped, decode_server, decode_server_scoped, encode,
    encode_client, encode_scoped, FrameError, Scoped,
};
pub use history::{HistoryAnswer, HistoryRequest, Version, VersionAnswer, VersionRequest};
pub use json_error::JsonError;
pub(crate) use json_error::{Quoted, QuotedChar};
pub use presence::{
    presence_size, PresencePeer, PresenceUpdate, MAX_PRESENCE_BYTES, PRESENCE_TIMEOUT_MS,
};
pub use text::{parse as parse_json, write as write_json};

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    #[serde(default)]
    pub shape: Option<Vec<bool>>,
}

/// A whole document at one point of its log.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl members::FromJson for Snapshot {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = members::Members::of(value, "a snapshot")?;
        Ok(Snapshot {
            document_id: m.required("documentId")?,
            sequence_num: m.required("sequenceNum")?,
            document: m.optional("document")?,
            vector_clock: m.or_default("vectorClock")?,
        })
    }
}

impl members::FromJson for Ack {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = members::Members::of(value, "an ack")?;
        Ok(Ack {
            client_seq: m.required("clientSeq")?,
            sequence_num: m.required("sequenceNum")?,
            duplicate: m.or_default("duplicate")?,
        })
    }
}

members::deserialize_from_json!(Snapshot, Ack);

/// Error codes shared by error frames, edit rejections and HTTP error bodies, written as their
/// names in snake case ([`ErrorCode::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    Unknown,
}

/// Every code with its name on the wire.
const ERROR_CODES: [(ErrorCode, &str); 18] = [
    (ErrorCode::MalformedFrame, "malformed_frame"),
    (ErrorCode::UnexpectedMessage, "unexpected_message"),
    (ErrorCode::UnsupportedVersion, "unsupported_version"),
    (ErrorCode::InvalidPatch, "invalid_patch"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::StaleBase, "stale_base"),
    (ErrorCode::InvalidSequence, "invalid_sequence"),
    (ErrorCode::DocumentState, "document_state"),
    (ErrorCode::UnknownDocument, "unknown_document"),
    (ErrorCode::Unauthorized, "unauthorized"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::ClientMismatch, "client_mismatch"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::RateLimited, "rate_limited"),
    (ErrorCode::Internal, "internal"),
    (ErrorCode::HistoryCompacted, "history_compacted"),
    (ErrorCode::InvalidDocument, "invalid_document"),
    (ErrorCode::Unknown, "unknown"),
];

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

impl ErrorCode {
    /// The code as it is on the wire (`unknown_document`).
    pub fn name(self) -> &'static str {
        ERROR_CODES
            .iter()
            .find(|(code, _)| *code == self)
            .map_or("unknown", |(_, name)| name)
    }

    /// The code named `name`; [`ErrorCode::Unknown`] for a name this version does not know.
    pub fn from_name(name: &str) -> ErrorCode {
        ERROR_CODES
            .iter()
            .find(|(_, known)| *known == name)
            .map_or(ErrorCode::Unknown, |(code, _)| *code)
    }
}

/// The code as it is on the wire (`unknown_document`).
impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Any string: a name this version does not know is [`ErrorCode::Unknown`].
impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|name| ErrorCode::from_name(&name))
    }
}

impl members::ToJson for ErrorCode {
    fn to_json(&self) -> Value {
        Value::String(self.name().to_owned())
    }
}

impl members::FromJson for ErrorCode {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        <String as members::FromJson>::from_json(value).map(|name| ErrorCode::from_name(&name))
    }
}

/// Messages a client sends on `ws://{server}/sync/{documentId}`: read by serde's derive (the
/// server reads every frame), written by `members::ToJson` (a client writes few).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        #[serde(default)]
        token: Option<String>,
    },
    /// Ask for the events this client is missing (the seed's message, unchanged).
    #[serde(rename_all = "camelCase")]
    Sync {
        /// The client's state vector.
        #[serde(default)]
        vector_clock: VectorClock,
        /// When present, a plain cursor: every event with `sequenceNum > after`.
        #[serde(default, deserialize_with = "optional_counter")]
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
        #[serde(default, deserialize_with = "optional_counter")]
        nonce: Option<u64>,
    },
}

impl members::ToJson for ClientMessage {
    fn to_json(&self) -> Value {
        use members::Object;
        let message = |kind: &str| Object::new().with("type", kind);
        match self {
            ClientMessage::Hello {
                protocol_versions,
                client_id,
                token,
            } => message("hello")
                .with("protocolVersions", protocol_versions)
                .with("clientId", client_id)
                .with_some("token", token),
            ClientMessage::Sync {
                vector_clock,
                after,
            } => message("sync")
                .with("vectorClock", vector_clock)
                .with_some("after", after),
            ClientMessage::Submit { edits } => message("submit").with("edits", edits),
            ClientMessage::Open => message("open"),
            ClientMessage::Close => message("close"),
            ClientMessage::Presence { state } => message("presence").with("state", state),
            ClientMessage::History(request) => message("history")
                .with("requestId", &request.request_id)
                .with("after", &request.after)
                .with_some("limit", &request.limit),
            ClientMessage::Version(request) => message("version")
                .with("requestId", &request.request_id)
                .with("at", &request.at),
            ClientMessage::Ping { nonce } => message("ping").with_some("nonce", nonce),
        }
        .done()
    }
}

impl members::ToJson for Edit {
    fn to_json(&self) -> Value {
        members::Object::new()
            .with("clientSeq", &self.client_seq)
            .with("baseSeq", &self.base_seq)
            .with("operation", &self.operation)
            .with("patch", &self.patch)
            .with_some("shape", &self.shape)
            .done()
    }
}

members::serialize_to_json!(ClientMessage, Edit);

/// Messages a server sends on `ws://{server}/sync/{documentId}`.
///
/// Written by the derive below; read by `protocol/read.rs` ([`decode_server`],
/// [`ServerMessage::from_value`] and the `Deserialize` impl): its `type` picks the variant, which
/// is read from the rest of the object. The seed's server calls an `error`'s `message` `error`
/// and sends no `code` (read as `unknown`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Answer to `hello`.
    #[serde(rename_all = "camelCase")]
    Welcome {
        /// The version both sides speak.
        protocol_version: u32,
        /// The document of this connection (version 1; absent in version 2).
        #[serde(skip_serializing_if = "String::is_empty")]
        document_id: String,
        /// The client id bound to this connection.
        client_id: String,
        /// The document's last `sequenceNum` when the connection was accepted (version 1;
        /// absent in version 2, where `opened` says it per document).
        #[serde(skip_serializing_if = "Option::is_none")]
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
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        /// Human-readable detail.
        #[serde(skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// Catch-up: the events answering a `sync`, in `sequenceNum` order.
    #[serde(rename_all = "camelCase")]
    Events {
        /// The missing events (possibly a page of them).
        events: Vec<Event>,
        /// The document's last `sequenceNum` when the answer was made.
        #[serde(skip_serializing_if = "Option::is_none")]
        head_seq: Option<u64>,
        /// True when more `events` frames follow for the same `sync`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
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
        message: String,
        /// The document's last `sequenceNum` when the edit was refused.
        head_seq: u64,
    },
    /// Something went wrong with the connection or a frame; the connection stays usable unless the
    /// server closes it.
    Error {
        /// Machine-readable code (`unknown` when the server sent none, as the seed's server does).
        code: ErrorCode,
        /// Human-readable detail (the seed calls this field `error`).
        message: String,
    },
    /// Answer to `ping`.
    #[serde(rename_all = "camelCase")]
    Pong {
        /// The ping's nonce.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
        /// The document's last `sequenceNum`: a client behind it missed something and resyncs
        /// (version 1).
        #[serde(skip_serializing_if = "Option::is_none")]
        head_seq: Option<u64>,
        /// Version 2: the last `sequenceNum` of every document open on the connection.
        #[serde(skip_serializing_if = "Option::is_none")]
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

impl ServerMessage {
    /// Reads a message from a JSON object: `type` picks the variant (a type this version does not
    /// know is [`ServerMessage::Unknown`]), the other members are its fields.
    pub fn from_value(value: Value) -> Result<ServerMessage, crate::protocol::JsonError> {
        read::from_members(members::object(
            value,
            "internally tagged enum ServerMessage",
        )?)
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ServerMessage::from_value(Value::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
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
