//! SQLite, the dialect part of the SQL store ([`super::sql`]): opening the file, its schema and
//! triggers, and the change feed. The embedded default: one file, one server process.
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a committed `append` survives a
//! power cut. Writes go through one connection and start with `BEGIN IMMEDIATE`, so writers (also
//! in other processes) queue on SQLite's lock (`busy_timeout`) instead of failing half-way; reads
//! use a small separate pool. The writing connection of a file is rusqlite's, each write run
//! whole on the thread that asks for it (`super::writer`); the schema is made, and reads run,
//! through sqlx.
//!
//! Other programs may write the `documents` table while the server runs (`docs/PROTOCOL.md`
//! section 17). Triggers record such writes in `outside_changes` (a row whose body changes while
//! its `head_seq` does not, or a new row with `head_seq` 0); a `DELETE` of a row is turned into
//! `UPDATE ... SET body = NULL`. The change feed polls that table.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::AnyPool;
use sqlx::Row;
use tokio::sync::mpsc;

use super::rows::open_error;
use super::sql::{migrate, Dialect, Feed, SqlStore};
use super::writer::{open_sqlite as open_writer, Writer};
use super::{StoreChange, StoreError};

/// How often the change feed looks for writes of other programs.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Every connection's settings: WAL, `synchronous=FULL`, and a writer waits up to 10 s for
/// another writer's lock before failing.
const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;";

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

/// The webhook outbox (`super::sql`), made at every open when missing.
const OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    leased_by TEXT,
    leased_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_outbox_document ON webhook_outbox (document_id, seq);
";

/// The triggers of section 17 (created at every open, so that older databases get them too).
const OUTSIDE_WRITES: &str = "
CREATE TABLE IF NOT EXISTS outside_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS eventsync_documents_written AFTER UPDATE OF body ON documents
WHEN NEW.head_seq = OLD.head_seq AND NEW.body IS NOT OLD.body
BEGIN
    INSERT INTO outside_changes (document_id) VALUES (NEW.document_id);
END;
CREATE TRIGGER IF NOT EXISTS eventsync_documents_inserted AFTER INSERT ON documents
WHEN NEW.head_seq = 0 AND NEW.body IS NOT NULL
BEGIN
    INSERT INTO outside_changes (document_id) VALUES (NEW.document_id);
END;
CREATE TRIGGER IF NOT EXISTS eventsync_documents_deleted BEFORE DELETE ON documents
BEGIN
    UPDATE documents SET body = NULL WHERE document_id = OLD.document_id;
    SELECT RAISE(IGNORE);
END;
";

/// Opens (creating if missing) the database a `sqlite:PATH` URL names, and creates or checks
/// its schema.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    // Created if missing (the URL's own `mode` wins).
    let connect = if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    let pool = |connections| {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *connection, PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect(&connect)
    };
    let writer = pool(1).await.map_err(|err| open_error(url, err))?;
    migrate(Dialect::Sqlite, &writer, SCHEMA_V1, OUTSIDE_WRITES, OUTBOX)
        .await
        .map_err(|err| open_error(url, err))?;
    if in_memory {
        // The database lives in this pool's connection: readers and writes share it.
        return Ok(SqlStore::new(
            Dialect::Sqlite,
            Writer::Pool(writer.clone()),
            writer,
            Feed::Poll,
        ));
    }
    writer.close().await;
    let options = SqliteConnectOptions::from_str(&connect).map_err(|err| open_error(url, err))?;
    let read_only = connect.contains("mode=ro");
    let writer = open_writer(options.get_filename(), read_only, PRAGMAS)
        .map_err(|err| open_error(url, err))?;
    let reader = pool(4).await.map_err(|err| open_error(url, err))?;
    Ok(SqlStore::new(Dialect::Sqlite, writer, reader, Feed::Poll))
}

/// The change feed: polls `outside_changes`, reporting and removing what the triggers recorded.
pub(crate) fn changes(pool: AnyPool) -> mpsc::Receiver<StoreChange> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
            match take_outside_changes(&pool).await {
                Ok(changes) => {
                    for change in changes {
                        if tx.send(change).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "outside changes could not be read"),
            }
        }
    });
    rx
}

async fn take_outside_changes(pool: &AnyPool) -> Result<Vec<StoreChange>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, document_id FROM outside_changes ORDER BY id LIMIT 1000")
        .fetch_all(pool)
        .await?;
    let Some(last) = rows.last() else {
        return Ok(Vec::new());
    };
    let last: i64 = last.try_get("id")?;
    sqlx::query("DELETE FROM outside_changes WHERE id <= ?")
        .bind(last)
        .execute(pool)
        .await?;
    let mut changes: Vec<StoreChange> = Vec::new();
    for row in &rows {
        let change = StoreChange::DocumentWritten {
            document_id: row.try_get("document_id")?,
        };
        // One report per document and poll: the server reads the row as it is now.
        if !changes.contains(&change) {
            changes.push(change);
        }
    }
    Ok(changes)
}
