//! [`SyncConnection`] in the browser: one WebSocket of protocol version 2 (`ws://{server}/sync`)
//! carrying any number of documents, each a [`SyncClient`] with the same API as a client of its
//! own. One reconnect loop ([`super::socket::drive`]), one client id, and with IndexedDB one
//! database holding a record per document ([`IndexedDbDirectory`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};

use super::driver::{
    performance_now, session_policy, ClientError, ClientEvent, Doc, FallibleResolver, Listener,
    ResolverFailures, SyncClient, LAZY_SAVE_MS,
};
use super::saves::{has_synced, Persistence, SaveInFlight, Saves, Settle, WaitFor, Waiters};
use super::socket::{self, Control, Link};
use crate::conflict::{Conflict, ConflictPolicy, Resolution};
use crate::multiplex::{MultiplexConfig, Multiplexer, MuxOutput, PresenceError};
use crate::protocol::{ErrorCode, PresencePeer};
use crate::reconnect::Backoff;
use crate::session::{ConnectionStatus, SessionConfig, SessionEvent, SyncSession};
use crate::vec_map::VecMap;
use crate::web::idb::{IndexedDbDirectory, DEFAULT_DATABASE};

type Tune = Rc<dyn Fn(&mut SessionConfig)>;

/// Settings for [`SyncConnectionBuilder::connect`] and [`SyncConnectionBuilder::open`].
pub struct SyncConnectionBuilder {
    server: String,
    client_id: Option<String>,
    token: Option<String>,
    policy: ConflictPolicy,
    resolver: Option<FallibleResolver>,
    backoff: Backoff,
    indexed_db: Option<String>,
    tune: Option<Tune>,
}

impl SyncConnectionBuilder {
    crate::reconnect::shared_builder_settings!();

    /// Keeps every document's state in the IndexedDB database `database` (`None`: `eventsync`),
    /// so that edits made offline survive a reload. Needs [`SyncConnectionBuilder::open`].
    pub fn indexed_db(mut self, database: Option<String>) -> Self {
        self.indexed_db = Some(database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned()));
        self
    }

    /// Adjusts every document's session timers and batch size (the connection's pings and
    /// silence follow them).
    pub fn session_config(mut self, tune: impl Fn(&mut SessionConfig) + 'static) -> Self {
        self.tune = Some(Rc::new(tune));
        self
    }

    /// Resolves every document's true conflicts with `resolve`, which may fail: see
    /// [`super::SyncClientBuilder::conflict_resolver`]. Takes precedence over
    /// [`SyncConnectionBuilder::conflict_policy`].
    pub fn conflict_resolver(
        mut self,
        resolve: impl Fn(&Conflict) -> Result<Resolution, String> + 'static,
    ) -> Self {
        self.resolver = Some(Rc::new(resolve));
        self
    }

    /// Starts the connection loop and returns at once; documents live in memory only.
    /// IndexedDB opens asynchronously: use [`SyncConnectionBuilder::open`].
    pub fn connect(self) -> Result<SyncConnection, ClientError> {
        let url = self.endpoint()?;
        self.connect_to(url)
    }

    /// [`SyncConnectionBuilder::connect`] once the endpoint is known to be `url`.
    fn connect_to(self, url: String) -> Result<SyncConnection, ClientError> {
        if self.indexed_db.is_some() {
            return Err(ClientError::Store(
                "IndexedDB persistence opens asynchronously: use SyncConnection.connect \
                 (SyncConnectionBuilder::open in Rust)"
                    .into(),
            ));
        }
        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(crate::reconnect::random_client_id);
        self.start(url, client_id, None)
    }

    /// The connection's endpoint on the server, or why the URL cannot work.
    fn endpoint(&self) -> Result<String, ClientError> {
        crate::reconnect::endpoint(&self.server, "/sync").map_err(ClientError::InvalidArgument)
    }

    /// Like [`SyncConnectionBuilder::connect`], and also opens IndexedDB persistence when
    /// [`SyncConnectionBuilder::indexed_db`] asked for it (taking back the client id of an
    /// earlier page's connection that no open tab holds).
    pub async fn open(mut self) -> Result<SyncConnection, ClientError> {
        let url = self.endpoint()?;
        let Some(database) = self.indexed_db.take() else {
            return self.connect_to(url);
        };
        let directory = IndexedDbDirectory::open(&database, self.client_id.as_deref()).await?;
        let client_id = directory.client_id().to_owned();
        self.start(url, client_id, Some(directory))
    }

    /// Starts the connection loop on the endpoint `url`.
    fn start(
        self,
        url: String,
        client_id: String,
        directory: Option<IndexedDbDirectory>,
    ) -> Result<SyncConnection, ClientError> {
        let mut config = MultiplexConfig::new(client_id.clone());
        config.token = self.token;
        if let Some(tune) = &self.tune {
            let mut session = SessionConfig::new("", client_id.clone());
            tune(&mut session);
            config.idle_timeout_ms = session.idle_timeout_ms;
            config.ping_interval_ms = session.ping_interval_ms;
            config.request_timeout_ms = session.request_timeout_ms;
        }
        let (control, control_rx) = mpsc::unbounded();
        let shared = Rc::new(ConnShared {
            core: RefCell::new(ConnCore {
                mux: Multiplexer::new(config),
                docs: VecMap::new(),
                opening: VecMap::new(),
                saves: Saves::default(),
                writer: None,
                refused: None,
                closed: false,
                answers: VecMap::new(),
            }),
            control,
            epoch: performance_now(),
            client_id,
            policy: self.policy,
            resolver: self.resolver,
            resolver_failures: ResolverFailures::default(),
            tune: self.tune,
            directory: RefCell::new(directory.map(Rc::new)),
        });
        wasm_bindgen_futures::spawn_local(socket::drive(
            shared.clone() as Rc<dyn socket::Link>,
            url,
            self.backoff,
            control_rx,
        ));
        Ok(SyncConnection { shared })
    }
}

