//! One connection of a server, sans IO: the server's counterpart of [`crate::SyncSession`].
//!
//! [`ServerConnection`] holds every rule a server applies to one WebSocket connection or SSE stream
//! (`docs/PROTOCOL.md` 4 to 9 and 13): the `hello` checks in their order and the version, catch-up
//! paging and snapshots ([`super::CatchUp`]), live delivery without gaps, submits and their
//! answers in order, keep-alive, the rate limit, token expiry, and the close codes. It has no
//! socket, no store and no clock: the driver feeds it what arrives (`handle_*`), drains what to do
//! ([`ServerConnection::poll_output`]) and answers its requests ([`Request`], fed back with
//! [`ServerConnection::handle_reply`]). Time comes in as milliseconds (the reference server
//! passes Unix milliseconds, so that token expiry compares with them).
//!
//! Drive it like this: after every `handle_*` call, drain `poll_output` until it returns `None`.
//! An [`Output::Request`] must be answered with `handle_reply` before draining on; everything
//! the connection sends is in the order the outputs come. Then wait for the next input, or for
//! [`ServerConnection::poll_timeout`].

use std::collections::VecDeque;

use crate::protocol::{self, Ack, ClientMessage, ErrorCode, Event, ServerMessage};
use crate::sequencer::Rejection;
use crate::vector_clock::VectorClock;

use super::catch_up::{CatchUp, Page, Read, ReadResult, SnapshotPolicy, Step};
use super::limits::{validate_document_id, validate_id, Limits, RateLimiter};
use super::requests::{Credentials, LiveBatch, Output, Reply, Request, Submitted};

/// The protocol versions this server speaks.
pub const SERVER_VERSIONS: &[u32] = &[protocol::PROTOCOL_VERSION];

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

/// The highest version in both the client's list and [`SERVER_VERSIONS`] (5.1).
pub fn negotiate_version(offered: &[u32]) -> Option<u32> {
    offered
        .iter()
        .copied()
        .filter(|v| SERVER_VERSIONS.contains(v))
        .max()
}

/// The transport a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ws://{server}/sync/{documentId}`: `hello` first, then any client message.
    WebSocket,
    /// `GET /api/stream/{documentId}`: receive-only, one gapless sequence from a position (13).
    EventStream,
}

#[derive(Debug, Clone)]
enum Phase {
    Hello {
        deadline: u64,
    },
    Authorizing {
        client_id: String,
        version: u32,
    },
    Opening {
        client_id: Option<String>,
        version: u32,
    },
    Open,
    Closed,
}

#[derive(Debug)]
enum Task {
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
}

#[derive(Debug)]
enum Input {
    Text(String),
    Binary,
}

/// One server connection (see the module documentation).
#[derive(Debug)]
pub struct ServerConnection<L> {
    document_id: String,
    mode: Mode,
    limits: Limits,
    url_token: Option<String>,
    phase: Phase,
    client_id: String,
    may_write: bool,
    expires_at: Option<u64>,
    /// The highest `sequenceNum` delivered on this connection (7.1): live events continue it.
    sent: u64,
    /// The highest `sequenceNum` this connection knows the log has.
    known_head: u64,
    /// SSE: the stream's `connected` event was sent; `streamed`: anything after it.
    connected: bool,
    streamed: bool,
    limiter: RateLimiter,
    now: u64,
    task: Option<Task>,
    /// A live batch did not continue what was sent: repair from the log when idle.
    gap: bool,
    /// Live batches that arrived while a task ran, and frames that arrived while busy.
    live: VecDeque<L>,
    inbox: VecDeque<Input>,
    outputs: VecDeque<Output<L>>,
}

impl<L: LiveBatch> ServerConnection<L> {
    /// A WebSocket connection to `document_id`, accepted at `now`. `url_token` is the token the
    /// upgrade request carried (`?token=` or `Authorization`); one in `hello` wins over it.
    pub fn websocket(
        document_id: impl Into<String>,
        limits: Limits,
        url_token: Option<String>,
        now: u64,
    ) -> Self {
        let deadline = now.saturating_add(limits.hello_timeout_ms);
        let mut connection = Self::new(document_id.into(), Mode::WebSocket, limits, now);
        connection.url_token = url_token;
        connection.phase = Phase::Hello { deadline };
        connection
    }

