//! The driver around the core's [`ServerConnection`]: the one loop every WebSocket connection
//! (protocol version 1 or 2) and SSE stream runs. It answers the connection's requests from the
//! service, the store and the fan-out, and moves its outputs through a [`Transport`]. It holds no
//! protocol rule: those are the core's (`eventsync::server`).

use std::sync::Arc;
use std::time::Duration;

use eventsync::protocol::{EncodedFrame, ServerMessage};
use eventsync::server::{Output, Reply, Request, ServerConnection};
use futures::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use crate::app::AppState;
use crate::auth::{self, Claims};
use crate::broker::{Delivery, Published};
use crate::hooks::Authentication;
use crate::presence::PresenceChange;

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
    /// An `events` or `event` frame whose events came from the store as text.
    Encoded(EncodedFrame),
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
    /// Queues one output for a connection of `version`, without waiting for it to be written
    /// (a WebSocket writes its queue once it holds a few KiB, or on [`Transport::flush`]); an
    /// error means the peer is gone.
    fn feed(
        &mut self,
        version: u32,
        out: Outgoing,
    ) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// Writes whatever [`Transport::feed`] queued; an error means the peer is gone.
    fn flush(&mut self) -> impl std::future::Future<Output = Result<(), ()>> + Send;
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

/// The HTTP request a WebSocket was upgraded from, for the application's hooks (kept only when
/// there are hooks, and only until the `hello` is authorized).
#[derive(Debug, Default)]
pub struct Upgrade {
    /// Its headers.
    pub headers: axum::http::HeaderMap,
    /// The client's address, when the server was served with connect info.
    pub peer: Option<std::net::IpAddr>,
}

/// A connection with what it needs to run: the state, the token it was authorized with, and its
/// subscriptions (one per open document).
pub struct Driver {
    state: AppState,
    connection: Connection,
    claims: Option<Claims>,
    /// The upgrade request, until the `hello` is authorized.
    upgrade: Option<Box<Upgrade>>,
    live: StreamMap<String, futures::stream::BoxStream<'static, Delivery>>,
    /// Version 2: the presence changes of each open document.
    presence: StreamMap<String, BroadcastStream<PresenceChange>>,
    /// This connection in the presence hub.
    presence_id: u64,
    /// An output taken from the connection and not handled yet: [`Driver::peek`]'s, or a
    /// request that [`Driver::ready_output`] left for [`Driver::next_output`] to wait on.
    peeked: Option<Output<Arc<Published>>>,
}

/// Whatever presence a connection still has goes when its driver does, however it ended.
impl Drop for Driver {
    fn drop(&mut self) {
        self.state.presence.leave(self.presence_id);
    }
}

impl Driver {
    /// Drives `connection`.
    pub fn new(state: AppState, connection: Connection) -> Self {
        let presence_id = state.presence.connection();
        Driver {
            state,
            connection,
            claims: None,
            upgrade: None,
            live: StreamMap::new(),
            presence: StreamMap::new(),
            presence_id,
            peeked: None,
        }
    }

    /// Keeps the upgrade request, for the hooks' authentication.
    pub fn upgraded_by(mut self, upgrade: Upgrade) -> Self {
        self.upgrade = Some(Box::new(upgrade));
        self
    }

    /// Runs requests until the connection has something else to say, and shows it (SSE: an
    /// `error` here becomes the HTTP answer, before any stream starts).
    pub async fn peek(&mut self) -> Option<&Output<Arc<Published>>> {
        if matches!(
            self.peeked,
            None | Some(Output::Request(_) | Output::Record { .. })
        ) {
            self.peeked = self.next_output().await;
        }
        self.peeked.as_ref()
    }

    /// The connection's next output that needs no waiting (`None` when it has nothing more, or
    /// when its next one is a request or a record: that one waits in `peeked`).
    fn ready_output(&mut self) -> Option<Output<Arc<Published>>> {
        loop {
            let out = match self.peeked.take() {
                Some(out) => out,
                None => self.connection.poll_output()?,
            };
            match out {
                Output::Request(_) | Output::Record { .. } => {
                    self.peeked = Some(out);
                    return None;
                }
                Output::Unsubscribe(document_id) => self.unsubscribe(&document_id),
                Output::Presence { document_id, state } => {
                    self.publish_presence(document_id, state)
                }
                other => return Some(other),
            }
        }
    }

