//! One WebSocket connection at `/sync/{documentId}`: handshake, catch-up, live events, edits.
//!
//! The connection is one task. Frames from the client, published events and shutdown are handled
//! in a single `select!`, so everything this connection sends is in one order: the `event` frame
//! of an accepted edit always precedes its `ack`, and live events never skip a `sequenceNum`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use eventsync::protocol::{self, ClientMessage, ErrorCode, ServerMessage};
use eventsync::sequencer::negotiate_version;
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use crate::app::AppState;
use crate::auth::{self, Rights};
use crate::broker::Published;
use crate::limits::{validate_id, RateLimiter};

/// How long a client has to send `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = futures::stream::SplitSink<WebSocket, Message>;

struct Connection {
    state: AppState,
    document_id: String,
    client_id: String,
    rights: Rights,
    /// When the connection's token expires (Unix seconds): the connection ends then.
    expires_at: Option<u64>,
    sink: Sink,
    events: Receiver<Arc<Published>>,
    /// The highest `sequenceNum` this connection has been sent.
    last_sent: u64,
    limiter: RateLimiter,
    started: tokio::time::Instant,
}

/// Runs a connection to its end. `url_token` is the upgrade request's token (`Authorization` or
/// `?token=`), if any; a token in `hello` wins over it (5.3).
pub async fn serve(
    socket: WebSocket,
    state: AppState,
    document_id: String,
    url_token: Option<String>,
) {
    let (mut sink, mut stream) = socket.split();
    let _live = state.connection_guard();
    let started = tokio::time::Instant::now();
    let mut limiter = RateLimiter::new(state.limits.messages_per_second, state.limits.burst);
    // Before `welcome`, every frame but a hello is answered and the server goes on waiting for
    // the hello (5.2 rule 1), for at most HELLO_TIMEOUT in all.
    let deadline = started + HELLO_TIMEOUT;
    let (client_id, token, versions) = loop {
        let text = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Binary(_)))) => {
                let refused = send_error(
                    &mut sink,
                    ErrorCode::MalformedFrame,
                    "binary frames are not part of the protocol",
                )
                .await;
                if refused.is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(_))) => continue,
            Err(_) => {
                refuse(
                    &mut sink,
                    ErrorCode::UnexpectedMessage,
                    "no hello within 10 seconds",
                )
                .await;
                return;
            }
        };
        let answer = if !limiter.allow(started.elapsed().as_millis() as u64) {
            (
                ErrorCode::RateLimited,
                "too many messages: slow down".into(),
            )
        } else {
            match protocol::decode_client(&text, state.limits.max_frame_bytes) {
                Ok(ClientMessage::Hello {
                    client_id,
                    token,
                    protocol_versions,
                }) => break (client_id, token, protocol_versions),
                Ok(_) => (ErrorCode::UnexpectedMessage, "send hello first".into()),
                Err(err) => (err.code(), err.to_string()),
            }
        };
        if send_error(&mut sink, answer.0, &answer.1).await.is_err() {
            return;
        }
    };
    // The checks of 5.2 rule 2, in order (the documentId was checked before the upgrade).
    let Some(protocol_version) = negotiate_version(&versions) else {
        refuse(
            &mut sink,
            ErrorCode::UnsupportedVersion,
            &format!(
                "this server speaks protocol version {}",
                protocol::PROTOCOL_VERSION
            ),
        )
        .await;
        return;
    };
    if let Err(reason) = validate_id(&client_id) {
        refuse(
            &mut sink,
            ErrorCode::MalformedFrame,
            &format!("invalid clientId: {reason}"),
        )
        .await;
        return;
    }
    let access = match auth::authorize_hello(
        state.authority.as_ref(),
        token.or(url_token).as_deref(),
        &document_id,
        &client_id,
        unix_now(),
    ) {
        Ok(access) => access,
        Err(err) => {
            refuse(&mut sink, err.code(), &err.to_string()).await;
            return;
        }
    };
    // Subscribe before reading the head, so that nothing ordered in between is missed.
    let events = state.broker.subscribe(&document_id);
    let head = match state.service.head(&document_id).await {
        Ok(head) => head,
        Err(err) => {
            refuse(&mut sink, err.code, &err.message).await;
            return;
        }
    };
    let mut connection = Connection {
        limiter,
        state,
        document_id,
        client_id,
        rights: access.rights,
        expires_at: access.expires_at,
        sink,
        events,
        last_sent: head.head_seq,
        started,
    };
    tracing::info!(document = %connection.document_id, client = %connection.client_id, "connected");
    let welcome = ServerMessage::Welcome {
        protocol_version,
        document_id: connection.document_id.clone(),
        client_id: connection.client_id.clone(),
        head_seq: head.head_seq,
    };
    if connection.send(&welcome).await.is_err() {
        return;
    }
    connection.run(stream).await;
    tracing::info!(document = %connection.document_id, client = %connection.client_id, "disconnected");
}