/// One connection for many documents (protocol version 2), browser side (`!Send`). Clones share
/// the one connection.
#[derive(Clone)]
pub struct SyncConnection {
    shared: Rc<ConnShared>,
}

impl SyncConnection {
    /// Settings for a connection to the server at `server` (`ws://host:port`).
    pub fn builder(server: impl Into<String>) -> SyncConnectionBuilder {
        SyncConnectionBuilder {
            server: server.into(),
            client_id: None,
            token: None,
            policy: ConflictPolicy::default(),
            resolver: None,
            backoff: Backoff::default(),
            indexed_db: None,
            tune: None,
        }
    }

    /// Opens a document on the connection: from IndexedDB when the connection persists (pending
    /// edits included), and on the server as soon as the connection is up. Opening a document
    /// that is open already gives another handle to it.
    pub async fn open(&self, document_id: impl Into<String>) -> Result<SyncClient, ClientError> {
        let document_id = document_id.into();
        crate::server::limits::validate_document_id(&document_id)
            .map_err(ClientError::InvalidArgument)?;
        self.shared.open(&document_id).await?;
        Ok(SyncClient::from_doc(Doc::Shared(
            self.shared.clone(),
            document_id,
        )))
    }

    /// The client id every document of the connection uses.
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// Connection status: the best of its documents' (`Offline` with none open).
    pub fn status(&self) -> ConnectionStatus {
        let core = self.shared.core.borrow();
        crate::multiplex::best_status(core.mux.sessions().map(SyncSession::status))
    }

    /// Closes the connection and stops reconnecting; every document's waiting promises reject
    /// and its edits fail with `Closed`. What could wait is saved now, then IndexedDB is let go.
    pub fn close(&self) {
        self.shared.close();
    }
}

/// One document's store, listeners, waiters and refusal.
struct DocState {
    store: Option<Persistence>,
    listeners: Vec<Listener>,
    waiters: Waiters,
    refused: Option<(Option<ErrorCode>, String)>,
    saved_at: f64,
    /// The session after the app closed the document: still readable, no longer editable.
    detached: Option<SyncSession>,
}

pub(super) struct ConnShared {
    core: RefCell<ConnCore>,
    control: mpsc::UnboundedSender<Control>,
    epoch: f64,
    client_id: String,
    policy: ConflictPolicy,
    resolver: Option<FallibleResolver>,
    /// What the fallible resolver could not decide, per document, to be told as `Error` events.
    resolver_failures: ResolverFailures,
    tune: Option<Tune>,
    directory: RefCell<Option<Rc<IndexedDbDirectory>>>,
}

