//! The floor server of `scripts/bench.sh` (issue 17): the least a WebSocket server can do for a
//! fan-out, to measure eventsync-server against. It stores nothing and checks nothing: every text
//! frame a connection sends, other than the handshake, goes as it is to every other connection
//! (one allocation shared by all of them, nothing encoded per subscriber). It is built like the
//! reference server's transport (tokio-tungstenite, TCP_NODELAY, a 4 KiB initial read buffer), and
//! answers just enough of the protocol (version 1) that the same raw subscribers and writer run
//! against both: `hello` gets a `welcome`, `sync` the catch-up eventsync-server sends a new
//! subscriber of the benchmark document (its creation, one `events` frame made once at start and
//! shared too, so that the memory an idle connection keeps after its catch-up compares), `ping`
//! a `pong`. The writer sends it the `event` frames eventsync-server would broadcast (see
//! `fanout::write`), so subscribers read the same bytes from either server, and gets an empty
//! `ack` for each, so that it keeps one write in flight as it does with eventsync-server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eventsync::protocol::{self, Event, Operation, ServerMessage};
use eventsync::{Diff, VectorClock};
use eventsync_bench::{initial_document, WRITER};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames broadcast and not yet sent to every connection, at most (a subscriber further behind
/// loses frames, and says so on stderr: the fan-out's delivered fraction shows it).
const BACKLOG: usize = 64 * 1024;

/// The initial read buffer eventsync-server had when the floor was made (it has 1 KiB since:
/// `examples/server/src/http.rs`); kept, so that the floor's figures stay comparable.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// A broadcast frame and the connection it came from (not sent back to it).
type Frame = (u64, Utf8Bytes);

/// Just the message's type: handshake frames are answered, the others broadcast.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow, rename = "type")]
    kind: &'a str,
    #[serde(default, rename = "clientId")]
    client_id: Option<&'a str>,
}

/// Listens on `listen`, prints `floor-server listening on ws://ADDR` and serves until killed.
pub async fn serve(listen: SocketAddr) {
    let listener = TcpListener::bind(listen).await.expect("bind the address");
    let addr = listener.local_addr().expect("its address");
    println!("floor-server listening on ws://{addr}");
    let (frames, _) = broadcast::channel::<Frame>(BACKLOG);
    let catch_up = Utf8Bytes::from(catch_up_frame());
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let frames = frames.clone();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(tcp, id, frames, catch_up.clone()));
    }
}

/// The answer to every `sync`: the benchmark document's creation (event 1), as eventsync-server
/// sends it to a new subscriber of the document `seed --events 0` made.
fn catch_up_frame() -> String {
    let mut vector_clock = VectorClock::new();
    vector_clock.observe(WRITER, 1);
    let patch =
        serde_json::from_value(json!([{"op": "add", "path": "", "value": initial_document()}]))
            .expect("a root add");
    let create = Event {
        id: format!("{:024x}", 1),
        document_id: "floor".into(),
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        sequence_num: 1,
        operation: Operation::Create,
        diff: Some(Diff::from_patch(patch)),
        vector_clock,
        client_id: WRITER.into(),
        client_seq: Some(1),
        server_seq: 0,
        metadata: Default::default(),
    };
    protocol::encode(&ServerMessage::Events {
        events: vec![create],
        head_seq: Some(1),
        has_more: false,
    })
}

async fn connection(
    tcp: TcpStream,
    id: u64,
    frames: broadcast::Sender<Frame>,
    catch_up: Utf8Bytes,
) {
    tcp.set_nodelay(true).ok();
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(mut socket) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
    else {
        return;
    };
    let mut inbox = frames.subscribe();
    loop {
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let answer = match serde_json::from_str::<Kind>(&text) {
                    Ok(Kind { kind: "hello", client_id }) => Some(Utf8Bytes::from(format!(
                        r#"{{"type":"welcome","protocolVersion":1,"documentId":"floor","clientId":{},"headSeq":1}}"#,
                        serde_json::to_string(client_id.unwrap_or("anonymous")).unwrap_or_default()
                    ))),
                    Ok(Kind { kind: "sync", .. }) => Some(catch_up.clone()),
                    Ok(Kind { kind: "ping", .. }) => {
                        Some(Utf8Bytes::from_static(r#"{"type":"pong","headSeq":1}"#))
                    }
                    _ => {
                        // Anything else is the writer's: to everyone else, as it came; then
                        // the writer's ack (it keeps one write in flight).
                        let _ = frames.send((id, text));
                        Some(Utf8Bytes::from_static(r#"{"type":"ack","edits":[]}"#))
                    }
                };
                if let Some(answer) = answer {
                    if socket.send(Message::Text(answer)).await.is_err() {
                        break;
                    }
                }
            }
            next = inbox.recv() => match next {
                Ok((from, text)) => {
                    if from != id && socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    eprintln!("floor-server: connection {id} fell {lost} frames behind");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}
