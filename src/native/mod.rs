//! [`SyncClient`]: the native driver, a thin tokio loop around [`SyncSession`].
//!
//! The session decides everything; this file moves frames between it and a tokio-tungstenite
//! WebSocket, keeps time, saves the session's state to a [`Store`] when told to, reconnects with
//! exponential backoff and jitter, and hands events to the app (callbacks and a `Stream`).
//!
//! ```no_run
//! use eventsync::{ConflictPolicy, SessionEvent, SyncClient};
//! use serde_json::json;
//!
//! # #[tokio::main] async fn main() -> Result<(), eventsync::ClientError> {
//! // `cargo run -p eventsync-server` serves ws://127.0.0.1:8080.
//! let client = SyncClient::builder("ws://127.0.0.1:8080", "todo")
//!     .client_id("alice")
//!     .file_store("todo.eventsync.json") // offline edits survive the app closing
//!     .conflict_policy(ConflictPolicy::ClientWins)
//!     .connect()?; // returns at once: edits work offline from here on
//! client.on_event(|event| {
//!     if let SessionEvent::Applied { event, own: false } = event {
//!         println!("#{} from {}", event.sequence_num, event.client_id);
//!     }
//! });
//! client.sync_state().await?; // online and caught up
//! if client.document().is_none() {
//!     client.create(json!({"items": []}))?;
//! }
//! client.edit(json!([{"op": "add", "path": "/items/-", "value": "milk"}]))?;
//! client.update(|doc| doc["title"] = json!("groceries"))?; // the difference is the edit
//! client.flush().await?; // both edits are in the server's log
//! println!("{}", client.document().unwrap());
//! client.close().await;
//! # Ok(()) }
//! ```

mod connection;
mod history;
mod link;
mod single;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

pub use connection::{SyncConnection, SyncConnectionBuilder};
use single::{Core, Shared};

use crate::conflict::ConflictPolicy;
use crate::multiplex::PresenceError;
use crate::protocol::{ErrorCode, PresencePeer};
use crate::queue::{FileStore, Store, StoreError};
pub use crate::reconnect::Backoff;
use crate::reconnect::IntoPatch;
use crate::session::{
    ConnectionStatus, Output, SessionConfig, SessionError, SessionEvent, SyncSession,
};

/// What apps receive: the session's events, plus `Status(Reconnecting)` from the driver.
pub type ClientEvent = SessionEvent;

/// The events of one dispatch, as streams and waiters receive them: one broadcast (and one
/// wake-up of each waiting reader) per frame handled, not per event (a catch-up page holds a
/// thousand).
type Batch = Arc<[ClientEvent]>;

/// Errors of the native client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local operation failed (the document is unchanged).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The offline store failed. From a call that edits (`edit`, `update`, `create`, `delete`,
    /// `undo`, ...): saving the edit failed, so it was withdrawn (the document is unchanged and
    /// nothing of it was sent).
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Waiting took longer than allowed.
    #[error("timed out")]
    Timeout,
    /// A presence state was refused (too large, or a client without presence).
    #[error(transparent)]
    Presence(#[from] PresenceError),
    /// An argument cannot work: a server URL that is not a WebSocket server's address, a
    /// document id outside the rules of the protocol (section 1).
    #[error("{0}")]
    InvalidArgument(String),
}

type Tune = Box<dyn FnOnce(&mut SessionConfig) + Send>;

/// Settings for [`SyncClientBuilder::connect`].
pub struct SyncClientBuilder {
    server: String,
    document_id: String,
    client_id: Option<String>,
    token: Option<String>,
    policy: ConflictPolicy,
    store: Option<Box<dyn Store + Send>>,
    backoff: Backoff,
    tune: Option<Tune>,
}

impl SyncClientBuilder {
    crate::reconnect::shared_builder_settings!();

    /// Keeps the offline queue, the last document and the state vector in a file, so that they
    /// survive the app being closed.
    pub fn file_store(self, path: impl Into<PathBuf>) -> Self {
        self.store(FileStore::new(path.into()))
    }

