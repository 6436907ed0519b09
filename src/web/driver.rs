//! [`SyncClient`]: the browser driver, a thin `wasm-bindgen-futures` loop around [`SyncSession`].
//!
//! It mirrors `src/native.rs`: the session decides everything; this file moves frames between it
//! and a WebSocket (gloo-net over the global `WebSocket`), keeps time (`performance.now()`),
//! saves the session's state to a [`Store`] when told to, reconnects with exponential backoff
//! and jitter, and hands events to the app. Everything lives on the one JavaScript thread:
//! shared state is `Rc<RefCell<..>>`, and nothing here is `Send`.
//!
//! Persistence: [`SyncClientBuilder::indexed_db`] keeps the state in IndexedDB (opened by
//! [`SyncClientBuilder::open`]); [`SyncClientBuilder::store`] takes any synchronous [`Store`];
//! without either the state lives in memory only. IndexedDB saves complete later, so every frame
//! the session sends after an `Output::Persist` waits until that save is durable ([`Saves`]):
//! an edit is on disk before the server can acknowledge it (DESIGN invariant 8).

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::TimeoutFuture;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::conflict::ConflictPolicy;
use crate::protocol::{self, ErrorCode};
use crate::queue::{ClientState, Store, StoreError};
use crate::reconnect::Backoff;
use crate::session::{
    ConnectionStatus, Output, SessionConfig, SessionError, SessionEvent, SyncSession,
};
use crate::vector_clock::VectorClock;
use crate::web::idb::{IndexedDbStore, DEFAULT_DATABASE};

/// What apps receive: the session's events, plus `Status(Reconnecting)` from the driver.
pub type ClientEvent = SessionEvent;

/// Errors of the browser client (the same cases as the native one).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local operation failed (the document is unchanged).
    #[error("{0}")]
    Session(String),
    /// The offline store failed.
    #[error("{0}")]
    Store(String),
    /// The server refused this client for good (bad token, unsupported version, ...).
    #[error("the server refused the connection ({code:?}): {message}")]
    Refused {
        /// The protocol code.
        code: Option<ErrorCode>,
        /// The server's message.
        message: String,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl From<SessionError> for ClientError {
    fn from(err: SessionError) -> Self {
        ClientError::Session(err.to_string())
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
    fn performance_now() -> f64;
}

/// How long opening a WebSocket may take.
const CONNECT_TIMEOUT_MS: u32 = 10_000;

/// Changes that lose nothing when lost (applied events) are saved at most this often.
const LAZY_SAVE_MS: f64 = 1_000.0;

type Tune = Box<dyn FnOnce(&mut SessionConfig)>;

/// Settings for [`SyncClientBuilder::connect`].
pub struct SyncClientBuilder {
    server: String,
    document_id: String,
    client_id: Option<String>,
    token: Option<String>,
    policy: ConflictPolicy,
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

    /// Loads the store, starts the connection loop and returns at once: edits work offline
    /// from the first moment. IndexedDB opens asynchronously: use [`SyncClientBuilder::open`].
    pub fn connect(mut self) -> Result<SyncClient, ClientError> {
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
        self.start(saved, store)
    }

    /// Like [`SyncClientBuilder::connect`], and also opens IndexedDB persistence (loading what
    /// the last page saved) when [`SyncClientBuilder::indexed_db`] asked for it.
    pub async fn open(mut self) -> Result<SyncClient, ClientError> {
        let Some(database) = self.indexed_db.take() else {
            return self.connect();
        };
        let (store, saved) =
            IndexedDbStore::open(&database, &self.document_id, self.client_id.as_deref()).await?;
        self.client_id = Some(store.client_id().to_owned());
        self.start(saved, Some(Persistence::IndexedDb(store)))
    }

    fn start(
        self,
        saved: Option<ClientState>,
        store: Option<Persistence>,
    ) -> Result<SyncClient, ClientError> {
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
        let (control, control_rx) = mpsc::unbounded();
        let shared = Rc::new(Shared {
            core: RefCell::new(Core {
                session,
                store,
                saves: Saves::default(),
                saved_at: performance_now(),
                writer: None,
                listeners: Vec::new(),
                waiters: Vec::new(),
                refused: None,
                closed: false,
            }),
            control,
            epoch: performance_now(),
        });
        let url = format!(
            "{}/sync/{}",
            self.server.trim_end_matches('/'),
            self.document_id
        );
        wasm_bindgen_futures::spawn_local(drive(shared.clone(), url, self.backoff, control_rx));
        Ok(SyncClient { shared })
    }
}

/// A live, offline-capable replica of one document on a server (browser side, `!Send`).
/// Clones share the one client.
#[derive(Clone)]
pub struct SyncClient {
    shared: Rc<Shared>,
}

/// Listeners get the events of one step together (a catch-up page is one call).
type Listener = Rc<dyn Fn(&[ClientEvent])>;

/// Signals to the connection loop.
enum Control {
    /// Something changed the session's deadlines: re-read them.
    Wake,
    /// `close()` was called.
    Close,
}

/// What a `sync_state()`, `flush()` or `saved()` call waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WaitFor {
    Synced,
    Flushed,
    /// Save number `n` (and those before it) ended.
    Saved(u64),
}

struct Waiter {
    until: WaitFor,
    done: oneshot::Sender<Result<(), ClientError>>,
}

struct Shared {
    core: RefCell<Core>,
    control: mpsc::UnboundedSender<Control>,
    epoch: f64,
}

/// Where the client's state survives reloads.
enum Persistence {
    /// Any synchronous [`Store`]: saves are done when `save` returns.
    Sync(Box<dyn Store>),
    /// IndexedDB: saves are done later.
    IndexedDb(IndexedDbStore),
}

impl Persistence {
    fn save(&mut self, state: &ClientState) -> LocalBoxFuture<'static, Result<(), StoreError>> {
        match self {
            Persistence::Sync(store) => futures::future::ready(store.save(state)).boxed_local(),
            Persistence::IndexedDb(store) => store.save(state).boxed_local(),
        }
    }
}

