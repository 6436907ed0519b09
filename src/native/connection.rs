//! [`SyncConnection`]: one WebSocket of protocol version 2 (`ws://{server}/sync`) carrying any
//! number of documents, each a [`SyncClient`] with the same API as a client of its own. One
//! reconnect loop, one directory of stores (a file per document, and the client id).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::link::{self, Link};
use super::{ClientError, ClientEvent, Doc, Listener, Listeners, SyncClient, LAZY_SAVE};
use crate::conflict::ConflictPolicy;
use crate::multiplex::{MultiplexConfig, Multiplexer, MuxOutput, PresenceError};
use crate::protocol::{ErrorCode, PresencePeer};
use crate::queue::{FileStore, Store};
use crate::reconnect::Backoff;
use crate::session::{ConnectionStatus, SessionConfig, SessionEvent, SyncSession};

type Tune = Arc<dyn Fn(&mut SessionConfig) + Send + Sync>;

/// Settings for [`SyncConnectionBuilder::connect`].
pub struct SyncConnectionBuilder {
    server: String,
    client_id: Option<String>,
    token: Option<String>,
    policy: ConflictPolicy,
    backoff: Backoff,
    directory: Option<PathBuf>,
    tune: Option<Tune>,
}

impl SyncConnectionBuilder {
    crate::reconnect::shared_builder_settings!();

    /// Keeps every document's offline queue, last document and state vector in this directory
    /// (a file per document), and the client id, so that they survive the app being closed.
    pub fn directory(mut self, path: impl Into<PathBuf>) -> Self {
        self.directory = Some(path.into());
        self
    }

    /// Adjusts every document's session timers and batch size.
    pub fn session_config(
        mut self,
        tune: impl Fn(&mut SessionConfig) + Send + Sync + 'static,
    ) -> Self {
        self.tune = Some(Arc::new(tune));
        self
    }

