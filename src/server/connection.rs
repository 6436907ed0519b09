//! One connection of a server, sans IO: the server's counterpart of [`crate::SyncSession`].
//!
//! [`ServerConnection`] holds every rule a server applies to one WebSocket connection or SSE stream
//! (`docs/PROTOCOL.md` 4 to 9, 13 and 18): the `hello` checks in their order and the version,
//! opening and closing documents (version 2), catch-up paging and snapshots
//! ([`super::CatchUp`]), live delivery without gaps, submits and their answers in order,
//! keep-alive, the rate limit, token expiry, and the close codes. The handshake is in
//! `connection/handshake.rs`, opening and closing documents in `connection/opening.rs`, the rules
//! of one open document in `connection/documents.rs`. It has no socket, no store and no clock: the driver feeds it
//! what arrives (`handle_*`), drains what to do ([`ServerConnection::poll_output`]) and answers
//! its requests ([`Request`], fed back with [`ServerConnection::handle_reply`]). Time comes in as
//! milliseconds (the reference server passes Unix milliseconds, so that token expiry compares
//! with them).
//!
//! Drive it like this: after every `handle_*` call, drain `poll_output` until it returns `None`.
//! An [`Output::Request`] must be answered with `handle_reply` before draining on; everything
//! the connection sends is in the order the outputs come. Then wait for the next input, or for
//! [`ServerConnection::poll_timeout`].

mod documents;
mod handshake;
mod history;
mod opening;
mod presence;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::protocol::{
    self, ClientMessage, EncodedFrame, ErrorCode, FrameKind, PresencePeer, PresenceUpdate,
    ServerMessage,
};
use crate::vector_clock::VectorClock;

use super::catch_up::{CatchUp, LogEvents};
use super::limits::{validate_document_id, validate_id, ConnectionLimiter, Limits};
use super::requests::{Credentials, LiveBatch, Output, Reply, Request, Rights};

/// WebSocket close codes (RFC 6455 7.4.1) the connection uses.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy violation.
    pub const POLICY: u16 = 1008;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
}

/// The close code that follows an `error` frame with `code` (4.3).
pub fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::ClientMismatch => close::POLICY,
        ErrorCode::UnsupportedVersion | ErrorCode::UnknownDocument | ErrorCode::MalformedFrame => {
            close::PROTOCOL_ERROR
        }
        ErrorCode::Internal => close::INTERNAL,
        _ => close::NORMAL,
    }
}

/// The highest version in both the client's list and the endpoint's: version 1 on a document's
/// URL (`/sync/{documentId}`), version 2 on the connection URL (`/sync`) (5.1, 18.1).
pub fn negotiate_version(offered: &[u32], per_document: bool) -> Option<u32> {
    let spoken = if per_document {
        protocol::PROTOCOL_VERSION
    } else {
        protocol::PROTOCOL_VERSION_2
    };
    offered.iter().copied().filter(|v| *v == spoken).max()
}

/// The transport a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A WebSocket: `hello` first, then any client message.
    WebSocket,
    /// `GET /api/stream/{documentId}`: receive-only, one gapless sequence from a position (13).
    EventStream,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Waiting for `hello`.
    Hello {
        deadline: u64,
    },
    /// The `hello` was accepted; the token is being checked.
    Authorizing {
        client_id: String,
        version: u32,
    },
    /// Serving (version 1 and SSE: once its document is open).
    Open,
    Closed,
}

/// What the connection is doing for one document, across requests.
#[derive(Debug)]
enum Task {
    /// Asking what the client may do with the document (version 1: the hello's; 2: an `open`).
    Admit,
    /// Subscribing and reading the head.
    Opening {
        may_write: bool,
    },
    Sync {
        machine: Box<CatchUp>,
        vector: VectorClock,
        after: Option<u64>,
        resume: Option<u64>,
    },
    Submit {
        first: u64,
    },
    Deliver {
        through: u64,
        answer: Vec<ServerMessage>,
    },
    Repair {
        answer: Vec<ServerMessage>,
    },
    /// Version 2: reading the others' presence for a document just opened.
    Presence,
    /// Version 2: a page of history for a `history` request (18.8).
    History {
        machine: Box<CatchUp>,
        request_id: u64,
    },
    /// Version 2: the document as of a position, for a `version` request (18.8).
    Version {
        machine: Box<super::history::VersionAt>,
        request_id: u64,
    },
}