    fn unsubscribe(&mut self, document_id: &str) {
        self.live.remove(document_id);
        self.presence.remove(document_id);
    }

    fn publish_presence(&mut self, document_id: String, state: serde_json::Value) {
        let client = self.connection.client_id().unwrap_or_default();
        let hub = &self.state.presence;
        hub.publish(self.presence_id, &document_id, client, state);
    }

    /// Runs requests (and records) until the connection has something else to say.
    async fn next_output(&mut self) -> Option<Output<Arc<Published>>> {
        loop {
            let out = match self.peeked.take() {
                Some(out) => out,
                None => self.connection.poll_output()?,
            };
            match out {
                Output::Request(request) => {
                    // Boxed: the store's futures are several KiB, and a future awaited here
                    // would be part of the connection's task, idle or not.
                    let reply = Box::pin(self.execute(request)).await;
                    self.connection.handle_reply(now_ms(), reply);
                }
                Output::Record {
                    document_id,
                    vector,
                } => {
                    // In the background: the answer to the `sync` does not wait for it.
                    let client = self.connection.client_id().unwrap_or_default();
                    self.state.vectors.record(&document_id, client, &vector);
                }
                Output::Unsubscribe(document_id) => self.unsubscribe(&document_id),
                Output::Presence { document_id, state } => {
                    self.publish_presence(document_id, state)
                }
                other => return Some(other),
            }
        }
    }