/// Saves in flight, and the frames that wait for them. Saves are numbered; a frame the session
/// sent after an `Output::Persist` waits for that save (or a later one) to be durable. IndexedDB
/// commits read-write transactions on one store in the order they began, so "durable" only grows.
#[derive(Default)]
struct Saves {
    /// The number of the last save begun.
    begun: u64,
    /// The number of the last save known durable (or failed: failing it loses nothing sent).
    durable: u64,
    /// Frames waiting, in the order the session sent them: (save awaited, connection, frame).
    waiting: Vec<(u64, mpsc::UnboundedSender<String>, String)>,
    /// Why the last save that ended failed, if it did.
    failure: Option<String>,
}

struct Core {
    session: SyncSession,
    /// Where the client's state survives restarts; `None` keeps it in memory only.
    store: Option<Persistence>,
    saves: Saves,
    /// When the state was last saved (`performance.now()`).
    saved_at: f64,
    /// The current connection's outgoing frames.
    writer: Option<mpsc::UnboundedSender<String>>,
    listeners: Vec<Listener>,
    waiters: Vec<Waiter>,
    /// Set when the server refused us for good.
    refused: Option<(Option<ErrorCode>, String)>,
    closed: bool,
}

impl Core {
    /// Begins saving the session's state; returns the save's number and its completion.
    fn begin_save(&mut self) -> Option<(u64, LocalBoxFuture<'static, Result<(), StoreError>>)> {
        let store = self.store.as_mut()?;
        let state = self.session.client_state();
        self.session.mark_saved();
        self.saved_at = performance_now();
        self.saves.begun += 1;
        Some((self.saves.begun, store.save(&state)))
    }

    /// Save `number` ended: sends the frames that waited for it.
    fn save_ended(
        &mut self,
        number: u64,
        result: Result<(), StoreError>,
        events: &mut Vec<ClientEvent>,
    ) {
        self.saves.failure = None;
        if let Err(err) = result {
            let message = format!("could not save the client state: {err}");
            self.saves.failure = Some(message.clone());
            events.push(SessionEvent::Error {
                code: None,
                message,
            });
        }
        self.saves.durable = self.saves.durable.max(number);
        let durable = self.saves.durable;
        let ready = self
            .saves
            .waiting
            .iter()
            .take_while(|(awaited, _, _)| *awaited <= durable)
            .count();
        for (_, connection, frame) in self.saves.waiting.drain(..ready) {
            let _ = connection.unbounded_send(frame);
        }
        self.settle_waiters(&[]);
    }