impl Connection {
    async fn run(&mut self, mut stream: futures::stream::SplitStream<WebSocket>) {
        let mut shutdown = self.state.shutdown.clone();
        let expiry = auth::expired(self.expires_at);
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                _ = &mut expiry => {
                    refuse(&mut self.sink, ErrorCode::Unauthorized, "the access token expired").await;
                    return;
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if self.handle_text(&text).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if self.error(ErrorCode::MalformedFrame, "binary frames are not part of the protocol").await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
                published = self.events.recv() => {
                    let sent = match published {
                        Ok(published) => self.forward(&published).await,
                        Err(RecvError::Lagged(_)) => self.repair().await,
                        Err(RecvError::Closed) => return,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => {
                    let _ = self.sink.send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: Utf8Bytes::from_static("server shutting down"),
                    }))).await;
                    return;
                }
            }
        }
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), axum::Error> {
        self.sink
            .send(Message::Text(protocol::encode(message).into()))
            .await
    }

    async fn error(&mut self, code: ErrorCode, message: &str) -> Result<(), axum::Error> {
        self.send(&ServerMessage::Error {
            code,
            message: message.to_owned(),
        })
        .await
    }

    /// Sends a published batch, skipping what this connection already has.
    async fn forward(&mut self, published: &Published) -> Result<(), axum::Error> {
        if published.last_seq() <= self.last_sent {
            return Ok(());
        }
        let first = published.events.first().map_or(0, |e| e.sequence_num);
        if first > self.last_sent + 1 {
            // Something between was not seen on this channel: fetch it from the store.
            return self.repair().await;
        }
        if first == self.last_sent + 1 {
            self.sink
                .send(Message::Text(published.frame.clone().into()))
                .await?;
        } else {
            let events = published
                .events
                .iter()
                .filter(|e| e.sequence_num > self.last_sent)
                .cloned()
                .collect();
            self.send(&ServerMessage::Event { events }).await?;
        }
        self.last_sent = published.last_seq();
        Ok(())
    }

    /// Sends every event after `last_sent` from the store (after a lag or a gap).
    async fn repair(&mut self) -> Result<(), axum::Error> {
        loop {
            let events = match self
                .state
                .service
                .store()
                .events_after(
                    &self.document_id,
                    self.last_sent,
                    self.state.limits.default_page,
                )
                .await
            {
                Ok(events) => events,
                Err(err) => {
                    tracing::error!(error = %err, "repair failed");
                    return self
                        .error(ErrorCode::Internal, "event store unavailable")
                        .await;
                }
            };
            let Some(last) = events.last().map(|e| e.sequence_num) else {
                return Ok(());
            };
            if events[0].sequence_num != self.last_sent + 1 {
                // The events in between were compacted before this connection was sent them:
                // it cannot get them in order any more, so it is closed rather than sent a gap
                // (7.1). The client reconnects and catches up from the snapshot.
                tracing::warn!(document = %self.document_id, client = %self.client_id, after = self.last_sent, "connection fell behind the retained history: closing");
                let _ = self
                    .sink
                    .send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static("fell behind the retained history"),
                    })))
                    .await;
                return Err(axum::Error::new("fell behind the retained history"));
            }
            self.send(&ServerMessage::Event { events }).await?;
            self.last_sent = last;
        }
    }

    /// Delivers every published event up to `seq` that is already waiting (the events of this
    /// connection's own accepted edits, so that they precede the ack).
    async fn deliver_through(&mut self, seq: u64) -> Result<(), axum::Error> {
        while self.last_sent < seq {
            match self.events.try_recv() {
                Ok(published) => self.forward(&published).await?,
                Err(TryRecvError::Lagged(_))
                | Err(TryRecvError::Empty)
                | Err(TryRecvError::Closed) => {
                    self.repair().await?;
                    break;
                }
            }
        }
        Ok(())
    }

    async fn handle_text(&mut self, text: &str) -> Result<(), axum::Error> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        if !self.limiter.allow(now_ms) {
            // A rate limit that hits an edit is reported as a reject of that edit (8.3), so that
            // the client backs off and resends rather than waits for its request timeout.
            if let Ok(ClientMessage::Submit { edits }) =
                protocol::decode_client(text, self.state.limits.max_frame_bytes)
            {
                if let Some(first) = edits.first() {
                    return self
                        .reject(
                            first.client_seq,
                            ErrorCode::RateLimited,
                            "too many messages: slow down".into(),
                        )
                        .await;
                }
            }
            return self
                .error(ErrorCode::RateLimited, "too many messages: slow down")
                .await;
        }
        let message = match protocol::decode_client(text, self.state.limits.max_frame_bytes) {
            Ok(message) => message,
            Err(err) => return self.error(err.code(), &err.to_string()).await,
        };
        match message {
            ClientMessage::Hello { .. } => {
                self.error(ErrorCode::UnexpectedMessage, "hello was already received")
                    .await
            }
            ClientMessage::Ping { nonce } => {
                let head_seq = self
                    .state
                    .service
                    .head(&self.document_id)
                    .await
                    .ok()
                    .map(|h| h.head_seq);
                self.send(&ServerMessage::Pong { nonce, head_seq }).await
            }
            ClientMessage::Sync {
                vector_clock,
                after,
            } => self.catch_up(vector_clock, after).await,
            ClientMessage::Submit { edits } => self.submit(edits).await,
        }
    }

    async fn catch_up(
        &mut self,
        vector: eventsync::VectorClock,
        mut after: Option<u64>,
    ) -> Result<(), axum::Error> {
        let limit = self.state.limits.default_page;
        if let Err(err) = self
            .state
            .vectors
            .record(&self.document_id, &self.client_id, &vector)
            .await
        {
            tracing::warn!(error = %err, "state vector not recorded");
        }
        // Where the previous page's scan stopped, for later pages of the vector form.
        let mut resume = None;
        loop {
            let (page, scanned) = match self
                .state
                .service
                .catch_up_page(&self.document_id, &vector, after, resume, limit)
                .await
            {
                Ok(page) => page,
                Err(err) => return self.error(err.code, &err.message).await,
            };
            let snapshot_sent = page.snapshot.is_some();
            if let Some(snapshot) = page.snapshot {
                self.last_sent = self.last_sent.max(snapshot.sequence_num);
                self.send(&ServerMessage::Snapshot { snapshot }).await?;
            }
            if let Some(last) = page.events.last().map(|e| e.sequence_num) {
                self.last_sent = self.last_sent.max(last);
            }
            self.send(&ServerMessage::Events {
                events: page.events,
                head_seq: Some(page.head_seq),
                has_more: page.has_more,
            })
            .await?;
            let position = resume.or(after).unwrap_or(0);
            if !page.has_more || (scanned <= position && !snapshot_sent) {
                return Ok(());
            }
            if after.is_some() || snapshot_sent {
                // Cursor form (after a snapshot, every later event is missing).
                after = Some(scanned);
                resume = None;
            } else {
                resume = Some(scanned);
            }
        }
    }

    async fn submit(&mut self, edits: Vec<eventsync::Edit>) -> Result<(), axum::Error> {
        let Some(first) = edits.first() else {
            // Every submit is answered: an empty one with an empty ack (8.1).
            return self.send(&ServerMessage::Ack { edits: Vec::new() }).await;
        };
        let first = first.client_seq;
        if self.rights != Rights::Write {
            return self
                .reject(
                    first,
                    ErrorCode::Forbidden,
                    "this token is read-only".into(),
                )
                .await;
        }
        match self
            .state
            .service
            .submit(&self.document_id, &self.client_id, &edits)
            .await
        {
            Ok(outcome) => {
                // The events of the accepted edits precede the ack, and every event up to a
                // reject's headSeq precedes the reject (8.2).
                let through = outcome
                    .events
                    .last()
                    .map(|e| e.sequence_num)
                    .into_iter()
                    .chain(outcome.rejection.as_ref().map(|r| r.head_seq))
                    .max();
                if let Some(through) = through {
                    self.deliver_through(through).await?;
                }
                for reply in outcome.replies() {
                    self.send(&reply).await?;
                }
                Ok(())
            }
            Err(err) => self.reject(first, err.code, err.message).await,
        }
    }

    /// Refuses a submit from its edit `client_seq` on, with the current head, after sending
    /// every event up to that head (8.2).
    async fn reject(
        &mut self,
        client_seq: u64,
        code: ErrorCode,
        message: String,
    ) -> Result<(), axum::Error> {
        let head_seq = self
            .state
            .service
            .head(&self.document_id)
            .await
            .map_or(0, |h| h.head_seq);
        self.deliver_through(head_seq).await?;
        self.send(&ServerMessage::Reject {
            client_seq,
            code,
            message,
            head_seq,
        })
        .await
    }
}

/// Sends one error frame (before the handshake is complete).
async fn send_error(sink: &mut Sink, code: ErrorCode, message: &str) -> Result<(), axum::Error> {
    let frame = protocol::encode(&ServerMessage::Error {
        code,
        message: message.to_owned(),
    });
    sink.send(Message::Text(frame.into())).await
}

/// Sends one error frame and closes: for refusals of a `hello`.
async fn refuse(sink: &mut Sink, code: ErrorCode, message: &str) {
    let _ = send_error(sink, code, message).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1008,
            reason: Utf8Bytes::from_static("refused"),
        })))
        .await;
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
