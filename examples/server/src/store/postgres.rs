//! PostgreSQL, the dialect part of the SQL store ([`super::sql`]): opening the database, its
//! schema and triggers, and the change feed. Many server processes may share one database.
//!
//! Appends lock the document's row (`SELECT ... FOR UPDATE`), so concurrent appends at the same
//! head queue and all but one see `HeadMoved`; the primary keys catch the rest. JSON columns are
//! `JSON` (the exact text `serde_json` wrote; `JSONB` would refuse `\u0000`).
//!
//! Change feed: `append` sends `pg_notify('eventsync_events', 'DOCUMENT_ID:HEAD_SEQ')` inside its
//! transaction (delivered on commit). The triggers turn other programs' writes of the
//! `documents` table into notifications (`docs/PROTOCOL.md` section 17): a row whose body changes
//! while its `head_seq` does not (a new row counts as changed from a missing one with head 0)
//! sends `pg_notify('eventsync_documents', DOCUMENT_ID)`; a `DELETE` of a row is turned into
//! `UPDATE ... SET body = NULL` (the row keeps the log's head, the document is deleted by an
//! event and can be created again); `TRUNCATE` is refused.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use sqlx::Connection;
use tokio::sync::mpsc;

use super::rows::open_error;
use super::sql::{migrate, Dialect, Feed, SqlStore, EVENTS_CHANNEL, PRESENCE_CHANNEL};
use super::writer::Writer;
use super::{StoreChange, StoreError};

/// How long `open` waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// The channel the documents trigger notifies.
const DOCUMENTS_CHANNEL: &str = "eventsync_documents";

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
"#;

/// The webhook outbox (`super::sql`), made at every open when missing.
const OUTBOX: &str = r#"
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id BIGSERIAL PRIMARY KEY,
    document_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    leased_by TEXT,
    leased_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_outbox_document ON webhook_outbox (document_id, seq);
"#;

/// The triggers of section 17, made anew at every open (older databases get them too).
const OUTSIDE_WRITES: &str = r#"
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
CREATE OR REPLACE FUNCTION eventsync_documents_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE documents SET body = NULL WHERE document_id = OLD.document_id;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS eventsync_documents_deleted ON documents;
CREATE TRIGGER eventsync_documents_deleted BEFORE DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION eventsync_documents_deleted();
CREATE OR REPLACE FUNCTION eventsync_documents_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventsync: the documents table holds the head of every log and cannot be truncated; set body = NULL to delete documents';
END
$$;
DROP TRIGGER IF EXISTS eventsync_documents_truncated ON documents;
CREATE TRIGGER eventsync_documents_truncated BEFORE TRUNCATE ON documents
    FOR EACH STATEMENT EXECUTE FUNCTION eventsync_documents_truncated();
"#;

/// Connects to the database a `postgres://` URL names (failing within 5 s when it cannot),
/// and creates or checks its schema.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|err| open_error(url, err))?;
    // One plain connection first: the pool would retry a refused connection until its
    // timeout and then report only "timed out".
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options)).await {
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
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy(url)
        .map_err(|err| open_error(url, err))?;
    migrate(Dialect::Postgres, &pool, SCHEMA_V1, OUTSIDE_WRITES, OUTBOX)
        .await
        .map_err(|err| open_error(url, err))?;
    Ok(SqlStore::new(
        Dialect::Postgres,
        Writer::Pool(pool.clone()),
        pool,
        Feed::Listen(Box::new(options)),
    ))
}

/// The change feed: a listener on both channels, forwarding what it hears.
pub(crate) async fn changes(
    options: &PgConnectOptions,
) -> Result<mpsc::Receiver<StoreChange>, StoreError> {
    // Listening before returning: every change committed after this call is delivered.
    let listener = listen(options).await?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(forward(listener, options.clone(), tx));
    Ok(rx)
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
        PRESENCE_CHANNEL => Some(StoreChange::Presence(payload.to_owned())),
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
        .listen_all([EVENTS_CHANNEL, DOCUMENTS_CHANNEL, PRESENCE_CHANNEL])
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
