//! `EventStore`: the durable log of every document, and the state vectors of its clients.
//!
//! One implementation in SQL ([`sql::SqlStore`]) for SQLite (the embedded default, one process)
//! and PostgreSQL (many server processes on one database), with a dialect part each. The trait is shaped so that a MongoDB backend
//! (the seed's original store) could drop in: every method is one document-scoped operation, and
//! `changes` is where a change stream would plug in.

use std::sync::Arc;

use async_trait::async_trait;
use eventsync::protocol::{EncodedEvents, Event, Snapshot, StateVector};
use eventsync::VectorClock;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

pub mod postgres;
mod queries;
mod rows;
pub mod sql;
pub mod sqlite;
mod writer;

/// What is stored of a document at its head.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentHead {
    /// The last `sequenceNum` (0 when the document has no events).
    pub head_seq: u64,
    /// The document at the head (`None` when it does not exist).
    pub document: Option<Value>,
    /// The document's state vector at the head.
    pub vector: VectorClock,
    /// The lowest `sequenceNum` still stored as an event (head + 1 when none are; 1 before any
    /// compaction). Events below it are only reachable through the latest snapshot.
    pub first_retained_seq: u64,
}

/// A change made by someone else than this process.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChange {
    /// Another server process appended events to a document up to `head_seq`.
    Appended {
        /// The document.
        document_id: String,
        /// Its new head.
        head_seq: u64,
    },
    /// A row of the documents table was changed directly (plain SQL by another program): the
    /// body no longer matches the head of the event log.
    DocumentWritten {
        /// The document.
        document_id: String,
    },
    /// Another server process relayed a presence change (the payload of [`EventStore::relay`]).
    Presence(String),
}

/// A row of the webhook outbox: one appended event waiting for its delivery (`crate::webhook`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The row's id (increasing in the order the rows were written).
    pub id: i64,
    /// The document.
    pub document_id: String,
    /// The event's `sequenceNum`.
    pub seq: u64,
    /// The event as the protocol writes it (JSON text, with `documentId`): the outbox's own
    /// copy, so that compaction of the log does not touch it.
    pub body: String,
    /// Failed deliveries so far.
    pub attempts: u32,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer appended first: the expected head is gone. Reload and order again.
    #[error("document {document_id}: the head moved (expected {expected})")]
    HeadMoved {
        /// The document.
        document_id: String,
        /// The head the append expected.
        expected: u64,
    },
    /// The database could not be opened (bad URL, unreachable, no permission).
    #[error("cannot open the database {url}: {reason}")]
    Open {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        reason: String,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// What was stored cannot be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The commit of an `append` failed in a way that leaves open whether it was stored (the
    /// connection broke while committing). Every other error of `append` stored nothing.
    #[error("the commit's outcome is unknown: {0}")]
    CommitUnknown(sqlx::Error),
}

