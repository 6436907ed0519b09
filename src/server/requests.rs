//! What a [`super::ServerConnection`] and its driver say to each other: the connection's outputs
//! (frames to send, requests for the driver), the driver's replies, and what they carry
//! (credentials, rights, live batches, a submit's outcome).

use crate::protocol::{Ack, Edit, EncodedFrame, ErrorCode, Event, PresencePeer, ServerMessage};
use crate::sequencer::{Rejection, SubmitOutcome};
use crate::vector_clock::VectorClock;

use super::catch_up::{Read, ReadResult};

/// A batch of consecutive events of one document the driver's fan-out published, handed to
/// every connection that has the document open. The connection sends it whole
/// ([`Output::SendLive`], so a driver can encode it once for every subscriber) or the part the
/// client has not been sent.
pub trait LiveBatch: Clone {
    /// The events, consecutive, in `sequenceNum` order (never empty).
    fn events(&self) -> &[Event];
}

/// A shared batch: `Arc<[Event]>`, or a driver's own type that keeps its encodings beside the
/// events.
impl<T: AsRef<[Event]> + ?Sized> LiveBatch for std::sync::Arc<T> {
    fn events(&self) -> &[Event] {
        (**self).as_ref()
    }
}

/// Who a client is, as the driver's authentication found it from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The client id the token names; a `hello` with another is refused `client_mismatch`.
    /// `None`: any client id (authentication off).
    pub client_id: Option<String>,
    /// When the token expires, on the connection's clock: the connection ends then (5.3).
    pub expires_at: Option<u64>,
}

impl Credentials {
    /// Authentication off: any client.
    pub fn anyone() -> Self {
        Credentials {
            client_id: None,
            expires_at: None,
        }
    }
}

/// What a client may do with one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Open it, catch up, receive its events (else `forbidden`).
    pub read: bool,
    /// Edit it (else submits are refused `forbidden`, 8.3 step 4).
    pub write: bool,
}

impl Rights {
    /// Read and write.
    pub fn all() -> Self {
        Rights {
            read: true,
            write: true,
        }
    }
}

/// Something the connection needs the driver to do; answered with
/// [`super::ServerConnection::handle_reply`] before anything else is fed.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Check a token (the `hello`'s, else the one the connection was opened with) and keep it for
    /// [`Request::Admit`]. Answered with [`Reply::Authorized`]: the credentials, or
    /// `unauthorized` for a missing or bad token.
    Authorize {
        /// The token, if any.
        token: Option<String>,
    },
    /// What the authorized token allows on a document. Answered with [`Reply::Admitted`].
    Admit {
        /// The document.
        document_id: String,
    },
    /// Subscribe the connection to the document's live events, then read its head (in that
    /// order, so that nothing ordered in between is missed). Answered with [`Reply::Opened`].
    Open {
        /// The document.
        document_id: String,
    },
    /// Read a document's log for a catch-up or to repair a gap. Answered with [`Reply::Read`].
    Read {
        /// The document.
        document_id: String,
        /// What to read.
        read: Read,
    },
    /// Order a submit (`order_submit` on the document's single writer, stored durably and
    /// published). Answered with [`Reply::Submitted`].
    Submit {
        /// The document.
        document_id: String,
        /// The connection's client.
        client_id: String,
        /// The edits.
        edits: Vec<Edit>,
        /// Whether the client may write.
        may_write: bool,
    },
    /// Hand every live batch of the document already waiting for this connection to
    /// [`super::ServerConnection::handle_live`] (without waiting for more), then answer
    /// [`Reply::Drained`]. Comes before a submit's answer: its events go first (8.2).
    DrainLive {
        /// The document.
        document_id: String,
    },
    /// Version 2: hand the connection the document's presence changes from now on (with
    /// [`super::ServerConnection::handle_presence`]) and answer with everyone's presence now
    /// ([`Reply::Presence`]; the connection leaves its own client out). Until the connection
    /// closes or sends [`Output::Unsubscribe`].
    Presence {
        /// The document.
        document_id: String,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Answers [`Request::Authorize`].
    Authorized(Result<Credentials, (ErrorCode, String)>),
    /// Answers [`Request::Admit`].
    Admitted(Result<Rights, (ErrorCode, String)>),
    /// Answers [`Request::Open`]: the head's `sequenceNum`.
    Opened(Result<u64, (ErrorCode, String)>),
    /// Answers [`Request::Read`].
    Read(Result<ReadResult, (ErrorCode, String)>),
    /// Answers [`Request::Submit`].
    Submitted(Submitted),
    /// Answers [`Request::DrainLive`].
    Drained,
    /// Answers [`Request::Presence`]: every peer with presence on the document.
    Presence(Vec<PresencePeer>),
}