    /// Resolves the waiters whose condition holds, given the events just emitted.
    fn settle_waiters(&mut self, events: &[ClientEvent]) {
        let synced = events
            .iter()
            .any(|e| matches!(e, SessionEvent::Synced { .. }));
        let flushed = self.session.pending_count() == 0;
        let failure = if let Some((code, message)) = &self.refused {
            Some(ClientError::Refused {
                code: *code,
                message: message.clone(),
            })
        } else if self.closed {
            Some(ClientError::Closed)
        } else {
            None
        };
        for waiter in std::mem::take(&mut self.waiters) {
            let result = match (&failure, waiter.until) {
                // Saves finish even after close() (it begins the last one itself).
                (_, WaitFor::Saved(number)) if self.saves.durable >= number => {
                    match &self.saves.failure {
                        Some(message) => Err(ClientError::Store(message.clone())),
                        None => Ok(()),
                    }
                }
                (_, WaitFor::Saved(_)) => {
                    self.waiters.push(waiter);
                    continue;
                }
                (Some(err), _) => Err(err.clone()),
                (None, WaitFor::Synced) if synced => Ok(()),
                (None, WaitFor::Flushed) if flushed => Ok(()),
                _ => {
                    self.waiters.push(waiter);
                    continue;
                }
            };
            let _ = waiter.done.send(result);
        }
    }
}

impl Shared {
    fn now(&self) -> u64 {
        (performance_now() - self.epoch).max(0.0) as u64
    }

    /// Runs `f` on the session, then carries out its outputs: saves, sends (after the saves
    /// they depend on), resolves waiters and tells the app (after the borrow ends, so listeners
    /// may call back into the client). Returns `f`'s result and whether the session closed the
    /// connection.
    fn with_session<T>(self: &Rc<Self>, f: impl FnOnce(&mut SyncSession, u64) -> T) -> (T, bool) {
        let now = self.now();
        let mut events = Vec::new();
        let mut close = false;
        let mut last_code = None;
        let (result, listeners, save_in_flight) = {
            let mut core = self.core.borrow_mut();
            let core = &mut *core;
            let result = f(&mut core.session, now);
            // Set by `Output::Persist`: what follows waits for the save begun below.
            let mut urgent = false;
            while let Some(output) = core.session.poll_output() {
                match output {
                    Output::Persist => urgent = core.store.is_some(),
                    Output::Transmit(message) => {
                        if let Some(writer) = &core.writer {
                            let frame = protocol::encode(&message);
                            let awaited = core.saves.begun + u64::from(urgent);
                            if awaited > core.saves.durable {
                                core.saves.waiting.push((awaited, writer.clone(), frame));
                            } else {
                                let _ = writer.unbounded_send(frame);
                            }
                        }
                    }
                    Output::Event(event) => {
                        if let SessionEvent::Error {
                            code: Some(code), ..
                        } = &event
                        {
                            last_code = Some(*code);
                        }
                        events.push(event)
                    }
                    Output::Close { reconnect, reason } => {
                        close = true;
                        core.writer = None;
                        if !reconnect {
                            // Reconnecting cannot help (bad token, unsupported version, ...).
                            core.refused = Some((last_code, reason));
                        }
                    }
                }
            }
            let lazy =
                core.session.needs_save() && performance_now() - core.saved_at >= LAZY_SAVE_MS;
            let mut save_in_flight = None;
            if urgent || lazy {
                if let Some((number, mut saved)) = core.begin_save() {
                    // A synchronous store is done already; IndexedDB finishes later.
                    match (&mut saved).now_or_never() {
                        Some(result) => core.save_ended(number, result, &mut events),
                        None => save_in_flight = Some((number, saved)),
                    }
                }
            }
            core.settle_waiters(&events);
            let listeners = if events.is_empty() {
                Vec::new()
            } else {
                core.listeners.clone()
            };
            (result, listeners, save_in_flight)
        };
        if !events.is_empty() {
            for listener in &listeners {
                listener(&events);
            }
        }
        if let Some((number, saved)) = save_in_flight {
            let shared = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = saved.await;
                let mut events = Vec::new();
                shared
                    .core
                    .borrow_mut()
                    .save_ended(number, result, &mut events);
                if !events.is_empty() {
                    shared.emit_all(&events);
                }
            });
        }
        let _ = self.control.unbounded_send(Control::Wake);
        (result, close)
    }

    fn emit(&self, event: ClientEvent) {
        self.emit_all(std::slice::from_ref(&event));
    }

    fn emit_all(&self, events: &[ClientEvent]) {
        let listeners = self.core.borrow().listeners.clone();
        for listener in &listeners {
            listener(events);
        }
    }

    /// The client stopped for good (closed, or refused): fail every waiter.
    fn finish(&self) {
        let mut core = self.core.borrow_mut();
        core.closed = true;
        core.settle_waiters(&[]);
    }
}