/// The durable log. Every method is atomic; `append` is durable when it returns.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The head of a document (an empty head for a document never written).
    async fn head(&self, document_id: &str) -> Result<DocumentHead, StoreError>;

    /// Appends `events` (consecutive, starting at `expected_head + 1`) and sets the document's
    /// current body to `document` (`None` = deleted), in one transaction, durably, but only if
    /// the stored head is still `expected_head`; otherwise `HeadMoved` and nothing is written.
    /// Only `CommitUnknown` leaves open whether the events were stored.
    async fn append(
        &self,
        document_id: &str,
        expected_head: u64,
        events: &[Event],
        document: Option<&Value>,
    ) -> Result<(), StoreError>;

    /// Events with `sequenceNum > after`, ascending, at most `limit`.
    async fn events_after(
        &self,
        document_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// The events of [`EventStore::events_after`], as their compact text: what a catch-up sends
    /// without reading each event and writing it again. The default writes what `events_after`
    /// reads; a store that keeps events as text hands them over as they are.
    async fn encoded_events_after(
        &self,
        document_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<EncodedEvents, StoreError> {
        let mut encoded = EncodedEvents::new();
        for event in self.events_after(document_id, after, limit).await? {
            encoded.push(&event);
        }
        Ok(encoded)
    }

    /// The `sequenceNum` of the edit `(client_id, client_seq)` if it was ordered (kept forever,
    /// also after compaction, so that resends are recognised).
    async fn ordered_edit(
        &self,
        document_id: &str,
        client_id: &str,
        client_seq: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// The highest `clientSeq` ordered for `client_id` (0 when none).
    async fn highest_client_seq(
        &self,
        document_id: &str,
        client_id: &str,
    ) -> Result<u64, StoreError>;

    /// Stores a snapshot (replacing an older one of the same document).
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The latest snapshot of a document.
    async fn latest_snapshot(&self, document_id: &str) -> Result<Option<Snapshot>, StoreError>;

    /// Deletes events with `sequenceNum <= through`; a snapshot at or after `through` must exist.
    /// Returns how many were deleted.
    async fn compact(&self, document_id: &str, through: u64) -> Result<u64, StoreError>;

    /// Records clients' last known state vectors (`StateVectorManager` persistence), each
    /// replacing the one stored for its document and client; at most one per (document,
    /// client) in a call.
    async fn save_state_vectors(&self, vectors: &[StateVector]) -> Result<(), StoreError>;

    /// Every client's last known state vector for a document.
    async fn state_vectors(&self, document_id: &str) -> Result<Vec<StateVector>, StoreError>;

    /// Changes made by other processes: other servers' appends (PostgreSQL) and other programs'
    /// writes of the `documents` table (both). `None` when the backend sees none.
    async fn changes(&self) -> Result<Option<mpsc::Receiver<StoreChange>>, StoreError>;

    /// Whether other server processes may share this store (and hear [`EventStore::relay`]).
    fn relays(&self) -> bool {
        false
    }

    /// Turns the webhook outbox on: from now on every `append` also writes one outbox row per
    /// event, in the same transaction. Returns what the store signals after each committed
    /// append, or `None` when this store keeps no outbox. On a store of one process (SQLite) it
    /// also releases every lease left by a process that died while delivering.
    async fn enable_outbox(&self) -> Result<Option<Arc<Notify>>, StoreError> {
        Ok(None)
    }

    /// Leases, until `lease_until_ms`, at most `limit` outbox rows that are due at `now_ms`, each
    /// the first row (lowest `seq`) of its document and not leased by anyone: so each document
    /// is delivered by one holder at a time, in order. Times are Unix milliseconds.
    async fn claim_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let _ = (owner, now_ms, lease_until_ms, limit);
        Ok(Vec::new())
    }

    /// Deletes a delivered row, if `owner` still holds its lease. Returns whether it did.
    async fn finish_outbox(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let _ = (id, owner);
        Ok(false)
    }

    /// Records a failed delivery of a row `owner` holds: one more attempt, due again at
    /// `next_attempt_ms`, and the lease released.
    async fn retry_outbox(
        &self,
        id: i64,
        owner: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let _ = (id, owner, next_attempt_ms);
        Ok(())
    }

    /// Releases every lease `owner` holds (a worker that stops).
    async fn release_outbox(&self, owner: &str) -> Result<(), StoreError> {
        let _ = owner;
        Ok(())
    }

    /// Tells the other server processes sharing the store `payload` (presence, never stored):
    /// they see it as a [`StoreChange::Presence`]. Nothing to do for a store of one process.
    async fn relay(&self, payload: &str) -> Result<(), StoreError> {
        let _ = payload;
        Ok(())
    }
}

/// Opens the store a `--database` URL names: `sqlite:PATH` (created if missing) or
/// `postgres://...`.
pub async fn open(url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::open(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::open(url).await?))
    } else {
        Err(StoreError::Open {
            url: url.to_owned(),
            reason: "the URL must start with sqlite: or postgres://".into(),
        })
    }
}
