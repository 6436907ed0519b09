//! The SQLite store: one file, one server process (the embedded default).
//!
//! Schema (version 1, created on open; JSON columns hold `serde_json` text):
//!
//! ```text
//! schema_version (version INTEGER)                                  -- one row: 1
//! events        (document_id TEXT, seq INTEGER, client_id TEXT, client_seq INTEGER NULL,
//!                body TEXT)                                         -- PK (document_id, seq)
//! documents     (document_id TEXT PK, body TEXT NULL (= deleted), head_seq INTEGER,
//!                vector TEXT, first_retained_seq INTEGER)
//! edits         (document_id TEXT, client_id TEXT, client_seq INTEGER, seq INTEGER)
//!                                                 -- PK (document_id, client_id, client_seq)
//! snapshots     (document_id TEXT PK, seq INTEGER, body TEXT NULL, vector TEXT)
//! state_vectors (document_id TEXT, client_id TEXT, vector TEXT, last_updated TEXT NULL)
//!                                                 -- PK (document_id, client_id)
//! ```
//!
//! `events.body` is the whole event as JSON; the other `events` columns index it. `edits` is the
//! exactly-once index and is never compacted. The database runs in WAL mode with
//! `synchronous=FULL`, so a committed `append` survives a power cut. Writes go through one
//! connection and start with `BEGIN IMMEDIATE`, so writers (also in other processes) queue on
//! SQLite's lock (`busy_timeout`) instead of failing half-way; reads use a small separate pool.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use eventsync::protocol::{Event, Snapshot, StateVector};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::mpsc;