/// Sleeps `ms` milliseconds, or until `close()`; true when closed.
async fn sleep_or_close(ms: u32, control: &mut mpsc::UnboundedReceiver<Control>) -> bool {
    let mut sleep = TimeoutFuture::new(ms).fuse();
    loop {
        futures::select! {
            _ = sleep => return false,
            signal = control.next() => match signal {
                Some(Control::Wake) => {}
                Some(Control::Close) | None => return true,
            },
        }
    }
}

/// The connection loop: connect, pump, back off, again, until closed or refused for good.
async fn drive(
    shared: Rc<Shared>,
    url: String,
    backoff: Backoff,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut attempt: u32 = 0;
    loop {
        if shared.core.borrow().closed {
            break;
        }
        // A failure surfaces to the app as the `Reconnecting` status below.
        if let Some(socket) = open(&url, &mut control).await {
            attempt = 0;
            if pump(&shared, socket, &mut control).await.is_break() {
                break;
            }
        }
        if shared.core.borrow().closed {
            break;
        }
        let delay = backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        shared.emit(SessionEvent::Status(ConnectionStatus::Reconnecting));
        if sleep_or_close(delay.as_millis() as u32, &mut control).await {
            break;
        }
    }
    shared.finish();
}

/// Opens a WebSocket and waits until it is open (`None`: it failed, timed out, or the client
/// was closed meanwhile).
async fn open(url: &str, control: &mut mpsc::UnboundedReceiver<Control>) -> Option<WebSocket> {
    let mut socket = WebSocket::open(url).ok()?;
    let mut timeout = TimeoutFuture::new(CONNECT_TIMEOUT_MS).fuse();
    loop {
        let outcome = {
            // Ready once the socket is open, or once it failed (its state then says Closed).
            let mut ready = futures::future::poll_fn(|cx| socket.poll_ready_unpin(cx)).fuse();
            futures::select! {
                result = ready => Some(result.is_ok()),
                _ = timeout => return None,
                signal = control.next() => match signal {
                    Some(Control::Wake) => None,
                    // `close()` resolves its waiters itself; nothing to send.
                    Some(Control::Close) | None => return None,
                },
            }
        };
        if let Some(ok) = outcome {
            return (ok && matches!(socket.state(), State::Open)).then_some(socket);
        }
    }
}

