//! Wiring: configuration, the router, the change feed, and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::admission::{Admission, AdmissionLimits};
use crate::auth::Authority;
use crate::broker::EventBroker;
use crate::hooks::Rules;
use crate::limits::Limits;
use crate::presence::PresenceHub;
use crate::service::SyncService;
use crate::store::{EventStore, StoreChange, StoreError};
use crate::vectors::StateVectorManager;
use crate::webhook::Webhook;

/// Command-line flags, each with an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "eventsync-server", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "EVENTSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `sqlite:PATH` (created if missing) or `postgres://user@host:port/db`.
    #[arg(
        long,
        env = "EVENTSYNC_DATABASE",
        default_value = "sqlite:./eventsync.db"
    )]
    pub database: String,
    /// Secret that signs access tokens; when set, every request needs a token.
    #[arg(long, env = "EVENTSYNC_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Largest frame or HTTP body accepted, in bytes.
    #[arg(long, env = "EVENTSYNC_MAX_FRAME_BYTES", default_value_t = 1 << 20)]
    pub max_frame_bytes: usize,
    /// Messages per second per connection (sustained).
    #[arg(long, env = "EVENTSYNC_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// Messages a connection may send in a burst.
    #[arg(long, env = "EVENTSYNC_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
    /// Store a snapshot every this many events (0: never).
    #[arg(long, env = "EVENTSYNC_SNAPSHOT_EVERY", default_value_t = 1000)]
    pub snapshot_every: u64,
    /// Keep this many events behind the latest snapshot and compact older ones (default: keep all).
    #[arg(long, env = "EVENTSYNC_RETAIN_EVENTS")]
    pub retain_events: Option<u64>,
    /// Serve static files (the demo) from this folder at `/`.
    #[arg(long, env = "EVENTSYNC_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "EVENTSYNC_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Largest presence state a client may publish, in bytes of JSON.
    #[arg(long, env = "EVENTSYNC_MAX_PRESENCE_BYTES", default_value_t = eventsync::protocol::MAX_PRESENCE_BYTES)]
    pub max_presence_bytes: usize,
    /// Seconds of silence after which a connection's presence is removed (also how long the
    /// peers of a server process that went away stay visible on the others).
    #[arg(long, env = "EVENTSYNC_PRESENCE_TIMEOUT", default_value_t = eventsync::protocol::PRESENCE_TIMEOUT_MS / 1000)]
    pub presence_timeout: u64,
    /// Live events queued for one subscriber at most, in bytes of their encodings: one that
    /// falls further behind (it stopped reading) is not buffered further; it catches up from
    /// the store once it reads again.
    #[arg(long, env = "EVENTSYNC_MAX_QUEUED_BYTES", default_value_t = crate::broker::DEFAULT_QUEUE_BYTES)]
    pub max_queued_bytes: usize,
    /// WebSocket connections and SSE streams open at once; more are refused (HTTP 429,
    /// `rate_limited`) until some close.
    #[arg(long, env = "EVENTSYNC_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// The same, from one client address.
    #[arg(
        long,
        env = "EVENTSYNC_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,
    /// HTTP writes (`PUT`, `PATCH`, `DELETE`) per second from one client address, sustained;
    /// more are refused with HTTP 429 (`rate_limited`).
    #[arg(long, env = "EVENTSYNC_HTTP_WRITE_RATE", default_value_t = 1_000)]
    pub http_write_rate: u32,
    /// HTTP writes one client address may make in a burst.
    #[arg(long, env = "EVENTSYNC_HTTP_WRITE_BURST", default_value_t = 5_000)]
    pub http_write_burst: u32,
    /// SSE streams open at once from one client address.
    #[arg(long, env = "EVENTSYNC_MAX_STREAMS_PER_ADDRESS", default_value_t = 32)]
    pub max_streams_per_address: usize,
    /// Documents one connection of protocol version 2 may have open at once; an `open` past it
    /// is refused (`closed` with `too_large`) and the connection's other documents go on.
    #[arg(
        long,
        env = "EVENTSYNC_MAX_DOCUMENTS_PER_CONNECTION",
        default_value_t = Limits::default().max_documents
    )]
    pub max_documents_per_connection: usize,
    /// The largest a document may grow, counted as one per value plus the bytes of every
    /// string and key (about its JSON without punctuation); an edit or write past it is refused
    /// with `too_large`. 0: no limit.
    #[arg(long, env = "EVENTSYNC_MAX_DOCUMENT_BYTES", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES)]
    pub max_document_bytes: usize,
    /// `PATTERN=FILE`: documents whose id matches PATTERN (an id, `prefix*` or `*`) must match
    /// the JSON Schema in FILE after every edit (`invalid_document` otherwise). Repeatable; in
    /// the environment variable, separate them with commas.
    #[arg(long = "schema", env = "EVENTSYNC_SCHEMA", value_delimiter = ',')]
    pub schemas: Vec<String>,
    /// POST every appended event to this URL (`http://` or `https://`), signed, at least once
    /// and in order per document (see `webhook.rs`). Needs `--webhook-secret`.
    #[arg(long, env = "EVENTSYNC_WEBHOOK", requires = "webhook_secret")]
    pub webhook: Option<String>,
    /// Secret that signs webhook requests (`Eventsync-Signature`, HMAC-SHA256).
    #[arg(long, env = "EVENTSYNC_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
}

