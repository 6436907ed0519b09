//! Presence on the wire (`docs/PROTOCOL.md` 18.7): what a peer of a document shows the others
//! (a cursor, a selection, "editing card 7"), relayed and never stored.

use serde::Serialize;
use serde_json::Value;

use super::members::{deserialize_from_json, serialize_to_json, FromJson, Members, Object, ToJson};
use super::ErrorCode;

/// The largest presence state the reference server accepts by default, in bytes of its JSON.
pub const MAX_PRESENCE_BYTES: usize = 4096;

/// How long a server keeps the presence of a connection it hears nothing from, by default: a
/// client that publishes presence pings more often than this (section 9: every 15 s).
pub const PRESENCE_TIMEOUT_MS: u64 = 30_000;

/// One peer's presence on a document, as a `presence` frame carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct PresencePeer {
    /// The peer's client id.
    pub client_id: String,
    /// Its state; `null`: it left (cleared its presence, closed the document or went away).
    pub state: Value,
    /// When it first published presence on the document (RFC 3339); absent when it left.
    pub since: Option<String>,
}

/// The server's `presence` frame: others' states (every other peer when `full`, else changes),
/// or, with `code`, the refusal of this client's own update.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceUpdate {
    /// Peers whose state changed (`full`: every other peer with a state).
    #[serde(default)]
    pub peers: Vec<PresencePeer>,
    /// The whole set: peers not listed have no presence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    /// This client's update was refused (`too_large`, `rate_limited`): the server keeps its
    /// previous state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Detail of the refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FromJson for PresencePeer {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a presence peer")?;
        Ok(PresencePeer {
            client_id: m.required("clientId")?,
            state: m.required("state")?,
            since: m.optional("since")?,
        })
    }
}

impl PresenceUpdate {
    /// Reads the update from the members of its frame.
    pub(crate) fn from_members(mut m: Members) -> Result<Self, crate::protocol::JsonError> {
        Ok(PresenceUpdate {
            peers: m.or_default("peers")?,
            full: m.or_default("full")?,
            code: m.optional("code")?,
            message: m.optional("message")?,
        })
    }
}

impl FromJson for PresenceUpdate {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        PresenceUpdate::from_members(Members::of(value, "a presence update")?)
    }
}

impl ToJson for PresencePeer {
    fn to_json(&self) -> Value {
        Object::new()
            .with("clientId", &self.client_id)
            .with("state", &self.state)
            .with_some("since", &self.since)
            .done()
    }
}

deserialize_from_json!(PresencePeer, PresenceUpdate);
serialize_to_json!(PresencePeer);

/// The size of a presence state as the limit counts it: the bytes of its compact JSON.
pub fn presence_size(state: &Value) -> usize {
    serde_json::to_string(state).map_or(usize::MAX, |text| text.len())
}
