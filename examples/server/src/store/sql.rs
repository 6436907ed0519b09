//! The one SQL event store: every query and transaction of [`EventStore`], written once for
//! SQLite and PostgreSQL. Reads go through sqlx's `Any` driver, writes through a
//! `Writer` (`writer.rs`: sqlx again, or a SQLite file's own connection, on which a write runs
//! whole on one thread). What differs between the two databases is a `Dialect`: placeholders,
//! how JSON columns are written and read, how a writer locks a document, and the change feed.
//! Opening each database (pools, schema) is in `sqlite.rs` and `postgres.rs`.
//!
//! Tables (schema version 1, the same meaning in both; JSON columns hold `serde_json` text,
//! `JSON` in PostgreSQL and `TEXT` in SQLite, sequence numbers are 64-bit integers):
//!
//! ```text
//! schema_version (version)                                          -- one row: 1
//! events        (document_id, seq, client_id, client_seq NULL, body)  -- PK (document_id, seq)
//! documents     (document_id PK, body NULL (= deleted), head_seq, vector, first_retained_seq)
//! edits         (document_id, client_id, client_seq, seq)   -- PK (document_id, client_id, client_seq)
//! snapshots     (document_id PK, seq, body NULL, vector)
//! state_vectors (document_id, client_id, vector, last_updated NULL)  -- PK (document_id, client_id)
//! webhook_outbox (id, document_id, seq, body, attempts, next_attempt_at, leased_by NULL,
//!                 leased_until)                              -- PK id, index (document_id, seq)
//! ```
//!
//! `events.body` is the whole event as JSON, compact (`CompactEvent`: no `documentId`, no
//! `vectorClock`; rows written before keep both); the other `events` columns index it. A catch-up
//! reads a page of bodies as one row of text and sends it without reading the events
//! (`encoded_events_after`, `eventsync::protocol::EncodedEvents`). `edits` is the
//! exactly-once index and is never compacted. `documents` holds each document's head: the
//! server writes it with every append, and other programs may write its `body` (`docs/PROTOCOL.md`
//! section 17; the triggers that turn such writes into events are the dialects').
//!
//! `webhook_outbox` holds the events still to be delivered to the webhook (`crate::webhook`),
//! written by `append` in the events' own transaction once [`EventStore::enable_outbox`] was
//! called (never otherwise). `body` is the event's JSON as text (the exact bytes to sign, a copy:
//! compaction does not touch the outbox), times are Unix milliseconds of the server processes'
//! clocks, and `leased_by`/`leased_until` say which process delivers the row (section "leases"
//! in `crate::webhook`). The table is made at every open when missing, so databases of schema
//! version 1 written before it existed open unchanged (no version bump: older servers ignore it).

use async_trait::async_trait;
use eventsync::protocol::{EncodedEvents, Event, Snapshot, StateVector};
use eventsync::VectorClock;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, Notify};

pub(crate) use super::queries::Dialect;
use super::queries::{
    Queries, EDIT_ROW, EVENT_ROW, INSERT_EDITS, INSERT_EVENTS, INSERT_STATE_VECTORS,
    ROWS_PER_INSERT, STATE_VECTOR_ROW, STATE_VECTOR_UPSERT,
};
use super::rows::{
    check_append, check_compact, decode_body, decode_event, decode_vector, encode_body,
    encode_event, encode_vector, from_db, newer_schema, to_db, vector_after, SCHEMA_VERSION,
};
use super::writer::{in_transaction, params, Tx, Writer};
use super::{DocumentHead, EventStore, OutboxEntry, StoreChange, StoreError};

/// Where a store's change feed comes from.
pub(crate) enum Feed {
    /// SQLite: the `outside_changes` table its triggers fill, polled.
    Poll,
    /// PostgreSQL: `LISTEN` on its notification channels.
    Listen(Box<sqlx::postgres::PgConnectOptions>),
}

/// The SQL store (see the module documentation).
pub struct SqlStore {
    dialect: Dialect,
    /// Writes (one connection for SQLite).
    writer: Writer,
    /// Reads (the writer pool again where there is one pool).
    reader: AnyPool,
    queries: Queries,
    feed: Feed,
    /// Set once the outbox is on: then `append` writes outbox rows and signals this.
    outbox: OnceLock<Arc<Notify>>,
}

