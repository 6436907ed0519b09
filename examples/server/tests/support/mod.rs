//! Shared by the server's integration tests: a real server on a real SQLite file (or the
//! PostgreSQL URL given), and small real WebSocket / HTTP clients with bounded waits.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use eventsync::protocol::{self, ClientMessage, Edit, Operation, ServerMessage};
use eventsync_server::app::{self, Config, RunningServer};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Every wait in a test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// A fresh, empty temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("eventsync-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite:{}", self.0.join("events.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An in-process server on loopback.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: TempDir,
    pub http: String,
    pub ws: String,
}

impl TestServer {
    /// A server on a fresh SQLite file with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server on a fresh SQLite file, with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new("server");
        let mut config = Config::for_database(dir.sqlite_url());
        configure(&mut config);
        let server = app::start(&config).await.expect("server starts");
        let addr = server.addr;
        TestServer {
            server: Some(server),
            dir,
            http: format!("http://{addr}"),
            ws: format!("ws://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(WAIT).await;
        }
    }
}

/// A raw protocol client over a real WebSocket.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects to `/sync/{document}` (with an optional query such as `token=...`).
    pub async fn connect(server: &TestServer, document: &str, query: Option<&str>) -> Self {
        let url = match query {
            Some(q) => format!("{}/sync/{document}?{q}", server.ws),
            None => format!("{}/sync/{document}", server.ws),
        };
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("websocket connects");
        Ws { stream }
    }

    /// Connects and completes the handshake as `client`; returns the welcome's headSeq.
    pub async fn open(server: &TestServer, document: &str, client: &str) -> (Self, u64) {
        let mut ws = Self::connect(server, document, None).await;
        let head = ws.hello(client).await;
        (ws, head)
    }

    pub async fn hello(&mut self, client: &str) -> u64 {
        self.send(&ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: client.into(),
            token: None,
        })
        .await;
        match self.recv().await {
            ServerMessage::Welcome { head_seq, .. } => head_seq,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_text(&protocol::encode(message)).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send");
    }

    /// The next protocol message (pings and pongs of the WebSocket layer are skipped).
    pub async fn recv(&mut self) -> ServerMessage {
        self.try_recv(WAIT).await.expect("a message in time")
    }

    /// The next message within `wait`, or `None` (closed, or nothing came).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match next.ok()? {
                Message::Text(text) => {
                    return Some(protocol::decode_server(&text).expect("server frames parse"))
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads messages until one matches, returning it (others are discarded).
    pub async fn recv_until(
        &mut self,
        mut wanted: impl FnMut(&ServerMessage) -> bool,
    ) -> ServerMessage {
        loop {
            let message = self.recv().await;
            if wanted(&message) {
                return message;
            }
        }
    }

    /// True when the server closed the connection (or it ended) within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// A one-edit submit.
pub fn edit(client_seq: u64, base_seq: u64, operation: Operation, patch: Value) -> Edit {
    Edit {
        client_seq,
        base_seq,
        operation,
        patch: serde_json::from_value(patch).expect("valid patch"),
        shape: None,
    }
}

/// An HTTP client with a bounded timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}
