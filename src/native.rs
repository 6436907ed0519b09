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
//! client.edit(serde_json::from_value(json!([
//!     {"op": "add", "path": "/items/-", "value": "milk"}
//! ])).unwrap())?;
//! client.update(|doc| doc["title"] = json!("groceries"))?; // the difference is the edit
//! client.flush().await?; // both edits are in the server's log
//! println!("{}", client.document().unwrap());
//! client.close().await;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conflict::ConflictPolicy;
use crate::protocol::{self, ErrorCode};
use crate::queue::{FileStore, Store, StoreError};
pub use crate::reconnect::Backoff;
use crate::session::{
    ConnectionStatus, Output, SessionConfig, SessionError, SessionEvent, SyncSession,
};

/// What apps receive: the session's events, plus `Status(Reconnecting)` from the driver.
pub type ClientEvent = SessionEvent;

/// Errors of the native client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local operation failed (the document is unchanged).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The offline store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Waiting took longer than allowed.
    #[error("timed out")]
    Timeout,
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
                listeners: Vec::new(),
                refused: None,
                saved_at: Instant::now(),
            }),
            events,
            wake: Notify::new(),
            closed: Notify::new(),
            epoch: Instant::now(),
        });
        let url = format!(
            "{}/sync/{}",
            self.server.trim_end_matches('/'),
            self.document_id
        );
        let task = tokio::spawn(drive(shared.clone(), url, self.backoff));
        Ok(SyncClient {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

/// A live, offline-capable replica of one document on a server.
pub struct SyncClient {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Listeners get the events of one step together (a catch-up page is one call).
type Listener = Box<dyn Fn(&[ClientEvent]) + Send + Sync>;

struct Shared {
    core: Mutex<Core>,
    events: broadcast::Sender<ClientEvent>,
    /// Something changed the session's deadlines: the driver re-reads them.
    wake: Notify,
    /// `close()` was called.
    closed: Notify,
    epoch: Instant,
}

struct Core {
    session: SyncSession,
    /// Where the client's state survives restarts; `None` keeps it in memory only.
    store: Option<Box<dyn Store + Send>>,
    /// The current connection's outgoing frames.
    writer: Option<mpsc::UnboundedSender<Message>>,
    listeners: Vec<Listener>,
    /// Set when the server refused us for good.
    refused: Option<(Option<ErrorCode>, String)>,
    /// When the state was last saved.
    saved_at: Instant,
}

/// Changes that lose nothing when lost (applied events) are saved at most this often.
const LAZY_SAVE: Duration = Duration::from_secs(1);

impl Core {
    /// Saves what the session says can wait (see [`SyncSession::needs_save`]).
    fn save_lazily(&mut self, events: &mut Vec<ClientEvent>) {
        let state = self.session.client_state();
        match self.store.as_mut().map_or(Ok(()), |s| s.save(&state)) {
            Ok(()) => self.session.mark_saved(),
            Err(err) => events.push(SessionEvent::Error {
                code: None,
                message: format!("could not save the client state: {err}"),
            }),
        }
        self.saved_at = Instant::now();
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the session, then carries out its outputs: saves, sends, and tells the app
    /// (outside the lock, so listeners may call back into the client).
    fn with_session<T>(&self, f: impl FnOnce(&mut SyncSession, u64) -> T) -> (T, bool) {
        let now = self.now();
        let mut events = Vec::new();
        let mut close = false;
        let mut last_code = None;
        let result = {
            let mut core = self.lock();
            let result = f(&mut core.session, now);
            while let Some(output) = core.session.poll_output() {
                match output {
                    Output::Persist => {
                        core.saved_at = Instant::now();
                        let state = core.session.client_state();
                        let saved = core.store.as_mut().map_or(Ok(()), |s| s.save(&state));
                        if let Err(err) = saved {
                            events.push(SessionEvent::Error {
                                code: None,
                                message: format!("could not save the offline queue: {err}"),
                            });
                        }
                    }
                    Output::Transmit(message) => {
                        if let Some(writer) = &core.writer {
                            let _ = writer.send(Message::Text(protocol::encode(&message).into()));
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
            if core.session.needs_save() && core.saved_at.elapsed() >= LAZY_SAVE {
                core.save_lazily(&mut events);
            }
            result
        };
        self.dispatch(events);
        self.wake.notify_one();
        (result, close)
    }

    fn dispatch(&self, events: Vec<ClientEvent>) {
        if events.is_empty() {
            return;
        }
        let core = self.lock();
        for listener in &core.listeners {
            listener(&events);
        }
        drop(core);
        for event in events {
            let _ = self.events.send(event);
        }
    }

    fn emit(&self, event: ClientEvent) {
        self.dispatch(vec![event]);
    }
}

/// The connection loop: connect, pump, back off, again, until closed or refused for good.
async fn drive(shared: Arc<Shared>, url: String, backoff: Backoff) {
    let mut attempt: u32 = 0;
    loop {
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let socket = tokio::select! {
            result = tokio::time::timeout(Duration::from_secs(10), connect) => result,
            _ = shared.closed.notified() => return,
        };
        // A failure surfaces to the app as the `Reconnecting` status below.
        if let Ok(Ok((socket, _))) = socket {
            attempt = 0;
            if pump(&shared, socket).await.is_break() {
                return;
            }
        }
        let delay = backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        shared.emit(SessionEvent::Status(ConnectionStatus::Reconnecting));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.closed.notified() => return,
        }
    }
}

/// One connection's life. `Break` when the client should stop for good.
async fn pump(
    shared: &Arc<Shared>,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};
    let (mut sink, mut stream) = socket.split();
    let (writer, mut outgoing) = mpsc::unbounded_channel();
    shared.lock().writer = Some(writer);
    let (_, mut closed) = shared.with_session(|s, now| s.handle_connected(now));
    let mut stop = Continue(());
    while !closed {
        let deadline = shared.lock().session.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let at = shared.epoch + Duration::from_millis(at);
                    tokio::time::sleep_until(at).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    closed = shared.with_session(|s, now| s.handle_frame(now, &text)).1;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            message = outgoing.recv() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = sleep => {
                closed = shared.with_session(|s, now| s.handle_timeout(now)).1;
            }
            _ = shared.wake.notified() => {}
            _ = shared.closed.notified() => {
                stop = Break(());
                break;
            }
        }
    }
    // Send what the session queued before closing (e.g. nothing after a refusal).
    while let Ok(message) = outgoing.try_recv() {
        let _ = sink.send(message).await;
    }
    let _ = sink.close().await;
    shared.lock().writer = None;
    shared.with_session(|s, now| s.handle_disconnected(now));
    if shared.lock().refused.is_some() {
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
            backoff: Backoff::default(),
            tune: None,
        }
    }

    /// Calls `callback` for every event (applied events, acks, conflicts, status, errors).
    pub fn on_event(&self, callback: impl Fn(&ClientEvent) + Send + Sync + 'static) {
        self.on_events(move |events| events.iter().for_each(&callback));
    }

    /// Calls `callback` with the events of each step at once (all the events of a catch-up page
    /// in one call), in order: one re-render per batch.
    pub fn on_events(&self, callback: impl Fn(&[ClientEvent]) + Send + Sync + 'static) {
        self.shared.lock().listeners.push(Box::new(callback));
    }

    /// Every event from now on, as a stream. A reader more than 1024 events behind skips the
    /// oldest; use [`SyncClient::on_event`] where every event matters.
    pub fn events(&self) -> futures::stream::BoxStream<'static, ClientEvent> {
        let receiver = self.shared.events.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// The document as the app sees it (confirmed plus pending edits); `None` if it does not
    /// exist.
    pub fn document(&self) -> Option<Value> {
        self.shared.lock().session.document().cloned()
    }

    /// Connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.shared.lock().session.status()
    }

    /// Local edits not yet in the server's log.
    pub fn pending_count(&self) -> usize {
        self.shared.lock().session.pending_count()
    }

    /// The `sequenceNum` of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.shared.lock().session.applied_seq()
    }

    /// The client's id.
    pub fn client_id(&self) -> String {
        self.shared.lock().session.config().client_id.clone()
    }

    /// The state vector (origin -> highest `sequenceNum` applied).
    pub fn state_vector(&self) -> crate::VectorClock {
        self.shared.lock().session.state_vector().clone()
    }

    /// Records that events of `client_id` up to `sequence_num` are known (see
    /// [`SyncSession::update_state_vector`]).
    pub fn update_state_vector(&self, client_id: &str, sequence_num: u64) {
        self.shared
            .with_session(|s, _| s.update_state_vector(client_id, sequence_num));
    }

    /// Applies an RFC 6902 patch locally at once, persists it, and queues it for the server.
    /// Returns its `clientSeq`. On error nothing changes.
    pub fn edit(&self, patch: Vec<json_patch::PatchOperation>) -> Result<u64, ClientError> {
        Ok(self.shared.with_session(|s, now| s.edit(now, patch)).0?)
    }

    /// Edits by closure: the document is changed in place and the difference is the edit.
    ///
    /// The closure runs while the client is locked (so that no remote event lands between
    /// reading the document and queueing the difference): it must not call the client.
    pub fn update(&self, change: impl FnOnce(&mut Value)) -> Result<u64, ClientError> {
        let (result, _) = self.shared.with_session(|s, now| {
            let before = s.document().ok_or(SessionError::NoDocument)?;
            let mut after = before.clone();
            change(&mut after);
            let difference = json_patch::diff(before, &after).0;
            s.edit(now, difference)
        });
        Ok(result?)
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

    /// Resolves once the client is online and has caught up with the server's log.
    pub async fn sync_state(&self) -> Result<(), ClientError> {
        let mut events = self.shared.events.subscribe();
        self.shared.with_session(|s, now| s.sync_state(now));
        loop {
            if let Some((code, message)) = self.shared.lock().refused.clone() {
                return Err(ClientError::Refused { code, message });
            }
            match events.recv().await {
                Ok(SessionEvent::Synced { .. }) => return Ok(()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(ClientError::Closed),
            }
        }
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let mut events = self.shared.events.subscribe();
        loop {
            {
                let core = self.shared.lock();
                if core.session.pending_count() == 0 {
                    return Ok(());
                }
                if let Some((code, message)) = core.refused.clone() {
                    return Err(ClientError::Refused { code, message });
                }
            }
            if let Err(broadcast::error::RecvError::Closed) = events.recv().await {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Resolves once every local edit made so far is saved in the client's store. Native
    /// stores save before `edit` returns, so this is ready at once (it exists for parity with
    /// the browser client, whose IndexedDB saves finish later).
    pub async fn saved(&self) -> Result<(), ClientError> {
        Ok(())
    }

    /// Closes the connection and stops reconnecting. The store keeps everything pending.
    pub async fn close(&self) {
        let mut events = Vec::new();
        {
            let mut core = self.shared.lock();
            if core.session.needs_save() {
                core.save_lazily(&mut events);
            }
        }
        self.shared.dispatch(events);
        self.shared.closed.notify_waiters();
        self.shared.closed.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
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
