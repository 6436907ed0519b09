//! [`Multiplexer`]: one connection of protocol version 2 carrying many documents, sans IO
//! (`docs/PROTOCOL.md` section 18).
//!
//! Each document is a [`SyncSession`] in attached mode: it opens its document, catches up,
//! submits and applies events exactly as on a connection of its own. The multiplexer does what
//! belongs to the connection: the `hello`, framing every message with its `documentId` and
//! routing the server's frames back, pings (a `pong`'s `heads` reach each session) and the idle
//! timer, and opening a document again after the server closed it (with a backoff), or leaving
//! it closed for good when the refusal is final.
//!
//! Drive it like a session: after every input drain [`Multiplexer::poll_output`], then arm a
//! timer for [`Multiplexer::poll_timeout`]. `Persist(doc)` comes before the frame that depends
//! on it: save that document's [`SyncSession::client_state`] when you see it.

mod history;
mod presence;

use std::collections::VecDeque;

use crate::vec_map::VecMap;

use serde_json::Value;

use crate::protocol::{
    self, ClientMessage, ErrorCode, PresencePeer, ServerMessage, PROTOCOL_VERSION_2,
};

use crate::session::{ConnectionStatus, Output, SessionEvent, SyncSession};
pub(crate) use history::client_history_api;
pub use history::{HistoryError, HistoryPage, HistoryQuery, HistoryReply, HistoryResult};
use presence::DocPresence;

/// Settings of a connection.
#[derive(Debug, Clone)]
pub struct MultiplexConfig {
    /// This client's stable id (every document's session has the same).
    pub client_id: String,
    /// Sent in `hello` when set.
    pub token: Option<String>,
    /// A connection silent this long is closed (and the driver reconnects).
    pub idle_timeout_ms: u64,
    /// A `ping` is sent after this long with nothing received or sent.
    pub ping_interval_ms: u64,
    /// A `hello` unanswered this long: the connection starts over.
    pub request_timeout_ms: u64,
    /// Presence updates of a document go out at most once per this long (the latest wins).
    pub presence_interval_ms: u64,
    /// The largest presence state this client publishes, in bytes of JSON (the server's limit).
    pub max_presence_bytes: usize,
}

impl MultiplexConfig {
    /// Defaults of section 9: 30 s idle, 15 s pings.
    pub fn new(client_id: impl Into<String>) -> Self {
        MultiplexConfig {
            client_id: client_id.into(),
            token: None,
            idle_timeout_ms: 30_000,
            ping_interval_ms: 15_000,
            request_timeout_ms: 10_000,
            presence_interval_ms: 100,
            max_presence_bytes: protocol::MAX_PRESENCE_BYTES,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum MuxOutput {
    /// Save this document's [`SyncSession::client_state`] now, before transmitting anything else.
    Persist(String),
    /// Send this text frame.
    Transmit(String),
    /// Tell the app about a document (`None`: about the connection).
    Event(Option<String>, SessionEvent),
    /// Close the connection; reconnect (with backoff) when `reconnect`.
    Close {
        /// Whether reconnecting can help.
        reconnect: bool,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offline,
    /// `hello` sent at this time.
    Handshaking(u64),
    Open,
}

/// A document the server closed: when to open it again (`None`: not on its own, the refusal
/// is final), and how many times in a row.
#[derive(Debug, Clone, Copy)]
struct Reopen {
    at: Option<u64>,
    attempt: u32,
}

/// Refusals of a document (or of the connection) that trying again cannot help with: a driver
/// fails the document's waiting calls with them.
pub fn final_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::UnknownDocument
            | ErrorCode::UnsupportedVersion
            | ErrorCode::ClientMismatch
    )
}

/// The refusal an event reports when trying again cannot help (its code and message), which a
/// driver keeps to fail the document's (or, without a document, the connection's) waiting calls.
pub fn refusal_in(event: &SessionEvent) -> Option<(Option<ErrorCode>, String)> {
    match event {
        SessionEvent::Error {
            code: Some(code),
            message,
        } if final_refusal(*code) => Some((Some(*code), message.clone())),
        _ => None,
    }
}

/// A connection's status: the best of its documents' (`Offline` with none).
pub fn best_status(statuses: impl Iterator<Item = ConnectionStatus>) -> ConnectionStatus {
    let rank = |status: ConnectionStatus| match status {
        ConnectionStatus::Online => 3,
        ConnectionStatus::Connecting => 2,
        ConnectionStatus::Reconnecting => 1,
        ConnectionStatus::Offline => 0,
    };
    statuses
        .max_by_key(|status| rank(*status))
        .unwrap_or(ConnectionStatus::Offline)
}

/// One version 2 connection and its documents (see the module documentation).
#[derive(Debug)]
pub struct Multiplexer {
    config: MultiplexConfig,
    phase: Phase,
    sessions: VecMap<String, SyncSession>,
    /// Documents the server closed on its own.
    closed: VecMap<String, Reopen>,
    /// Each document's presence.
    presence: VecMap<String, DocPresence>,
    /// History requests (18.8).
    requests: history::Requests,
    last_received: u64,
    last_sent: u64,
    /// The latest time an input brought.
    now: u64,
    outputs: VecDeque<MuxOutput>,
}

/// Why [`Multiplexer::set_presence`] refused a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// Over the limit (`too_large`).
    #[error("a presence state is at most {limit} bytes of JSON, not {size}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// It holds an integer beyond +/-(2^53 - 1), which JavaScript peers would read rounded
    /// (`too_large`, as an edit placing one).
    #[error("presence state: the integer {0} is beyond +/-(2^53 - 1), which JavaScript clients cannot hold exactly: store it as a string")]
    UnsafeInteger(serde_json::Number),
    /// The document is not on this connection.
    #[error("{0} is not open on this connection")]
    NotOpen(String),
    /// A client with a connection of its own (protocol version 1) has no presence.
    #[error("presence rides on protocol version 2: open the document through a SyncConnection")]
    NeedsConnection,
}

impl PresenceError {
    /// Whether `state` may be published where states are at most `max_bytes` of compact JSON:
    /// within that, and holding no integer beyond +/-(2^53 - 1) (section 18.7). The rule of the
    /// client's `set_presence` and of the server's `presence` alike.
    pub fn check_state(state: &Value, max_bytes: usize) -> Result<(), PresenceError> {
        let size = protocol::presence_size(state);
        if size > max_bytes {
            return Err(PresenceError::TooLarge {
                size,
                limit: max_bytes,
            });
        }
        match crate::diff::unsafe_integer(state) {
            Some(n) => Err(PresenceError::UnsafeInteger(n.clone())),
            None => Ok(()),
        }
    }