/// The channel `append` notifies on PostgreSQL: `DOCUMENT_ID:HEAD_SEQ`.
pub(crate) const EVENTS_CHANNEL: &str = "eventsync_events";
/// The channel server processes relay presence on (PostgreSQL).
pub(crate) const PRESENCE_CHANNEL: &str = "eventsync_presence";

/// True for the error of inserting a row whose primary key is taken.
fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl SqlStore {
    /// A store on open pools whose schema is ready.
    pub(crate) fn new(dialect: Dialect, writer: Writer, reader: AnyPool, feed: Feed) -> Self {
        SqlStore {
            dialect,
            writer,
            reader,
            queries: Queries::new(dialect),
            feed,
            outbox: OnceLock::new(),
        }
    }
}

/// An event as the outbox keeps it: the protocol's encoding, with `documentId`.
fn encode_outbox_body(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event)
        .map_err(|err| super::rows::invalid(format!("event cannot be serialized: {err}")))
}

/// A page of events after `after`, at most `limit`, as the database's integers: `None` when the
/// page is empty whatever the log holds (no events asked for, or after the last possible one).
fn page_bounds(after: u64, limit: usize) -> Option<(i64, i64)> {
    let after = i64::try_from(after).ok().filter(|_| limit > 0)?;
    Some((after, i64::try_from(limit).unwrap_or(i64::MAX)))
}

fn snapshot_from(document_id: &str, row: &AnyRow) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        document_id: document_id.to_owned(),
        sequence_num: from_db(row.try_get("seq")?, "seq")?,
        document: decode_body(row.try_get::<Option<String>, _>("body")?.as_deref())?,
        vector_clock: decode_vector(&row.try_get::<String, _>("vector")?)?,
    })
}

/// One append's rows ([`EventStore::append`]), written in the transaction it is given.
struct Append<'a> {
    document_id: &'a str,
    expected_head: u64,
    new_head: u64,
    events: &'a [Event],
    body: Option<String>,
}

impl Append<'_> {
    async fn run(
        &self,
        tx: &mut impl Tx,
        dialect: Dialect,
        q: &Queries,
        outbox: bool,
    ) -> Result<(), StoreError> {
        let document_id = self.document_id;
        let moved = || StoreError::HeadMoved {
            document_id: document_id.to_owned(),
            expected: self.expected_head,
        };
        let previous = match lock_head(tx, q, document_id).await? {
            Some((head, _)) if head != self.expected_head => return Err(moved()),
            Some((_, vector)) => Some(vector),
            None if self.expected_head != 0 => return Err(moved()),
            None => None,
        };
        let exists = previous.is_some();
        let vector = encode_vector(&vector_after(previous.unwrap_or_default(), self.events));
        let new_head = to_db(self.new_head, "sequenceNum")?;
        // The documents row first: a concurrent first append waits here and then finds the row.
        let written = if exists {
            let params = params![&self.body, new_head, &vector, document_id];
            tx.execute(&q.update_document, params).await?
        } else {
            let params = params![document_id, &self.body, new_head, &vector];
            tx.execute(&q.insert_document, params).await?
        };
        if written != 1 {
            return Err(moved());
        }
        // A submit's events (and its edits) go in as one statement each: every statement is a
        // round trip to the database, and a busy server waits for each.
        for chunk in self.events.chunks(ROWS_PER_INSERT) {
            let mut rows = Vec::with_capacity(chunk.len());
            for event in chunk {
                let client_seq = event
                    .client_seq
                    .map(|n| to_db(n, "clientSeq"))
                    .transpose()?;
                let seq = to_db(event.sequence_num, "sequenceNum")?;
                rows.push((seq, client_seq, encode_event(event)?));
            }
            let mut params = Vec::with_capacity(5 * rows.len());
            for ((seq, client_seq, body), event) in rows.iter().zip(chunk) {
                params.extend_from_slice(params![
                    document_id,
                    *seq,
                    &event.client_id,
                    *client_seq,
                    body
                ]);
            }
            let sql = dialect.rows(INSERT_EVENTS, EVENT_ROW, rows.len(), "");
            match tx.execute(&sql, &params).await {
                Ok(_) => {}
                Err(err) if is_unique_violation(&err) => return Err(moved()),
                Err(err) => return Err(err.into()),
            }
            let mut params = Vec::new();
            let mut edit_rows = 0;
            for ((seq, client_seq, _), event) in rows.iter().zip(chunk) {
                if let Some(client_seq) = client_seq {
                    params.extend_from_slice(params![
                        document_id,
                        &event.client_id,
                        *client_seq,
                        *seq
                    ]);
                    edit_rows += 1;
                }
            }
            if edit_rows > 0 {
                let sql = dialect.rows(INSERT_EDITS, EDIT_ROW, edit_rows, "");
                tx.execute(&sql, &params).await?;
            }
        }
        if outbox {
            for event in self.events {
                let seq = to_db(event.sequence_num, "sequenceNum")?;
                let body = encode_outbox_body(event)?;
                tx.execute(&q.insert_outbox, params![document_id, seq, &body])
                    .await?;
            }
        }
        if let Some(notify) = &q.notify {
            // Delivered to every listening server when the transaction commits.
            let payload = format!("{document_id}:{}", self.new_head);
            tx.execute(notify, params![EVENTS_CHANNEL, &payload])
                .await?;
        }
        Ok(())
    }
}

