//! [`SyncClient`]: the browser driver, a thin `wasm-bindgen-futures` loop around [`SyncSession`].
//!
//! It mirrors `src/native/`: the session decides everything; the drivers move frames between it
//! and a WebSocket (`super::socket`, gloo-net over the global `WebSocket`), keep time
//! (`performance.now()`), save the session's state to a [`Store`] when told to, reconnect with
//! exponential backoff and jitter, and hand events to the app. Everything lives on the one
//! JavaScript thread: shared state is `Rc<RefCell<..>>`, and nothing here is `Send`. This file is
//! the API; `super::single` runs a client of its own, `super::connection` the documents of a
//! [`super::SyncConnection`].
//!
//! Persistence: [`SyncClientBuilder::indexed_db`] keeps the state in IndexedDB (opened by
//! [`SyncClientBuilder::open`]); [`SyncClientBuilder::store`] takes any synchronous [`Store`];
//! without either the state lives in memory only. IndexedDB saves complete later, so every frame
//! the session sends after an `Output::Persist` waits until that save is durable (`super::saves`):
//! an edit is on disk before the server can acknowledge it (DESIGN invariant 8).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::connection::ConnShared;
use super::saves::{Persistence, Saves, WaitFor, Waiters};
use super::single::{Core, Shared};
use crate::conflict::{Conflict, ConflictPolicy, Resolution};
use crate::multiplex::PresenceError;
use crate::protocol::{ErrorCode, PresencePeer, Quoted};
use crate::queue::{ClientState, Store, StoreError};
use crate::reconnect::Backoff;
use crate::session::{ConnectionStatus, SessionConfig, SessionError, SessionEvent, SyncSession};
use crate::vector_clock::VectorClock;
use crate::web::idb::{IndexedDbStore, DEFAULT_DATABASE};

mod history;

/// What apps receive: the session's events, plus `Status(Reconnecting)` from the driver.
pub type ClientEvent = SessionEvent;