/// One open document of the connection.
#[derive(Debug)]
struct Doc<L> {
    /// The highest `sequenceNum` delivered on this connection (7.1): live events continue it.
    sent: u64,
    /// The highest `sequenceNum` this connection knows the log has.
    known_head: u64,
    may_write: bool,
    /// A live batch did not continue what was sent: repair from the log when idle.
    gap: bool,
    /// Live batches that arrived while the connection was busy.
    live: VecDeque<L>,
    /// In the connection's `ready` queue.
    ready: bool,
    /// SSE: the stream's `connected` event was sent; `streamed`: anything after it.
    connected: bool,
    streamed: bool,
    /// Version 2: the client has presence on the document (18.7).
    presence: bool,
}

impl<L> Doc<L> {
    fn new(sent: u64, known_head: u64, may_write: bool) -> Self {
        Doc {
            sent,
            known_head,
            may_write,
            gap: false,
            live: VecDeque::new(),
            ready: false,
            connected: false,
            streamed: false,
            presence: false,
        }
    }
}

#[derive(Debug)]
enum Input {
    Text(String),
    Binary,
}

/// One server connection (see the module documentation).
#[derive(Debug)]
pub struct ServerConnection<L> {
    mode: Mode,
    /// The document of a version-1 connection or an SSE stream; `None` on the version-2
    /// endpoint, where documents are opened on the connection.
    bound: Option<String>,
    version: u32,
    limits: Limits,
    url_token: Option<String>,
    phase: Phase,
    client_id: String,
    expires_at: Option<u64>,
    docs: HashMap<String, Doc<L>>,
    /// Documents with live batches or a gap to work through, in arrival order.
    ready: VecDeque<String>,
    limiter: ConnectionLimiter,
    now: u64,
    /// When the client last sent anything: its presence goes after `presence_timeout_ms` of
    /// silence (18.7).
    last_heard: u64,
    /// A request is outstanding.
    awaiting: bool,
    task: Option<(String, Task)>,
    inbox: VecDeque<Input>,
    outputs: VecDeque<Output<L>>,
}

impl<L: LiveBatch> ServerConnection<L> {
    /// A WebSocket connection accepted at `now`: to `document_id` (the version-1 URL), or with
    /// `None`, to the connection URL of version 2. `url_token` is the token the upgrade request
    /// carried (`?token=` or `Authorization`); one in `hello` wins over it.
    pub fn websocket(
        document_id: Option<String>,
        limits: Limits,
        url_token: Option<String>,
        now: u64,
    ) -> Self {
        let deadline = now.saturating_add(limits.hello_timeout_ms);
        let mut connection = Self::new(document_id, Mode::WebSocket, limits, now);
        connection.url_token = url_token;
        connection.phase = Phase::Hello { deadline };
        connection
    }

    /// An SSE stream of `document_id` from position `after`, for credentials the driver checked
    /// before the stream started (13). The first outputs are requests, then either
    /// [`Output::Connected`] (the stream starts) or an `error` and a close (the driver answers
    /// with that error as an HTTP status instead).
    pub fn event_stream(
        document_id: impl Into<String>,
        limits: Limits,
        after: u64,
        expires_at: Option<u64>,
        now: u64,
    ) -> Self {
        let document_id = document_id.into();
        let mut connection = Self::new(Some(document_id.clone()), Mode::EventStream, limits, now);
        connection.version = protocol::PROTOCOL_VERSION;
        connection.expires_at = expires_at;
        connection.phase = Phase::Open;
        // The stream's position is where the catch-up starts (`sent` of its document).
        connection
            .docs
            .insert(document_id.clone(), Doc::new(after, 0, false));
        connection.task = Some((document_id.clone(), Task::Opening { may_write: false }));
        connection.request(Request::Open { document_id });
        connection
    }