/// How a submit went.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Ordered (all, some or none of it): what `order_submit` said.
    Ordered {
        /// One entry per new or duplicate edit, in order.
        acks: Vec<Ack>,
        /// The refusal of the first edit not ordered, if any.
        rejection: Option<Rejection>,
        /// The `sequenceNum` of the last new event, if any.
        last_seq: Option<u64>,
    },
    /// Nothing was stored (for example the store could not be read): the first edit is refused
    /// with this code, retryable or not.
    Refused(ErrorCode, String),
    /// The store failed in a way that leaves open whether an event was stored: the connection
    /// (version 2: the document) is closed rather than answered `internal` (8.3), and the
    /// client's resend finds out.
    Unknown(String),
}

impl From<&SubmitOutcome> for Submitted {
    fn from(outcome: &SubmitOutcome) -> Self {
        Submitted::Ordered {
            acks: outcome.acks.clone(),
            rejection: outcome.rejection.clone(),
            last_seq: outcome.events.last().map(|e| e.sequence_num),
        }
    }
}

/// What the connection asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<L> {
    /// Send this message about the connection, or about its one document (version 1, SSE:
    /// the event of section 13).
    Send(ServerMessage),
    /// Version 2: send this message about a document (framed with its `documentId`).
    SendTo(String, ServerMessage),
    /// Send this `events` or `event` frame, whose events came from the log as text
    /// ([`ReadResult::Encoded`]): written for the connection with [`EncodedFrame::encode`] (SSE:
    /// its events in the full form, [`crate::protocol::EncodedEvents::full_texts`]). It stands
    /// for [`Output::Send`] (version 1, SSE) or [`Output::SendTo`] (version 2) of
    /// [`EncodedFrame::to_message`].
    SendEncoded(EncodedFrame),
    /// Send this published batch whole (the driver's encoding of it for the connection's
    /// version, made once for every subscriber).
    SendLive(L),
    /// SSE only: the stream's `connected` event.
    Connected {
        /// The head when the stream was opened.
        head_seq: u64,
    },
    /// Do this and answer with [`super::ServerConnection::handle_reply`].
    Request(Request),
    /// The client said this is its state vector for a document (a `sync`): the
    /// `StateVectorManager`'s record. Needs no answer.
    Record {
        /// The document.
        document_id: String,
        /// The client's vector.
        vector: VectorClock,
    },
    /// Version 2: stop handing the connection this document's live events and presence (it was
    /// closed).
    Unsubscribe(String),
    /// Version 2: the client's presence on a document is now `state` (`null`: none), to put in
    /// the [`super::PresenceTable`] and relay to the document's other connections. Needs no
    /// answer. When the connection ends, its driver removes whatever presence it still has.
    Presence {
        /// The document.
        document_id: String,
        /// The state.
        state: serde_json::Value,
    },
    /// Close the connection (WebSocket close code; an SSE stream just ends). Nothing follows.
    Close {
        /// The close code.
        code: u16,
        /// A short reason.
        reason: &'static str,
    },
}