/// The default `--max-document-bytes`: 8 MiB, so that a document's snapshot stays within the
/// 16 MiB frames clients must accept (PROTOCOL.md section 11).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 8 << 20;

impl Config {
    /// Defaults for tests and embedding: an ephemeral port on loopback and the given database.
    pub fn for_database(database: impl Into<String>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: database.into(),
            auth_secret: None,
            max_frame_bytes: 1 << 20,
            rate_limit: 100,
            rate_burst: 200,
            snapshot_every: 1000,
            retain_events: None,
            static_dir: None,
            log_format: "text".into(),
            max_presence_bytes: eventsync::protocol::MAX_PRESENCE_BYTES,
            presence_timeout: eventsync::protocol::PRESENCE_TIMEOUT_MS / 1000,
            max_queued_bytes: crate::broker::DEFAULT_QUEUE_BYTES,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_streams_per_address: 32,
            http_write_rate: 1_000,
            http_write_burst: 5_000,
            max_documents_per_connection: Limits::default().max_documents,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            schemas: Vec::new(),
            webhook: None,
            webhook_secret: None,
        }
    }

    /// The webhook settings (`None` without `--webhook`), checked.
    pub(crate) fn webhook(&self) -> Result<Option<Webhook>, StartError> {
        self.webhook
            .as_deref()
            .map(|url| Webhook::new(url, self.webhook_secret.as_deref()))
            .transpose()
            .map_err(StartError::Config)
    }

    pub(crate) fn admission_limits(&self) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            max_streams_per_address: self.max_streams_per_address,
            writes_per_second: self.http_write_rate,
            write_burst: self.http_write_burst,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            messages_per_second: self.rate_limit,
            burst: self.rate_burst,
            max_presence_bytes: self.max_presence_bytes,
            presence_timeout_ms: self.presence_timeout.saturating_mul(1000).max(1),
            max_documents: self.max_documents_per_connection.max(1),
            ..Limits::default()
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Orders edits, answers catch-ups.
    pub service: Arc<SyncService>,
    /// Fans events out.
    pub broker: Arc<EventBroker>,
    /// Who is on each document (never stored).
    pub presence: Arc<PresenceHub>,
    /// Clients' last known state vectors.
    pub vectors: Arc<StateVectorManager>,
    /// Token checking, when auth is on.
    pub authority: Option<Authority>,
    /// Size and rate limits.
    pub limits: Limits,
    /// Flips to true when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Connections, streams and HTTP writes admitted (counts and limits).
    pub admission: Arc<Admission>,
    /// The size limit, schemas and hooks (authentication is asked here too).
    pub rules: Arc<Rules>,
}