    fn new(bound: Option<String>, mode: Mode, limits: Limits, now: u64) -> Self {
        ServerConnection {
            mode,
            bound,
            version: 0,
            limiter: ConnectionLimiter::new(&limits),
            limits,
            url_token: None,
            phase: Phase::Closed,
            client_id: String::new(),
            expires_at: None,
            docs: HashMap::new(),
            ready: VecDeque::new(),
            now,
            last_heard: now,
            awaiting: false,
            task: None,
            inbox: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// The document of a version-1 connection or SSE stream (`None` on the version-2 endpoint).
    pub fn document_id(&self) -> Option<&str> {
        self.bound.as_deref()
    }

    /// The client the `hello` bound the connection to (`None` before `welcome`, and for SSE).
    pub fn client_id(&self) -> Option<&str> {
        Some(self.client_id.as_str()).filter(|id| !id.is_empty())
    }

    /// The protocol version spoken (0 before `welcome`).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// True once the connection has closed (after its [`Output::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The documents open on the connection.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// The highest `sequenceNum` delivered on the connection for a document.
    pub fn delivered(&self, document_id: &str) -> Option<u64> {
        self.docs.get(document_id).map(|doc| doc.sent)
    }

    // --- inputs ----------------------------------------------------------------------------

    /// A text message arrived.
    pub fn handle_text(&mut self, now: u64, text: impl Into<String>) {
        self.now = self.now.max(now);
        self.last_heard = self.now;
        self.inbox.push_back(Input::Text(text.into()));
        self.advance();
    }

    /// A binary message arrived: not part of the protocol (4.2).
    pub fn handle_binary(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.last_heard = self.now;
        self.inbox.push_back(Input::Binary);
        self.advance();
    }

    /// A text message that is not UTF-8 arrived: the WebSocket connection fails (RFC 6455 8.1).
    pub fn handle_invalid_utf8(&mut self, now: u64) {
        self.now = self.now.max(now);
        if self.is_closed() {
            return;
        }
        self.send(ServerMessage::Error {
            code: ErrorCode::MalformedFrame,
            message: "a text message that is not UTF-8".into(),
        });
        self.close(close::INVALID_DATA, "invalid UTF-8");
    }

    /// The fan-out published a batch of a document's events.
    pub fn handle_live(&mut self, now: u64, batch: L) {
        self.now = self.now.max(now);
        let Some(document_id) = batch.events().first().map(|e| e.document_id.clone()) else {
            return;
        };
        let document_id = document_id.as_str();
        if matches!(&self.task, Some((doc, Task::Deliver { .. })) if doc == document_id) {
            // Draining for a submit's answer: its events go first (8.2).
            let document_id = document_id.to_owned();
            return self.live_batch(&document_id, batch);
        }
        let Some(doc) = self.docs.get_mut(document_id) else {
            // Not open (yet, or any more).
            return;
        };
        doc.live.push_back(batch);
        if !doc.ready {
            doc.ready = true;
            let document_id = document_id.to_owned();
            self.ready.push_back(document_id);
        }
        self.advance();
    }

    /// The fan-out dropped batches of a document for this connection (it fell behind): they are
    /// read from the log instead.
    pub fn handle_lagged(&mut self, now: u64, document_id: &str) {
        self.now = self.now.max(now);
        if let Some(doc) = self.docs.get_mut(document_id) {
            doc.gap = true;
            if !doc.ready {
                doc.ready = true;
                self.ready.push_back(document_id.to_owned());
            }
        }
        self.advance();
    }

    /// The answer to the last [`Output::Request`].
    pub fn handle_reply(&mut self, now: u64, reply: Reply) {
        self.now = self.now.max(now);
        self.awaiting = false;
        if self.is_closed() {
            return;
        }
        match reply {
            Reply::Authorized(result) => self.authorized(result),
            Reply::Admitted(result) => self.admitted(result),
            Reply::Opened(result) => self.opened(result),
            Reply::Read(result) => self.read(result),
            Reply::Submitted(submitted) => self.submitted(submitted),
            Reply::Drained => self.drained(),
            Reply::Presence(peers) => self.presence_snapshot(peers),
        }
        self.advance();
    }

    /// Time passed: the `hello` deadline, token expiry.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = self.now.max(now);
        match self.phase {
            Phase::Closed => return,
            Phase::Hello { deadline } if now >= deadline => {
                let seconds = self.limits.hello_timeout_ms / 1000;
                self.refuse(
                    ErrorCode::UnexpectedMessage,
                    format!("no hello within {seconds} seconds"),
                );
                return;
            }
            _ => {}
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            self.send(ServerMessage::Error {
                code: ErrorCode::Unauthorized,
                message: "the access token expired".into(),
            });
            return self.close(close::POLICY, "token expired");
        }
        self.expire_presence(now);
    }

    /// The server is shutting down.
    pub fn handle_shutdown(&mut self, now: u64) {
        self.now = self.now.max(now);
        if !self.is_closed() {
            self.close(close::GOING_AWAY, "server shutting down");
        }
    }

    // --- outputs ---------------------------------------------------------------------------

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output<L>> {
        self.outputs.pop_front()
    }

    /// When [`ServerConnection::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::Closed => None,
            Phase::Hello { deadline } => Some(deadline),
            _ => match (self.expires_at, self.presence_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    // --- plumbing --------------------------------------------------------------------------

    fn send(&mut self, message: ServerMessage) {
        self.outputs.push_back(Output::Send(message));
    }

    /// Events of a document, as a message or (read from the log as text) as a frame of `kind`.
    fn send_events(&mut self, document_id: &str, events: LogEvents, kind: FrameKind) {
        match (events, kind) {
            (LogEvents::Encoded(events), kind) => {
                self.outputs.push_back(Output::SendEncoded(EncodedFrame {
                    document_id: document_id.to_owned(),
                    events,
                    kind,
                }));
            }
            (LogEvents::Parsed(events), FrameKind::Events { head_seq, has_more }) => {
                let message = ServerMessage::Events {
                    events,
                    head_seq: Some(head_seq),
                    has_more,
                };
                self.send_to(document_id, message);
            }
            (LogEvents::Parsed(events), FrameKind::Event) => {
                self.send_to(document_id, ServerMessage::Event { events });
            }
        }
    }

    /// A message about a document: framed with its `documentId` in version 2.
    fn send_to(&mut self, document_id: &str, message: ServerMessage) {
        if self.version == protocol::PROTOCOL_VERSION_2 {
            self.outputs
                .push_back(Output::SendTo(document_id.to_owned(), message));
        } else {
            self.send(message);
        }
    }

    fn request(&mut self, request: Request) {
        self.awaiting = true;
        self.outputs.push_back(Output::Request(request));
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        self.phase = Phase::Closed;
        self.task = None;
        self.inbox.clear();
        self.docs.clear();
        self.ready.clear();
        self.outputs.push_back(Output::Close { code, reason });
    }

    /// An `error` and a close: for a refused `hello` (5.2 rule 3), and for SSE, an error before
    /// or during the stream (13).
    fn refuse(&mut self, code: ErrorCode, message: String) {
        self.send(ServerMessage::Error { code, message });
        self.close(close_code(code), "refused");
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::Error {
            code,
            message: message.into(),
        });
    }

    fn error_about(&mut self, document_id: &str, code: ErrorCode, message: impl Into<String>) {
        let message = ServerMessage::Error {
            code,
            message: message.into(),
        };
        self.send_to(document_id, message);
    }

    /// Works through what waits while nothing is outstanding: live batches and gaps of the
    /// documents, then the client's frames, in order.
    fn advance(&mut self) {
        while !self.awaiting && self.task.is_none() && !self.is_closed() {
            if let Some(document_id) = self.ready.pop_front() {
                self.work_on(&document_id);
            } else if let Some(input) = self.inbox.pop_front() {
                self.input(input);
            } else {
                break;
            }
        }
    }

    fn input(&mut self, input: Input) {
        if self.mode == Mode::EventStream {
            return;
        }
        let decoded = match input {
            Input::Binary => Err((
                ErrorCode::MalformedFrame,
                "binary messages are not part of the protocol".to_owned(),
            )),
            // Version 2 frames name their document; the others are read strictly as version 1
            // (a `documentId` member there is unknown, and ignored).
            Input::Text(text) if self.version == protocol::PROTOCOL_VERSION_2 => {
                protocol::decode_client_scoped(&text, self.limits.max_frame_bytes)
                    .map(|scoped| (scoped.document_id, scoped.message))
                    .map_err(|err| (err.code(), err.to_string()))
            }
            Input::Text(text) => protocol::decode_client(&text, self.limits.max_frame_bytes)
                .map(|message| (None, message))
                .map_err(|err| (err.code(), err.to_string())),
        };
        let multiplexed = self.version == protocol::PROTOCOL_VERSION_2;
        let frame = decoded.as_ref().ok().map(|(s, m)| (s.as_deref(), m));
        if !self.limiter.allow(self.now, frame, multiplexed) {
            if let (Ok((Some(document_id), ClientMessage::Open)), true) = (&decoded, multiplexed) {
                // Refused like any open the server cannot serve now (18.2).
                let message = "too many documents opened: slow down".to_owned();
                return self.refuse_document(document_id, ErrorCode::RateLimited, message);
            }
            if let (Ok((Some(document_id), ClientMessage::Presence { .. })), true) =
                (&decoded, multiplexed && matches!(self.phase, Phase::Open))
            {
                let document_id = document_id.clone();
                let message = "too many messages: presence update dropped, slow down";
                return self.refuse_presence(&document_id, ErrorCode::RateLimited, message.into());
            }
            if let (
                Ok((
                    Some(document_id),
                    message @ (ClientMessage::History(_) | ClientMessage::Version(_)),
                )),
                true,
            ) = (&decoded, multiplexed && matches!(self.phase, Phase::Open))
            {
                let document_id = document_id.clone();
                let detail = "too many messages: slow down".to_owned();
                return self.refuse_history(&document_id, message, ErrorCode::RateLimited, detail);
            }
            // A rate limit that hits an edit is a reject of that edit (8.3): the client backs off
            // and resends instead of waiting for its request timeout.
            if let (Ok((scope, ClientMessage::Submit { edits })), Phase::Open) =
                (&decoded, &self.phase)
            {
                let target = self.target(scope.as_deref());
                if let (Some(first), Some(document_id)) = (edits.first(), target) {
                    let first = first.client_seq;
                    return self.rate_limited_submit(&document_id, first);
                }
            }
            return self.error(ErrorCode::RateLimited, "too many messages: slow down");
        }
        match decoded {
            Err((code, message)) => self.error(code, message),
            Ok((scope, message)) => match self.phase {
                Phase::Hello { .. } => self.before_welcome(message),
                _ => self.message(scope, message),
            },
        }
    }

    /// The document a message is about: the connection's own in version 1, the frame's in 2.
    fn target(&self, scope: Option<&str>) -> Option<String> {
        match self.version {
            protocol::PROTOCOL_VERSION_2 => scope.map(str::to_owned),
            _ => self.bound.clone(),
        }
    }

    fn unexpected_reply(&mut self) {
        self.refuse(
            ErrorCode::Internal,
            "the server answered a request this connection did not make".into(),
        );
    }

    // --- messages after welcome ------------------------------------------------------------

    /// A message after `welcome`. In version 1 a `documentId` member is unknown, and ignored:
    /// the connection has one document.
    fn message(&mut self, scope: Option<String>, message: ClientMessage) {
        match message {
            ClientMessage::Hello { .. } => {
                self.error(ErrorCode::UnexpectedMessage, "hello was already received")
            }
            ClientMessage::Ping { nonce } => self.pong(nonce),
            ClientMessage::Open
            | ClientMessage::Close
            | ClientMessage::Presence { .. }
            | ClientMessage::History(_)
            | ClientMessage::Version(_)
                if self.version != protocol::PROTOCOL_VERSION_2 =>
            {
                self.error(
                    ErrorCode::MalformedFrame,
                    "open, close, presence, history and version are messages of protocol version 2",
                )
            }
            message => {
                let Some(document_id) = self.target(scope.as_deref()) else {
                    return self.error(
                        ErrorCode::MalformedFrame,
                        "a message about a document needs its documentId (protocol version 2)",
                    );
                };
                match message {
                    ClientMessage::Open => self.open(document_id),
                    ClientMessage::Close => self.close_document(&document_id, None),
                    ClientMessage::History(_) | ClientMessage::Version(_)
                        if !self.docs.contains_key(&document_id) =>
                    {
                        let detail =
                            format!("{document_id} is not open on this connection: open it first");
                        self.refuse_history(
                            &document_id,
                            &message,
                            ErrorCode::UnexpectedMessage,
                            detail,
                        )
                    }
                    _ if !self.docs.contains_key(&document_id) => self.error_about(
                        &document_id,
                        ErrorCode::UnexpectedMessage,
                        format!("{document_id} is not open on this connection: open it first"),
                    ),
                    ClientMessage::Sync {
                        vector_clock,
                        after,
                    } => {
                        self.outputs.push_back(Output::Record {
                            document_id: document_id.clone(),
                            vector: vector_clock.clone(),
                        });
                        self.start_sync(&document_id, vector_clock, after, None);
                    }
                    ClientMessage::Submit { edits } => self.submit(&document_id, edits),
                    ClientMessage::Presence { state } => self.presence(&document_id, state),
                    ClientMessage::History(request) => self.history(&document_id, request),
                    ClientMessage::Version(request) => self.version_at(&document_id, request),
                    ClientMessage::Hello { .. } | ClientMessage::Ping { .. } => {}
                }
            }
        }
    }

    fn pong(&mut self, nonce: Option<u64>) {
        let pong = if self.version == protocol::PROTOCOL_VERSION_2 {
            let heads: BTreeMap<String, u64> = self
                .docs
                .iter()
                .map(|(id, doc)| (id.clone(), doc.known_head))
                .collect();
            ServerMessage::Pong {
                nonce,
                head_seq: None,
                heads: Some(heads),
            }
        } else {
            let head_seq = self
                .bound
                .as_ref()
                .and_then(|id| self.docs.get(id))
                .map(|doc| doc.known_head);
            ServerMessage::Pong {
                nonce,
                head_seq,
                heads: None,
            }
        };
        self.send(pong);
    }
}
