//! The connection loop of both native clients: connect, pump frames and timers through the
//! sans-IO core (one [`crate::SyncSession`], or a [`crate::multiplex::Multiplexer`] of many),
//! back off, again, until closed or refused for good.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::reconnect::Backoff;

/// What the loop drives: a core behind a lock, whose outputs the implementation carries out.
/// The `bool`s say the core closed the connection.
pub(super) trait Link: Send + Sync + 'static {
    /// Woken when the core's deadlines may have changed.
    fn wake(&self) -> &Notify;
    /// Woken when the app closes the client.
    fn closed(&self) -> &Notify;
    /// The origin of the core's clock.
    fn epoch(&self) -> Instant;
    /// The transport is up: frames go to `writer`; say hello.
    fn connected(&self, writer: mpsc::UnboundedSender<Message>) -> bool;
    /// A text frame arrived.
    fn frame(&self, text: &str) -> bool;
    /// The core's timer is due.
    fn timeout(&self) -> bool;
    /// When the core's timer is next due.
    fn poll_timeout(&self) -> Option<u64>;
    /// The transport closed.
    fn disconnected(&self);
    /// The server refused the client for good: stop reconnecting.
    fn refused(&self) -> bool;
    /// The loop waits `retry_in_ms` before connecting again, because of `reason`
    /// ([`crate::SessionEvent::Reconnecting`] for the app).
    fn reconnecting(&self, reason: &str, retry_in_ms: u64);
}

/// The size of each read from the socket. tungstenite fills the part of its read buffer it reads
/// into with zeros first, every read: at its default (128 KiB) that was a quarter of the CPU a
/// live event cost. Larger frames (a catch-up page) take more reads, not a larger buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Connects to `url` again and again until closed or refused for good.
pub(super) async fn drive(link: Arc<impl Link>, url: String, backoff: Backoff) {
    let mut attempt: u32 = 0;
    loop {
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        // No Nagle: an edit or a presence update goes out at once, not after the last one's ACK.
        let connect =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
        let socket = tokio::select! {
            result = tokio::time::timeout(Duration::from_secs(10), connect) => result,
            _ = link.closed().notified() => return,
        };
        // A failure surfaces to the app as the `Reconnecting` event below, with its reason.
        let reason = match socket {
            Ok(Ok((socket, _))) => {
                attempt = 0;
                match pump(&link, socket).await {
                    std::ops::ControlFlow::Break(()) => return,
                    std::ops::ControlFlow::Continue(reason) => reason,
                }
            }
            Ok(Err(err)) => format!("cannot connect to {url}: {}", describe(&err)),
            Err(_) => format!("cannot connect to {url}: no answer within 10 s"),
        };
        let delay = backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        link.reconnecting(&reason, delay.as_millis() as u64);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = link.closed().notified() => return,
        }
    }
}

/// A connect error as a sentence: the HTTP status of a refused upgrade, the OS's words.
fn describe(err: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match err {
        Error::Http(response) => format!(
            "the server answered HTTP {} instead of a WebSocket (is this an eventsync server, \
             and the address right?)",
            response.status()
        ),
        other => other.to_string(),
    }
}

/// One connection's life. `Break` when the client should stop for good, else why it ended.
async fn pump(
    link: &Arc<impl Link>,
    // Not split: the loop reads and writes in turn, and a split's halves share the socket
    // through a lock taken on every poll.
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> std::ops::ControlFlow<(), String> {
    use std::ops::ControlFlow::{Break, Continue};
    let (writer, mut outgoing) = mpsc::unbounded_channel();
    let mut closed = link.connected(writer);
    let mut stop = Continue("the client ended the connection to start over".to_owned());
    // Made once and kept across frames: a frame re-arms nothing (a timer entry or a waiter
    // registered and dropped per frame was a good part of a live event's cost).
    let epoch = link.epoch();
    let sleep = tokio::time::sleep_until(epoch);
    let wake = link.wake().notified();
    let ended = link.closed().notified();
    tokio::pin!(sleep, wake, ended);
    let mut armed = None;
    while !closed {
        let deadline = link.poll_timeout();
        if deadline != armed {
            if let Some(at) = deadline {
                sleep.as_mut().reset(epoch + Duration::from_millis(at));
            }
            armed = deadline;
        }
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => closed = link.frame(&text),
                Some(Ok(Message::Close(frame))) => {
                    stop = Continue(match frame {
                        Some(frame) => format!(
                            "the server closed the connection ({}: {})",
                            u16::from(frame.code),
                            frame.reason
                        ),
                        None => "the server closed the connection".to_owned(),
                    });
                    break;
                }
                None => {
                    stop = Continue("the connection was lost".to_owned());
                    break;
                }
                Some(Err(err)) => {
                    stop = Continue(format!("the connection failed: {err}"));
                    break;
                }
                Some(Ok(_)) => {}
            },
            message = outgoing.recv() => match message {
                Some(message) => {
                    if let Err(err) = socket.send(message).await {
                        stop = Continue(format!("the connection failed: {err}"));
                        break;
                    }
                }
                None => break,
            },
            _ = &mut sleep, if armed.is_some() => {
                // Fired: the next deadline is armed afresh, even when it is the same.
                armed = None;
                closed = link.timeout();
            }
            _ = &mut wake => wake.set(link.wake().notified()),
            _ = &mut ended => {
                stop = Break(());
                break;
            }
        }
    }
    // Send what the core queued before closing (e.g. nothing after a refusal).
    while let Ok(message) = outgoing.try_recv() {
        let _ = socket.send(message).await;
    }
    let _ = socket.close(None).await;
    link.disconnected();
    if link.refused() {
        return Break(());
    }
    stop
}