/// The document's row, locked for the rest of the transaction: `(head_seq, vector)`.
async fn lock_head(
    tx: &mut impl Tx,
    q: &Queries,
    document_id: &str,
) -> Result<Option<(u64, VectorClock)>, StoreError> {
    let row = tx
        .fetch_int_text(&q.lock_head, params![document_id], "head_seq", "vector")
        .await?;
    row.map(|(head, vector)| Ok((from_db(head, "head_seq")?, decode_vector(&vector)?)))
        .transpose()
}

#[async_trait]
impl EventStore for SqlStore {
    async fn head(&self, document_id: &str) -> Result<DocumentHead, StoreError> {
        let row = sqlx::query(&self.queries.head)
            .bind(document_id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(DocumentHead {
                first_retained_seq: 1,
                ..DocumentHead::default()
            });
        };
        Ok(DocumentHead {
            document: decode_body(row.try_get::<Option<String>, _>("body")?.as_deref())?,
            head_seq: from_db(row.try_get("head_seq")?, "head_seq")?,
            vector: decode_vector(&row.try_get::<String, _>("vector")?)?,
            first_retained_seq: from_db(row.try_get("first_retained_seq")?, "first_retained_seq")?,
        })
    }

    async fn append(
        &self,
        document_id: &str,
        expected_head: u64,
        events: &[Event],
        document: Option<&Value>,
    ) -> Result<(), StoreError> {
        let append = Append {
            document_id,
            expected_head,
            new_head: check_append(document_id, expected_head, events)?,
            events,
            body: encode_body(document)?,
        };
        let outbox = self.outbox.get().is_some();
        in_transaction!(&self.writer, self.dialect.begin(), |tx| {
            append.run(tx, self.dialect, &self.queries, outbox)
        })?;
        if let Some(outbox) = self.outbox.get() {
            outbox.notify_one();
        }
        Ok(())
    }

    async fn events_after(
        &self,
        document_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Some((after, limit)) = page_bounds(after, limit) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(&self.queries.events_after)
            .bind(document_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| decode_event(&row.try_get::<String, _>("body")?, document_id))
            .collect()
    }

