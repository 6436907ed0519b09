//! The session's settings, events, outputs and errors.

use crate::conflict::{Conflict, ConflictPolicy, ShapeError};
use crate::diff::DiffError;
use crate::protocol::{ClientMessage, ErrorCode, Event, FrameError, Quoted};
use crate::state::StateError;
use crate::undo::UndoConfig;

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The document.
    pub document_id: String,
    /// This client's stable id; it must survive restarts (it is persisted in [`ClientState`](crate::queue::ClientState)).
    pub client_id: String,
    /// Sent in `hello` when set.
    pub token: Option<String>,
    /// How true conflicts are resolved when rebasing.
    pub policy: ConflictPolicy,
    /// A `sync` or `submit` unanswered this long is sent again.
    pub request_timeout_ms: u64,
    /// A connection silent this long is closed (and the driver reconnects).
    pub idle_timeout_ms: u64,
    /// A `ping` is sent after this long with nothing received or sent.
    pub ping_interval_ms: u64,
    /// At most this many edits per `submit`.
    pub max_batch: usize,
    /// Undo grouping and depth (see [`SyncSession::undo`](super::SyncSession::undo)).
    pub undo: UndoConfig,
}

impl SessionConfig {
    /// Defaults: server-wins conflicts, 10 s requests, 30 s idle, 15 s pings, 1000 edits a
    /// submit, undo steps of edits within 500 ms and at most 100 of them.
    pub fn new(document_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        SessionConfig {
            document_id: document_id.into(),
            client_id: client_id.into(),
            token: None,
            policy: ConflictPolicy::default(),
            request_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            ping_interval_ms: 15_000,
            max_batch: 1000,
            undo: UndoConfig::default(),
        }
    }
}

/// Where the connection stands, as apps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionStatus {
    /// No connection.
    Offline,
    /// Connected; handshake and catch-up in progress.
    Connecting,
    /// Caught up and receiving live events.
    Online,
    /// Waiting to reconnect (set by drivers during backoff).
    Reconnecting,
}

/// Something that happened, for the app.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The connection status changed (to `Reconnecting`: [`SessionEvent::Reconnecting`], which
    /// says why).
    Status(ConnectionStatus),
    /// The status is now `Reconnecting`: the connection could not be opened or was lost, and
    /// the driver tries again after `retry_in_ms`.
    Reconnecting {
        /// Why, as precisely as the transport tells (`connection refused`, `HTTP 404`, ...).
        reason: String,
        /// The wait before the next attempt.
        retry_in_ms: u64,
    },
    /// An event of the log was applied to the confirmed document.
    Applied {
        /// The event, as the server wrote it (shared: every listener and stream of the client
        /// gets the same one).
        event: std::sync::Arc<Event>,
        /// True when it is one of this client's own edits coming back.
        own: bool,
    },
    /// The client has caught up with the server's log.
    Synced {
        /// The server's head at that moment.
        sequence_num: u64,
    },
    /// A local edit is in the log.
    Acked {
        /// The edit.
        client_seq: u64,
        /// Its place in the log.
        sequence_num: u64,
    },
    /// A local edit was dropped and will never be in the log.
    EditRejected {
        /// The edit.
        client_seq: u64,
        /// Why (`invalid_patch` and `document_state` also for edits that no longer apply locally
        /// after rebasing).
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// A remote change conflicted with a pending edit and the policy resolved it.
    Conflict {
        /// The pending edit.
        client_seq: u64,
        /// What conflicted.
        conflict: Box<Conflict>,
    },
    /// Protocol version 2: the other peers' presence on the document changed; this is all of
    /// it now (in client id order).
    Presence(Vec<crate::protocol::PresencePeer>),
    /// Whether there is something to undo or redo changed.
    UndoStack {
        /// [`SyncSession::can_undo`](super::SyncSession::can_undo).
        can_undo: bool,
        /// [`SyncSession::can_redo`](super::SyncSession::can_redo).
        can_redo: bool,
    },
    /// A remote change conflicted with a step of the undo (or redo) stack and the policy
    /// resolved it: with the default (server wins) the step will leave that change alone.
    UndoConflict {
        /// True for a step of the redo stack.
        redo: bool,
        /// What conflicted (`local` is the step's op).
        conflict: Box<Conflict>,
    },
    /// Something went wrong; the document is unchanged by it.
    Error {
        /// The protocol code, when there is one.
        code: Option<ErrorCode>,
        /// Detail.
        message: String,
    },
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Save [`SyncSession::client_state`](super::SyncSession::client_state) now, before transmitting anything else.
    Persist,
    /// Send this message (encode with [`crate::protocol::encode`]).
    Transmit(ClientMessage),
    /// Tell the app.
    Event(SessionEvent),
    /// Close the connection; reconnect (with backoff) only when `reconnect` is true.
    Close {
        /// False for errors a reconnect cannot fix (bad credentials, unsupported version).
        reconnect: bool,
        /// Why.
        reason: String,
    },
}

/// Errors of local operations on a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The patch does not apply to the visible document.
    #[error("the edit does not apply: {0}")]
    Diff(#[from] DiffError),
    /// The patch does not apply to the visible document.
    #[error("the edit does not apply: {0}")]
    Shape(#[from] ShapeError),
    /// An update or delete of a document that does not exist.
    #[error("the document does not exist")]
    NoDocument,
    /// A create of a document that exists.
    #[error("the document already exists")]
    DocumentExists,
    /// A frame from the server could not be read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An event from the server could not be applied.
    #[error(transparent)]
    State(#[from] StateError),
    /// Stored state belongs to another document or client.
    #[error(
        "stored state is for document {} and client {}",
        Quoted(.document_id),
        Quoted(.client_id)
    )]
    StateMismatch {
        /// Stored document id.
        document_id: String,
        /// Stored client id.
        client_id: String,
    },
}

impl SessionError {
    /// The protocol code that says the same: `invalid_patch` for an edit that does not apply,
    /// `document_state` for a create of an existing or an edit of a missing document,
    /// `client_mismatch` for stored state of another client or document, and the frame's or
    /// `internal` for what the server sent.
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::Diff(err) => err.code(),
            SessionError::Shape(_) => ErrorCode::InvalidPatch,
            SessionError::NoDocument | SessionError::DocumentExists => ErrorCode::DocumentState,
            SessionError::Frame(err) => err.code(),
            SessionError::State(_) => ErrorCode::Internal,
            SessionError::StateMismatch { .. } => ErrorCode::ClientMismatch,
        }
    }
}
