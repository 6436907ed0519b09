//! [`ServerBuilder`]: the reference server as a library. An application embeds it with its own
//! hooks and schemas, then either lets it listen ([`Server::listen`]) or mounts its routes in
//! its own axum router ([`Server::router`]). The `eventsync-server` binary is this with flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::Admission;
use crate::app::{
    follow_changes, redact, router, start_presence, AppState, Config, RunningServer, StartError,
};
use crate::auth::Authority;
use crate::broker::EventBroker;
use crate::hooks::{Hooks, Rules};
use crate::schema::SchemaRule;
use crate::service::{History, SyncService};
use crate::store::{self, EventStore};
use crate::vectors::StateVectorManager;

/// Builds a server: its [`Config`] (the binary's flags), then what only code can give.
pub struct ServerBuilder {
    config: Config,
    store: Option<Arc<dyn EventStore>>,
    hooks: Vec<Arc<dyn Hooks>>,
    schemas: Vec<SchemaRule>,
}

impl ServerBuilder {
    /// A server with these settings (`Config::for_database` has the defaults of every flag).
    pub fn new(config: Config) -> Self {
        ServerBuilder {
            config,
            store: None,
            hooks: Vec::new(),
            schemas: Vec::new(),
        }
    }

    /// Uses a store that is already open instead of opening `config.database`.
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds hooks; several are asked in the order they were added.
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks.push(Arc::new(hooks));
        self
    }

    /// Adds a JSON Schema for the documents its pattern covers (beside `config.schemas`).
    pub fn schema(mut self, rule: SchemaRule) -> Self {
        self.schemas.push(rule);
        self
    }

    /// Opens the store and starts what runs in the background (presence, the database's change
    /// feed), without listening: serve it with [`Server::listen`] or mount [`Server::router`].
    pub async fn build(self) -> Result<Server, StartError> {
        let config = self.config;
        // Refused before the database is made.
        let webhook = config.webhook()?;
        let mut schemas = config
            .schemas
            .iter()
            .map(|flag| SchemaRule::from_flag(flag))
            .collect::<Result<Vec<_>, _>>()?;
        schemas.extend(self.schemas);
        let rules = Arc::new(Rules {
            max_document_bytes: (config.max_document_bytes > 0)
                .then_some(config.max_document_bytes),
            schemas,
            hooks: self.hooks,
        });
        let store = match self.store {
            Some(store) => store,
            None => store::open(&config.database).await?,
        };
        // Before serving: every event appended from now on has its outbox row.
        let outbox = match webhook {
            Some(_) => Some(store.enable_outbox().await?.ok_or_else(|| {
                StartError::Config("--webhook: this store keeps no outbox".into())
            })?),
            None => None,
        };
        let broker = Arc::new(EventBroker::new(config.max_queued_bytes));
        let history = History {
            snapshot_every: config.snapshot_every,
            retain_events: config.retain_events,
        };
        let service = Arc::new(SyncService::new(
            store.clone(),
            broker.clone(),
            history,
            rules.clone(),
        ));
        let (stop, shutdown) = watch::channel(false);
        let presence = start_presence(&config, &store, shutdown.clone());
        if let (Some(webhook), Some(outbox)) = (webhook, outbox) {
            tokio::spawn(crate::webhook::run(
                store.clone(),
                outbox,
                webhook,
                shutdown.clone(),
            ));
        }
        let state = AppState {
            service: service.clone(),
            broker,
            presence: presence.clone(),
            vectors: Arc::new(StateVectorManager::new(store.clone())),
            authority: config.auth_secret.as_deref().map(Authority::new),
            limits: config.limits(),
            shutdown: shutdown.clone(),
            admission: Arc::new(Admission::new(config.admission_limits())),
            rules,
        };
        if let Some(changes) = store.changes().await? {
            tokio::spawn(follow_changes(service, presence.clone(), changes, shutdown));
            presence.hello();
        }
        Ok(Server {
            config,
            state,
            stop,
        })
    }

    /// [`ServerBuilder::build`], then [`Server::listen`] on `config.listen`.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        self.build().await?.listen().await
    }
}

/// A built server, not yet listening.
pub struct Server {
    config: Config,
    state: AppState,
    stop: watch::Sender<bool>,
}

impl Server {
    /// The routes of `docs/PROTOCOL.md` (and the static folder, when configured), to mount in an
    /// application's own router: `Router::new().merge(server.router())`, or `nest` under a
    /// prefix. Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` for the
    /// per-address limits to see addresses.
    pub fn router(&self) -> Router {
        router(self.state.clone(), self.config.static_dir.clone())
    }

    /// The shared state (the service, the broker, counts).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops the background work and ends every open connection (with the server's close
    /// code), for an application that mounted [`Server::router`] and is shutting down.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.state.admission.all_closed()).await;
    }

    /// Binds `config.listen` and serves until [`RunningServer::shutdown`].
    pub async fn listen(self) -> Result<RunningServer, StartError> {
        let listen = self.config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;
        let app = self.router();
        let Server {
            config,
            state,
            stop,
        } = self;
        let drain = state.clone();
        let mut stopped = state.shutdown.clone();
        let task = tokio::spawn(async move {
            // TCP_NODELAY: an ack or an event goes out at once instead of waiting for the
            // client's delayed ACK (about 40 ms a frame on Linux).
            let listener = listener.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %err, "TCP_NODELAY could not be set");
                }
            });
            // With each connection's address, for the per-address limits.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "server failed");
            }
            // Upgraded connections outlive axum's own drain: wait for them to close.
            drain.admission.all_closed().await;
        });
        tracing::info!(%addr, database = %redact(&config.database), auth = state.authority.is_some(), "eventsync-server listening");
        Ok(RunningServer {
            addr,
            state,
            stop,
            task,
        })
    }
}