    async fn encoded_events_after(
        &self,
        document_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<EncodedEvents, StoreError> {
        let Some((after_db, limit_db)) = page_bounds(after, limit) else {
            return Ok(EncodedEvents::new());
        };
        let row = sqlx::query(&self.queries.events_page)
            .bind(document_id)
            .bind(after_db)
            .bind(limit_db)
            .fetch_one(&self.reader)
            .await?;
        let count: i64 = row.try_get("n")?;
        if count == 0 {
            return Ok(EncodedEvents::new());
        }
        let first: Option<i64> = row.try_get("first_seq")?;
        let last: Option<i64> = row.try_get("last_seq")?;
        let text = |column: &str| -> Result<String, StoreError> {
            Ok(row
                .try_get::<Option<String>, _>(column)?
                .unwrap_or_default())
        };
        // The retained events are consecutive (compaction removes a prefix).
        if let (Some(first), Some(last)) = (first, last) {
            if first > 0 && last - first + 1 == count {
                let (lines, ids) = (text("bodies")?, text("ids")?);
                let page = EncodedEvents::from_lines(lines, ids, first as u64, count as usize);
                if let Ok(page) = page {
                    return Ok(page);
                }
            }
        }
        // Rows aggregated out of order, a text or client id with a line break of its own, or a
        // row that cannot be read (which this then reports): one row at a time.
        let mut page = EncodedEvents::new();
        for event in self.events_after(document_id, after, limit).await? {
            page.push(&event);
        }
        Ok(page)
    }

    async fn ordered_edit(
        &self,
        document_id: &str,
        client_id: &str,
        client_seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Ok(client_seq) = i64::try_from(client_seq) else {
            return Ok(None);
        };
        let seq: Option<i64> = sqlx::query_scalar(&self.queries.ordered_edit)
            .bind(document_id)
            .bind(client_id)
            .bind(client_seq)
            .fetch_optional(&self.reader)
            .await?;
        seq.map(|seq| from_db(seq, "seq")).transpose()
    }

    async fn highest_client_seq(
        &self,
        document_id: &str,
        client_id: &str,
    ) -> Result<u64, StoreError> {
        let highest: Option<i64> = sqlx::query_scalar(&self.queries.highest_client_seq)
            .bind(document_id)
            .bind(client_id)
            .fetch_one(&self.reader)
            .await?;
        highest.map_or(Ok(0), |n| from_db(n, "client_seq"))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let seq = to_db(snapshot.sequence_num, "sequenceNum")?;
        let body = encode_body(snapshot.document.as_ref())?;
        let vector = encode_vector(&snapshot.vector_clock);
        let params = params![&snapshot.document_id, seq, &body, &vector];
        self.writer
            .execute(&self.queries.save_snapshot, params)
            .await?;
        Ok(())
    }

    async fn latest_snapshot(&self, document_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(&self.queries.latest_snapshot)
            .bind(document_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| snapshot_from(document_id, &row)).transpose()
    }

    async fn compact(&self, document_id: &str, through: u64) -> Result<u64, StoreError> {
        let q = &self.queries;
        let through_db = to_db(through, "sequenceNum")?;
        in_transaction!(&self.writer, self.dialect.begin(), |tx| async move {
            let head_seq = lock_head(tx, q, document_id)
                .await?
                .map_or(0, |(head, _)| head);
            let snapshot_seq = tx
                .fetch_int(&q.snapshot_seq, params![document_id], "seq")
                .await?;
            let snapshot_seq = snapshot_seq.map(|n| from_db(n, "seq")).transpose()?;
            check_compact(document_id, through, snapshot_seq, head_seq)?;
            let deleted = tx
                .execute(&q.delete_events, params![document_id, through_db])
                .await?;
            let first = through_db + 1;
            tx.execute(&q.set_first_retained, params![first, first, document_id])
                .await?;
            Ok::<_, StoreError>(deleted)
        })
    }

    async fn save_state_vectors(&self, vectors: &[StateVector]) -> Result<(), StoreError> {
        // One statement (one commit) per chunk: a batch of reconnecting clients costs the
        // database one write, not one each.
        for chunk in vectors.chunks(ROWS_PER_INSERT) {
            let encoded: Vec<String> = chunk
                .iter()
                .map(|v| encode_vector(&v.vector_clock))
                .collect();
            let mut params = Vec::with_capacity(4 * chunk.len());
            for (v, vector) in chunk.iter().zip(&encoded) {
                params.extend_from_slice(params![
                    &v.document_id,
                    &v.client_id,
                    vector,
                    &v.last_updated
                ]);
            }
            let sql = self.dialect.rows(
                INSERT_STATE_VECTORS,
                STATE_VECTOR_ROW,
                chunk.len(),
                STATE_VECTOR_UPSERT,
            );
            self.writer.execute(&sql, &params).await?;
        }
        Ok(())
    }

    async fn state_vectors(&self, document_id: &str) -> Result<Vec<StateVector>, StoreError> {
        let rows = sqlx::query(&self.queries.state_vectors)
            .bind(document_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StateVector {
                    client_id: row.try_get("client_id")?,
                    document_id: document_id.to_owned(),
                    vector_clock: decode_vector(&row.try_get::<String, _>("vector")?)?,
                    last_updated: row.try_get("last_updated")?,
                })
            })
            .collect()
    }

    async fn enable_outbox(&self) -> Result<Option<Arc<Notify>>, StoreError> {
        if self.dialect == Dialect::Sqlite {
            // One process per SQLite database: a lease left is a dead process's.
            let release = "UPDATE webhook_outbox SET leased_by = NULL, leased_until = 0";
            self.writer.execute(release, params![]).await?;
        }
        Ok(Some(self.outbox.get_or_init(Default::default).clone()))
    }

    async fn claim_outbox(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = &self.queries;
        let rows = sqlx::query(&q.due_outbox)
            .bind(now_ms)
            .bind(now_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let params = params![owner, lease_until_ms, id, now_ms];
            let leased = self.writer.execute(&q.lease_outbox, params).await?;
            if leased != 1 {
                continue; // another process was quicker
            }
            claimed.push(OutboxEntry {
                id,
                document_id: row.try_get("document_id")?,
                seq: from_db(row.try_get("seq")?, "seq")?,
                body: row.try_get("body")?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            });
        }
        Ok(claimed)
    }

    async fn finish_outbox(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let params = params![id, owner];
        let deleted = self
            .writer
            .execute(&self.queries.finish_outbox, params)
            .await?;
        Ok(deleted == 1)
    }

    async fn retry_outbox(
        &self,
        id: i64,
        owner: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let params = params![next_attempt_ms, id, owner];
        self.writer
            .execute(&self.queries.retry_outbox, params)
            .await?;
        Ok(())
    }

    async fn release_outbox(&self, owner: &str) -> Result<(), StoreError> {
        self.writer
            .execute(&self.queries.release_outbox, params![owner])
            .await?;
        Ok(())
    }

    fn relays(&self) -> bool {
        self.queries.notify.is_some()
    }

    async fn relay(&self, payload: &str) -> Result<(), StoreError> {
        if let Some(notify) = &self.queries.notify {
            self.writer
                .execute(notify, params![PRESENCE_CHANNEL, payload])
                .await?;
        }
        Ok(())
    }

    async fn changes(&self) -> Result<Option<mpsc::Receiver<StoreChange>>, StoreError> {
        match &self.feed {
            Feed::Listen(options) => super::postgres::changes(options).await.map(Some),
            Feed::Poll => Ok(Some(super::sqlite::changes(self.reader.clone()))),
        }
    }
}

