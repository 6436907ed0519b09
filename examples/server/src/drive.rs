//! The driver around the core's [`ServerConnection`]: the one loop every WebSocket connection and
//! SSE stream runs. It answers the connection's requests from the service, the store and the
//! fan-out, and moves its outputs through a [`Transport`]. It holds no protocol rule: those are
//! the core's (`eventsync::server`).

use std::sync::Arc;
use std::time::Duration;

use eventsync::protocol::ServerMessage;
use eventsync::server::{Output, Reply, Request, ServerConnection};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use crate::app::AppState;
use crate::auth;
use crate::broker::Published;

/// A connection of this server: the core's engine over the fan-out's batches.
pub type Connection = ServerConnection<Arc<Published>>;

/// What a transport sends.
pub enum Outgoing {
    /// A message of the protocol.
    Message(ServerMessage),
    /// A published batch, as encoded once for every subscriber.
    Live(Arc<Published>),
    /// SSE: the `connected` event with the head's `sequenceNum`.
    Connected(u64),
}

/// What a transport received.
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary,
    /// A text message that was not UTF-8.
    InvalidUtf8,
    /// The peer is gone.
    Gone,
}

/// A WebSocket or an SSE stream, as the loop sees it.
pub trait Transport: Send {
    /// Sends one output; an error means the peer is gone.
    fn send(&mut self, out: Outgoing) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// Closes with a WebSocket close code (an SSE stream just ends).
    fn close(
        &mut self,
        code: u16,
        reason: &'static str,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// The next thing the peer sent (an SSE stream only ever reports [`Incoming::Gone`]).
    fn next(&mut self) -> impl std::future::Future<Output = Incoming> + Send;
}

/// Milliseconds since the Unix epoch: the connections' clock (token expiry compares with it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connection with what it needs to run: the state, and its subscription once it has one.
pub struct Driver {
    state: AppState,
    connection: Connection,
    live: Option<Receiver<Arc<Published>>>,
    peeked: Option<Output<Arc<Published>>>,
}

impl Driver {
    /// Drives `connection`.
    pub fn new(state: AppState, connection: Connection) -> Self {
        Driver {
            state,
            connection,
            live: None,
            peeked: None,
        }
    }

    /// Runs requests until the connection has something else to say, and shows it (SSE: an
    /// `error` here becomes the HTTP answer, before any stream starts).
    pub async fn peek(&mut self) -> Option<&Output<Arc<Published>>> {
        if self.peeked.is_none() {
            self.peeked = self.next_output().await;
        }
        self.peeked.as_ref()
    }

    async fn next_output(&mut self) -> Option<Output<Arc<Published>>> {
        loop {
            match self.connection.poll_output()? {
                Output::Request(request) => {
                    let reply = self.execute(request).await;
                    self.connection.handle_reply(now_ms(), reply);
                }
                Output::Record(vector) => {
                    let client = self.connection.client_id().unwrap_or_default().to_owned();
                    let document = self.connection.document_id().to_owned();
                    if let Err(err) = self.state.vectors.record(&document, &client, &vector).await {
                        tracing::warn!(error = %err, "state vector not recorded");
                    }
                }
                other => return Some(other),
            }
        }
    }

    /// Runs the connection to its end.
    pub async fn run(mut self, mut transport: impl Transport) {
        let mut shutdown = self.state.shutdown.clone();
        loop {
            let peeked = self.peeked.take();
            let mut output = match peeked {
                Some(output) => Some(output),
                None => self.next_output().await,
            };
            while let Some(out) = output {
                let sent = match out {
                    Output::Send(message) => transport.send(Outgoing::Message(message)).await,
                    Output::SendLive(batch) => transport.send(Outgoing::Live(batch)).await,
                    Output::Connected { head_seq } => {
                        transport.send(Outgoing::Connected(head_seq)).await
                    }
                    Output::Close { code, reason } => {
                        transport.close(code, reason).await;
                        return;
                    }
                    Output::Request(_) | Output::Record(_) => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
                output = self.next_output().await;
            }
            let wait = self
                .connection
                .poll_timeout()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
            tokio::select! {
                incoming = transport.next() => {
                    let now = now_ms();
                    match incoming {
                        Incoming::Text(text) => self.connection.handle_text(now, text),
                        Incoming::Binary => self.connection.handle_binary(now),
                        Incoming::InvalidUtf8 => self.connection.handle_invalid_utf8(now),
                        Incoming::Gone => return,
                    }
                }
                published = next_live(&mut self.live) => match published {
                    Ok(batch) => self.connection.handle_live(now_ms(), batch),
                    Err(RecvError::Lagged(_)) => self.connection.handle_lagged(now_ms()),
                    Err(RecvError::Closed) => return,
                },
                _ = sleep(wait) => self.connection.handle_timeout(now_ms()),
                _ = shutdown.changed() => self.connection.handle_shutdown(now_ms()),
            }
        }
    }

    /// Answers one request of the connection.
    async fn execute(&mut self, request: Request) -> Reply {
        let document = self.connection.document_id().to_owned();
        let service = &self.state.service;
        match request {
            Request::Authorize { token } => Reply::Authorized(
                auth::credentials(
                    self.state.authority.as_ref(),
                    token.as_deref(),
                    &document,
                    now_ms() / 1000,
                )
                .map_err(|err| (err.code(), err.to_string())),
            ),
            Request::Open => {
                // Subscribe before reading the head, so that nothing ordered in between is missed.
                self.live = Some(self.state.broker.subscribe(&document));
                Reply::Opened(
                    service
                        .head_seq(&document)
                        .await
                        .map_err(|err| (err.code, err.message)),
                )
            }
            Request::Read(read) => Reply::Read(
                service
                    .read(&document, read)
                    .await
                    .map_err(|err| (err.code, err.message)),
            ),
            Request::Submit {
                client_id,
                edits,
                may_write,
            } => Reply::Submitted(
                service
                    .submit(&document, &client_id, &edits, may_write)
                    .await,
            ),
            Request::DrainLive => {
                if let Some(live) = self.live.as_mut() {
                    loop {
                        match live.try_recv() {
                            Ok(batch) => self.connection.handle_live(now_ms(), batch),
                            Err(TryRecvError::Lagged(_)) => self.connection.handle_lagged(now_ms()),
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                        }
                    }
                }
                Reply::Drained
            }
        }
    }
}

async fn next_live(
    live: &mut Option<Receiver<Arc<Published>>>,
) -> Result<Arc<Published>, RecvError> {
    match live {
        Some(live) => live.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