    /// Runs the connection to its end.
    ///
    /// Every output the connection has ready is queued on the transport, and the queue is
    /// written once, before the loop waits (for the peer, a live batch, a timeout or shutdown)
    /// or runs a request (which may wait on the store). The waits on shutdown and on the
    /// connection's timeout live as long as the connection: a frame does not register them
    /// again (the shutdown signal is shared by every connection).
    ///
    /// Not an `async fn`: an `async fn` keeps its arguments twice in its future (as they came
    /// and as the body's variables), and this future is most of an idle connection's task. The
    /// block below holds them once, and [`Driver::drive`] borrows them.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub fn run(
        mut self,
        mut transport: impl Transport,
    ) -> impl std::future::Future<Output = ()> + Send {
        async move { self.drive(&mut transport).await }
    }

    /// [`Driver::run`] on borrowed parts: for a task that holds the driver and the transport
    /// itself (once each: see [`Driver::run`]).
    pub async fn drive(&mut self, transport: &mut impl Transport) {
        let mut shutdown = self.state.shutdown.clone();
        let shutdown = async move {
            let _ = shutdown.changed().await;
        };
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        // The deadline the timer is set to (milliseconds since the epoch), if any.
        let mut armed: Option<u64> = None;
        loop {
            let mut queued = false;
            loop {
                // The output is turned into what the transport sends in a block of its own, so
                // that it is not kept in this future while that is sent.
                let sent = {
                    let out = match self.ready_output() {
                        Some(out) => out,
                        None => {
                            if queued && transport.flush().await.is_err() {
                                return;
                            }
                            match self.next_output().await {
                                Some(out) => out,
                                None => break,
                            }
                        }
                    };
                    let version = self.connection.version();
                    let outgoing = match out {
                        Output::Send(message) => Outgoing::Message(message),
                        Output::SendTo(document_id, message) => {
                            Outgoing::About(document_id, message)
                        }
                        Output::SendLive(batch) => Outgoing::Live(batch),
                        Output::SendEncoded(frame) => Outgoing::Encoded(frame),
                        Output::Connected { head_seq } => Outgoing::Connected(head_seq),
                        Output::Close { code, reason } => {
                            // Writes what was queued before it.
                            transport.close(code, reason).await;
                            return;
                        }
                        Output::Request(_)
                        | Output::Record { .. }
                        | Output::Unsubscribe(_)
                        | Output::Presence { .. } => unreachable!("next_output handles these"),
                    };
                    transport.feed(version, outgoing)
                };
                if sent.await.is_err() {
                    return;
                }
                queued = true;
            }
            let deadline = self.connection.poll_timeout();
            if deadline != armed {
                if let Some(at) = deadline {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    timer.as_mut().reset(tokio::time::Instant::now() + wait);
                }
                armed = deadline;
            }
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
                        Err(_lagged) => self.connection.handle_lagged(now_ms(), &document_id),
                    }
                    // Whatever else was published meanwhile goes out in the same write.
                    self.drain();
                }
                Some((document_id, change)) = self.presence.next(), if !self.presence.is_empty() => {
                    self.presence_changed(&document_id, change);
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.connection.handle_timeout(now_ms());
                }
                _ = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    self.connection.handle_shutdown(now_ms());
                }
            }
        }
    }

    /// Answers one request of the connection.
    async fn execute(&mut self, request: Request) -> Reply {
        let service = &self.state.service;
        let failed = |err: crate::service::ServiceError| (err.code, err.message);
        match request {
            Request::Authorize { token } => {
                // Asked once: the upgrade request goes with it.
                let upgrade = self.upgrade.take().unwrap_or_default();
                let request = Authentication {
                    token: token.as_deref(),
                    headers: &upgrade.headers,
                    address: upgrade.peer,
                };
                let now = now_ms() / 1000;
                match self.state.rules.authenticate(&request).await {
                    Err(refusal) => return Reply::Authorized(Err((refusal.code, refusal.message))),
                    Ok(Some(claims)) => {
                        let credentials = auth::credentials_for(&claims, now);
                        self.claims = Some(claims);
                        return Reply::Authorized(
                            credentials.map_err(|err| (err.code(), err.to_string())),
                        );
                    }
                    Ok(None) => {}
                }
                let authority = self.state.authority.as_ref();
                match auth::credentials(authority, token.as_deref(), now) {
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
                let live = self.state.broker.subscribe(&document_id);
                self.live.insert(document_id.clone(), live);
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
            Request::Presence { document_id } => {
                let (peers, receiver) = self.state.presence.subscribe(&document_id);
                self.presence
                    .insert(document_id, BroadcastStream::new(receiver));
                Reply::Presence(peers)
            }
        }
    }

    /// A presence change of a document: it goes out with the others already waiting for the
    /// same document, in one frame. A connection that fell behind gets the whole set instead.
    fn presence_changed(
        &mut self,
        document_id: &str,
        change: Result<PresenceChange, BroadcastStreamRecvError>,
    ) {
        use futures::FutureExt;
        let mut peers = Vec::new();
        let mut lagged = change.is_err();
        if let Ok(change) = change {
            peers.push((*change).clone());
        }
        // Whatever else is already waiting on this document's stream (a cursor moving fast
        // costs one frame per wakeup, not one per change).
        if let Some(stream) = self.presence.iter_mut().find(|(d, _)| d == document_id) {
            let stream = &mut stream.1;
            while let Some(Some(next)) = stream.next().now_or_never() {
                match next {
                    Ok(change) => peers.push((*change).clone()),
                    Err(_) => lagged = true,
                }
            }
        }
        if lagged {
            let everyone = self.state.presence.peers(document_id);
            self.connection
                .handle_presence(now_ms(), document_id, &everyone, true);
        } else {
            // The latest of each peer.
            let mut latest: Vec<eventsync::protocol::PresencePeer> = Vec::new();
            for peer in peers.into_iter().rev() {
                if !latest.iter().any(|p| p.client_id == peer.client_id) {
                    latest.push(peer);
                }
            }
            latest.reverse();
            self.connection
                .handle_presence(now_ms(), document_id, &latest, false);
        }
    }

    /// Hands the connection every batch already published to it (of `DrainLive`'s document,
    /// and of any other: those wait in the engine), without waiting for more.
    fn drain(&mut self) {
        use futures::FutureExt;
        while let Some(Some((document_id, published))) = self.live.next().now_or_never() {
            match published {
                Ok(batch) => self.connection.handle_live(now_ms(), batch),
                Err(_lagged) => self.connection.handle_lagged(now_ms(), &document_id),
            }
        }
    }
}
