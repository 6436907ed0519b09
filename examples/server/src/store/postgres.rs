//! The PostgreSQL store: many server processes on one database, with a change feed.
//!
//! Schema (version 1, created on open under an advisory lock; the same tables as SQLite):
//!
//! ```text
//! schema_version (version INTEGER)                                  -- one row: 1
//! events        (document_id TEXT, seq BIGINT, client_id TEXT, client_seq BIGINT NULL,
//!                body JSON)                                         -- PK (document_id, seq)
//! documents     (document_id TEXT PK, body JSON NULL (= deleted), head_seq BIGINT,
//!                vector JSON, first_retained_seq BIGINT)
//! edits         (document_id TEXT, client_id TEXT, client_seq BIGINT, seq BIGINT)
//!                                                 -- PK (document_id, client_id, client_seq)
//! snapshots     (document_id TEXT PK, seq BIGINT, body JSON NULL, vector JSON)
//! state_vectors (document_id TEXT, client_id TEXT, vector JSON, last_updated TEXT NULL)
//!                                                 -- PK (document_id, client_id)
//! trigger eventsync_documents_written AFTER INSERT OR UPDATE ON documents
//! ```
//!
//! JSON columns are `JSON` (the exact text `serde_json` wrote; `JSONB` would refuse `\u0000`).
//! `append` locks the document's row (`SELECT ... FOR UPDATE`), so concurrent appends at the same
//! head queue and all but one see `HeadMoved`; the primary keys catch the rest. Change feed:
//! `append` sends `pg_notify('eventsync_events', 'DOCUMENT_ID:HEAD_SEQ')` inside its transaction
//! (delivered on commit), and the trigger sends `pg_notify('eventsync_documents', DOCUMENT_ID)`
//! when a row's body changes while its `head_seq` does not (a write by plain SQL; a new row counts
//! as changed from a missing row with head 0).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use eventsync::protocol::{Event, Snapshot, StateVector};
use serde_json::Value;
use sqlx::postgres::{
    PgConnectOptions, PgListener, PgNotification, PgPool, PgPoolOptions, Postgres,
};
use sqlx::{Connection, Row};
use tokio::sync::mpsc;

use super::rows::{
    check_append, check_compact, decode_body, decode_event, decode_vector, encode_body,
    encode_event, encode_vector, from_db, newer_schema, open_error, to_db, vector_after,
    SCHEMA_VERSION,
};
use super::{DocumentHead, EventStore, StoreChange, StoreError};

/// How long `open` waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// The channel `append` notifies.
const EVENTS_CHANNEL: &str = "eventsync_events";
/// The channel the documents trigger notifies.
const DOCUMENTS_CHANNEL: &str = "eventsync_documents";
/// Serialises schema creation between processes opening the same database.
const SCHEMA_LOCK: i64 = 0x6576_656e_7473_796e;

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    document_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    client_seq BIGINT,
    body JSON NOT NULL,
    PRIMARY KEY (document_id, seq)
);
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT NOT NULL PRIMARY KEY,
    body JSON,
    head_seq BIGINT NOT NULL,
    vector JSON NOT NULL,
    first_retained_seq BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS edits (
    document_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_seq BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (document_id, client_id, client_seq)
);
CREATE TABLE IF NOT EXISTS snapshots (
    document_id TEXT NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    body JSON,
    vector JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS state_vectors (
    document_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    vector JSON NOT NULL,
    last_updated TEXT,
    PRIMARY KEY (document_id, client_id)
);
CREATE OR REPLACE FUNCTION eventsync_documents_written() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_body TEXT := NULL;
    old_head BIGINT := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        old_body := OLD.body::text;
        old_head := OLD.head_seq;
    END IF;
    IF NEW.body::text IS DISTINCT FROM old_body AND NEW.head_seq = old_head THEN
        PERFORM pg_notify('eventsync_documents', NEW.document_id);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS eventsync_documents_written ON documents;
CREATE TRIGGER eventsync_documents_written AFTER INSERT OR UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION eventsync_documents_written();
"#;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names (failing within 5 s when it cannot),
    /// and creates or checks its schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|err| open_error(url, err))?;
        // One plain connection first: the pool would retry a refused connection until its
        // timeout and then report only "timed out".
        match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
            .await
        {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(err)) => return Err(open_error(url, err)),
            Err(_) => {
                return Err(open_error(
                    url,
                    format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                ))
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        migrate(&pool).await.map_err(|err| open_error(url, err))?;
        Ok(Self { pool, options })
    }
}