    /// The protocol code that says the same.
    pub fn code(&self) -> ErrorCode {
        match self {
            PresenceError::TooLarge { .. } | PresenceError::UnsafeInteger(_) => ErrorCode::TooLarge,
            PresenceError::NotOpen(_) | PresenceError::NeedsConnection => {
                ErrorCode::UnexpectedMessage
            }
        }
    }
}

/// The wait before opening a closed document again: 0.5 s doubling, at most 30 s.
fn reopen_delay(attempt: u32) -> u64 {
    500u64.saturating_mul(1 << attempt.min(6)).min(30_000)
}

impl Multiplexer {
    /// A connection with no documents yet.
    pub fn new(config: MultiplexConfig) -> Self {
        Multiplexer {
            config,
            phase: Phase::Offline,
            sessions: VecMap::new(),
            closed: VecMap::new(),
            presence: VecMap::new(),
            requests: history::Requests::default(),
            last_received: 0,
            last_sent: 0,
            now: 0,
            outputs: VecDeque::new(),
        }
    }

    // ----- documents -----

    /// Adds a document's session; it is opened at once when the connection is up.
    pub fn add(&mut self, now: u64, session: SyncSession) {
        self.now = self.now.max(now);
        let document_id = session.config().document_id.clone();
        self.closed.remove(&document_id);
        self.presence
            .insert(document_id.clone(), DocPresence::default());
        self.sessions.insert(document_id.clone(), session);
        if self.phase == Phase::Open {
            self.with_session(&document_id, |session| session.handle_attached(now));
        }
    }

    /// Removes a document (closing it on the connection) and returns its session.
    pub fn remove(&mut self, now: u64, document_id: &str) -> Option<SyncSession> {
        self.now = self.now.max(now);
        let mut session = self.sessions.remove(document_id)?;
        // The server drops our presence with the document.
        self.presence.remove(document_id);
        self.requests.removed(document_id);
        let closed_by_server = self.closed.remove(document_id).is_some();
        if self.phase == Phase::Open && !closed_by_server {
            self.transmit(now, Some(document_id), ClientMessage::Close);
        }
        session.handle_disconnected(now);
        Some(session)
    }

