//! The connection loop of both browser drivers: open a WebSocket (gloo-net over the global
//! `WebSocket`), pump frames and timers through the sans-IO core (one [`crate::SyncSession`], or
//! a [`crate::multiplex::Multiplexer`] of many), back off, again, until closed or refused.

use std::rc::Rc;

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::TimeoutFuture;

use crate::reconnect::Backoff;

/// How long opening a WebSocket may take.
const CONNECT_TIMEOUT_MS: u32 = 10_000;

/// Signals to the connection loop.
pub(super) enum Control {
    /// Something changed the core's deadlines: re-read them.
    Wake,
    /// The app closed the client.
    Close,
}

/// What the loop drives: a core behind a `RefCell`, whose outputs the implementation carries
/// out. The `bool`s say the core closed the connection.
pub(super) trait Link: 'static {
    /// Milliseconds on the core's clock.
    fn now(&self) -> u64;
    /// The app closed the client, or the server refused it for good.
    fn finished(&self) -> bool;
    // `self: Rc<Self>` (a clone of the caller's): `drive` holds the link as `Rc<dyn Link>`.
    /// The transport is up: frames go to `writer`; say hello.
    fn connected(self: Rc<Self>, writer: mpsc::UnboundedSender<String>) -> bool;
    /// A text frame arrived.
    fn frame(self: Rc<Self>, text: &str) -> bool;
    /// The core's timer is due.
    fn timeout(self: Rc<Self>) -> bool;
    /// When the core's timer is next due.
    fn poll_timeout(&self) -> Option<u64>;
    /// The transport closed.
    fn disconnected(self: Rc<Self>);
    /// The server refused the client for good: stop reconnecting.
    fn refused(&self) -> bool;
    /// The loop waits `retry_in_ms` before connecting again, because of `reason`
    /// ([`crate::SessionEvent::Reconnecting`] for the app).
    fn reconnecting(&self, reason: &str, retry_in_ms: u64);
    /// The loop ended for good: fail every waiter.
    fn finish(&self);
}

/// Sleeps `ms` milliseconds, or until `close()`; true when closed.
async fn sleep_or_close(ms: u32, control: &mut mpsc::UnboundedReceiver<Control>) -> bool {
    let mut sleep = TimeoutFuture::new(ms).fuse();
    loop {
        futures::select! {
            _ = sleep => return false,
            signal = control.next() => match signal {
                Some(Control::Wake) => {}
                Some(Control::Close) | None => return true,
            },
        }
    }
}

/// Connects to `url` again and again until closed or refused for good. The link is a trait
/// object: the loop is compiled once for both kinds of client.
pub(super) async fn drive(
    link: Rc<dyn Link>,
    url: String,
    backoff: Backoff,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut attempt: u32 = 0;
    loop {
        if link.finished() {
            break;
        }
        // A failure surfaces to the app as the `Reconnecting` event below, with its reason.
        let reason = match open(&url, &mut control).await {
            Ok(socket) => {
                attempt = 0;
                match pump(&link, socket, &mut control).await {
                    std::ops::ControlFlow::Break(()) => break,
                    std::ops::ControlFlow::Continue(reason) => reason,
                }
            }
            Err(reason) => format!("cannot connect to {url}: {reason}"),
        };
        if link.finished() {
            break;
        }
        let delay = backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        link.reconnecting(&reason, delay.as_millis() as u64);
        if sleep_or_close(delay.as_millis() as u32, &mut control).await {
            break;
        }
    }
    link.finish();
}

/// Opens a WebSocket and waits until it is open (`Err`: why it failed or timed out, or that the
/// client was closed meanwhile).
async fn open(
    url: &str,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Result<WebSocket, String> {
    let mut socket = WebSocket::open(url).map_err(|err| err.to_string())?;
    let mut timeout = TimeoutFuture::new(CONNECT_TIMEOUT_MS).fuse();
    loop {
        let outcome = {
            // Ready once the socket is open, or once it failed (its state then says Closed).
            let mut ready = futures::future::poll_fn(|cx| socket.poll_ready_unpin(cx)).fuse();
            futures::select! {
                result = ready => Some(result.is_ok()),
                _ = timeout => return Err(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT_MS / 1000
                )),
                signal = control.next() => match signal {
                    Some(Control::Wake) => None,
                    // `close()` resolves its waiters itself; nothing to send.
                    Some(Control::Close) | None => return Err("the client was closed".into()),
                },
            }
        };
        if let Some(ok) = outcome {
            return match ok && matches!(socket.state(), State::Open) {
                true => Ok(socket),
                // Browsers tell pages nothing more about a failed WebSocket.
                false => Err(
                    "the server did not accept a WebSocket (is it running, and the \
                              address right?)"
                        .into(),
                ),
            };
        }
    }
}

/// One connection's life. `Break` when the client should stop for good, else why it ended.
async fn pump(
    link: &Rc<dyn Link>,
    socket: WebSocket,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> std::ops::ControlFlow<(), String> {
    use std::ops::ControlFlow::{Break, Continue};
    let (mut sink, mut stream) = socket.split();
    let (writer, mut outgoing) = mpsc::unbounded::<String>();
    let mut closed = link.clone().connected(writer);
    let mut stop = Continue("the client ended the connection to start over".to_owned());
    // The core's timer, armed for `armed`. It is set again only for an earlier deadline: every
    // frame received moves the idle and ping deadlines later, and a timer that fires before a
    // later deadline finds nothing due (`handle_timeout` acts only on what is due) and is armed
    // again for it. So a frame costs no `setTimeout`/`clearTimeout` pair and no closure.
    let mut armed: Option<u64> = None;
    let mut sleep = futures::future::Fuse::terminated();
    while !closed {
        if let Some(at) = link.poll_timeout() {
            if armed.is_none_or(|armed| at < armed) {
                armed = Some(at);
                let wait = at.saturating_sub(link.now()).min(u32::MAX as u64);
                sleep = TimeoutFuture::new(wait as u32).fuse();
            }
        }
        futures::select! {
            frame = stream.next().fuse() => match frame {
                Some(Ok(Message::Text(text))) => closed = link.clone().frame(&text),
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(err)) => {
                    stop = Continue(format!("the connection ended: {err}"));
                    break;
                }
                None => {
                    stop = Continue("the connection was lost".to_owned());
                    break;
                }
            },
            message = outgoing.next() => match message {
                Some(text) => {
                    if let Err(err) = sink.send(Message::Text(text)).await {
                        stop = Continue(format!("the connection failed: {err}"));
                        break;
                    }
                }
                None => break,
            },
            _ = sleep => {
                armed = None;
                closed = link.clone().timeout();
            }
            signal = control.next() => match signal {
                Some(Control::Wake) => {}
                Some(Control::Close) | None => {
                    stop = Break(());
                    break;
                }
            },
        }
    }
    // Send what the core queued before closing (e.g. nothing after a refusal).
    while let Ok(text) = outgoing.try_recv() {
        let _ = sink.send(Message::Text(text)).await;
    }
    let _ = sink.close().await;
    // Dropping both halves closes the socket.
    drop((sink, stream));
    link.clone().disconnected();
    if link.refused() {
        return Break(());
    }
    stop
}
