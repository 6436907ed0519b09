//! Reading and writing frames: size and depth limits, version 2's `documentId`, the quick way
//! for `events` frames.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::members::ToJson;
use super::read::read_server;
use super::{
    ClientMessage, CompactEvent, ErrorCode, Event, HistoryAnswer, JsonError, ServerMessage,
};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not JSON, or not a message of this protocol (unknown `type`, missing or mistyped fields).
    #[error("malformed frame: {0}")]
    Malformed(JsonError),
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

impl From<JsonError> for FrameError {
    fn from(err: JsonError) -> Self {
        // serde_json's own recursion limit (128) is the protocol's depth limit; the browser's
        // reader reports it in the same words.
        if err.message().starts_with("recursion limit exceeded") {
            FrameError::TooDeep
        } else {
            FrameError::Malformed(err)
        }
    }
}

impl From<serde_json::Error> for FrameError {
    fn from(err: serde_json::Error) -> Self {
        JsonError::from(err).into()
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
    let (document_id, message) = read_server(text, true)?;
    let mut scoped = Scoped {
        document_id,
        message,
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
pub(super) fn scoped<M, E>(
    text: &str,
    read: fn(Value) -> Result<M, E>,
) -> Result<Scoped<M>, FrameError>
where
    FrameError: From<E>,
{
    let mut value: Value = serde_json::from_str(text)?;
    let document_id = match value.as_object_mut().and_then(|o| o.remove("documentId")) {
        None => None,
        Some(id) => Some(super::read::document_id(id).map_err(FrameError::Malformed)?),
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
    Ok(read_server(text, false)?.1)
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

/// Writes a client's message as one JSON frame; version 2's about a document with its
/// `documentId` beside the message's members (as [`Scoped`] writes it).
pub fn encode_client(document_id: Option<&str>, message: &ClientMessage) -> String {
    let mut value = message.to_json();
    if let (Some(document_id), Value::Object(members)) = (document_id, &mut value) {
        members.insert("documentId".to_owned(), document_id.into());
    }
    super::write_json(&value)
}

/// Writes any protocol message as one JSON frame.
pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).expect("protocol messages always serialize")
}