    /// A document's session.
    pub fn session(&self, document_id: &str) -> Option<&SyncSession> {
        self.sessions.get(document_id)
    }

    /// Every document's session.
    pub fn sessions(&self) -> impl Iterator<Item = &SyncSession> {
        self.sessions.values()
    }

    /// Runs `f` on a document's session (an edit, `sync_state`, ...), then takes its outputs.
    /// `None` when the document is not on this connection.
    pub fn with_session<T>(
        &mut self,
        document_id: &str,
        f: impl FnOnce(&mut SyncSession) -> T,
    ) -> Option<T> {
        let session = self.sessions.get_mut(document_id)?;
        let result = f(session);
        self.drain(document_id);
        Some(result)
    }

    // ----- outputs -----

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<MuxOutput> {
        self.outputs.pop_front()
    }

    /// When [`Multiplexer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.phase == Phase::Offline {
            return None;
        }
        let mut at = (self.last_received + self.config.idle_timeout_ms)
            .min(self.last_received.max(self.last_sent) + self.config.ping_interval_ms);
        if let Phase::Handshaking(sent) = self.phase {
            at = at.min(sent + self.config.request_timeout_ms);
        }
        for session in self.sessions.values() {
            if let Some(deadline) = session.poll_timeout() {
                at = at.min(deadline);
            }
        }
        for reopen in self.closed.values() {
            if let Some(deadline) = reopen.at {
                at = at.min(deadline);
            }
        }
        let interval = self.config.presence_interval_ms;
        for due in self.presence.values().filter_map(|p| p.due(interval)) {
            at = at.min(due);
        }
        if let Some(deadline) = self.requests.deadline() {
            at = at.min(deadline);
        }
        Some(at)
    }

    // ----- inputs -----

    /// The transport is open: say hello (version 2).
    pub fn handle_connected(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.phase = Phase::Handshaking(now);
        self.last_received = now;
        self.closed.clear();
        let hello = ClientMessage::Hello {
            protocol_versions: vec![PROTOCOL_VERSION_2],
            client_id: self.config.client_id.clone(),
            token: self.config.token.clone(),
        };
        self.transmit(now, None, hello);
    }

    /// The transport closed: every document goes offline; pending edits stay queued.
    pub fn handle_disconnected(&mut self, now: u64) {
        self.now = self.now.max(now);
        if self.phase == Phase::Offline {
            return;
        }
        self.phase = Phase::Offline;
        self.requests.disconnected();
        let documents: Vec<String> = self.sessions.keys().cloned().collect();
        for document_id in documents {
            self.with_session(&document_id, |session| session.handle_disconnected(now));
            self.presence_closed(&document_id);
        }
    }

    /// A text frame from the server.
    pub fn handle_frame(&mut self, now: u64, text: &str) {
        if self.phase == Phase::Offline {
            return;
        }
        self.now = self.now.max(now);
        self.last_received = now;
        let scoped = match protocol::decode_server_scoped(text) {
            Ok(scoped) => scoped,
            Err(err) => {
                let event = SessionEvent::Error {
                    code: Some(err.code()),
                    message: format!("unreadable frame from the server: {err}"),
                };
                self.outputs.push_back(MuxOutput::Event(None, event));
                return;
            }
        };
        match (scoped.document_id, scoped.message) {
            (
                None,
                ServerMessage::Welcome {
                    protocol_version, ..
                },
            ) => self.welcomed(now, protocol_version),
            (None, ServerMessage::Pong { heads, .. }) => {
                for (document_id, head_seq) in heads.unwrap_or_default() {
                    self.with_session(&document_id, |session| session.handle_head(now, head_seq));
                }
            }
            (None, ServerMessage::Error { code, message }) => self.connection_error(code, message),
            (None, _) => {}
            (Some(document_id), message) => self.document_message(now, document_id, message),
        }
    }

    /// Time passed: ping, give up on a silent connection, reopen closed documents, and the
    /// sessions' own timers (requests, backoffs).
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.requests.expire(now, self.config.request_timeout_ms);
        if self.phase == Phase::Offline {
            return;
        }
        if now >= self.last_received + self.config.idle_timeout_ms {
            self.close(true, "the connection went silent".into());
            return;
        }
        if let Phase::Handshaking(sent) = self.phase {
            if now >= sent + self.config.request_timeout_ms {
                self.close(true, "no welcome: the hello went unanswered".into());
                return;
            }
        }
        if now >= self.last_received.max(self.last_sent) + self.config.ping_interval_ms {
            self.transmit(now, None, ClientMessage::Ping { nonce: Some(now) });
        }
        let due: Vec<String> = self
            .closed
            .iter()
            .filter(|(_, reopen)| reopen.at.is_some_and(|at| now >= at))
            .map(|(id, _)| id.clone())
            .collect();
        for document_id in due {
            if let Some(reopen) = self.closed.get_mut(&document_id) {
                reopen.at = None;
            }
            self.with_session(&document_id, |session| session.handle_attached(now));
        }
        let documents: Vec<String> = self.sessions.keys().cloned().collect();
        for document_id in documents {
            self.with_session(&document_id, |session| session.handle_timeout(now));
            self.flush_presence(&document_id);
        }
    }

    // ----- presence (18.7) -----

    /// Shows `state` to the document's other peers (`null`: nothing), now or, when an update
    /// went out less than `presence_interval_ms` ago, then (the latest wins). Kept across
    /// reconnects and published again whenever the document is opened again.
    pub fn set_presence(
        &mut self,
        now: u64,
        document_id: &str,
        state: Value,
    ) -> Result<(), PresenceError> {
        PresenceError::check_state(&state, self.config.max_presence_bytes)?;
        self.now = self.now.max(now);
        let presence = self
            .presence
            .get_mut(document_id)
            .ok_or_else(|| PresenceError::NotOpen(document_id.to_owned()))?;
        presence.set((!state.is_null()).then_some(state));
        self.flush_presence(document_id);
        Ok(())
    }

    /// This client's presence on a document (`None`: none).
    pub fn presence(&self, document_id: &str) -> Option<&Value> {
        self.presence.get(document_id)?.local()
    }

    /// The other peers' presence on a document, in client id order (empty while it is not open
    /// on the server).
    pub fn others(&self, document_id: &str) -> Vec<PresencePeer> {
        self.presence
            .get(document_id)
            .map_or_else(Vec::new, DocPresence::others)
    }

    fn flush_presence(&mut self, document_id: &str) {
        if self.phase != Phase::Open {
            return;
        }
        let interval = self.config.presence_interval_ms;
        let now = self.now;
        let Some(state) = self
            .presence
            .get_mut(document_id)
            .and_then(|p| p.flush(now, interval))
        else {
            return;
        };
        self.transmit(now, Some(document_id), ClientMessage::Presence { state });
    }

    fn presence_closed(&mut self, document_id: &str) {
        if self
            .presence
            .get_mut(document_id)
            .is_some_and(DocPresence::closed)
        {
            self.presence_event(document_id);
        }
    }

    fn presence_event(&mut self, document_id: &str) {
        let others = self.others(document_id);
        let event = SessionEvent::Presence(others);
        self.outputs
            .push_back(MuxOutput::Event(Some(document_id.to_owned()), event));
    }

    // ----- internals -----

    fn welcomed(&mut self, now: u64, protocol_version: u32) {
        if protocol_version != PROTOCOL_VERSION_2 {
            return self.close(
                false,
                format!("server chose unsupported protocol version {protocol_version}"),
            );
        }
        self.phase = Phase::Open;
        let documents: Vec<String> = self.sessions.keys().cloned().collect();
        for document_id in documents {
            self.with_session(&document_id, |session| session.handle_attached(now));
        }
    }

    /// An `error` about the connection (before `welcome`: the `hello` was refused).
    fn connection_error(&mut self, code: ErrorCode, message: String) {
        let event = SessionEvent::Error {
            code: Some(code),
            message: message.clone(),
        };
        self.outputs.push_back(MuxOutput::Event(None, event));
        match code {
            ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::UnsupportedVersion
            | ErrorCode::ClientMismatch => self.close(false, message),
            ErrorCode::UnexpectedMessage => self.close(true, message),
            _ => {}
        }
    }

    fn document_message(&mut self, now: u64, document_id: String, message: ServerMessage) {
        let message = match message {
            ServerMessage::History(answer) => {
                return self.requests.history_answer(&document_id, answer)
            }
            ServerMessage::Version(answer) => {
                return self.requests.version_answer(&document_id, answer)
            }
            message => message,
        };
        if let ServerMessage::Presence(update) = message {
            let Some(presence) = self.presence.get_mut(&document_id) else {
                return;
            };
            let effects = presence.received(now, update);
            if effects.others_changed {
                self.presence_event(&document_id);
            }
            if let Some((code, message)) = effects.error {
                let event = SessionEvent::Error {
                    code: Some(code),
                    message: format!("presence not published: {message}"),
                };
                self.outputs
                    .push_back(MuxOutput::Event(Some(document_id), event));
            }
            return;
        }
        let attached = self
            .sessions
            .get(&document_id)
            .is_some_and(|s| s.status() != ConnectionStatus::Offline);
        let opened = attached && matches!(message, ServerMessage::Opened { .. });
        if opened {
            // Open again: a later refusal starts the backoff over. (An `opened` that reaches a
            // session gone offline is a stale answer: it stays scheduled to open again.)
            self.closed.remove(&document_id);
        }
        // A `closed` makes the session close the document: its presence goes in `drain`.
        self.with_session(&document_id, |session| session.handle_message(now, message));
        if opened {
            if self
                .presence
                .get_mut(&document_id)
                .is_some_and(DocPresence::opened)
            {
                self.presence_event(&document_id);
            }
            self.flush_presence(&document_id);
        }
        // History requests wait for the document to be open and caught up.
        if self
            .sessions
            .get(&document_id)
            .is_some_and(|s| s.status() == ConnectionStatus::Online)
        {
            self.flush_requests(&document_id);
        }
    }

    /// Takes a session's outputs: its frames get the document's id, its closes concern the
    /// document alone.
    fn drain(&mut self, document_id: &str) {
        loop {
            let Some(output) = self
                .sessions
                .get_mut(document_id)
                .and_then(SyncSession::poll_output)
            else {
                return;
            };
            match output {
                Output::Persist => self
                    .outputs
                    .push_back(MuxOutput::Persist(document_id.to_owned())),
                Output::Transmit(message) => {
                    if self.phase == Phase::Open {
                        self.transmit(self.now, Some(document_id), message);
                    }
                }
                Output::Event(event) => self
                    .outputs
                    .push_back(MuxOutput::Event(Some(document_id.to_owned()), event)),
                Output::Close { reconnect, .. } => {
                    // The server closed the document, or the session gave up on it
                    // (`unexpected_message`: the server does not have it open, or has it open
                    // twice over). Close it on the server too, so that both sides agree, then
                    // open it again after a backoff, unless that cannot help (18.2).
                    if self.phase == Phase::Open {
                        self.transmit(self.now, Some(document_id), ClientMessage::Close);
                    }
                    self.presence_closed(document_id);
                    let attempt = self.closed.get(document_id).map_or(0, |r| r.attempt + 1);
                    let at = reconnect.then(|| self.now + reopen_delay(attempt));
                    self.closed
                        .insert(document_id.to_owned(), Reopen { at, attempt });
                }
            }
        }
    }

    fn transmit(&mut self, now: u64, document_id: Option<&str>, message: ClientMessage) {
        self.last_sent = self.last_sent.max(now);
        let frame = protocol::encode_client(document_id, &message);
        self.outputs.push_back(MuxOutput::Transmit(frame));
    }

    fn close(&mut self, reconnect: bool, reason: String) {
        self.outputs
            .push_back(MuxOutput::Close { reconnect, reason });
        self.handle_disconnected(self.last_received);
    }
}