impl AppState {
    /// Registers an open connection (shutdown waits for it to close).
    pub fn open_connections(&self) -> usize {
        self.admission.open()
    }
}

/// The routes of `docs/PROTOCOL.md`.
pub fn router(state: AppState, static_dir: Option<PathBuf>) -> Router {
    use crate::http;
    let router = Router::new()
        .route("/health", get(http::health))
        .route("/sync", get(http::websocket_multiplexed))
        .route("/sync/{document_id}", get(http::websocket))
        .route("/api/sync/{document_id}", post(http::sync))
        .route("/api/events/{document_id}", get(http::events))
        .route("/api/stream/{document_id}", get(http::stream))
        .route(
            "/api/documents/{document_id}",
            get(http::read_document)
                .put(http::put_document)
                .patch(http::patch_document)
                .delete(http::delete_document),
        )
        .layer(DefaultBodyLimit::max(
            state.limits.max_frame_bytes.saturating_mul(2),
        ));
    let router = match static_dir {
        Some(dir) => router.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => router,
    };
    router.with_state(state)
}

/// A running server.
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Shared state (for tests: open connections, the service).
    pub state: AppState,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes every connection, waits for them (at most `grace`).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The settings cannot work (for example `--webhook` without `--webhook-secret`).
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A `--schema` could not be used.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}

/// Opens the store, binds the address and serves until [`RunningServer::shutdown`] is called
/// (the binary's way: [`crate::ServerBuilder`] is the one to embed with hooks).
pub async fn start(config: &Config) -> Result<RunningServer, StartError> {
    crate::ServerBuilder::new(config.clone()).start().await
}

/// As [`start`], on a store that is already open.
pub async fn start_with_store(
    config: &Config,
    store: Arc<dyn EventStore>,
) -> Result<RunningServer, StartError> {
    crate::ServerBuilder::new(config.clone())
        .store(store)
        .start()
        .await
}

/// Applies what other processes did to the database.
pub(crate) async fn follow_changes(
    service: Arc<SyncService>,
    presence: Arc<PresenceHub>,
    mut changes: tokio::sync::mpsc::Receiver<StoreChange>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = shutdown.changed() => return,
        };
        let Some(change) = change else { return };
        let result = match &change {
            StoreChange::Presence(payload) => {
                presence.relayed(payload);
                Ok(())
            }
            StoreChange::Appended { document_id, .. } => service.refresh(document_id).await,
            StoreChange::DocumentWritten { document_id } => {
                service.absorb_external_write(document_id).await
            }
        };
        if let Err(err) = result {
            tracing::warn!(?change, error = %err, "change from the database not applied");
        }
    }
}

/// The presence hub, its timer and, when other processes share the store, its relay.
pub(crate) fn start_presence(
    config: &Config,
    store: &Arc<dyn EventStore>,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<PresenceHub> {
    let relay = store.relays().then(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let store = store.clone();
        tokio::spawn(async move {
            // One at a time: the others hear this process's changes in order.
            while let Some(payload) = rx.recv().await {
                if let Err(err) = store.relay(&payload).await {
                    tracing::warn!(error = %err, "presence change not relayed to other processes");
                }
            }
        });
        tx
    });
    let timeout = Duration::from_secs(config.presence_timeout.max(1));
    let hub = Arc::new(PresenceHub::new(process_id(), timeout, relay));
    let ticking = hub.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ticking.tick_interval());
        loop {
            tokio::select! {
                _ = every.tick() => ticking.tick(),
                _ = shutdown.wait_for(|s| *s) => return ticking.bye(),
            }
        }
    });
    hub
}

/// An id for this process among the processes sharing a store.
fn process_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // JSON numbers stay exact below 2^53.
    hasher.finish() & ((1 << 53) - 1)
}

/// The URL without a password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