    /// Starts the connection task and returns at once: documents opened from here on work
    /// offline from the first moment. Must be called within a tokio runtime.
    pub fn connect(self) -> Result<SyncConnection, ClientError> {
        let url = crate::reconnect::endpoint(&self.server, "/sync")
            .map_err(ClientError::InvalidArgument)?;
        if let Some(directory) = &self.directory {
            // Made here, so that a directory that cannot be fails now, not at the first save.
            std::fs::create_dir_all(directory).map_err(crate::queue::StoreError::Io)?;
        }
        let client_id = match (&self.client_id, &self.directory) {
            (Some(id), _) => id.clone(),
            (None, Some(directory)) => stored_client_id(directory)?,
            (None, None) => crate::reconnect::random_client_id(),
        };
        let mut config = MultiplexConfig::new(client_id.clone());
        config.token = self.token;
        if let Some(tune) = &self.tune {
            // The connection's timers follow the documents' (pings, silence).
            let mut session = SessionConfig::new("", client_id.clone());
            tune(&mut session);
            config.idle_timeout_ms = session.idle_timeout_ms;
            config.ping_interval_ms = session.ping_interval_ms;
            config.request_timeout_ms = session.request_timeout_ms;
        }
        let shared = Arc::new(ConnShared {
            core: Mutex::new(ConnCore {
                mux: Multiplexer::new(config),
                docs: HashMap::new(),
                writer: None,
                refused: None,
                answers: HashMap::new(),
            }),
            client_id,
            policy: self.policy,
            directory: self.directory,
            tune: self.tune,
            wake: Notify::new(),
            closed: Notify::new(),
            epoch: Instant::now(),
        });
        let task = tokio::spawn(link::drive(shared.clone(), url, self.backoff));
        Ok(SyncConnection {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

/// The client id kept in `directory/client-id`, made up and written there the first time.
fn stored_client_id(directory: &std::path::Path) -> Result<String, ClientError> {
    let path = directory.join("client-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = crate::reconnect::random_client_id();
            std::fs::write(&path, &id).map_err(crate::queue::StoreError::Io)?;
            Ok(id)
        }
    }
}

/// One connection for many documents (protocol version 2).
///
/// ```no_run
/// use eventsync::SyncConnection;
/// use serde_json::json;
///
/// # #[tokio::main] async fn main() -> Result<(), eventsync::ClientError> {
/// let connection = SyncConnection::builder("ws://127.0.0.1:8080")
///     .directory("eventsync-data") // every document's offline queue survives restarts
///     .connect()?;
/// let todo = connection.open("todo")?; // a SyncClient: the same API as a client of its own
/// let notes = connection.open("notes")?;
/// todo.sync_state().await?;
/// notes.sync_state().await?;
/// if notes.document().is_none() {
///     notes.create(json!({"text": ""}))?;
/// }
/// notes.flush().await?;
/// connection.close().await;
/// # Ok(()) }
/// ```
pub struct SyncConnection {
    shared: Arc<ConnShared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SyncConnection {
    /// Settings for a connection to the server at `server` (`ws://host:port`).
    pub fn builder(server: impl Into<String>) -> SyncConnectionBuilder {
        SyncConnectionBuilder {
            server: server.into(),
            client_id: None,
            token: None,
            policy: ConflictPolicy::default(),
            backoff: Backoff::default(),
            directory: None,
            tune: None,
        }
    }

    /// Opens a document on the connection: from its store when it has one (pending edits
    /// included), and on the server as soon as the connection is up. Opening a document that is
    /// open already gives another handle to it.
    pub fn open(&self, document_id: impl Into<String>) -> Result<SyncClient, ClientError> {
        let document_id = document_id.into();
        crate::server::limits::validate_document_id(&document_id)
            .map_err(ClientError::InvalidArgument)?;
        self.shared.open(&document_id)?;
        Ok(SyncClient {
            doc: Doc::Shared(self.shared.clone(), document_id),
            task: Mutex::new(None),
        })
    }

    /// The client id every document of the connection uses.
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// Connection status: the best of its documents' (`Offline` with none open).
    pub fn status(&self) -> ConnectionStatus {
        let core = self.shared.lock();
        crate::multiplex::best_status(core.mux.sessions().map(SyncSession::status))
    }

    /// Closes the connection and stops reconnecting. The stores keep everything pending.
    pub async fn close(&self) {
        self.shared.save_all();
        self.shared.closed.notify_waiters();
        self.shared.closed.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for SyncConnection {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}

/// One document's store, listeners and refusal.
struct DocState {
    store: Option<Box<dyn Store + Send>>,
    listeners: Listeners,
    events: broadcast::Sender<super::Batch>,
    refused: Option<(Option<ErrorCode>, String)>,
    saved_at: Instant,
    /// The session after the app closed the document: still readable, no longer editable.
    detached: Option<SyncSession>,
}

pub(super) struct ConnShared {
    core: Mutex<ConnCore>,
    client_id: String,
    policy: ConflictPolicy,
    directory: Option<PathBuf>,
    tune: Option<Tune>,
    wake: Notify,
    closed: Notify,
    epoch: Instant,
}

struct ConnCore {
    mux: Multiplexer,
    docs: HashMap<String, DocState>,
    writer: Option<mpsc::UnboundedSender<Message>>,
    /// The server refused the connection for good.
    refused: Option<(Option<ErrorCode>, String)>,
    /// Who waits for each history request's end (`history.rs`).
    answers: HashMap<u64, tokio::sync::oneshot::Sender<crate::multiplex::HistoryResult>>,
}

impl ConnShared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, ConnCore> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self, document_id: &str) -> Result<(), ClientError> {
        if self.lock().mux.session(document_id).is_some() {
            return Ok(());
        }
        let mut store: Option<Box<dyn Store + Send>> = self.directory.as_ref().map(|dir| {
            Box::new(FileStore::new(dir.join(format!("{document_id}.json"))))
                as Box<dyn Store + Send>
        });
        let saved = store.as_mut().map(|s| s.load()).transpose()?.flatten();
        let tune = self.tune.clone();
        let session = crate::reconnect::open_session(
            saved,
            crate::reconnect::SessionOptions {
                document_id: document_id.to_owned(),
                client_id: Some(self.client_id.clone()),
                token: None,
                policy: self.policy.clone(),
                tune: tune.map(|tune| move |config: &mut SessionConfig| tune(config)),
            },
        )?;
        let (events, _) = broadcast::channel(1024);
        self.lock().docs.insert(
            document_id.to_owned(),
            DocState {
                store,
                listeners: Listeners::default(),
                events,
                refused: None,
                saved_at: Instant::now(),
                detached: None,
            },
        );
        self.run(|mux, now| mux.add(now, session));
        Ok(())
    }

    /// An app's call: runs `f` on the multiplexer, then carries out its outputs (see
    /// [`ConnShared::carry_out`]). True when the connection closed.
    fn run<T>(&self, f: impl FnOnce(&mut Multiplexer, u64) -> T) -> (T, bool) {
        self.run_core(|core, now| f(&mut core.mux, now))
    }

    /// [`ConnShared::run`] with the whole core: also wakes the connection loop, whose deadlines
    /// may have changed.
    fn run_core<T>(&self, f: impl FnOnce(&mut ConnCore, u64) -> T) -> (T, bool) {
        let result = self.carry_out(f);
        self.wake.notify_one();
        result
    }

    /// The connection loop's input: [`ConnShared::carry_out`] on the multiplexer. The loop
    /// reads the deadlines again itself: it is not woken for them.
    fn step<T>(&self, f: impl FnOnce(&mut Multiplexer, u64) -> T) -> (T, bool) {
        self.carry_out(|core, now| f(&mut core.mux, now))
    }

    /// Runs `f` on the core, then carries out the multiplexer's outputs: saves, sends, and
    /// tells the app (outside the lock, so listeners may call back).
    fn carry_out<T>(&self, f: impl FnOnce(&mut ConnCore, u64) -> T) -> (T, bool) {
        let now = self.now();
        let mut events: Vec<(Option<String>, ClientEvent)> = Vec::new();
        let mut closed = false;
        let result = {
            let mut core = self.lock();
            let result = f(&mut core, now);
            while let Some(output) = core.mux.poll_output() {
                match output {
                    MuxOutput::Persist(document_id) => {
                        if let Some(error) = core.save(&document_id) {
                            events.push((Some(document_id), error));
                        }
                    }
                    MuxOutput::Transmit(frame) => {
                        if let Some(writer) = &core.writer {
                            let _ = writer.send(Message::Text(frame.into()));
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
            while let Some((id, answer)) = core.mux.poll_answer() {
                if let Some(waiting) = core.answers.remove(&id) {
                    let _ = waiting.send(answer);
                }
            }
            core.save_lazily(&mut events);
            result
        };
        self.dispatch(events);
        (result, closed)
    }

    fn dispatch(&self, events: Vec<(Option<String>, ClientEvent)>) {
        if events.is_empty() {
            return;
        }
        let core = self.lock();
        // Per document, in order; an event about the connection goes to every document.
        let mut by_document: Vec<(&str, Vec<ClientEvent>)> = Vec::new();
        for (document_id, event) in &events {
            let targets: Vec<&str> = match document_id {
                Some(id) => vec![id.as_str()],
                None => core.docs.keys().map(String::as_str).collect(),
            };
            for target in targets {
                match by_document.iter_mut().find(|(id, _)| *id == target) {
                    Some((_, list)) => list.push(event.clone()),
                    None => by_document.push((target, vec![event.clone()])),
                }
            }
        }
        let mut calls = Vec::new();
        for (document_id, list) in by_document {
            if let Some(doc) = core.docs.get(document_id) {
                let batch: super::Batch = list.into();
                calls.push((doc.listeners.clone(), doc.events.clone(), batch));
            }
        }
        drop(core);
        // Outside the lock, so that listeners may call the client (or cancel themselves).
        for (listeners, _, batch) in &calls {
            listeners.call(batch);
        }
        for (_, sender, batch) in calls {
            let _ = sender.send(batch);
        }
    }

    /// An app's call on a document: runs `f` on its session, with a local edit saved before
    /// anything of it is sent (see [`super::save_local_edit`]). The save happens inside
    /// [`Multiplexer::with_session`], which moves the session's outputs (the `submit` among
    /// them) into the connection's once the closure returns.
    pub(super) fn with_session<T>(
        &self,
        document_id: &str,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> Result<T, ClientError> {
        self.run_core(|core, now| {
            let ConnCore { mux, docs, .. } = core;
            let doc = docs.get_mut(document_id)?;
            mux.with_session(document_id, |session| {
                let store = doc.store.as_mut();
                super::save_local_edit(session, store, &mut doc.saved_at, now, f)
            })
        })
        .0
        .unwrap_or(Err(ClientError::Closed))
    }

    pub(super) fn read<T>(&self, document_id: &str, f: impl FnOnce(&SyncSession) -> T) -> T {
        let core = self.lock();
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

    pub(super) fn refused(&self, document_id: &str) -> Option<(Option<ErrorCode>, String)> {
        let core = self.lock();
        core.refused
            .clone()
            .or_else(|| core.docs.get(document_id).and_then(|d| d.refused.clone()))
    }

    pub(super) fn subscribe(&self, document_id: &str) -> broadcast::Receiver<super::Batch> {
        let core = self.lock();
        core.docs
            .get(document_id)
            .map(|doc| doc.events.subscribe())
            .expect("a handle's document has a state")
    }

    pub(super) fn listen(&self, document_id: &str, listener: Listener) {
        if let Some(doc) = self.lock().docs.get_mut(document_id) {
            doc.listeners.add(listener);
        }
    }

    /// Removes the listener of the subscription whose flag is `live`.
    pub(super) fn unlisten(&self, document_id: &str, live: &Arc<AtomicBool>) {
        if let Some(doc) = self.lock().docs.get_mut(document_id) {
            doc.listeners.remove(live);
        }
    }

    pub(super) fn set_presence(
        &self,
        document_id: &str,
        state: serde_json::Value,
    ) -> Result<(), ClientError> {
        match self
            .run(|mux, now| mux.set_presence(now, document_id, state))
            .0
        {
            Err(PresenceError::NotOpen(_)) => Err(ClientError::Closed),
            result => result.map_err(ClientError::from),
        }
    }

    /// Asks about a document's history (18.8); the receiver gets how the request ended.
    pub(super) fn request_history(
        &self,
        document_id: &str,
        query: crate::multiplex::HistoryQuery,
    ) -> tokio::sync::oneshot::Receiver<crate::multiplex::HistoryResult> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        {
            let now = self.now();
            let mut core = self.lock();
            let id = core.mux.request_history(now, document_id, query);
            core.answers.insert(id, sender);
        }
        // Carries out what the request made: its frame, or its end at once.
        self.run(|_, _| ());
        receiver
    }

    /// The document was closed by the app (or the whole connection was).
    pub(super) fn is_closed(&self, document_id: &str) -> bool {
        self.lock().mux.session(document_id).is_none()
    }

    pub(super) fn others(&self, document_id: &str) -> Vec<PresencePeer> {
        self.lock().mux.others(document_id)
    }

    /// The app closed a document: it leaves the connection; its store keeps what is pending.
    pub(super) fn close_document(&self, document_id: &str) {
        let (session, _) = self.run(|mux, now| mux.remove(now, document_id));
        if let Some(session) = session {
            let mut core = self.lock();
            if let Some(doc) = core.docs.get_mut(document_id) {
                let state = session.client_state();
                if let Some(store) = doc.store.as_mut() {
                    let _ = store.save(&state);
                }
                doc.detached = Some(session);
            }
        }
    }

    fn save_all(&self) {
        let mut core = self.lock();
        let documents: Vec<String> = core.docs.keys().cloned().collect();
        for document_id in documents {
            core.save(&document_id);
        }
    }

    fn emit_all(&self, event: ClientEvent) {
        self.dispatch(vec![(None, event)]);
    }
}

impl ConnCore {
    /// Saves a document's state; an error event when that failed.
    fn save(&mut self, document_id: &str) -> Option<ClientEvent> {
        let session = self.mux.session(document_id)?;
        let doc = self.docs.get_mut(document_id)?;
        doc.saved_at = Instant::now();
        // Without a store nothing is made: the state is a copy of the whole document.
        let saved = doc
            .store
            .as_mut()
            .map_or(Ok(()), |s| s.save(&session.client_state()));
        // A failed save leaves the session wanting one, so the next chance tries again.
        if saved.is_ok() {
            self.mux.with_session(document_id, SyncSession::mark_saved);
        }
        saved.err().map(|err| SessionEvent::Error {
            code: None,
            message: format!("could not save the offline queue of {document_id}: {err}"),
        })
    }

    /// Saves what the sessions say can wait, at most once a second per document.
    fn save_lazily(&mut self, events: &mut Vec<(Option<String>, ClientEvent)>) {
        let due: Vec<String> = self
            .mux
            .sessions()
            .filter(|s| s.needs_save())
            .map(|s| s.config().document_id.clone())
            .filter(|id| {
                self.docs
                    .get(id)
                    .is_some_and(|doc| doc.saved_at.elapsed() >= LAZY_SAVE)
            })
            .collect();
        for document_id in due {
            if let Some(error) = self.save(&document_id) {
                events.push((Some(document_id), error));
            }
        }
    }
}

impl Link for ConnShared {
    fn wake(&self) -> &Notify {
        &self.wake
    }

    fn closed(&self) -> &Notify {
        &self.closed
    }

    fn epoch(&self) -> Instant {
        self.epoch
    }

    fn connected(&self, writer: mpsc::UnboundedSender<Message>) -> bool {
        self.lock().writer = Some(writer);
        self.step(|mux, now| mux.handle_connected(now)).1
    }

    fn frame(&self, text: &str) -> bool {
        self.step(|mux, now| mux.handle_frame(now, text)).1
    }

    fn timeout(&self) -> bool {
        self.step(|mux, now| mux.handle_timeout(now)).1
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.lock().mux.poll_timeout()
    }

    fn disconnected(&self) {
        self.lock().writer = None;
        self.step(|mux, now| mux.handle_disconnected(now));
    }

    fn refused(&self) -> bool {
        self.lock().refused.is_some()
    }

    fn reconnecting(&self, reason: &str, retry_in_ms: u64) {
        self.emit_all(SessionEvent::Reconnecting {
            reason: reason.to_owned(),
            retry_in_ms,
        });
    }
}
