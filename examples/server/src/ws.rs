//! One WebSocket connection at `/sync/{documentId}`: the socket as a [`Transport`] of the core's
//! connection engine. Handshake, catch-up, live events, edits and their answers, limits and close
//! codes are the engine's (`eventsync::server::ServerConnection`), run by [`crate::drive`].

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use eventsync::protocol;
use futures::{SinkExt, StreamExt};

use crate::admission::ConnectionGuard;
use crate::app::AppState;
use crate::drive::{now_ms, Connection, Driver, Incoming, Outgoing, Transport, Upgrade};

/// A WebSocket as the driver's transport. The driver never reads and writes at once, so the
/// socket is not split (a split's halves share it through a lock).
struct Socket(WebSocket);

impl Transport for Socket {
    async fn feed(&mut self, version: u32, out: Outgoing) -> Result<(), ()> {
        let text: Utf8Bytes = match out {
            Outgoing::Message(message) => protocol::encode(&message).into(),
            Outgoing::About(document_id, message) => {
                protocol::encode_scoped(Some(&document_id), &message).into()
            }
            Outgoing::Live(batch) => batch.frame_for(version),
            Outgoing::Encoded(frame) => frame.encode(version).into(),
            Outgoing::Connected(_) => return Ok(()),
        };
        // Into the socket's write buffer: written when it passes WRITE_BUFFER_BYTES
        // (crate::http) or on flush.
        self.0.feed(Message::Text(text)).await.map_err(drop)
    }

    async fn flush(&mut self) -> Result<(), ()> {
        self.0.flush().await.map_err(drop)
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // Sent after whatever was queued, and everything flushed.
        let _ = self.0.send(Message::Close(Some(frame))).await;
    }

    async fn next(&mut self) -> Incoming {
        loop {
            return match self.0.next().await {
                Some(Ok(Message::Text(text))) => Incoming::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(_))) => Incoming::Binary,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => Incoming::Gone,
                Some(Err(err)) => match is_invalid_utf8(err) {
                    true => Incoming::InvalidUtf8,
                    false => Incoming::Gone,
                },
            };
        }
    }
}

/// A text message that is not UTF-8 (RFC 6455 8.1: the connection fails with 1007).
fn is_invalid_utf8(err: axum::Error) -> bool {
    err.into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|err| matches!(err, tungstenite::Error::Utf8(_)))
}

/// Runs a connection to its end: to `document_id` (`/sync/{documentId}`, protocol version 1), or
/// with `None` to the connection URL `/sync` (version 2). `url_token` is the upgrade request's
/// token (`Authorization` or `?token=`), if any; a token in `hello` wins over it (5.3).
pub async fn serve(
    socket: WebSocket,
    state: AppState,
    document_id: Option<String>,
    url_token: Option<String>,
    admitted: ConnectionGuard,
    request: Upgrade,
) {
    let _admitted = admitted;
    let connection = Connection::websocket(
        document_id.clone(),
        state.limits.clone(),
        url_token,
        now_ms(),
    );
    let document = document_id.as_deref().unwrap_or("(many)");
    tracing::info!(document, "connected");
    Driver::new(state, connection)
        .upgraded_by(request)
        .run(Socket(socket))
        .await;
    tracing::info!(document, "disconnected");
}