type Opened = oneshot::Sender<Result<(), ClientError>>;

struct ConnCore {
    mux: Multiplexer,
    docs: VecMap<String, DocState>,
    /// Documents whose IndexedDB record is being read, and who else waits for that.
    opening: VecMap<String, Vec<Opened>>,
    saves: Saves,
    writer: Option<mpsc::UnboundedSender<String>>,
    /// The server refused the connection for good.
    refused: Option<(Option<ErrorCode>, String)>,
    closed: bool,
    /// Who waits for each history request's end (`driver/history.rs`).
    answers: VecMap<u64, oneshot::Sender<crate::multiplex::HistoryResult>>,
}

/// Events for the app: per document (`None`: about the connection, for every document).
type Events = Vec<(Option<String>, ClientEvent)>;

impl ConnCore {
    /// Begins saving a document's state.
    fn begin_save(&mut self, document_id: &str) -> Option<(String, SaveInFlight)> {
        let state = self.mux.session(document_id)?.client_state();
        let doc = self.docs.get_mut(document_id)?;
        let store = doc.store.as_mut()?;
        doc.saved_at = performance_now();
        let save = self.saves.begin(store, &state);
        self.mux.with_session(document_id, SyncSession::mark_saved);
        Some((document_id.to_owned(), save))
    }

    /// Why waiting on `document_id` cannot succeed any more.
    fn failure(&self, document_id: &str) -> Option<ClientError> {
        let doc = self.docs.get(document_id);
        let refused = self
            .refused
            .as_ref()
            .or_else(|| doc.and_then(|d| d.refused.as_ref()));
        if let Some((code, message)) = refused {
            Some(ClientError::Refused {
                code: *code,
                message: message.clone(),
            })
        } else if self.closed || doc.is_some_and(|d| d.detached.is_some()) {
            Some(ClientError::Closed)
        } else {
            None
        }
    }

    /// Resolves every document's waiters whose condition holds, given the events just emitted.
    fn settle_waiters(&mut self, events: &Events) {
        let ids: Vec<String> = self.docs.keys().cloned().collect();
        for document_id in ids {
            let synced = events.iter().any(|(target, event)| {
                target.as_deref().is_none_or(|t| t == document_id)
                    && has_synced(std::slice::from_ref(event))
            });
            let flushed = self
                .mux
                .session(&document_id)
                .or_else(|| {
                    self.docs
                        .get(&document_id)
                        .and_then(|d| d.detached.as_ref())
                })
                .is_none_or(|s| s.pending_count() == 0);
            let failure = self.failure(&document_id);
            let mut waiters = std::mem::take(&mut self.docs.get_mut(&document_id).unwrap().waiters);
            waiters.settle(&Settle {
                synced,
                flushed,
                failure,
                saves: &self.saves,
            });
            self.docs.get_mut(&document_id).unwrap().waiters = waiters;
        }
    }
}

impl ConnShared {
    fn now(&self) -> u64 {
        (performance_now() - self.epoch).max(0.0) as u64
    }

    async fn open(self: &Rc<Self>, document_id: &str) -> Result<(), ClientError> {
        let joined = {
            let mut core = self.core.borrow_mut();
            if core.closed {
                return Err(ClientError::Closed);
            }
            if core.mux.session(document_id).is_some() {
                return Ok(());
            }
            match core.opening.get_mut(document_id) {
                Some(waiting) => {
                    let (done, receiver) = oneshot::channel();
                    waiting.push(done);
                    Some(receiver)
                }
                None => {
                    core.opening.insert(document_id.to_owned(), Vec::new());
                    None
                }
            }
        };
        if let Some(receiver) = joined {
            return receiver.await.unwrap_or(Err(ClientError::Closed));
        }
        let result = self.load(document_id).await;
        let waiting = self
            .core
            .borrow_mut()
            .opening
            .remove(document_id)
            .unwrap_or_default();
        for done in waiting {
            let _ = done.send(result.clone());
        }
        result
    }

