//! One WebSocket connection at `/sync/{documentId}`: the socket as a [`Transport`] of the core's
//! connection engine. Handshake, catch-up, live events, edits and their answers, limits and close
//! codes are the engine's (`eventsync::server::ServerConnection`), run by [`crate::drive`].
//!
//! The socket is tokio-tungstenite's, over the connection hyper hands over once upgraded (axum's
//! `WebSocketUpgrade` still checks the request and refuses a bad one). Owning it lets a large
//! frame go straight to the connection instead of through tungstenite's write buffer, whose
//! capacity never shrinks: a connection's catch-up (the document's creation, often several KiB)
//! would otherwise stay allocated as long as the connection, idle or not.

use std::io::IoSlice;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use eventsync::protocol;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use crate::admission::ConnectionGuard;
use crate::app::AppState;
use crate::drive::{now_ms, Connection, Driver, Incoming, Outgoing, Transport, Upgrade};

/// The server's WebSocket: tokio-tungstenite over hyper's upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Frames larger than this are written to the connection directly, past tungstenite's write
/// buffer (see the module documentation); smaller ones are queued there and written together.
const DIRECT_BYTES: usize = 2 * 1024;

/// The connection of a WebSocket upgrade request, once hyper has upgraded it. Take it before
/// axum's `WebSocketUpgrade` (which keeps one of its own, unused): that one checks the request.
pub struct Upgrading(Option<OnUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for Upgrading {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Upgrading(parts.extensions.get::<OnUpgrade>().cloned()))
    }
}

/// Writes one text frame of `payload` (unmasked and unfragmented, as a server sends it: RFC 6455
/// 5.2) to `io`, in one write where the connection takes both parts at once.
async fn write_text_frame(
    io: &mut (impl AsyncWrite + Unpin),
    payload: &[u8],
) -> std::io::Result<()> {
    let mut header = [0u8; 10];
    header[0] = 0x80 | 0x1; // FIN, text
    let len = payload.len();
    let header_len = if len < 126 {
        header[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    let (mut head, mut body) = (&header[..header_len], payload);
    while !head.is_empty() || !body.is_empty() {
        let written = io
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        body = &body[written - from_head..];
    }
    io.flush().await
}

/// A WebSocket as the driver's transport. The driver never reads and writes at once, so the
/// socket is not split (a split's halves share it through a lock).
struct Socket(WebSocket);

impl Transport for Socket {
    // Not an `async fn`: the frame's text is made before the future, which then holds only it
    // (the future is part of the connection's task).
    fn feed(
        &mut self,
        version: u32,
        out: Outgoing,
    ) -> impl std::future::Future<Output = Result<(), ()>> + Send {
        let text: Option<Utf8Bytes> = match out {
            Outgoing::Message(message) => Some(protocol::encode(&message).into()),
            Outgoing::About(document_id, message) => {
                Some(protocol::encode_scoped(Some(&document_id), &message).into())
            }
            Outgoing::Live(batch) => Some(batch.frame_for(version)),
            Outgoing::Encoded(frame) => Some(frame.encode(version).into()),
            Outgoing::Connected(_) => None,
        };
        async move {
            let Some(text) = text else { return Ok(()) };
            if text.len() > DIRECT_BYTES {
                // After whatever was queued before it.
                self.0.flush().await.map_err(drop)?;
                return write_text_frame(self.0.get_mut(), text.as_bytes())
                    .await
                    .map_err(drop);
            }
            // Into the socket's write buffer: written when it passes WRITE_BUFFER_BYTES
            // (crate::http) or on flush.
            self.0.feed(Message::Text(text)).await.map_err(drop)
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        self.0.flush().await.map_err(drop)
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: code.into(),
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
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
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
fn is_invalid_utf8(err: tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Utf8(_))
}

/// Runs a connection to its end, in a task of its own, once hyper has upgraded it (after the
/// `101 Switching Protocols` answer went out): to `document_id` (`/sync/{documentId}`, protocol
/// version 1), or with `None` to the connection URL `/sync` (version 2). `url_token` is the
/// upgrade request's token (`Authorization` or `?token=`), if any; a token in `hello` wins over
/// it (5.3).
///
/// The task is most of what an idle connection costs: the driver is made before it starts and
/// held by it once, and the loop borrows it and the socket (see [`Driver::run`]).
pub fn serve(
    upgrading: Upgrading,
    config: WebSocketConfig,
    state: AppState,
    document_id: Option<String>,
    url_token: Option<String>,
    admitted: ConnectionGuard,
    request: Upgrade,
) {
    // Present whenever axum's `WebSocketUpgrade` accepted the request.
    let Some(upgrade) = upgrading.0 else { return };
    let connection = Connection::websocket(
        document_id.clone(),
        state.limits.clone(),
        url_token,
        now_ms(),
    );
    let mut driver = Driver::new(state, connection).upgraded_by(request);
    tokio::spawn(async move {
        let _admitted = &admitted;
        let mut socket = Socket(match upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
            }
            Err(_) => return,
        });
        let document = document_id.as_deref().unwrap_or("(many)");
        tracing::info!(document, "connected");
        driver.drive(&mut socket).await;
        tracing::info!(document, "disconnected");
    });
}
