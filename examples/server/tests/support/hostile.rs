//! Clients that misbehave, for the soak (issue 18): subscribers that stop reading, a connection
//! that floods frames, and one that opens and abandons connections. Each runs beside the soak's
//! well-behaved clients until told to stop, then reports what it saw.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsync::protocol::{self, ClientMessage, ServerMessage, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn hello(ws: &str, document: &str, client: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}/sync/{document}"))
        .await
        .expect("connect");
    for message in [
        ClientMessage::Hello {
            protocol_versions: vec![PROTOCOL_VERSION],
            client_id: client.into(),
            token: None,
        },
        ClientMessage::Sync {
            vector_clock: Default::default(),
            after: Some(0),
        },
    ] {
        let text = protocol::encode(&message);
        socket.send(Message::text(text)).await.expect("send");
    }
    socket
}

/// A subscriber that caught up on `document`, then stopped reading.
pub struct Stalled {
    socket: Socket,
    /// The events it read; those up to `covered` came in snapshots.
    seen: BTreeSet<u64>,
    covered: u64,
}

impl Stalled {
    /// Takes in one server message.
    fn read(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Snapshot { snapshot } => {
                self.covered = self.covered.max(snapshot.sequence_num)
            }
            ServerMessage::Event { events } | ServerMessage::Events { events, .. } => {
                self.seen.extend(events.iter().map(|e| e.sequence_num))
            }
            _ => {}
        }
    }

    fn reached(&self) -> u64 {
        self.seen.last().copied().unwrap_or(0).max(self.covered)
    }
}

impl Stalled {
    /// Connects, reads the catch-up, and stops reading.
    pub async fn start(ws: &str, document: &str, client: &str) -> Self {
        let socket = hello(ws, document, client).await;
        let mut stalled = Stalled {
            socket,
            seen: BTreeSet::new(),
            covered: 0,
        };
        loop {
            let frame = stalled.socket.next().await.expect("open").expect("read");
            let Message::Text(text) = frame else { continue };
            let message = protocol::decode_server(&text).expect("a server message");
            if let ServerMessage::Error { code, message } = &message {
                panic!("{client}: {code:?} {message}");
            }
            let done = matches!(
                message,
                ServerMessage::Events {
                    has_more: false,
                    ..
                }
            );
            stalled.read(message);
            if done {
                return stalled;
            }
        }
    }

    /// Reads again until it has every event up to `head`; panics naming what is missing.
    pub async fn read_to(mut self, head: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.reached() < head {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = frame else {
                panic!(
                    "a stalled subscriber stopped at #{} of #{head}: {frame:?}",
                    self.reached()
                );
            };
            self.read(protocol::decode_server(&text).expect("a server message"));
        }
        // Every event after what snapshots covered, without a gap.
        let missing: Vec<u64> = (self.covered + 1..=head)
            .filter(|s| !self.seen.contains(s))
            .collect();
        assert!(
            missing.is_empty(),
            "a stalled subscriber never got {missing:?}"
        );
        let _ = self.socket.close(None).await;
    }
}

/// What the flooders saw.
#[derive(Debug, Default)]
pub struct Floods {
    /// `rate_limited` answers the frame flooder got.
    pub rate_limited: AtomicUsize,
    /// Frames it sent.
    pub frames: AtomicUsize,
    /// Connections the other one opened and dropped.
    pub abandoned: AtomicUsize,
}

/// Floods one connection with `ping` frames (about 2,000 a second, far past the rate limit)
/// until `stop`, counting the `rate_limited` answers; the connection must stay open.
pub async fn flood_frames(
    ws: String,
    document: String,
    stop: Arc<AtomicBool>,
    floods: Arc<Floods>,
) {
    let socket = hello(&ws, &document, "soak-flooder").await;
    let (mut sink, mut stream) = socket.split();
    let counting = floods.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame {
                if let Ok(ServerMessage::Error { code, .. }) = protocol::decode_server(&text) {
                    if code == protocol::ErrorCode::RateLimited {
                        counting.rate_limited.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let ping = protocol::encode(&ClientMessage::Ping { nonce: None });
    while !stop.load(Ordering::SeqCst) {
        for _ in 0..20 {
            sink.send(Message::text(ping.clone()))
                .await
                .expect("the flooder's connection stays open");
            floods.frames.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = sink.close().await;
    reader.abort();
}

/// Opens connections, says `hello`, and drops them without closing, about 20 a second, until
/// `stop`.
pub async fn abandon_connections(
    ws: String,
    document: String,
    stop: Arc<AtomicBool>,
    floods: Arc<Floods>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let socket = hello(&ws, &document, &format!("soak-abandoned-{}", n % 50)).await;
        drop(socket);
        floods.abandoned.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