/// Creates the tables of a new database (`schema`) or checks the version of an existing one,
/// then (re)makes the triggers of section 17 (`triggers`) and the webhook outbox when missing
/// (`outbox`), in one transaction. On PostgreSQL an
/// advisory lock serialises processes opening the same database.
pub(crate) async fn migrate(
    dialect: Dialect,
    pool: &AnyPool,
    schema: &str,
    triggers: &str,
    outbox: &str,
) -> Result<(), String> {
    /// The advisory lock's key ("eventsyn").
    const SCHEMA_LOCK: i64 = 0x6576_656e_7473_796e;
    let inner = async {
        let mut tx = pool.begin_with(dialect.begin()).await?;
        if dialect == Dialect::Postgres {
            // pg_advisory_xact_lock returns `void`, which the Any driver cannot read.
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS lock")
                .bind(SCHEMA_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT CAST(MAX(version) AS BIGINT) FROM schema_version")
                .fetch_one(&mut *tx)
                .await?;
        match version {
            None => {
                sqlx::raw_sql(schema).execute(&mut *tx).await?;
                sqlx::query(&dialect.sql("INSERT INTO schema_version (version) VALUES (?)"))
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Ok(Some(other)),
        }
        sqlx::raw_sql(triggers).execute(&mut *tx).await?;
        sqlx::raw_sql(outbox).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(None)
    };
    match inner.await {
        Ok(None) => Ok(()),
        Ok(Some(other)) => Err(newer_schema(other)),
        Err(err) => Err(err.to_string()),
    }
}
