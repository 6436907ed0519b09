//! Document history on the wire (`docs/PROTOCOL.md` 3.9, 12.4 and 18.8): a document as of any
//! position the server can still rebuild ([`Version`]), and version 2's `history` and `version`
//! requests with their answers, matched by `requestId`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::members::{deserialize_from_json, FromJson, Members};
use super::{counter, optional_counter, CompactEvent, ErrorCode, Event, Operation};

/// A document as of one `sequenceNum`, with who wrote the event at it and when: the answer of
/// `GET /api/documents/{documentId}?at=` and of a `version` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// The document (HTTP; in a `version` frame the frame names it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub document_id: String,
    /// The position asked for.
    pub sequence_num: u64,
    /// The document after the event at `sequenceNum` (`null`: it did not exist then).
    pub document: Option<Value>,
    /// Who wrote the event at `sequenceNum`: absent for position 0, and when that event itself
    /// was compacted (only the snapshot at it remains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When the server ordered that event (RFC 3339); absent as `clientId` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// What that event did to the document's existence; absent as `clientId` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// Version 2: a page of a document's history (the events with `sequenceNum > after`): who, when
/// and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRequest {
    /// Echoed in the answer.
    #[serde(deserialize_with = "counter")]
    pub request_id: u64,
    /// The position the page starts after (0: from the beginning).
    #[serde(default, deserialize_with = "counter")]
    pub after: u64,
    /// The most events (the server caps it and picks it when absent, as for
    /// `GET /api/events`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_counter"
    )]
    pub limit: Option<u64>,
}

/// Version 2: the document as of position `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRequest {
    /// Echoed in the answer.
    #[serde(deserialize_with = "counter")]
    pub request_id: u64,
    /// The position.
    #[serde(deserialize_with = "counter")]
    pub at: u64,
}

/// The answer to a `history` request: a page of events, or with `code` its refusal (read with
/// the other frames that carry events, `read.rs`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryAnswer {
    /// The request's.
    pub request_id: u64,
    /// The events, in `sequenceNum` order (compact, as in every version 2 frame).
    #[serde(serialize_with = "compact_events")]
    pub events: Vec<Event>,
    /// The document's last `sequenceNum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// A further page exists: ask again with `after` = the last `sequenceNum` here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub has_more: bool,
    /// Present when `after` was older than the retained history: the events up to this position
    /// were compacted, the page continues after it, and it is the oldest position a `version`
    /// request can ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_seq: Option<u64>,
    /// The request was refused (`invalid_sequence`, `rate_limited`, `internal`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Detail of the refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to a `version` request: the document as of the position, or with `code` its
/// refusal (`history_compacted` for a position compaction removed, `invalid_sequence` for one
/// ahead of the log).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionAnswer {
    /// The request's.
    pub request_id: u64,
    /// The document as of the position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Detail of the refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FromJson for Version {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a version")?;
        Ok(Version {
            document_id: m.or_default("documentId")?,
            sequence_num: m.required("sequenceNum")?,
            document: m.optional("document")?,
            client_id: m.optional("clientId")?,
            timestamp: m.optional("timestamp")?,
            operation: m.optional("operation")?,
        })
    }
}

impl VersionAnswer {
    /// Reads the answer from the members of its frame.
    pub(crate) fn from_members(mut m: Members) -> Result<Self, crate::protocol::JsonError> {
        Ok(VersionAnswer {
            request_id: m.required("requestId")?,
            version: m.optional("version")?,
            code: m.optional("code")?,
            message: m.optional("message")?,
        })
    }
}

impl FromJson for VersionAnswer {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        VersionAnswer::from_members(Members::of(value, "a version answer")?)
    }
}

deserialize_from_json!(Version, VersionAnswer);

fn compact_events<S: serde::Serializer>(
    events: &[Event],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(CompactEvent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_client_scoped, decode_server_scoped, encode_scoped};
    use crate::protocol::{ClientMessage, ServerMessage};
    use serde_json::json;

    #[test]
    fn requests_and_answers_round_trip_in_scoped_frames() {
        let text = r#"{"type":"history","documentId":"d","requestId":3,"after":2,"limit":10}"#;
        let scoped = decode_client_scoped(text, 1 << 20).unwrap();
        assert_eq!(
            scoped.message,
            ClientMessage::History(HistoryRequest {
                request_id: 3,
                after: 2,
                limit: Some(10)
            })
        );
        let answer = ServerMessage::History(HistoryAnswer {
            request_id: 3,
            events: vec![serde_json::from_value(json!({
                "id": "e3", "documentId": "d", "sequenceNum": 3, "diff": null, "clientId": "a"
            }))
            .unwrap()],
            head_seq: Some(3),
            ..HistoryAnswer::default()
        });
        let text = encode_scoped(Some("d"), &answer);
        assert!(!text.contains("vectorClock"), "{text}");
        assert_eq!(decode_server_scoped(&text).unwrap().message, answer);
        let version = ServerMessage::Version(VersionAnswer {
            request_id: 4,
            version: Some(Version {
                document_id: String::new(),
                sequence_num: 0,
                document: None,
                client_id: None,
                timestamp: None,
                operation: None,
            }),
            ..VersionAnswer::default()
        });
        let text = encode_scoped(Some("d"), &version);
        assert!(text.contains(r#""document":null"#), "{text}");
        assert_eq!(decode_server_scoped(&text).unwrap().message, version);
    }
}
