//! Reading server frames into [`ServerMessage`].
//!
//! A frame is parsed into a `Value` and read member by member (`members.rs`), which compiles far
//! less code than serde's derive for each message (issue 17). Frames that carry events
//! (`events`, `event`, `history`) are described once ([`EventsFrame`], `read_members!`) and read
//! from that `Value`; natively, where the bulk of a catch-up costs twice as much through a
//! `Value` (issue 17's client CPU per event), they are read straight from their text when their
//! `type` comes first, as servers write it. The WebAssembly build reads every frame through the
//! `Value`: no serde deserializer is compiled into it for them.

use crate::protocol::JsonError as Error;
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::members::{object, read_members, FromJson, Members};
use super::{
    Ack, ErrorCode, Event, HistoryAnswer, PresenceUpdate, ServerMessage, Snapshot, VersionAnswer,
};

/// A server frame's `documentId` (read only when `scoped`, version 2) and its message.
pub(super) type Read = (Option<String>, ServerMessage);

/// Reads a server frame; `scoped` (version 2) takes its `documentId` out of the message.
pub(super) fn read_server(text: &str, scoped: bool) -> Result<Read, Error> {
    // serde_json skips a member the quick reader does not read without its nesting limit, which
    // the `Value` below applies (section 11); events frames are read as before.
    #[cfg(not(target_arch = "wasm32"))]
    if text.starts_with("{\"type\":\"event") || text.starts_with("{\"type\":\"history\"") {
        if let Ok(read) = read_events(text, scoped) {
            return Ok(read);
        }
    }
    let mut members = object(
        super::parse_json(text)?,
        "internally tagged enum ServerMessage",
    )?;
    let document_id = match scoped.then(|| members.remove("documentId")).flatten() {
        None => None,
        Some(id) => Some(document_id(id)?),
    };
    Ok((document_id, from_members(members)?))
}

/// A frame's `documentId`: a string.
pub(super) fn document_id(value: Value) -> Result<String, Error> {
    match value {
        Value::String(id) => Ok(id),
        other => Err(Error::invalid_type(
            serde::de::Unexpected::Other(&super::write_json(&other)),
            &"a documentId string",
        )),
    }
}

/// A message from the members of its JSON object (see [`ServerMessage::from_value`]).
pub(super) fn from_members(members: Map<String, Value>) -> Result<ServerMessage, Error> {
    let mut m = Members::of(Value::Object(members), "a message")?;
    let kind = match m.optional::<Value>("type")? {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            return Err(Error::invalid_type(
                super::unexpected(&other),
                &"a message type",
            ))
        }
        None => return Err(Error::missing_field("type")),
    };
    Ok(match kind.as_str() {
        "welcome" => ServerMessage::Welcome {
            protocol_version: m.required("protocolVersion")?,
            document_id: m.or_default("documentId")?,
            client_id: m.required("clientId")?,
            head_seq: m.optional("headSeq")?,
        },
        "opened" => ServerMessage::Opened {
            head_seq: m.required("headSeq")?,
        },
        "closed" => ServerMessage::Closed {
            code: m.optional("code")?,
            message: m.or_default("message")?,
        },
        "snapshot" => ServerMessage::Snapshot {
            snapshot: m.required::<Snapshot>("snapshot")?,
        },
        "ack" => ServerMessage::Ack {
            edits: m.required::<Vec<Ack>>("edits")?,
        },
        "reject" => ServerMessage::Reject {
            client_seq: m.required("clientSeq")?,
            code: m.required("code")?,
            message: m.or_default("message")?,
            head_seq: m.required("headSeq")?,
        },
        // The seed's server calls `message` `error` and sends no `code`.
        "error" => ServerMessage::Error {
            code: m.optional("code")?.unwrap_or(ErrorCode::Unknown),
            message: match m.optional("message")? {
                Some(message) => message,
                None => m.or_default("error")?,
            },
        },
        "pong" => ServerMessage::Pong {
            nonce: m.optional("nonce")?,
            head_seq: m.optional("headSeq")?,
            heads: m.optional("heads")?,
        },
        "presence" => ServerMessage::Presence(PresenceUpdate::from_members(m)?),
        "version" => ServerMessage::Version(VersionAnswer::from_members(m)?),
        "events" | "event" | "history" => {
            let mut members = m.into_map();
            members.insert("type".to_owned(), Value::String(kind));
            EventsFrame::from_json(Value::Object(members))?
                .read(false)?
                .1
        }
        _ => ServerMessage::Unknown,
    })
}

/// Reads a frame that carries events from its text; an error for any other.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn read_events(text: &str, scoped: bool) -> Result<Read, Error> {
    serde_json::from_str::<EventsFrame>(text)?.read(scoped)
}

impl EventsFrame {
    /// The message, and its `documentId` when `scoped`.
    fn read(mut self, scoped: bool) -> Result<Read, Error> {
        let document_id = match self.document_id.take().filter(|_| scoped) {
            None => None,
            Some(id) => Some(document_id(id)?),
        };
        let message = match self.kind.as_str() {
            "events" => ServerMessage::Events {
                events: self.events.ok_or_else(|| Error::missing_field("events"))?,
                head_seq: self.head_seq,
                has_more: self.has_more,
            },
            "event" => ServerMessage::Event {
                events: self.events.ok_or_else(|| Error::missing_field("events"))?,
            },
            "history" => ServerMessage::History(HistoryAnswer {
                request_id: self
                    .request_id
                    .ok_or_else(|| Error::missing_field("requestId"))?,
                events: self.events.unwrap_or_default(),
                head_seq: self.head_seq,
                has_more: self.has_more,
                oldest_seq: self.oldest_seq,
                code: self.code,
                message: self.message,
            }),
            _ => return Err(Error::custom("not a frame that carries events")),
        };
        Ok((document_id, message))
    }
}

/// The members of `events`, `event` and `history` frames, read in one pass.
struct EventsFrame {
    kind: String,
    document_id: Option<Value>,
    events: Option<Vec<Event>>,
    head_seq: Option<u64>,
    has_more: bool,
    request_id: Option<u64>,
    oldest_seq: Option<u64>,
    code: Option<ErrorCode>,
    message: Option<String>,
}

read_members!(EventsFrame, "a frame that carries events", {
    kind: String = "type" required,
    document_id: Option<Value> = "documentId" default,
    events: Option<Vec<Event>> = "events" default,
    head_seq: Option<u64> = "headSeq" default,
    has_more: bool = "hasMore" default,
    request_id: Option<u64> = "requestId" default,
    oldest_seq: Option<u64> = "oldestSeq" default,
    code: Option<ErrorCode> = "code" default,
    message: Option<String> = "message" default,
});