/// Creates the tables of a new database, or checks the version of an existing one.
async fn migrate(pool: &PgPool) -> Result<(), String> {
    match migrate_inner(pool).await {
        Ok(None) => Ok(()),
        Ok(Some(other)) => Err(newer_schema(other)),
        Err(err) => Err(err.to_string()),
    }
}

/// Returns the version found when it is not one this code can use.
async fn migrate_inner(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let version: Option<i32> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    match version.map(i64::from) {
        None => {
            sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(SCHEMA_VERSION as i32)
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
            db.is_unique_violation() && db.constraint() == Some("events_pkey")
        }
        _ => false,
    }
}

/// Maps a notification to a change (`None` for a payload that cannot be read).
fn parse_notification(notification: &PgNotification) -> Option<StoreChange> {
    let payload = notification.payload();
    match notification.channel() {
        EVENTS_CHANNEL => {
            let (document_id, head_seq) = payload.rsplit_once(':')?;
            Some(StoreChange::Appended {
                document_id: document_id.to_owned(),
                head_seq: head_seq.parse().ok()?,
            })
        }
        DOCUMENTS_CHANNEL => Some(StoreChange::DocumentWritten {
            document_id: payload.to_owned(),
        }),
        _ => None,
    }
}

/// A listener on both channels, with its own one-connection pool.
async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener
        .listen_all([EVENTS_CHANNEL, DOCUMENTS_CHANNEL])
        .await?;
    Ok(listener)
}

/// Forwards notifications to `tx` until the receiver is dropped. Never gives up: on an error it
/// waits (1 s doubling to 30 s) and listens again on a new connection.
async fn forward(
    mut listener: PgListener,
    options: PgConnectOptions,
    tx: mpsc::Sender<StoreChange>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let received = tokio::select! {
            _ = tx.closed() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => {
                backoff = Duration::from_secs(1);
                match parse_notification(&notification) {
                    Some(change) => {
                        if tx.send(change).await.is_err() {
                            return;
                        }
                    }
                    None => tracing::warn!(
                        channel = notification.channel(),
                        payload = notification.payload(),
                        "unreadable store notification"
                    ),
                }
            }
            Ok(None) => {
                tracing::warn!("store change feed: connection lost and re-established; changes made meanwhile were not seen");
            }
            Err(error) => {
                tracing::warn!(%error, "store change feed failed; listening again in {backoff:?}");
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    match listen(&options).await {
                        Ok(new_listener) => {
                            listener = new_listener;
                            tracing::warn!("store change feed listening again; changes made meanwhile were not seen");
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "store change feed: cannot listen; retrying in {backoff:?}");
                        }
                    }
                }
            }
        }
    }
}

type PgTx = sqlx::Transaction<'static, Postgres>;

