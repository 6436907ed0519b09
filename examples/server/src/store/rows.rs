//! Row encoding shared by the SQLite and PostgreSQL stores.
//!
//! Both backends keep the same tables with the same meaning; only the column types differ
//! (`TEXT`/`INTEGER` in SQLite, `JSON`/`BIGINT` in PostgreSQL). JSON travels as text both ways
//! (`serde_json::to_string` in, `serde_json::from_str` out), sequence numbers as `i64`.

use eventsync::protocol::{CompactEvent, Event};
use eventsync::VectorClock;
use serde_json::Value;

use super::StoreError;

/// The schema version this code writes. Stored in the `schema_version` table; a database with a
/// higher version was written by a newer server and is refused.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Why a database whose `schema_version` is `found` cannot be used.
pub(crate) fn newer_schema(found: i64) -> String {
    format!("the database has schema version {found}; this server knows version {SCHEMA_VERSION}")
}

/// A `StoreError::Database` for a call the store refuses (bad arguments, missing preconditions).
pub(crate) fn invalid(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::InvalidArgument(message))
}

/// A sequence number (or `clientSeq`) as a column value.
pub(crate) fn to_db(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| invalid(format!("{what} {n} is too large to store")))
}

/// A column value as a sequence number.
pub(crate) fn from_db(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative {what}: {n}")))
}

/// An event as stored in `events.body`: compact, without `documentId` (the row's) and
/// `vectorClock` (derived from the events, section 2). Rows written before keep both.
pub(crate) fn encode_event(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(&CompactEvent(event))
        .map_err(|err| invalid(format!("event cannot be serialized: {err}")))
}

/// An `events.body` of `document_id` read back.
pub(crate) fn decode_event(text: &str, document_id: &str) -> Result<Event, StoreError> {
    let mut event: Event =
        serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("event: {err}")))?;
    if event.document_id.is_empty() {
        event.document_id = document_id.to_owned();
    }
    Ok(event)
}

/// A nullable JSON column (`documents.body`, `snapshots.body`): `None` is SQL `NULL`.
pub(crate) fn encode_body(body: Option<&Value>) -> Result<Option<String>, StoreError> {
    body.map(|value| {
        serde_json::to_string(value)
            .map_err(|err| invalid(format!("document cannot be serialized: {err}")))
    })
    .transpose()
}

/// A nullable JSON column read back. JSON `null` reads as `None`, as it does on the wire.
pub(crate) fn decode_body(text: Option<&str>) -> Result<Option<Value>, StoreError> {
    match text {
        None => Ok(None),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Null) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(err) => Err(StoreError::Corrupt(format!("document body: {err}"))),
        },
    }
}

/// A vector clock column.
pub(crate) fn encode_vector(vector: &VectorClock) -> String {
    serde_json::to_string(vector).expect("a vector clock always serializes")
}

/// A vector clock column read back.
pub(crate) fn decode_vector(text: &str) -> Result<VectorClock, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("vector clock: {err}")))
}

/// Checks what `append` is given: every event belongs to the document, and the events are
/// consecutive from `expected_head + 1`. Returns the new head.
pub(crate) fn check_append(
    document_id: &str,
    expected_head: u64,
    events: &[Event],
) -> Result<u64, StoreError> {
    let mut head = expected_head;
    for event in events {
        if event.document_id != document_id {
            return Err(invalid(format!(
                "append to {document_id}: event {} belongs to {}",
                event.id, event.document_id
            )));
        }
        if Some(event.sequence_num) != head.checked_add(1) {
            return Err(invalid(format!(
                "append to {document_id}: event {} has sequenceNum {}, expected {}",
                event.id,
                event.sequence_num,
                head.saturating_add(1)
            )));
        }
        head = event.sequence_num;
    }
    to_db(head, "sequenceNum")?;
    for event in events {
        if let Some(client_seq) = event.client_seq {
            to_db(client_seq, "clientSeq")?;
        }
    }
    Ok(head)
}

/// The document's vector after `events`: the previous vector with each event's origin entry
/// (and any vector an event carries) merged in.
pub(crate) fn vector_after(mut previous: VectorClock, events: &[Event]) -> VectorClock {
    for event in events {
        previous.merge(&event.vector_clock);
        previous.observe(&event.client_id, event.sequence_num);
    }
    previous
}

/// `compact` may only drop events a snapshot covers, and never past the head.
pub(crate) fn check_compact(
    document_id: &str,
    through: u64,
    snapshot_seq: Option<u64>,
    head_seq: u64,
) -> Result<(), StoreError> {
    match snapshot_seq {
        Some(seq) if seq >= through => {}
        Some(seq) => {
            return Err(invalid(format!(
                "compact {document_id} through {through}: the latest snapshot is at {seq}"
            )))
        }
        None => {
            return Err(invalid(format!(
                "compact {document_id} through {through}: no snapshot"
            )))
        }
    }
    if through > head_seq {
        return Err(invalid(format!(
            "compact {document_id} through {through}: the head is {head_seq}"
        )));
    }
    Ok(())
}

/// The URL without its password (userinfo password and any `password=` parameter).
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let user = userinfo[..colon].to_owned();
                out.replace_range(rest_start..rest_start + at, &format!("{user}:***"));
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// A `StoreError::Open` for `url` (redacted).
pub(crate) fn open_error(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        url: redact_url(url),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/x?sslmode=require&password=p"),
            "postgres://me:***@db:5432/x?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://me@db/x"), "postgres://me@db/x");
        assert_eq!(redact_url("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
        assert_eq!(
            redact_url("postgresql://u:p@w@host/db"),
            "postgresql://u:***@host/db"
        );
    }
}