    /// An SSE stream of `document_id` from position `after`, for credentials the driver checked
    /// before the stream started (13). The first outputs are an [`Output::Request`], then either
    /// [`Output::Connected`] (the stream starts) or an `error` and a close (the driver answers
    /// with that error as an HTTP status instead).
    pub fn event_stream(
        document_id: impl Into<String>,
        limits: Limits,
        after: u64,
        expires_at: Option<u64>,
        now: u64,
    ) -> Self {
        let mut connection = Self::new(document_id.into(), Mode::EventStream, limits, now);
        connection.expires_at = expires_at;
        connection.sent = after;
        connection.phase = Phase::Opening {
            client_id: None,
            version: protocol::PROTOCOL_VERSION,
        };
        connection.request(Request::Open);
        connection
    }

    fn new(document_id: String, mode: Mode, limits: Limits, now: u64) -> Self {
        ServerConnection {
            document_id,
            mode,
            limiter: limits.rate_limiter(),
            limits,
            url_token: None,
            phase: Phase::Closed,
            client_id: String::new(),
            may_write: false,
            expires_at: None,
            sent: 0,
            known_head: 0,
            connected: false,
            streamed: false,
            now,
            task: None,
            gap: false,
            live: VecDeque::new(),
            inbox: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    // --- getters ---------------------------------------------------------------------------

    /// The document.
    pub fn document_id(&self) -> &str {
        &self.document_id
    }

    /// The client the `hello` bound the connection to (`None` before `welcome`, and for SSE).
    pub fn client_id(&self) -> Option<&str> {
        matches!(self.phase, Phase::Open)
            .then_some(self.client_id.as_str())
            .filter(|id| !id.is_empty())
    }

    /// True once the connection has closed (after its [`Output::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The highest `sequenceNum` delivered on the connection.
    pub fn delivered(&self) -> u64 {
        self.sent
    }

    // --- inputs ----------------------------------------------------------------------------

    /// A text message arrived.
    pub fn handle_text(&mut self, now: u64, text: impl Into<String>) {
        self.now = self.now.max(now);
        self.inbox.push_back(Input::Text(text.into()));
        self.advance();
    }

    /// A binary message arrived: not part of the protocol (4.2).
    pub fn handle_binary(&mut self, now: u64) {
        self.now = self.now.max(now);
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

    /// The fan-out published a batch of the document's events.
    pub fn handle_live(&mut self, now: u64, batch: L) {
        self.now = self.now.max(now);
        if batch.events().is_empty()
            || matches!(
                self.phase,
                Phase::Closed | Phase::Hello { .. } | Phase::Authorizing { .. }
            )
        {
            // Not subscribed (yet, or any more).
            return;
        }
        if matches!(self.task, Some(Task::Deliver { .. })) {
            // Draining for a submit's answer: its events go first (8.2).
            self.live_batch(batch);
        } else {
            self.live.push_back(batch);
            self.advance();
        }
    }

    /// The fan-out dropped batches for this connection (it fell behind): they are read from the
    /// log instead.
    pub fn handle_lagged(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.gap = true;
        self.advance();
    }

    /// The answer to the last [`Output::Request`].
    pub fn handle_reply(&mut self, now: u64, reply: Reply) {
        self.now = self.now.max(now);
        if self.is_closed() {
            return;
        }
        match reply {
            Reply::Authorized(result) => self.authorized(result),
            Reply::Opened(result) => self.opened(result),
            Reply::Read(result) => self.read(result),
            Reply::Submitted(submitted) => self.submitted(submitted),
            Reply::Drained => self.drained(),
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
            self.close(close::POLICY, "token expired");
        }
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
            _ => self.expires_at,
        }
    }

    // --- the rules -------------------------------------------------------------------------

    fn send(&mut self, message: ServerMessage) {
        self.outputs.push_back(Output::Send(message));
    }

    fn request(&mut self, request: Request) {
        self.outputs.push_back(Output::Request(request));
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        self.phase = Phase::Closed;
        self.task = None;
        self.inbox.clear();
        self.live.clear();
        self.outputs.push_back(Output::Close { code, reason });
    }

    /// An `error` and a close: for a refused `hello` (5.2 rule 3), and for SSE, an error before
    /// or during the stream (13).
    fn refuse(&mut self, code: ErrorCode, message: String) {
        self.send(ServerMessage::Error { code, message });
        self.close(close_code(code), "refused");
    }

    /// Works through what waits while nothing is outstanding.
    fn advance(&mut self) {
        while self.task.is_none() && !self.is_closed() && !self.awaiting_handshake() {
            if self.gap {
                self.gap = false;
                self.start_repair(Vec::new());
            } else if let Some(batch) = self.live.pop_front() {
                self.live_batch(batch);
            } else if let Some(input) = self.inbox.pop_front() {
                self.input(input);
            } else {
                break;
            }
        }
    }

    fn awaiting_handshake(&self) -> bool {
        matches!(
            self.phase,
            Phase::Authorizing { .. } | Phase::Opening { .. }
        )
    }

    fn input(&mut self, input: Input) {
        if self.mode == Mode::EventStream {
            return;
        }
        let allowed = self.limiter.allow(self.now);
        let message = match input {
            Input::Binary => Err((
                ErrorCode::MalformedFrame,
                "binary messages are not part of the protocol".to_owned(),
            )),
            Input::Text(text) => protocol::decode_client(&text, self.limits.max_frame_bytes)
                .map_err(|err| (err.code(), err.to_string())),
        };
        if !allowed {
            // A rate limit that hits an edit is a reject of that edit (8.3): the client backs off
            // and resends instead of waiting for its request timeout.
            if let (Ok(ClientMessage::Submit { edits }), Phase::Open) = (&message, &self.phase) {
                if let Some(first) = edits.first() {
                    let first = first.client_seq;
                    self.answer_submit(
                        Vec::new(),
                        Some(self.rejection(
                            first,
                            ErrorCode::RateLimited,
                            "too many messages: slow down",
                        )),
                        None,
                    );
                    return;
                }
            }
            return self.error(ErrorCode::RateLimited, "too many messages: slow down");
        }
        match message {
            Err((code, message)) => self.error(code, message),
            Ok(message) => match self.phase {
                Phase::Hello { .. } => self.before_welcome(message),
                _ => self.message(message),
            },
        }
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::Error {
            code,
            message: message.into(),
        });
    }

    // --- handshake (5) ---------------------------------------------------------------------

    fn before_welcome(&mut self, message: ClientMessage) {
        let ClientMessage::Hello {
            protocol_versions,
            client_id,
            token,
        } = message
        else {
            return self.error(ErrorCode::UnexpectedMessage, "send hello first");
        };
        // 5.2 rule 2, in order.
        if let Err(reason) = validate_document_id(&self.document_id) {
            return self.refuse(ErrorCode::UnknownDocument, reason);
        }
        let Some(version) = negotiate_version(&protocol_versions) else {
            let versions: Vec<String> = SERVER_VERSIONS.iter().map(u32::to_string).collect();
            return self.refuse(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this server speaks protocol versions {}",
                    versions.join(", ")
                ),
            );
        };
        if let Err(reason) = validate_id(&client_id) {
            return self.refuse(
                ErrorCode::MalformedFrame,
                format!("invalid clientId: {reason}"),
            );
        }
        let token = token.or_else(|| self.url_token.take());
        self.phase = Phase::Authorizing { client_id, version };
        self.request(Request::Authorize { token });
    }