/// Errors of the browser client (the same cases as the native one).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local operation failed (the document is unchanged).
    #[error("{message}")]
    Session {
        /// What kind of failure, as a protocol code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The offline store failed.
    #[error("{0}")]
    Store(String),
    /// The server refused this client for good (bad token, unsupported version, ...).
    #[error("the server refused ({}): {message}", .code.map_or("no code".to_owned(), |c| c.to_string()))]
    Refused {
        /// The protocol code.
        code: Option<ErrorCode>,
        /// The server's message.
        message: String,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A presence state was refused (too large, or a client without presence).
    #[error(transparent)]
    Presence(#[from] PresenceError),
    /// An argument cannot work: a server URL that is not a WebSocket server's address, a
    /// document id outside the rules of the protocol (section 1).
    #[error("{0}")]
    InvalidArgument(String),
    /// A wait took longer than the caller allowed.
    #[error("timed out after {0} ms")]
    Timeout(u32),
}

/// `work`, or [`ClientError::Timeout`] once `timeout_ms` passed (`None`: no limit).
pub async fn within<T>(
    timeout_ms: Option<u32>,
    work: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    use futures::FutureExt;
    let Some(ms) = timeout_ms else {
        return work.await;
    };
    futures::select! {
        done = work.fuse() => done,
        _ = gloo_timers::future::TimeoutFuture::new(ms).fuse() => Err(ClientError::Timeout(ms)),
    }
}

impl From<SessionError> for ClientError {
    fn from(err: SessionError) -> Self {
        ClientError::Session {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl From<StoreError> for ClientError {
    fn from(err: StoreError) -> Self {
        ClientError::Store(err.to_string())
    }
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: a monotonic clock in both browsers and Node.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(super) fn performance_now() -> f64;
}

/// Changes that lose nothing when lost (applied events) are saved at most this often.
pub(super) const LAZY_SAVE_MS: f64 = 1_000.0;

type Tune = Box<dyn FnOnce(&mut SessionConfig)>;

/// A conflict resolver that can fail: see [`SyncClientBuilder::conflict_resolver`].
pub type FallibleResolver = Rc<dyn Fn(&Conflict) -> Result<Resolution, String>>;

/// A fallible resolver's failures, each an `Error` event for a document (its id), waiting to be
/// told after the step that met them.
pub(super) type ResolverFailures = Rc<RefCell<Vec<(String, ClientEvent)>>>;

/// The policy a document's session gets: `policy`, or with a fallible `resolver`, a custom policy
/// that asks it and, when it fails, lets the remote change stand (as
/// [`ConflictPolicy::ServerWins`] does) and notes the failure in `failures`.
pub(super) fn session_policy(
    policy: &ConflictPolicy,
    resolver: Option<&FallibleResolver>,
    document_id: &str,
    failures: &ResolverFailures,
) -> ConflictPolicy {
    let Some(resolve) = resolver.cloned() else {
        return policy.clone();
    };
    let failures = failures.clone();
    let document_id = document_id.to_owned();
    // The closure holds `Rc`s: the browser's custom policy is not `Send` (one thread).
    #[allow(clippy::arc_with_non_send_sync)]
    let custom = Arc::new(move |conflict: &Conflict| match resolve(conflict) {
        Ok(resolution) => resolution,
        Err(reason) => {
            let message = format!(
                "the conflict resolver failed at {}: {reason}; the remote change stands",
                Quoted(&conflict.path)
            );
            let event = SessionEvent::Error {
                code: None,
                message,
            };
            failures.borrow_mut().push((document_id.clone(), event));
            Resolution::KeepRemote
        }
    });
    ConflictPolicy::Custom(custom)
}

/// Settings for [`SyncClientBuilder::connect`].
pub struct SyncClientBuilder {
    server: String,
    document_id: String,
    client_id: Option<String>,
    token: Option<String>,
    policy: ConflictPolicy,
    resolver: Option<FallibleResolver>,
    store: Option<Box<dyn Store>>,
    indexed_db: Option<String>,
    backoff: Backoff,
    tune: Option<Tune>,
}

impl SyncClientBuilder {
    crate::reconnect::shared_builder_settings!();

    /// Keeps the client's state in any [`Store`] (default: memory only).
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Keeps the client's state in the IndexedDB database `database` (`None`: `eventsync`), so
    /// that edits made offline survive a reload. Needs [`SyncClientBuilder::open`].
    pub fn indexed_db(mut self, database: Option<String>) -> Self {
        self.indexed_db = Some(database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned()));
        self
    }

    /// Adjusts the session's timers and batch size.
    pub fn session_config(mut self, tune: impl FnOnce(&mut SessionConfig) + 'static) -> Self {
        self.tune = Some(Box::new(tune));
        self
    }

    /// Resolves true conflicts with `resolve`, which may fail (a JavaScript function that throws
    /// or answers something that is not a resolution): the remote change then stands, as with
    /// [`ConflictPolicy::ServerWins`], and an [`SessionEvent::Error`] after the step's other
    /// events says why. Takes precedence over [`SyncClientBuilder::conflict_policy`]. Like
    /// [`ConflictPolicy::Custom`], it must be deterministic; it runs while the client rebases,
    /// so it must not call the client.
    pub fn conflict_resolver(
        mut self,
        resolve: impl Fn(&Conflict) -> Result<Resolution, String> + 'static,
    ) -> Self {
        self.resolver = Some(Rc::new(resolve));
        self
    }

    /// Loads the store, starts the connection loop and returns at once: edits work offline
    /// from the first moment. IndexedDB opens asynchronously: use [`SyncClientBuilder::open`].
    pub fn connect(self) -> Result<SyncClient, ClientError> {
        let url = self.endpoint()?;
        self.connect_to(url)
    }

    /// [`SyncClientBuilder::connect`] once the endpoint is known to be `url`.
    fn connect_to(mut self, url: String) -> Result<SyncClient, ClientError> {
        if self.indexed_db.is_some() {
            return Err(ClientError::Store(
                "IndexedDB persistence opens asynchronously: use SyncClient.open".into(),
            ));
        }
        let saved = match self.store.as_mut() {
            Some(store) => store.load()?,
            None => None,
        };
        let store = self.store.take().map(Persistence::Sync);
        self.start(url, saved, store)
    }

    /// Like [`SyncClientBuilder::connect`], and also opens IndexedDB persistence (loading what
    /// the last page saved) when [`SyncClientBuilder::indexed_db`] asked for it.
    pub async fn open(mut self) -> Result<SyncClient, ClientError> {
        let url = self.endpoint()?;
        let Some(database) = self.indexed_db.take() else {
            return self.connect_to(url);
        };
        let (store, saved) =
            IndexedDbStore::open(&database, &self.document_id, self.client_id.as_deref()).await?;
        self.client_id = Some(store.client_id().to_owned());
        self.start(url, saved, Some(Persistence::IndexedDb(store)))
    }

    /// The document's endpoint on the server, or why the URL or the document id cannot work.
    fn endpoint(&self) -> Result<String, ClientError> {
        crate::server::limits::validate_document_id(&self.document_id)
            .map_err(ClientError::InvalidArgument)?;
        crate::reconnect::endpoint(&self.server, &format!("/sync/{}", self.document_id))
            .map_err(ClientError::InvalidArgument)
    }

    /// Starts the client's connection loop on the endpoint `url`.
    fn start(
        self,
        url: String,
        saved: Option<ClientState>,
        store: Option<Persistence>,
    ) -> Result<SyncClient, ClientError> {
        let failures = ResolverFailures::default();
        let policy = session_policy(
            &self.policy,
            self.resolver.as_ref(),
            &self.document_id,
            &failures,
        );
        let session = crate::reconnect::open_session(
            saved,
            crate::reconnect::SessionOptions {
                document_id: self.document_id.clone(),
                client_id: self.client_id,
                token: self.token,
                policy,
                tune: self.tune,
            },
        )?;
        let (control, control_rx) = mpsc::unbounded();
        let shared = Rc::new(Shared {
            core: RefCell::new(Core {
                session,
                store,
                saves: Saves::default(),
                saved_at: performance_now(),
                writer: None,
                listeners: Vec::new(),
                resolver_failures: failures,
                waiters: Waiters::default(),
                refused: None,
                closed: false,
            }),
            control,
            epoch: performance_now(),
        });
        wasm_bindgen_futures::spawn_local(super::socket::drive(
            shared.clone() as Rc<dyn super::socket::Link>,
            url,
            self.backoff,
            control_rx,
        ));
        Ok(SyncClient::from_doc(Doc::Own(shared)))
    }
}

/// A live, offline-capable replica of one document on a server (browser side, `!Send`): a
/// client of its own ([`SyncClient::builder`], protocol version 1), or one document of a
/// [`super::SyncConnection`] (version 2). The API is the same. Clones share the one client.
#[derive(Clone)]
pub struct SyncClient {
    doc: Doc,
}

/// Where a [`SyncClient`]'s session lives.
#[derive(Clone)]
pub(super) enum Doc {
    /// Its own connection.
    Own(Rc<Shared>),
    /// One document of a shared connection.
    Shared(Rc<ConnShared>, String),
}

/// Where a [`Subscription`] finds its client again, without keeping it alive (a callback that
/// holds its own unsubscribe function would otherwise keep the client forever).
enum WeakDoc {
    Own(Weak<Shared>),
    Shared(Weak<ConnShared>, String),
}

/// What [`SyncClient::on_events`] calls.
type Callback = Rc<dyn Fn(&[ClientEvent])>;

/// A callback of [`SyncClient::on_events`]: it gets the events of one step together (a
/// catch-up page is one call).
#[derive(Clone)]
pub(super) struct Listener {
    callback: Callback,
    /// Cleared by [`Subscription::cancel`], so that a listener cancelled while the listeners of
    /// a step are being called is not called after it.
    live: Rc<Cell<bool>>,
}

impl Listener {
    /// Calls the listener with a step's events, unless it was cancelled.
    pub(super) fn call(&self, events: &[ClientEvent]) {
        if self.live.get() {
            (self.callback)(events);
        }
    }

    /// Whether this is the listener of the subscription whose flag is `live`.
    pub(super) fn is(&self, live: &Rc<Cell<bool>>) -> bool {
        Rc::ptr_eq(&self.live, live)
    }
}

/// What [`SyncClient::on_event`], [`SyncClient::on_events`] and [`SyncClient::on_presence`]
/// return: [`Subscription::cancel`] removes the callback. Dropping it leaves the callback in
/// place (most live as long as the client), and it does not keep the client alive.
pub struct Subscription {
    doc: WeakDoc,
    live: Rc<Cell<bool>>,
}

impl Subscription {
    /// Removes the callback: it is not called again, not even for the rest of the events being
    /// delivered when it is cancelled (from a callback, say). Cancelling again does nothing.
    pub fn cancel(&self) {
        if !self.live.replace(false) {
            return;
        }
        let doc = match &self.doc {
            WeakDoc::Own(shared) => shared.upgrade().map(Doc::Own),
            WeakDoc::Shared(connection, document_id) => connection
                .upgrade()
                .map(|connection| Doc::Shared(connection, document_id.clone())),
        };
        if let Some(doc) = doc {
            doc.unlisten(&self.live);
        }
    }

    /// Whether the callback is still registered (not cancelled).
    pub fn is_active(&self) -> bool {
        self.live.get()
    }
}

impl Doc {
    /// Runs `f` on the session, then carries out its outputs. `Closed` once the client (or the
    /// document on its connection) was closed: its edits would go nowhere.
    fn with_session<T>(
        &self,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> Result<T, ClientError> {
        match self {
            Doc::Own(shared) => {
                if shared.core.borrow().closed {
                    return Err(ClientError::Closed);
                }
                Ok(shared.with_session(f).0)
            }
            Doc::Shared(connection, document_id) => connection.with_session(document_id, f),
        }
    }

    /// Reads the session.
    fn read<T>(&self, f: impl FnOnce(&SyncSession) -> T) -> T {
        match self {
            Doc::Own(shared) => f(&shared.core.borrow().session),
            Doc::Shared(connection, document_id) => connection.read(document_id, f),
        }
    }

    fn listen(&self, callback: Callback) -> Subscription {
        let live = Rc::new(Cell::new(true));
        let listener = Listener {
            callback,
            live: live.clone(),
        };
        let doc = match self {
            Doc::Own(shared) => {
                shared.core.borrow_mut().listeners.push(listener);
                WeakDoc::Own(Rc::downgrade(shared))
            }
            Doc::Shared(connection, document_id) => {
                connection.listen(document_id, listener);
                WeakDoc::Shared(Rc::downgrade(connection), document_id.clone())
            }
        };
        Subscription { doc, live }
    }

    fn unlisten(&self, live: &Rc<Cell<bool>>) {
        match self {
            Doc::Own(shared) => shared.core.borrow_mut().listeners.retain(|l| !l.is(live)),
            Doc::Shared(connection, document_id) => connection.unlisten(document_id, live),
        }
    }

    fn wait(&self, until: WaitFor) -> oneshot::Receiver<Result<(), ClientError>> {
        match self {
            Doc::Own(shared) => {
                let mut core = shared.core.borrow_mut();
                let receiver = core.waiters.add(until);
                core.settle_waiters(&[]);
                receiver
            }
            Doc::Shared(connection, document_id) => connection.wait(document_id, until),
        }
    }

    /// The number of the last save begun.
    fn saves_begun(&self) -> u64 {
        match self {
            Doc::Own(shared) => shared.core.borrow().saves.begun,
            Doc::Shared(connection, _) => connection.saves_begun(),
        }
    }
}

/// Undo and redo of this client's own edits.
impl SyncClient {
    crate::undo::client_undo_api!();
}

impl SyncClient {
    pub(super) fn from_doc(doc: Doc) -> Self {
        SyncClient { doc }
    }

    /// Settings for a client of `document_id` on the server at `server` (`ws://host:port`).
    pub fn builder(server: impl Into<String>, document_id: impl Into<String>) -> SyncClientBuilder {
        SyncClientBuilder {
            server: server.into(),
            document_id: document_id.into(),
            client_id: None,
            token: None,
            policy: ConflictPolicy::default(),
            resolver: None,
            store: None,
            indexed_db: None,
            backoff: Backoff::default(),
            tune: None,
        }
    }

    /// Calls `callback` for every event (applied events, acks, conflicts, status, errors),
    /// until [`Subscription::cancel`].
    pub fn on_event(&self, callback: impl Fn(&ClientEvent) + 'static) -> Subscription {
        self.on_events(move |events| events.iter().for_each(&callback))
    }

    /// Calls `callback` with the events of each step at once (all the events of a catch-up page
    /// in one call): one re-render, or one crossing into JavaScript, per batch. Until
    /// [`Subscription::cancel`].
    pub fn on_events(&self, callback: impl Fn(&[ClientEvent]) + 'static) -> Subscription {
        self.doc.listen(Rc::new(callback))
    }

    /// Runs `f` on the document as the app sees it (confirmed plus pending edits; `None` if it
    /// does not exist), without copying it.
    pub fn with_document<T>(&self, f: impl FnOnce(Option<&Value>) -> T) -> T {
        self.doc.read(|s| f(s.document()))
    }

    /// The document as the app sees it; `None` if it does not exist.
    pub fn document(&self) -> Option<Value> {
        self.with_document(|doc| doc.cloned())
    }

    /// Connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.doc.read(SyncSession::status)
    }

    /// Local edits not yet in the server's log.
    pub fn pending_count(&self) -> usize {
        self.doc.read(SyncSession::pending_count)
    }

    /// The `sequenceNum` of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.doc.read(SyncSession::applied_seq)
    }

    /// The state vector: per client id, the highest `sequenceNum` of its events applied here.
    pub fn state_vector(&self) -> VectorClock {
        self.doc.read(|s| s.state_vector().clone())
    }

    /// The client's id.
    pub fn client_id(&self) -> String {
        self.doc.read(|s| s.config().client_id.clone())
    }

    /// Records that events of `client_id` up to `sequence_num` are known (see
    /// [`SyncSession::update_state_vector`]).
    pub fn update_state_vector(&self, client_id: &str, sequence_num: u64) {
        // A closed client has nothing to update.
        let _ = self
            .doc
            .with_session(|s, _| s.update_state_vector(client_id, sequence_num));
    }

    /// Applies an RFC 6902 patch locally at once and queues it for the server. Returns its
    /// `clientSeq`. On error nothing changes. The patch may be parsed operations or plain JSON.
    pub fn edit<P: crate::reconnect::IntoPatch>(&self, patch: P) -> Result<u64, ClientError> {
        let patch = patch.into_patch().map_err(ClientError::InvalidArgument)?;
        Ok(self.doc.with_session(|s, now| s.edit(now, patch))??)
    }

    /// Creates the document (it must not exist).
    pub fn create(&self, document: Value) -> Result<u64, ClientError> {
        Ok(self.doc.with_session(|s, now| s.create(now, document))??)
    }

    /// Deletes the document.
    pub fn delete(&self) -> Result<u64, ClientError> {
        Ok(self.doc.with_session(|s, now| s.delete(now))??)
    }

    /// Resolves once the client is online and has caught up with the server's log.
    pub async fn sync_state(&self) -> Result<(), ClientError> {
        let receiver = self.doc.wait(WaitFor::Synced);
        self.doc.with_session(|s, now| s.sync_state(now))?;
        receiver.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.doc
            .wait(WaitFor::Flushed)
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Resolves once every local edit made so far is saved in the client's store (IndexedDB
    /// commits a moment after `edit` returns; memory and synchronous stores at once).
    pub async fn saved(&self) -> Result<(), ClientError> {
        let begun = self.doc.saves_begun();
        self.doc
            .wait(WaitFor::Saved(begun))
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Shows `state` (any JSON value: a cursor, a selection, a name) to the other peers of the
    /// document, and sees theirs with [`SyncClient::others`]: presence, never stored. Updates
    /// are sent at most every 100 ms (the latest wins), kept while offline and published again
    /// after every reconnect. Presence rides on protocol version 2: a document opened through a
    /// [`super::SyncConnection`] has it, a client of its own refuses with
    /// [`PresenceError::NeedsConnection`]. A state over 4 KiB of JSON is refused with
    /// [`PresenceError::TooLarge`], one holding an integer beyond +/-(2^53 - 1) (which
    /// JavaScript peers would read rounded) with [`PresenceError::UnsafeInteger`].
    pub fn set_presence(&self, state: Value) -> Result<(), ClientError> {
        match &self.doc {
            Doc::Own(_) => Err(PresenceError::NeedsConnection.into()),
            Doc::Shared(connection, document_id) => connection.set_presence(document_id, state),
        }
    }

    /// Stops showing presence on the document.
    pub fn clear_presence(&self) -> Result<(), ClientError> {
        self.set_presence(Value::Null)
    }

    /// The other peers on the document with presence (each one's client id, state and since
    /// when), in client id order. Empty while the document is not open on the server.
    pub fn others(&self) -> Vec<PresencePeer> {
        match &self.doc {
            Doc::Own(_) => Vec::new(),
            Doc::Shared(connection, document_id) => connection.others(document_id),
        }
    }

    /// Calls `callback` with all the other peers each time someone joins, moves or leaves,
    /// until [`Subscription::cancel`].
    pub fn on_presence(&self, callback: impl Fn(&[PresencePeer]) + 'static) -> Subscription {
        self.on_event(move |event| {
            if let SessionEvent::Presence(others) = event {
                callback(others);
            }
        })
    }

    /// Closes the connection and stops reconnecting (a document of a [`super::SyncConnection`]:
    /// closes just that document); waiting calls fail with `Closed`, and so do edits from now on.
    /// The store keeps everything pending: what could wait is saved now, then the store is let go
    /// (another client may take its record).
    pub fn close(&self) {
        match &self.doc {
            Doc::Own(shared) => shared.close(),
            Doc::Shared(connection, document_id) => connection.close_document(document_id),
        }
    }
}