/// The document's row, locked for the rest of the transaction: `(head_seq, vector)`.
async fn lock_document(
    tx: &mut PgTx,
    document_id: &str,
) -> Result<Option<(u64, eventsync::VectorClock)>, StoreError> {
    let row = sqlx::query(
        "SELECT head_seq, vector::text AS vector FROM documents \
         WHERE document_id = $1 FOR UPDATE",
    )
    .bind(document_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok((
            from_db(row.try_get("head_seq")?, "head_seq")?,
            decode_vector(&row.try_get::<String, _>("vector")?)?,
        ))
    })
    .transpose()
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn head(&self, document_id: &str) -> Result<DocumentHead, StoreError> {
        let row = sqlx::query(
            "SELECT body::text AS body, head_seq, vector::text AS vector, first_retained_seq \
             FROM documents WHERE document_id = $1",
        )
        .bind(document_id)
        .fetch_optional(&self.pool)
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

        let mut tx = self.pool.begin().await?;
        let existing = lock_document(&mut tx, document_id).await?;
        let previous = match existing {
            Some((head, _)) if head != expected_head => return Err(moved()),
            Some((_, vector)) => Some(vector),
            None if expected_head != 0 => return Err(moved()),
            None => None,
        };
        let exists = previous.is_some();
        let vector = encode_vector(&vector_after(previous.unwrap_or_default(), events));
        let new_head_db = to_db(new_head, "sequenceNum")?;

        // The documents row first: a concurrent first append waits here and then finds the row.
        let written = if exists {
            sqlx::query(
                "UPDATE documents SET body = $2::json, head_seq = $3, vector = $4::json \
                 WHERE document_id = $1",
            )
            .bind(document_id)
            .bind(&body)
            .bind(new_head_db)
            .bind(&vector)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "INSERT INTO documents (document_id, body, head_seq, vector, first_retained_seq) \
                 VALUES ($1, $2::json, $3, $4::json, 1) ON CONFLICT (document_id) DO NOTHING",
            )
            .bind(document_id)
            .bind(&body)
            .bind(new_head_db)
            .bind(&vector)
            .execute(&mut *tx)
            .await?
        };
        if written.rows_affected() != 1 {
            return Err(moved());
        }

        for event in events {
            let seq = to_db(event.sequence_num, "sequenceNum")?;
            let client_seq = event
                .client_seq
                .map(|n| to_db(n, "clientSeq"))
                .transpose()?;
            let inserted = sqlx::query(
                "INSERT INTO events (document_id, seq, client_id, client_seq, body) \
                 VALUES ($1, $2, $3, $4, $5::json)",
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
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(document_id)
                .bind(&event.client_id)
                .bind(client_seq)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }

        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(format!("{document_id}:{new_head}"))
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
            "SELECT body::text AS body FROM events WHERE document_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(document_id)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
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
            "SELECT seq FROM edits WHERE document_id = $1 AND client_id = $2 AND client_seq = $3",
        )
        .bind(document_id)
        .bind(client_id)
        .bind(client_seq)
        .fetch_optional(&self.pool)
        .await?;
        seq.map(|seq| from_db(seq, "seq")).transpose()
    }

    async fn highest_client_seq(
        &self,
        document_id: &str,
        client_id: &str,
    ) -> Result<u64, StoreError> {
        let highest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(client_seq) FROM edits WHERE document_id = $1 AND client_id = $2",
        )
        .bind(document_id)
        .bind(client_id)
        .fetch_one(&self.pool)
        .await?;
        highest.map_or(Ok(0), |n| from_db(n, "client_seq"))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        // An older snapshot never replaces a newer one: compaction relies on the newer one.
        sqlx::query(
            "INSERT INTO snapshots (document_id, seq, body, vector) \
             VALUES ($1, $2, $3::json, $4::json) \
             ON CONFLICT (document_id) DO UPDATE SET \
             seq = EXCLUDED.seq, body = EXCLUDED.body, vector = EXCLUDED.vector \
             WHERE EXCLUDED.seq >= snapshots.seq",
        )
        .bind(&snapshot.document_id)
        .bind(to_db(snapshot.sequence_num, "sequenceNum")?)
        .bind(encode_body(snapshot.document.as_ref())?)
        .bind(encode_vector(&snapshot.vector_clock))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn latest_snapshot(&self, document_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, body::text AS body, vector::text AS vector FROM snapshots \
             WHERE document_id = $1",
        )
        .bind(document_id)
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let head_seq = lock_document(&mut tx, document_id)
            .await?
            .map_or(0, |(head, _)| head);
        let snapshot_seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM snapshots WHERE document_id = $1 FOR SHARE")
                .bind(document_id)
                .fetch_optional(&mut *tx)
                .await?;
        check_compact(
            document_id,
            through,
            snapshot_seq.map(|n| from_db(n, "seq")).transpose()?,
            head_seq,
        )?;
        let through = to_db(through, "sequenceNum")?;
        let deleted = sqlx::query("DELETE FROM events WHERE document_id = $1 AND seq <= $2")
            .bind(document_id)
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE documents SET first_retained_seq = GREATEST(first_retained_seq, $2) \
             WHERE document_id = $1",
        )
        .bind(document_id)
        .bind(through + 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn save_state_vector(&self, state_vector: &StateVector) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO state_vectors (document_id, client_id, vector, last_updated) \
             VALUES ($1, $2, $3::json, $4) \
             ON CONFLICT (document_id, client_id) DO UPDATE SET \
             vector = EXCLUDED.vector, last_updated = EXCLUDED.last_updated",
        )
        .bind(&state_vector.document_id)
        .bind(&state_vector.client_id)
        .bind(encode_vector(&state_vector.vector_clock))
        .bind(&state_vector.last_updated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn state_vectors(&self, document_id: &str) -> Result<Vec<StateVector>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, vector::text AS vector, last_updated FROM state_vectors \
             WHERE document_id = $1 ORDER BY client_id",
        )
        .bind(document_id)
        .fetch_all(&self.pool)
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
        // Listening before returning: every change committed after this call is delivered.
        let listener = listen(&self.options).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(forward(listener, self.options.clone(), tx));
        Ok(Some(rx))
    }
}
