//! Reading server frames into [`ServerMessage`].
//!
//! Frames that carry events (`events`, `event`, `history`), the bulk of a catch-up, are read
//! straight from their text when their `type` comes first, as servers write it: no `Value` of
//! the frame is built. Every other frame is parsed into a `Value` and read member by member
//! (`members.rs`), which compiles far less code than serde's derive for each message (issue 17).
//! A frame that carries events but does not start with its `type` is written again with its
//! `type` first and read the quick way.

use serde::de::Error as _;
use serde::Deserialize;
use serde_json::{Error, Map, Value};

use super::members::Members;
use super::{
    Ack, ErrorCode, Event, HistoryAnswer, PresenceUpdate, ServerMessage, Snapshot, VersionAnswer,
};

/// A server frame's `documentId` (read only when `scoped`, version 2) and its message.
pub(super) type Read = (Option<String>, ServerMessage);

/// Reads a server frame; `scoped` (version 2) takes its `documentId` out of the message.
pub(super) fn read_server(text: &str, scoped: bool) -> Result<Read, Error> {
    // serde_json skips a member the quick reader does not read without its nesting limit, which
    // the `Value` below applies (section 11); events frames are read as before.
    if text.starts_with("{\"type\":\"event") || text.starts_with("{\"type\":\"history\"") {
        if let Ok(read) = read_events(text, scoped) {
            return Ok(read);
        }
    }
    let value: Value = serde_json::from_str(text)?;
    let Value::Object(mut members) = value else {
        return Err(Error::invalid_type(
            super::unexpected(&value),
            &"internally tagged enum ServerMessage",
        ));
    };
    let document_id = match scoped.then(|| members.remove("documentId")).flatten() {
        None => None,
        Some(id) => Some(document_id(id)?),
    };
    Ok((document_id, from_members(members)?))
}

/// A frame's `documentId`: a string.
fn document_id(value: Value) -> Result<String, Error> {
    match value {
        Value::String(id) => Ok(id),
        other => Err(Error::invalid_type(
            serde::de::Unexpected::Other(&other.to_string()),
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
            let mut text = String::with_capacity(64);
            text.push_str("{\"type\":");
            text.push_str(&super::encode(&kind));
            for (key, member) in m.into_map() {
                text.push(',');
                text.push_str(&super::encode(&key));
                text.push(':');
                text.push_str(&super::encode(&member));
            }
            text.push('}');
            read_events(&text, false)?.1
        }
        _ => ServerMessage::Unknown,
    })
}

/// Reads a frame that carries events, its `type` first; an error for any other.
pub(super) fn read_events(text: &str, scoped: bool) -> Result<Read, Error> {
    let frame: EventsFrame = serde_json::from_str(text)?;
    let document_id = match frame.document_id.filter(|_| scoped) {
        None => None,
        Some(id) => Some(document_id(id)?),
    };
    let message = match frame.kind.as_str() {
        "events" => ServerMessage::Events {
            events: frame.events.ok_or_else(|| Error::missing_field("events"))?,
            head_seq: frame.head_seq,
            has_more: frame.has_more,
        },
        "event" => ServerMessage::Event {
            events: frame.events.ok_or_else(|| Error::missing_field("events"))?,
        },
        "history" => ServerMessage::History(HistoryAnswer {
            request_id: frame
                .request_id
                .ok_or_else(|| Error::missing_field("requestId"))?,
            events: frame.events.unwrap_or_default(),
            head_seq: frame.head_seq,
            has_more: frame.has_more,
            oldest_seq: frame.oldest_seq,
            code: frame.code,
            message: frame.message,
        }),
        _ => return Err(Error::custom("not a frame that carries events")),
    };
    Ok((document_id, message))
}

/// The members of `events`, `event` and `history` frames, read from text in one pass (compiled
/// for serde_json's text reader alone: [`from_members`] writes a parsed frame out again rather
/// than reading it from its `Value`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    document_id: Option<Value>,
    #[serde(default)]
    events: Option<Vec<Event>>,
    #[serde(default)]
    head_seq: Option<u64>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    request_id: Option<u64>,
    #[serde(default)]
    oldest_seq: Option<u64>,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    message: Option<String>,
}