use super::rows::{
    check_append, check_compact, decode_body, decode_event, decode_vector, encode_body,
    encode_event, encode_vector, from_db, newer_schema, open_error, to_db, vector_after,
    SCHEMA_VERSION,
};
use super::{DocumentHead, EventStore, StoreChange, StoreError};

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS events (
    document_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    client_seq INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (document_id, seq)
);
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT NOT NULL PRIMARY KEY,
    body TEXT,
    head_seq INTEGER NOT NULL,
    vector TEXT NOT NULL,
    first_retained_seq INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS edits (
    document_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_seq INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (document_id, client_id, client_seq)
);
CREATE TABLE IF NOT EXISTS snapshots (
    document_id TEXT NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL,
    body TEXT,
    vector TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_vectors (
    document_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    vector TEXT NOT NULL,
    last_updated TEXT,
    PRIMARY KEY (document_id, client_id)
);
";

/// The SQLite store.
pub struct SqliteStore {
    /// One connection: every write.
    writer: SqlitePool,
    /// Reads (the writer pool again for an in-memory database).
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite:PATH` URL names, and creates or checks
    /// its schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| open_error(url, err))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|err| open_error(url, err))?;
        migrate(&writer).await.map_err(|err| open_error(url, err))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(|err| open_error(url, err))?
        };
        Ok(Self { writer, reader })
    }
}

/// Creates the tables of a new database, or checks the version of an existing one.
async fn migrate(pool: &SqlitePool) -> Result<(), String> {
    match migrate_inner(pool).await {
        Ok(None) => Ok(()),
        Ok(Some(other)) => Err(newer_schema(other)),
        Err(err) => Err(err.to_string()),
    }
}

/// Returns the version found when it is not one this code can use.
async fn migrate_inner(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    match version {
        None => {
            sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Ok(Some(other)),
    }
    tx.commit().await?;
    Ok(None)
}

/// True for the error of inserting an event whose `(document_id, seq)` is taken.
fn is_event_conflict(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.message().contains("events.document_id")
        }
        _ => false,
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn head(&self, document_id: &str) -> Result<DocumentHead, StoreError> {
        let row = sqlx::query(
            "SELECT body, head_seq, vector, first_retained_seq FROM documents \
             WHERE document_id = ?",
        )
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
        let new_head = check_append(document_id, expected_head, events)?;
        let body = encode_body(document)?;
        let moved = || StoreError::HeadMoved {
            document_id: document_id.to_owned(),
            expected: expected_head,
        };

        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT head_seq, vector FROM documents WHERE document_id = ?")
            .bind(document_id)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = match &row {
            Some(row) => {
                if from_db(row.try_get("head_seq")?, "head_seq")? != expected_head {
                    return Err(moved());
                }
                decode_vector(&row.try_get::<String, _>("vector")?)?
            }
            None if expected_head != 0 => return Err(moved()),
            None => Default::default(),
        };
        let vector = encode_vector(&vector_after(previous, events));

        for event in events {
            let seq = to_db(event.sequence_num, "sequenceNum")?;
            let client_seq = event
                .client_seq
                .map(|n| to_db(n, "clientSeq"))
                .transpose()?;
            let inserted = sqlx::query(
                "INSERT INTO events (document_id, seq, client_id, client_seq, body) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(document_id)
            .bind(seq)
            .bind(&event.client_id)
            .bind(client_seq)
            .bind(encode_event(event)?)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(err) if is_event_conflict(&err) => return Err(moved()),
                Err(err) => return Err(err.into()),
            }
            if let Some(client_seq) = client_seq {
                sqlx::query(
                    "INSERT INTO edits (document_id, client_id, client_seq, seq) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(document_id)
                .bind(&event.client_id)
                .bind(client_seq)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }

        sqlx::query(
            "INSERT INTO documents (document_id, body, head_seq, vector, first_retained_seq) \
             VALUES (?, ?, ?, ?, 1) \
             ON CONFLICT (document_id) DO UPDATE SET \
             body = excluded.body, head_seq = excluded.head_seq, vector = excluded.vector",
        )
        .bind(document_id)
        .bind(body)
        .bind(to_db(new_head, "sequenceNum")?)
        .bind(vector)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events_after(
        &self,
        document_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT body FROM events WHERE document_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(document_id)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| decode_event(&row.try_get::<String, _>("body")?))
            .collect()
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
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM edits WHERE document_id = ? AND client_id = ? AND client_seq = ?",
        )
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
        let highest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(client_seq) FROM edits WHERE document_id = ? AND client_id = ?",
        )
        .bind(document_id)
        .bind(client_id)
        .fetch_one(&self.reader)
        .await?;
        highest.map_or(Ok(0), |n| from_db(n, "client_seq"))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        // An older snapshot never replaces a newer one: compaction relies on the newer one.
        sqlx::query(
            "INSERT INTO snapshots (document_id, seq, body, vector) VALUES (?, ?, ?, ?) \
             ON CONFLICT (document_id) DO UPDATE SET \
             seq = excluded.seq, body = excluded.body, vector = excluded.vector \
             WHERE excluded.seq >= snapshots.seq",
        )
        .bind(&snapshot.document_id)
        .bind(to_db(snapshot.sequence_num, "sequenceNum")?)
        .bind(encode_body(snapshot.document.as_ref())?)
        .bind(encode_vector(&snapshot.vector_clock))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn latest_snapshot(&self, document_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT seq, body, vector FROM snapshots WHERE document_id = ?")
            .bind(document_id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            document_id: document_id.to_owned(),
            sequence_num: from_db(row.try_get("seq")?, "seq")?,
            document: decode_body(row.try_get::<Option<String>, _>("body")?.as_deref())?,
            vector_clock: decode_vector(&row.try_get::<String, _>("vector")?)?,
        }))
    }

    async fn compact(&self, document_id: &str, through: u64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let snapshot_seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM snapshots WHERE document_id = ?")
                .bind(document_id)
                .fetch_optional(&mut *tx)
                .await?;
        let head_seq: Option<i64> =
            sqlx::query_scalar("SELECT head_seq FROM documents WHERE document_id = ?")
                .bind(document_id)
                .fetch_optional(&mut *tx)
                .await?;
        check_compact(
            document_id,
            through,
            snapshot_seq.map(|n| from_db(n, "seq")).transpose()?,
            head_seq.map_or(Ok(0), |n| from_db(n, "head_seq"))?,
        )?;
        let through = to_db(through, "sequenceNum")?;
        let deleted = sqlx::query("DELETE FROM events WHERE document_id = ? AND seq <= ?")
            .bind(document_id)
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE documents SET first_retained_seq = MAX(first_retained_seq, ?) \
             WHERE document_id = ?",
        )
        .bind(through + 1)
        .bind(document_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn save_state_vector(&self, state_vector: &StateVector) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO state_vectors (document_id, client_id, vector, last_updated) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT (document_id, client_id) DO UPDATE SET \
             vector = excluded.vector, last_updated = excluded.last_updated",
        )
        .bind(&state_vector.document_id)
        .bind(&state_vector.client_id)
        .bind(encode_vector(&state_vector.vector_clock))
        .bind(&state_vector.last_updated)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn state_vectors(&self, document_id: &str) -> Result<Vec<StateVector>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, vector, last_updated FROM state_vectors \
             WHERE document_id = ? ORDER BY client_id",
        )
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

    async fn changes(&self) -> Result<Option<mpsc::Receiver<StoreChange>>, StoreError> {
        Ok(None)
    }
}