    /// Keeps the client's state in any [`Store`].
    pub fn store(mut self, store: impl Store + Send + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Adjusts the session's timers and batch size.
    pub fn session_config(
        mut self,
        tune: impl FnOnce(&mut SessionConfig) + Send + 'static,
    ) -> Self {
        self.tune = Some(Box::new(tune));
        self
    }

    /// Loads the store, starts the connection task and returns at once: edits work offline
    /// from the first moment. Must be called within a tokio runtime.
    pub fn connect(self) -> Result<SyncClient, ClientError> {
        crate::server::limits::validate_document_id(&self.document_id)
            .map_err(ClientError::InvalidArgument)?;
        let url = crate::reconnect::endpoint(&self.server, &format!("/sync/{}", self.document_id))
            .map_err(ClientError::InvalidArgument)?;
        let mut store = self.store;
        let saved = store.as_mut().map(|s| s.load()).transpose()?.flatten();
        let session = crate::reconnect::open_session(
            saved,
            crate::reconnect::SessionOptions {
                document_id: self.document_id.clone(),
                client_id: self.client_id,
                token: self.token,
                policy: self.policy,
                tune: self.tune,
            },
        )?;
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                session,
                store,
                writer: None,
                listeners: Listeners::default(),
                refused: None,
                saved_at: Instant::now(),
                closed: false,
            }),
            events,
            wake: Notify::new(),
            closed: Notify::new(),
            epoch: Instant::now(),
        });
        let task = tokio::spawn(link::drive(shared.clone(), url, self.backoff));
        Ok(SyncClient {
            doc: Doc::Own(shared),
            task: Mutex::new(Some(task)),
        })
    }
}

/// A live, offline-capable replica of one document on a server: a client of its own
/// ([`SyncClient::builder`], protocol version 1), or one document of a [`SyncConnection`]
/// (version 2). The API is the same.
pub struct SyncClient {
    doc: Doc,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Where a [`SyncClient`]'s session lives.
enum Doc {
    /// Its own connection.
    Own(Arc<Shared>),
    /// One document of a shared connection.
    Shared(Arc<connection::ConnShared>, String),
}

/// What [`SyncClient::on_events`] calls.
type Callback = Arc<dyn Fn(&[ClientEvent]) + Send + Sync>;

/// A callback of [`SyncClient::on_events`]: it gets the events of one step together (a
/// catch-up page is one call).
#[derive(Clone)]
struct Listener {
    callback: Callback,
    /// Cleared by [`Subscription::cancel`], so that a listener cancelled while the listeners of
    /// a step are being called is not called after it.
    live: Arc<AtomicBool>,
}

impl Listener {
    /// Calls the listener with a step's events, unless it was cancelled.
    fn call(&self, events: &[ClientEvent]) {
        if self.live.load(Ordering::Acquire) {
            (self.callback)(events);
        }
    }

    /// Whether this is the listener of the subscription whose flag is `live`.
    fn is(&self, live: &Arc<AtomicBool>) -> bool {
        Arc::ptr_eq(&self.live, live)
    }
}

/// A document's callbacks, shared as they are when a step's events go out: taking them costs a
/// reference count, not a copy of the list per frame. Subscribing and cancelling make a new list.
#[derive(Clone, Default)]
struct Listeners(Arc<[Listener]>);

impl Listeners {
    fn add(&mut self, listener: Listener) {
        self.0 = self.0.iter().cloned().chain([listener]).collect();
    }

    /// Removes the listener of the subscription whose flag is `live`.
    fn remove(&mut self, live: &Arc<AtomicBool>) {
        self.0 = self.0.iter().filter(|l| !l.is(live)).cloned().collect();
    }