/// One connection's life. `Break` when the client should stop for good.
async fn pump(
    shared: &Rc<Shared>,
    socket: WebSocket,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};
    let (mut sink, mut stream) = socket.split();
    let (writer, mut outgoing) = mpsc::unbounded::<String>();
    shared.core.borrow_mut().writer = Some(writer);
    let (_, mut closed) = shared.with_session(|s, now| s.handle_connected(now));
    let mut stop = Continue(());
    while !closed {
        let deadline = shared.core.borrow().session.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = at.saturating_sub(shared.now()).min(u32::MAX as u64);
                    TimeoutFuture::new(wait as u32).await
                }
                None => std::future::pending().await,
            }
        };
        futures::select! {
            frame = stream.next().fuse() => match frame {
                Some(Ok(Message::Text(text))) => {
                    closed = shared.with_session(|s, now| s.handle_frame(now, &text)).1;
                }
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(_)) | None => break,
            },
            message = outgoing.next() => match message {
                Some(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = sleep.fuse() => {
                closed = shared.with_session(|s, now| s.handle_timeout(now)).1;
            }
            signal = control.next() => match signal {
                Some(Control::Wake) => {}
                Some(Control::Close) | None => {
                    stop = Break(());
                    break;
                }
            },
        }
    }
    // Send what the session queued before closing (e.g. nothing after a refusal).
    while let Ok(text) = outgoing.try_recv() {
        let _ = sink.send(Message::Text(text)).await;
    }
    let _ = sink.close().await;
    // Dropping both halves closes the socket.
    drop((sink, stream));
    shared.core.borrow_mut().writer = None;
    shared.with_session(|s, now| s.handle_disconnected(now));
    if shared.core.borrow().refused.is_some() {
        return Break(());
    }
    stop
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
            indexed_db: None,
            backoff: Backoff::default(),
            tune: None,
        }
    }

    /// Calls `callback` for every event (applied events, acks, conflicts, status, errors).
    pub fn on_event(&self, callback: impl Fn(&ClientEvent) + 'static) {
        self.on_events(move |events| events.iter().for_each(&callback));
    }

    /// Calls `callback` with the events of each step at once (all the events of a catch-up page
    /// in one call): one re-render, or one crossing into JavaScript, per batch.
    pub fn on_events(&self, callback: impl Fn(&[ClientEvent]) + 'static) {
        self.shared
            .core
            .borrow_mut()
            .listeners
            .push(Rc::new(callback));
    }

    /// Runs `f` on the document as the app sees it (confirmed plus pending edits; `None` if it
    /// does not exist), without copying it.
    pub fn with_document<T>(&self, f: impl FnOnce(Option<&Value>) -> T) -> T {
        f(self.shared.core.borrow().session.document())
    }

    /// The document as the app sees it; `None` if it does not exist.
    pub fn document(&self) -> Option<Value> {
        self.with_document(|doc| doc.cloned())
    }

    /// Connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.shared.core.borrow().session.status()
    }

    /// Local edits not yet in the server's log.
    pub fn pending_count(&self) -> usize {
        self.shared.core.borrow().session.pending_count()
    }

    /// The `sequenceNum` of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.shared.core.borrow().session.applied_seq()
    }

    /// The state vector: per client id, the highest `sequenceNum` of its events applied here.
    pub fn state_vector(&self) -> VectorClock {
        self.shared.core.borrow().session.state_vector().clone()
    }

    /// The client's id.
    pub fn client_id(&self) -> String {
        self.shared.core.borrow().session.config().client_id.clone()
    }

    /// Records that events of `client_id` up to `sequence_num` are known (see
    /// [`SyncSession::update_state_vector`]).
    pub fn update_state_vector(&self, client_id: &str, sequence_num: u64) {
        self.shared
            .with_session(|s, _| s.update_state_vector(client_id, sequence_num));
    }

    /// Applies an RFC 6902 patch locally at once and queues it for the server. Returns its
    /// `clientSeq`. On error nothing changes.
    pub fn edit(&self, patch: Vec<json_patch::PatchOperation>) -> Result<u64, ClientError> {
        Ok(self.shared.with_session(|s, now| s.edit(now, patch)).0?)
    }

    /// Creates the document (it must not exist).
    pub fn create(&self, document: Value) -> Result<u64, ClientError> {
        Ok(self
            .shared
            .with_session(|s, now| s.create(now, document))
            .0?)
    }

    /// Deletes the document.
    pub fn delete(&self) -> Result<u64, ClientError> {
        Ok(self.shared.with_session(|s, now| s.delete(now)).0?)
    }

    fn wait(&self, until: WaitFor) -> oneshot::Receiver<Result<(), ClientError>> {
        let (done, receiver) = oneshot::channel();
        let mut core = self.shared.core.borrow_mut();
        core.waiters.push(Waiter { until, done });
        core.settle_waiters(&[]);
        receiver
    }

    /// Resolves once the client is online and has caught up with the server's log.
    pub async fn sync_state(&self) -> Result<(), ClientError> {
        let receiver = self.wait(WaitFor::Synced);
        self.shared.with_session(|s, now| s.sync_state(now));
        receiver.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.wait(WaitFor::Flushed)
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Resolves once every local edit made so far is saved in the client's store (IndexedDB
    /// commits a moment after `edit` returns; memory and synchronous stores at once).
    pub async fn saved(&self) -> Result<(), ClientError> {
        let begun = self.shared.core.borrow().saves.begun;
        self.wait(WaitFor::Saved(begun))
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Closes the connection and stops reconnecting. The store keeps everything pending: what
    /// could wait is saved now, then the store is let go (another client may take its record).
    pub fn close(&self) {
        let _ = self.shared.control.unbounded_send(Control::Close);
        let (last_save, store) = {
            let mut core = self.shared.core.borrow_mut();
            let last_save = if core.session.needs_save() {
                core.begin_save()
            } else {
                None
            };
            (last_save, core.store.take())
        };
        wasm_bindgen_futures::spawn_local(async move {
            if let Some((_, saved)) = last_save {
                let _ = saved.await;
            }
            drop(store);
        });
        self.shared.finish();
    }
}