    /// Reads a document's record and adds its session to the connection.
    async fn load(self: &Rc<Self>, document_id: &str) -> Result<(), ClientError> {
        let directory = self.directory.borrow().clone();
        let (store, saved) = match directory {
            Some(directory) => {
                let (store, saved) = directory.open_document(document_id).await?;
                (Some(Persistence::IndexedDb(store)), saved)
            }
            None => (None, None),
        };
        if self.core.borrow().closed {
            return Err(ClientError::Closed);
        }
        let tune = self.tune.clone();
        let session = crate::reconnect::open_session(
            saved,
            crate::reconnect::SessionOptions {
                document_id: document_id.to_owned(),
                client_id: Some(self.client_id.clone()),
                token: None,
                policy: session_policy(
                    &self.policy,
                    self.resolver.as_ref(),
                    document_id,
                    &self.resolver_failures,
                ),
                tune: tune.map(|tune| move |config: &mut SessionConfig| tune(config)),
            },
        )?;
        self.core.borrow_mut().docs.insert(
            document_id.to_owned(),
            DocState {
                store,
                listeners: Vec::new(),
                waiters: Waiters::default(),
                refused: None,
                saved_at: performance_now(),
                detached: None,
            },
        );
        self.run(true, |mux, now| mux.add(now, session));
        Ok(())
    }

    /// Runs `f` on the multiplexer, then carries out its outputs: saves, sends (after the saves
    /// they depend on), resolves waiters and tells the app (after the borrow ends, so listeners
    /// may call back). True when the connection closed.
    ///
    /// `by_app`: an app's call, which wakes the connection loop (its deadlines may have
    /// changed). The loop's own calls (a frame, a timeout) leave it: it reads the deadlines
    /// again before it waits, and waking it would poll its task a second time for every frame.
    fn run<T>(
        self: &Rc<Self>,
        by_app: bool,
        f: impl FnOnce(&mut Multiplexer, u64) -> T,
    ) -> (T, bool) {
        // The work is in `step`, compiled once rather than once per closure (wasm size).
        let mut f = Some(f);
        let mut result = None;
        let closed = self.step(by_app, &mut |mux, now| {
            result = f.take().map(|f| f(mux, now))
        });
        (result.expect("`step` calls its closure"), closed)
    }