/// History (18.8): requests about a document's past, answered through
/// [`Multiplexer::poll_answer`].
impl Multiplexer {
    /// Asks about a document's history; returns the request's id, which its end carries. The
    /// request goes out once the document is open on the server (again after a reconnect) and
    /// ends exactly once: answered, refused, or after `request_timeout_ms` without an answer.
    pub fn request_history(&mut self, now: u64, document_id: &str, query: HistoryQuery) -> u64 {
        self.now = self.now.max(now);
        let deadline = now + self.config.request_timeout_ms;
        let id = self.requests.add(document_id, query, deadline);
        if !self.sessions.contains_key(document_id) {
            let error = HistoryError::NotOpen(document_id.to_owned());
            self.requests.end(id, Err(error));
        } else if self
            .sessions
            .get(document_id)
            .is_some_and(|s| s.status() == ConnectionStatus::Online)
        {
            self.flush_requests(document_id);
        }
        id
    }

    /// The next history request that ended: its id and how.
    pub fn poll_answer(&mut self) -> Option<(u64, HistoryResult)> {
        self.requests.poll()
    }

    fn flush_requests(&mut self, document_id: &str) {
        if self.phase != Phase::Open {
            return;
        }
        for frame in self.requests.unsent(document_id) {
            self.transmit(self.now, Some(document_id), frame);
        }
    }
}
