//! The driver around the core's [`ServerConnection`]: the one loop every WebSocket connection
//! (protocol version 1 or 2) and SSE stream runs. It answers the connection's requests from the
//! service, the store and the fan-out, and moves its outputs through a [`Transport`]. It holds no
//! protocol rule: those are the core's (`eventsync::server`).

use std::sync::Arc;
use std::time::Duration;

use eventsync::protocol::ServerMessage;
use eventsync::server::{Output, Reply, Request, ServerConnection};
use futures::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use crate::app::AppState;
use crate::auth::{self, Claims};
use crate::broker::Published;

/// A connection of this server: the core's engine over the fan-out's batches.
pub type Connection = ServerConnection<Arc<Published>>;

/// What a transport sends.
pub enum Outgoing {
    /// A message about the connection, or about its one document (version 1, SSE).
    Message(ServerMessage),
    /// Version 2: a message about a document.
    About(String, ServerMessage),
    /// A published batch, as encoded once for every subscriber of the connection's version.
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
    /// Sends one output for a connection of `version`; an error means the peer is gone.
    fn send(
        &mut self,
        version: u32,
        out: Outgoing,
    ) -> impl std::future::Future<Output = Result<(), ()>> + Send;
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

/// A connection with what it needs to run: the state, the token it was authorized with, and its
/// subscriptions (one per open document).
pub struct Driver {
    state: AppState,
    connection: Connection,
    claims: Option<Claims>,
    live: StreamMap<String, BroadcastStream<Arc<Published>>>,
    peeked: Option<Output<Arc<Published>>>,
}

impl Driver {
    /// Drives `connection`.
    pub fn new(state: AppState, connection: Connection) -> Self {
        Driver {
            state,
            connection,
            claims: None,
            live: StreamMap::new(),
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
                Output::Record {
                    document_id,
                    vector,
                } => {
                    let client = self.connection.client_id().unwrap_or_default().to_owned();
                    let recorded = self.state.vectors.record(&document_id, &client, &vector);
                    if let Err(err) = recorded.await {
                        tracing::warn!(error = %err, "state vector not recorded");
                    }
                }
                Output::Unsubscribe(document_id) => {
                    self.live.remove(&document_id);
                }
                other => return Some(other),
            }
        }
    }

    /// Runs the connection to its end.
    pub async fn run(mut self, mut transport: impl Transport) {
        let mut shutdown = self.state.shutdown.clone();
        loop {
            let mut output = match self.peeked.take() {
                Some(output) => Some(output),
                None => self.next_output().await,
            };
            while let Some(out) = output {
                let version = self.connection.version();
                let outgoing = match out {
                    Output::Send(message) => Outgoing::Message(message),
                    Output::SendTo(document_id, message) => Outgoing::About(document_id, message),
                    Output::SendLive(batch) => Outgoing::Live(batch),
                    Output::Connected { head_seq } => Outgoing::Connected(head_seq),
                    Output::Close { code, reason } => {
                        transport.close(code, reason).await;
                        return;
                    }
                    Output::Request(_) | Output::Record { .. } | Output::Unsubscribe(_) => {
                        unreachable!("next_output handles these")
                    }
                };
                if transport.send(version, outgoing).await.is_err() {
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
                Some((document_id, published)) = self.live.next(), if !self.live.is_empty() => {
                    match published {
                        Ok(batch) => self.connection.handle_live(now_ms(), batch),
                        Err(BroadcastStreamRecvError::Lagged(_)) => {
                            self.connection.handle_lagged(now_ms(), &document_id)
                        }
                    }
                }
                _ = sleep(wait) => self.connection.handle_timeout(now_ms()),
                _ = shutdown.changed() => self.connection.handle_shutdown(now_ms()),
            }
        }
    }

    /// Answers one request of the connection.
    async fn execute(&mut self, request: Request) -> Reply {
        let service = &self.state.service;
        let failed = |err: crate::service::ServiceError| (err.code, err.message);
        match request {
            Request::Authorize { token } => {
                let authority = self.state.authority.as_ref();
                match auth::credentials(authority, token.as_deref(), now_ms() / 1000) {
                    Ok((credentials, claims)) => {
                        self.claims = claims;
                        Reply::Authorized(Ok(credentials))
                    }
                    Err(err) => Reply::Authorized(Err((err.code(), err.to_string()))),
                }
            }
            Request::Admit { document_id } => {
                Reply::Admitted(Ok(auth::rights(self.claims.as_ref(), &document_id)))
            }
            Request::Open { document_id } => {
                // Subscribe before reading the head, so that nothing ordered in between is missed.
                let receiver = self.state.broker.subscribe(&document_id);
                self.live
                    .insert(document_id.clone(), BroadcastStream::new(receiver));
                Reply::Opened(service.head_seq(&document_id).await.map_err(failed))
            }
            Request::Read { document_id, read } => {
                Reply::Read(service.read(&document_id, read).await.map_err(failed))
            }
            Request::Submit {
                document_id,
                client_id,
                edits,
                may_write,
            } => Reply::Submitted(
                service
                    .submit(&document_id, &client_id, &edits, may_write)
                    .await,
            ),
            Request::DrainLive { .. } => {
                self.drain();
                Reply::Drained
            }
        }
    }

    /// Hands the connection every batch already published to it (of `DrainLive`'s document,
    /// and of any other: those wait in the engine), without waiting for more.
    fn drain(&mut self) {
        use futures::FutureExt;
        while let Some(Some((document_id, published))) = self.live.next().now_or_never() {
            match published {
                Ok(batch) => self.connection.handle_live(now_ms(), batch),
                Err(BroadcastStreamRecvError::Lagged(_)) => {
                    self.connection.handle_lagged(now_ms(), &document_id)
                }
            }
        }
    }
}

async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