    fn step(self: &Rc<Self>, by_app: bool, f: &mut dyn FnMut(&mut Multiplexer, u64)) -> bool {
        let now = self.now();
        let mut events: Events = Vec::new();
        let mut closed = false;
        let mut saves = Vec::new();
        {
            let mut core = self.core.borrow_mut();
            let core = &mut *core;
            f(&mut core.mux, now);
            while let Some(output) = core.mux.poll_output() {
                match output {
                    MuxOutput::Persist(document_id) => saves.extend(core.begin_save(&document_id)),
                    MuxOutput::Transmit(frame) => {
                        if let Some(writer) = &core.writer {
                            core.saves.send_after(core.saves.begun, writer, frame);
                        }
                    }
                    MuxOutput::Event(document_id, event) => {
                        if let Some(refusal) = crate::multiplex::refusal_in(&event) {
                            match document_id.as_ref().and_then(|d| core.docs.get_mut(d)) {
                                Some(doc) => doc.refused = Some(refusal),
                                None => core.refused = Some(refusal),
                            }
                        }
                        events.push((document_id, event));
                    }
                    MuxOutput::Close { reconnect, reason } => {
                        closed = true;
                        core.writer = None;
                        if !reconnect && core.refused.is_none() {
                            core.refused = Some((None, reason));
                        }
                    }
                }
            }
            // After the step's `Conflict` events: the resolver's failures among them.
            let failures = self.resolver_failures.take();
            events.extend(failures.into_iter().map(|(id, e)| (Some(id), e)));
            // What loses nothing when lost is saved at most once a second per document.
            let due: Vec<String> = core
                .mux
                .sessions()
                .filter(|s| s.needs_save())
                .map(|s| s.config().document_id.clone())
                .filter(|id| {
                    core.docs
                        .get(id)
                        .is_some_and(|d| performance_now() - d.saved_at >= LAZY_SAVE_MS)
                })
                .collect();
            for document_id in due {
                saves.extend(core.begin_save(&document_id));
            }
            core.settle_waiters(&events);
            while let Some((id, answer)) = core.mux.poll_answer() {
                if let Some(waiting) = core.answers.remove(&id) {
                    let _ = waiting.send(answer);
                }
            }
        }
        self.dispatch(events);
        for (document_id, (number, saved)) in saves {
            let shared = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = saved.await;
                let events: Events = {
                    let mut core = shared.core.borrow_mut();
                    if result.is_err() {
                        let failed = SyncSession::save_failed;
                        core.mux.with_session(&document_id, failed);
                    }
                    let event = core.saves.ended(number, result);
                    let events = event.map(|e| (Some(document_id), e)).into_iter().collect();
                    core.settle_waiters(&events);
                    events
                };
                shared.dispatch(events);
            });
        }
        if by_app {
            let _ = self.control.unbounded_send(Control::Wake);
        }
        closed
    }

    /// Calls each document's listeners with its events, in order, outside the borrow.
    fn dispatch(&self, events: Events) {
        if events.is_empty() {
            return;
        }
        let mut calls: Vec<(Vec<Listener>, Vec<ClientEvent>)> = Vec::new();
        let mut targets: Vec<String> = Vec::new();
        {
            let core = self.core.borrow();
            for (document_id, event) in events {
                let ids: Vec<String> = match document_id {
                    Some(id) => vec![id],
                    None => core.docs.keys().cloned().collect(),
                };
                for id in ids {
                    match targets.iter().position(|t| *t == id) {
                        Some(at) => calls[at].1.push(event.clone()),
                        None => {
                            let listeners = core
                                .docs
                                .get(&id)
                                .map(|d| d.listeners.clone())
                                .unwrap_or_default();
                            targets.push(id);
                            calls.push((listeners, vec![event.clone()]));
                        }
                    }
                }
            }
        }
        for (listeners, list) in calls {
            for listener in &listeners {
                listener.call(&list);
            }
        }
    }

    pub(super) fn with_session<T>(
        self: &Rc<Self>,
        document_id: &str,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> Result<T, ClientError> {
        if self.core.borrow().closed {
            return Err(ClientError::Closed);
        }
        self.run(true, |mux, now| {
            mux.with_session(document_id, |s| f(s, now))
        })
        .0
        .ok_or(ClientError::Closed)
    }

    pub(super) fn read<T>(&self, document_id: &str, f: impl FnOnce(&SyncSession) -> T) -> T {
        let core = self.core.borrow();
        match core.mux.session(document_id) {
            Some(session) => f(session),
            None => {
                let detached = core
                    .docs
                    .get(document_id)
                    .and_then(|doc| doc.detached.as_ref())
                    .expect("a handle's document is open or was closed");
                f(detached)
            }
        }
    }

    pub(super) fn listen(&self, document_id: &str, listener: Listener) {
        if let Some(doc) = self.core.borrow_mut().docs.get_mut(document_id) {
            doc.listeners.push(listener);
        }
    }

    /// Removes the listener of the subscription whose flag is `live`.
    pub(super) fn unlisten(&self, document_id: &str, live: &Rc<Cell<bool>>) {
        if let Some(doc) = self.core.borrow_mut().docs.get_mut(document_id) {
            doc.listeners.retain(|l| !l.is(live));
        }
    }

    /// Sets this client's presence on a document (`Closed` once it or the connection is closed).
    pub(super) fn set_presence(
        self: &Rc<Self>,
        document_id: &str,
        state: serde_json::Value,
    ) -> Result<(), ClientError> {
        if self.core.borrow().closed {
            return Err(ClientError::Closed);
        }
        match self
            .run(true, |mux, now| mux.set_presence(now, document_id, state))
            .0
        {
            Err(PresenceError::NotOpen(_)) => Err(ClientError::Closed),
            result => result.map_err(ClientError::from),
        }
    }

    /// Asks about a document's history (18.8); the receiver gets how the request ended (or is
    /// dropped when the connection closes first).
    pub(super) fn request_history(
        self: &Rc<Self>,
        document_id: &str,
        query: crate::multiplex::HistoryQuery,
    ) -> oneshot::Receiver<crate::multiplex::HistoryResult> {
        let (sender, receiver) = oneshot::channel();
        if self.core.borrow().closed {
            return receiver;
        }
        {
            let now = self.now();
            let mut core = self.core.borrow_mut();
            let id = core.mux.request_history(now, document_id, query);
            core.answers.insert(id, sender);
        }
        // Carries out what the request made: its frame, or its end at once.
        self.run(true, |_, _| ());
        receiver
    }

    /// The other peers' presence on a document.
    pub(super) fn others(&self, document_id: &str) -> Vec<PresencePeer> {
        self.core.borrow().mux.others(document_id)
    }

    /// A promise waiting on a document.
    pub(super) fn wait(
        &self,
        document_id: &str,
        until: WaitFor,
    ) -> oneshot::Receiver<Result<(), ClientError>> {
        let mut core = self.core.borrow_mut();
        let receiver = match core.docs.get_mut(document_id) {
            Some(doc) => doc.waiters.add(until),
            None => {
                let (done, receiver) = oneshot::channel();
                let _ = done.send(Err(ClientError::Closed));
                return receiver;
            }
        };
        core.settle_waiters(&Vec::new());
        receiver
    }

    /// The number of the last save begun.
    pub(super) fn saves_begun(&self) -> u64 {
        self.core.borrow().saves.begun
    }

    /// The app closed a document: it leaves the connection, its waiters reject, and its last
    /// state is saved before its IndexedDB record is let go.
    pub(super) fn close_document(self: &Rc<Self>, document_id: &str) {
        let (session, _) = self.run(true, |mux, now| mux.remove(now, document_id));
        let Some(session) = session else {
            return;
        };
        let mut core = self.core.borrow_mut();
        let core = &mut *core;
        let Some(doc) = core.docs.get_mut(document_id) else {
            return;
        };
        let last_save = doc.store.take().map(|mut store| {
            let (_, saved) = core.saves.begin(&mut store, &session.client_state());
            (saved, store)
        });
        doc.detached = Some(session);
        core.settle_waiters(&Vec::new());
        if let Some((saved, store)) = last_save {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = saved.await;
                drop(store);
            });
        }
    }

    fn close(&self) {
        let _ = self.control.unbounded_send(Control::Close);
        let mut last = Vec::new();
        {
            let mut core = self.core.borrow_mut();
            let core = &mut *core;
            for (document_id, doc) in core.docs.iter_mut() {
                let Some(mut store) = doc.store.take() else {
                    continue;
                };
                let state = core.mux.session(document_id).map(SyncSession::client_state);
                let saved = state.map(|state| core.saves.begin(&mut store, &state).1);
                last.push((saved, store));
            }
        }
        let directory = self.directory.borrow_mut().take();
        wasm_bindgen_futures::spawn_local(async move {
            for (saved, store) in last {
                if let Some(saved) = saved {
                    let _ = saved.await;
                }
                drop(store);
            }
            drop(directory);
        });
        self.finish();
    }
}