    fn authorized(&mut self, result: Result<Credentials, (ErrorCode, String)>) {
        let Phase::Authorizing { client_id, version } =
            std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return self.unexpected_reply();
        };
        let credentials = match result {
            Ok(credentials) => credentials,
            Err((code, message)) => return self.refuse(code, message),
        };
        if let Some(named) = credentials.client_id.as_deref().filter(|n| *n != client_id) {
            return self.refuse(
                ErrorCode::ClientMismatch,
                format!("the token is for client {named}, hello says {client_id}"),
            );
        }
        if client_id == protocol::SERVER_CLIENT_ID {
            return self.refuse(
                ErrorCode::Forbidden,
                "the clientId server is reserved for changes that do not come from a client".into(),
            );
        }
        if !credentials.may_read {
            return self.refuse(
                ErrorCode::Forbidden,
                format!("the token does not grant access to {}", self.document_id),
            );
        }
        self.may_write = credentials.may_write;
        self.expires_at = credentials.expires_at;
        self.phase = Phase::Opening {
            client_id: Some(client_id),
            version,
        };
        self.request(Request::Open);
    }

    fn opened(&mut self, result: Result<u64, (ErrorCode, String)>) {
        let Phase::Opening { client_id, version } =
            std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return self.unexpected_reply();
        };
        let head_seq = match result {
            Ok(head_seq) => head_seq,
            Err((code, message)) => return self.refuse(code, message),
        };
        self.phase = Phase::Open;
        self.known_head = self.known_head.max(head_seq);
        match client_id {
            Some(client_id) => {
                // Live events start right after the welcome's headSeq (7.1).
                self.sent = head_seq;
                self.send(ServerMessage::Welcome {
                    protocol_version: version,
                    document_id: self.document_id.clone(),
                    client_id: client_id.clone(),
                    head_seq,
                });
                self.client_id = client_id;
            }
            None => {
                // SSE: the catch-up from the stream's position starts at once.
                let after = self.sent;
                self.start_sync(VectorClock::new(), Some(after), None);
            }
        }
    }

    fn unexpected_reply(&mut self) {
        self.refuse(
            ErrorCode::Internal,
            "the server answered a request this connection did not make".into(),
        );
    }

    // --- messages after welcome ------------------------------------------------------------

    fn message(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Hello { .. } => {
                self.error(ErrorCode::UnexpectedMessage, "hello was already received")
            }
            ClientMessage::Ping { nonce } => self.send(ServerMessage::Pong {
                nonce,
                head_seq: Some(self.known_head),
            }),
            ClientMessage::Sync {
                vector_clock,
                after,
            } => {
                self.outputs.push_back(Output::Record(vector_clock.clone()));
                self.start_sync(vector_clock, after, None);
            }
            ClientMessage::Submit { edits } => {
                let Some(first) = edits.first().map(|e| e.client_seq) else {
                    // Every submit is answered: an empty one with an empty ack (8.1).
                    return self.send(ServerMessage::Ack { edits: Vec::new() });
                };
                self.task = Some(Task::Submit { first });
                self.request(Request::Submit {
                    client_id: self.client_id.clone(),
                    edits,
                    may_write: self.may_write,
                });
            }
        }
    }

    // --- catch-up (6, 13) ------------------------------------------------------------------

    fn start_sync(&mut self, vector: VectorClock, after: Option<u64>, resume: Option<u64>) {
        let (machine, read) = CatchUp::new(
            vector.clone(),
            after,
            resume,
            self.limits.default_page,
            SnapshotPolicy::WhenBehindOrNew,
        );
        self.task = Some(Task::Sync {
            machine: Box::new(machine),
            vector,
            after,
            resume,
        });
        self.request(Request::Read(read));
    }

    fn read(&mut self, result: Result<ReadResult, (ErrorCode, String)>) {
        match self.task.take() {
            Some(Task::Sync {
                mut machine,
                vector,
                after,
                resume,
            }) => {
                let step = match result {
                    Ok(found) => machine.handle(found),
                    Err((code, message)) => Step::Refused(code, message),
                };
                match step {
                    Step::Read(read) => {
                        self.task = Some(Task::Sync {
                            machine,
                            vector,
                            after,
                            resume,
                        });
                        self.request(Request::Read(read));
                    }
                    Step::Refused(code, message) => match self.mode {
                        Mode::WebSocket => self.error(code, message),
                        Mode::EventStream => self.refuse(code, message),
                    },
                    Step::Page(page) => self.page(page, vector, after, resume),
                }
            }
            Some(Task::Repair { answer }) => match result {
                Ok(ReadResult::Events(events)) => self.repaired(events, answer),
                Ok(_) => self.unexpected_reply(),
                Err((code, message)) => {
                    // The gap cannot be filled now; the connection cannot continue without it.
                    self.send(ServerMessage::Error { code, message });
                    self.close(close_code(code), "live events could not be read");
                }
            },
            _ => self.unexpected_reply(),
        }
    }

    /// Sends one page of an answer and asks for the next.
    fn page(&mut self, page: Page, vector: VectorClock, after: Option<u64>, resume: Option<u64>) {
        let Page { page, scanned } = page;
        let position = resume.or(after).unwrap_or(0);
        if self.mode == Mode::EventStream && !self.connected {
            self.connected = true;
            self.outputs.push_back(Output::Connected {
                head_seq: self.known_head,
            });
        }
        let snapshot_sent = page.snapshot.is_some();
        if let Some(snapshot) = page.snapshot {
            if self.mode == Mode::EventStream && self.streamed {
                // A stream is one sequence: a snapshot may only come first (13).
                return self.close(close::NORMAL, "fell behind the retained history");
            }
            self.sent = self.sent.max(snapshot.sequence_num);
            self.streamed = true;
            self.send(ServerMessage::Snapshot { snapshot });
        }
        self.known_head = self.known_head.max(page.head_seq);
        let last = page.events.last().map(|e| e.sequence_num);
        if self.mode == Mode::WebSocket || last.is_some() {
            self.streamed = true;
            self.send(ServerMessage::Events {
                events: page.events,
                head_seq: Some(page.head_seq),
                has_more: page.has_more,
            });
        }
        // The answer covers every missing event up to what was scanned (6.2).
        self.sent = self.sent.max(scanned).max(last.unwrap_or(0));
        if !page.has_more || (scanned <= position && !snapshot_sent) {
            return;
        }
        if after.is_some() || snapshot_sent || self.mode == Mode::EventStream {
            // The cursor form (after a snapshot, every later event is missing).
            self.start_sync(vector, Some(scanned), None);
        } else {
            self.start_sync(vector, None, Some(scanned));
        }
    }

    // --- live events (7) -------------------------------------------------------------------

    fn live_batch(&mut self, batch: L) {
        let events = batch.events();
        let (first, last) = match (events.first(), events.last()) {
            (Some(first), Some(last)) => (first.sequence_num, last.sequence_num),
            _ => return,
        };
        self.known_head = self.known_head.max(last);
        if last <= self.sent {
            return;
        }
        if first > self.sent + 1 {
            // Something between was not seen: read it from the log.
            self.gap = true;
            return;
        }
        self.streamed = true;
        if first == self.sent + 1 {
            self.outputs.push_back(Output::SendLive(batch));
        } else {
            let sent = self.sent;
            let events = events
                .iter()
                .filter(|e| e.sequence_num > sent)
                .cloned()
                .collect();
            self.send(ServerMessage::Event { events });
        }
        self.sent = last;
    }

    /// Reads the events after what was sent from the log, then sends `answer`.
    fn start_repair(&mut self, answer: Vec<ServerMessage>) {
        self.task = Some(Task::Repair { answer });
        self.request(Request::Read(Read::Events {
            after: self.sent,
            limit: self.limits.default_page.max(1),
        }));
    }

    fn repaired(&mut self, events: Vec<Event>, answer: Vec<ServerMessage>) {
        let Some(first) = events.first().map(|e| e.sequence_num) else {
            return self.finish(answer);
        };
        if first != self.sent + 1 {
            // The events in between were compacted before this connection was sent them: it
            // cannot get them in order any more, so it is closed rather than sent a gap (7.1).
            return self.close(close::NORMAL, "fell behind the retained history");
        }
        let full = events.len() >= self.limits.default_page.max(1);
        let last = events.last().map_or(first, |e| e.sequence_num);
        self.known_head = self.known_head.max(last);
        self.sent = last;
        self.streamed = true;
        self.send(ServerMessage::Event { events });
        if full {
            self.start_repair(answer);
        } else {
            self.finish(answer);
        }
    }

    fn finish(&mut self, answer: Vec<ServerMessage>) {
        for message in answer {
            self.send(message);
        }
    }

    // --- edits (8) -------------------------------------------------------------------------

    fn rejection(&self, client_seq: u64, code: ErrorCode, message: &str) -> Rejection {
        Rejection {
            client_seq,
            code,
            message: message.to_owned(),
            head_seq: self.known_head,
        }
    }

    fn submitted(&mut self, submitted: Submitted) {
        let Some(Task::Submit { first }) = self.task.take() else {
            return self.unexpected_reply();
        };
        match submitted {
            Submitted::Ordered {
                acks,
                rejection,
                last_seq,
            } => self.answer_submit(acks, rejection, last_seq),
            Submitted::Refused(code, message) => {
                let rejection = self.rejection(first, code, &message);
                self.answer_submit(Vec::new(), Some(rejection), None)
            }
            Submitted::Unknown(_) => self.close(close::INTERNAL, "storage failed during a submit"),
        }
    }

    /// The answer to a submit (8.2): every event up to the last new one, and up to a reject's
    /// `headSeq`, first; then the ack entries; then at most one reject.
    fn answer_submit(
        &mut self,
        acks: Vec<Ack>,
        rejection: Option<Rejection>,
        last_seq: Option<u64>,
    ) {
        let through = last_seq
            .into_iter()
            .chain(rejection.as_ref().map(|r| r.head_seq))
            .max()
            .unwrap_or(0);
        let mut answer = Vec::new();
        if !acks.is_empty() || rejection.is_none() {
            answer.push(ServerMessage::Ack { edits: acks });
        }
        if let Some(r) = rejection {
            answer.push(ServerMessage::Reject {
                client_seq: r.client_seq,
                code: r.code,
                message: r.message,
                head_seq: r.head_seq,
            });
        }
        self.task = Some(Task::Deliver { through, answer });
        self.request(Request::DrainLive);
    }

    fn drained(&mut self) {
        let Some(Task::Deliver { through, answer }) = self.task.take() else {
            return self.unexpected_reply();
        };
        if self.sent >= through && !self.gap {
            self.finish(answer);
        } else {
            self.gap = false;
            self.start_repair(answer);
        }
    }
}