    /// Calls every listener with a step's events.
    fn call(&self, events: &[ClientEvent]) {
        for listener in self.0.iter() {
            listener.call(events);
        }
    }
}

/// Where a [`Subscription`] finds its client again, without keeping it alive.
enum WeakDoc {
    Own(Weak<Shared>),
    Shared(Weak<connection::ConnShared>, String),
}

/// What [`SyncClient::on_event`], [`SyncClient::on_events`] and [`SyncClient::on_presence`]
/// return: [`Subscription::cancel`] removes the callback. Dropping it leaves the callback in
/// place (most live as long as the client), and it does not keep the client alive.
pub struct Subscription {
    doc: WeakDoc,
    live: Arc<AtomicBool>,
}

impl Subscription {
    /// Removes the callback: it is not called again once this returns, not even for the rest of
    /// the events being delivered (a callback may cancel itself). Cancelling again does nothing.
    ///
    /// A call already running on another thread finishes.
    pub fn cancel(&self) {
        if !self.live.swap(false, Ordering::AcqRel) {
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
        self.live.load(Ordering::Acquire)
    }
}

/// Changes that lose nothing when lost (applied events) are saved at most this often.
const LAZY_SAVE: Duration = Duration::from_secs(1);

/// Runs an app's call `f` on `session`. When it made a local edit (`edit`, `create`, `undo`,
/// ...: a new last pending edit), saves it to `store` at once, before the session's outputs go
/// anywhere: the `Output::Persist` the edit asked for comes out of `poll_output` before
/// anything else, so the `submit` carrying the edit is still in the session. When that save
/// fails the edit is withdrawn ([`SyncSession::withdraw_unsaved`]) and the call fails with the
/// store's error (`f`'s result is dropped): nothing of the edit is kept or sent. The session's
/// other outputs are left for the driver.
fn save_local_edit<T>(
    session: &mut SyncSession,
    store: Option<&mut Box<dyn Store + Send>>,
    saved_at: &mut Instant,
    now: u64,
    f: impl FnOnce(&mut SyncSession, u64) -> T,
) -> Result<T, ClientError> {
    let last = |session: &SyncSession| session.pending().last().map(|p| p.client_seq);
    let before = last(session);
    let result = f(session, now);
    let Some(client_seq) = last(session).filter(|seq| Some(*seq) > before) else {
        return Ok(result);
    };
    let persist = session.poll_output();
    debug_assert!(
        matches!(persist, Some(Output::Persist)),
        "a local edit asks for a save before anything else"
    );
    let Some(store) = store else {
        return Ok(result);
    };
    *saved_at = Instant::now();
    match store.save(&session.client_state()) {
        Ok(()) => Ok(result),
        Err(err) => {
            let withdrawn = session.withdraw_unsaved(now, client_seq);
            debug_assert!(withdrawn, "nothing of the edit left the session");
            Err(ClientError::Store(err))
        }
    }
}

impl Doc {
    /// Runs `f` on the session, then carries out its outputs. `Closed` for a document of a
    /// connection that the app closed: its edits would go nowhere. A local edit `f` made is
    /// saved first; when that fails the edit is withdrawn and this fails with
    /// [`ClientError::Store`] (see [`save_local_edit`]).
    fn with_session<T>(
        &self,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> Result<T, ClientError> {
        match self {
            Doc::Own(shared) if shared.lock().closed => Err(ClientError::Closed),
            Doc::Own(shared) => shared.local(f),
            Doc::Shared(connection, document_id) => connection.with_session(document_id, f),
        }
    }

    /// Reads the session.
    fn read<T>(&self, f: impl FnOnce(&SyncSession) -> T) -> T {
        match self {
            Doc::Own(shared) => f(&shared.lock().session),
            Doc::Shared(connection, document_id) => connection.read(document_id, f),
        }
    }

    /// The app closed the client (or this document of its connection).
    fn is_closed(&self) -> bool {
        match self {
            Doc::Own(shared) => shared.lock().closed,
            Doc::Shared(connection, document_id) => connection.is_closed(document_id),
        }
    }

    /// Why the server refused this document for good, if it did.
    fn refused(&self) -> Option<(Option<ErrorCode>, String)> {
        match self {
            Doc::Own(shared) => shared.lock().refused.clone(),
            Doc::Shared(connection, document_id) => connection.refused(document_id),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Batch> {
        match self {
            Doc::Own(shared) => shared.events.subscribe(),
            Doc::Shared(connection, document_id) => connection.subscribe(document_id),
        }
    }

    fn listen(&self, callback: Callback) -> Subscription {
        let live = Arc::new(AtomicBool::new(true));
        let listener = Listener {
            callback,
            live: live.clone(),
        };
        let doc = match self {
            Doc::Own(shared) => {
                shared.lock().listeners.add(listener);
                WeakDoc::Own(Arc::downgrade(shared))
            }
            Doc::Shared(connection, document_id) => {
                connection.listen(document_id, listener);
                WeakDoc::Shared(Arc::downgrade(connection), document_id.clone())
            }
        };
        Subscription { doc, live }
    }

    fn unlisten(&self, live: &Arc<AtomicBool>) {
        match self {
            Doc::Own(shared) => shared.lock().listeners.remove(live),
            Doc::Shared(connection, document_id) => connection.unlisten(document_id, live),
        }
    }
}

/// Undo and redo of this client's own edits.
impl SyncClient {
    crate::undo::client_undo_api!();
}

impl SyncClient {
    /// Settings for a client of `document_id` on the server at `server` (`ws://host:port`).
    pub fn builder(server: impl Into<String>, document_id: impl Into<String>) -> SyncClientBuilder {
        SyncClientBuilder {
            server: server.into(),
            document_id: document_id.into(),
            client_id: None,
            token: None,
            policy: ConflictPolicy::default(),
            store: None,
            backoff: Backoff::default(),
            tune: None,
        }
    }

    /// Calls `callback` for every event (applied events, acks, conflicts, status, errors),
    /// until [`Subscription::cancel`]. Callbacks run outside the client's lock: they may call
    /// the client.
    pub fn on_event(
        &self,
        callback: impl Fn(&ClientEvent) + Send + Sync + 'static,
    ) -> Subscription {
        self.on_events(move |events| events.iter().for_each(&callback))
    }

    /// Calls `callback` with the events of each step at once (all the events of a catch-up page
    /// in one call), in order: one re-render per batch. Until [`Subscription::cancel`].
    pub fn on_events(
        &self,
        callback: impl Fn(&[ClientEvent]) + Send + Sync + 'static,
    ) -> Subscription {
        self.doc.listen(Arc::new(callback))
    }

    /// Every event from now on, as a stream. A reader more than 1024 batches (the events of
    /// one frame each) behind skips the oldest; use [`SyncClient::on_event`] where every event
    /// matters.
    pub fn events(&self) -> futures::stream::BoxStream<'static, ClientEvent> {
        let receiver = self.doc.subscribe();
        let batches = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(batch) => return Some((batch, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        batches
            .flat_map(|batch| {
                let events: Vec<ClientEvent> = batch.to_vec();
                futures::stream::iter(events)
            })
            .boxed()
    }

    /// The document as the app sees it (confirmed plus pending edits); `None` if it does not
    /// exist.
    pub fn document(&self) -> Option<Value> {
        self.doc.read(|s| s.document().cloned())
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

    /// The client's id.
    pub fn client_id(&self) -> String {
        self.doc.read(|s| s.config().client_id.clone())
    }

    /// The state vector (origin -> highest `sequenceNum` applied).
    pub fn state_vector(&self) -> crate::VectorClock {
        self.doc.read(|s| s.state_vector().clone())
    }

    /// Records that events of `client_id` up to `sequence_num` are known (see
    /// [`SyncSession::update_state_vector`]).
    pub fn update_state_vector(&self, client_id: &str, sequence_num: u64) {
        // A closed document has nothing to update.
        let _ = self
            .doc
            .with_session(|s, _| s.update_state_vector(client_id, sequence_num));
    }

    /// Applies an RFC 6902 patch locally at once, persists it, and queues it for the server.
    /// Returns its `clientSeq`. On error nothing changes: an edit the store cannot save is
    /// withdrawn and the call fails with [`ClientError::Store`] (so do the other calls that
    /// edit). The patch may be parsed operations or plain JSON:
    /// `client.edit(json!([{"op": "add", "path": "/items/-", "value": 1}]))`.
    pub fn edit<P: IntoPatch>(&self, patch: P) -> Result<u64, ClientError> {
        let patch = patch.into_patch().map_err(ClientError::InvalidArgument)?;
        Ok(self.doc.with_session(|s, now| s.edit(now, patch))??)
    }

    /// Edits by closure: the document is changed in place and the difference is the edit.
    ///
    /// The closure runs while the client is locked (so that no remote event lands between
    /// reading the document and queueing the difference): it must not call the client.
    pub fn update(&self, change: impl FnOnce(&mut Value)) -> Result<u64, ClientError> {
        let result = self.doc.with_session(|s, now| {
            let before = s.document().ok_or(SessionError::NoDocument)?;
            let mut after = before.clone();
            change(&mut after);
            let difference = json_patch::diff(before, &after).0;
            s.edit(now, difference)
        });
        Ok(result??)
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
        let mut events = self.doc.subscribe();
        self.doc.with_session(|s, now| s.sync_state(now))?;
        loop {
            if let Some((code, message)) = self.doc.refused() {
                return Err(ClientError::Refused { code, message });
            }
            match events.recv().await {
                Ok(batch)
                    if batch
                        .iter()
                        .any(|e| matches!(e, SessionEvent::Synced { .. })) =>
                {
                    return Ok(())
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(ClientError::Closed),
            }
        }
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let mut events = self.doc.subscribe();
        loop {
            if self.doc.read(SyncSession::pending_count) == 0 {
                return Ok(());
            }
            if let Some((code, message)) = self.doc.refused() {
                return Err(ClientError::Refused { code, message });
            }
            if self.doc.is_closed() {
                return Err(ClientError::Closed);
            }
            if let Err(broadcast::error::RecvError::Closed) = events.recv().await {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Resolves once every local edit made so far is saved in the client's store. Native
    /// stores save before `edit` returns (an edit they cannot save fails), so this is ready at
    /// once (it exists for parity with the browser client, whose IndexedDB saves finish later).
    pub async fn saved(&self) -> Result<(), ClientError> {
        Ok(())
    }

    /// Shows `state` (any JSON value: a cursor, a selection, a name) to the other peers of the
    /// document, and sees theirs with [`SyncClient::others`]: presence, never stored. Updates
    /// are sent at most every 100 ms (the latest wins), kept while offline and published again
    /// after every reconnect. Presence rides on protocol version 2: a document opened through a
    /// [`SyncConnection`] has it, a client of its own refuses with
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
    pub fn on_presence(
        &self,
        callback: impl Fn(&[PresencePeer]) + Send + Sync + 'static,
    ) -> Subscription {
        self.on_event(move |event| {
            if let SessionEvent::Presence(others) = event {
                callback(others);
            }
        })
    }

    /// Closes the connection and stops reconnecting (a document of a [`SyncConnection`]: closes
    /// just that document). The store keeps everything pending.
    pub async fn close(&self) {
        match &self.doc {
            Doc::Own(shared) => {
                let mut events = Vec::new();
                {
                    let mut core = shared.lock();
                    core.closed = true;
                    if core.session.needs_save() {
                        core.save_lazily(&mut events);
                    }
                }
                shared.dispatch(events);
                shared.closed.notify_waiters();
                shared.closed.notify_one();
                let task = self.task.lock().ok().and_then(|mut t| t.take());
                if let Some(task) = task {
                    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                }
            }
            Doc::Shared(connection, document_id) => connection.close_document(document_id),
        }
    }
}

impl Drop for SyncClient {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}