impl Link for ConnShared {
    fn now(&self) -> u64 {
        ConnShared::now(self)
    }

    fn finished(&self) -> bool {
        self.core.borrow().closed
    }

    fn connected(self: Rc<Self>, writer: mpsc::UnboundedSender<String>) -> bool {
        self.core.borrow_mut().writer = Some(writer);
        self.run(false, |mux, now| mux.handle_connected(now)).1
    }

    fn frame(self: Rc<Self>, text: &str) -> bool {
        self.run(false, |mux, now| mux.handle_frame(now, text)).1
    }

    fn timeout(self: Rc<Self>) -> bool {
        self.run(false, |mux, now| mux.handle_timeout(now)).1
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.core.borrow().mux.poll_timeout()
    }

    fn disconnected(self: Rc<Self>) {
        self.core.borrow_mut().writer = None;
        self.run(false, |mux, now| mux.handle_disconnected(now));
    }

    fn refused(&self) -> bool {
        self.core.borrow().refused.is_some()
    }

    fn reconnecting(&self, reason: &str, retry_in_ms: u64) {
        let status = SessionEvent::Reconnecting {
            reason: reason.to_owned(),
            retry_in_ms,
        };
        self.dispatch(vec![(None, status)]);
    }

    fn finish(&self) {
        let mut core = self.core.borrow_mut();
        core.closed = true;
        core.settle_waiters(&Vec::new());
    }
}
