//! Shared by the server's integration tests: a real server on a real SQLite file (or the
//! PostgreSQL URL given), and small real WebSocket / HTTP clients with bounded waits.
#![allow(dead_code)]

pub mod api;
pub mod bulk;
pub mod history;
pub mod hostile;
pub mod presence;
pub mod process;
pub mod proxy;
pub mod sse;

use std::path::PathBuf;
use std::time::Duration;

use eventsync::protocol::{self, ClientMessage, Edit, Event, EventsPage, Operation, ServerMessage};
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
/// Tests write over HTTP faster than people do: the per-address HTTP write limit is lifted
/// unless a test sets it (examples/server/tests/overload.rs tests it).
fn unlimited_http_writes(config: &mut Config) {
    config.http_write_rate = 1_000_000;
    config.http_write_burst = 1_000_000;
}

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

    /// A server on the given database (for example a PostgreSQL URL), with settings changed by
    /// `configure`. Its temporary directory stays empty.
    pub async fn start_on(database: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new("server");
        let mut config = Config::for_database(database);
        unlimited_http_writes(&mut config);
        configure(&mut config);
        let server = app::start(&config).await.expect("server starts");
        Self::serving(server, dir)
    }

    /// A server on a fresh SQLite file, with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start_built(configure, |builder| builder).await
    }

    /// A server on a fresh SQLite file, built by `build` from the builder of the settings
    /// `configure` made (hooks, schemas: what an embedding application gives).
    pub async fn start_built(
        configure: impl FnOnce(&mut Config),
        build: impl FnOnce(eventsync_server::ServerBuilder) -> eventsync_server::ServerBuilder,
    ) -> Self {
        let dir = TempDir::new("server");
        let mut config = Config::for_database(dir.sqlite_url());
        unlimited_http_writes(&mut config);
        configure(&mut config);
        let builder = eventsync_server::ServerBuilder::new(config);
        let server = build(builder).start().await.expect("server starts");
        Self::serving(server, dir)
    }

    fn serving(server: RunningServer, dir: TempDir) -> Self {
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

/// What [`Ws::receive`] got.
#[derive(Debug)]
pub enum Received {
    /// A protocol message.
    Message(ServerMessage),
    /// The connection ended: with the close frame's code, or `None` when it just broke.
    Closed(Option<u16>),
    /// Nothing within the wait.
    TimedOut,
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

    /// Connects to a full `ws://HOST:PORT/sync/{document}` URL; `None` when it cannot (in time).
    pub async fn try_connect_url(url: &str) -> Option<Self> {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .ok()?
            .ok()?;
        Some(Ws { stream })
    }

    /// Connects to the server at `ws_base` (`ws://HOST:PORT`) and completes the handshake as
    /// `client`; returns the welcome's headSeq.
    pub async fn open_at(ws_base: &str, document: &str, client: &str) -> (Self, u64) {
        let mut ws = Self::try_connect_url(&format!("{ws_base}/sync/{document}"))
            .await
            .expect("websocket connects in time");
        let head = ws.hello(client).await;
        (ws, head)
    }

    /// Sends a message; false when the connection is gone.
    pub async fn try_send(&mut self, message: &ClientMessage) -> bool {
        self.stream
            .send(Message::Text(protocol::encode(message).into()))
            .await
            .is_ok()
    }

    /// The next protocol message, the end of the connection, or nothing within `wait`.
    pub async fn receive(&mut self, wait: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Received::TimedOut,
                Ok(None) | Ok(Some(Err(_))) => return Received::Closed(None),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Received::Message(
                        protocol::decode_server(&text).expect("server frames parse"),
                    )
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
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
            ServerMessage::Welcome { head_seq, .. } => head_seq.expect("a headSeq in welcome"),
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

impl Ws {
    /// Connects to `/sync/{document}`, returning the handshake failure instead of panicking
    /// (for upgrades the server refuses over HTTP).
    pub async fn try_connect(
        server: &TestServer,
        document: &str,
        query: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = match query {
            Some(q) => format!("{}/sync/{document}?{q}", server.ws),
            None => format!("{}/sync/{document}", server.ws),
        };
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")?;
        Ok(Ws { stream })
    }

    /// Sends a `hello` with any versions and token; returns the server's first answer.
    pub async fn hello_with(
        &mut self,
        versions: &[u32],
        client: &str,
        token: Option<&str>,
    ) -> ServerMessage {
        self.send(&ClientMessage::Hello {
            protocol_versions: versions.to_vec(),
            client_id: client.into(),
            token: token.map(str::to_owned),
        })
        .await;
        self.recv().await
    }

    /// Sends a `submit`.
    pub async fn submit(&mut self, edits: Vec<Edit>) {
        self.send(&ClientMessage::Submit { edits }).await;
    }

    /// Sends a `ping` with `nonce` and returns the pong's `headSeq`, checking the nonce. Any
    /// other message before the pong fails the test.
    pub async fn ping(&mut self, nonce: u64) -> Option<u64> {
        self.send(&ClientMessage::Ping { nonce: Some(nonce) }).await;
        match self.recv().await {
            ServerMessage::Pong {
                nonce: got,
                head_seq,
                ..
            } => {
                assert_eq!(got, Some(nonce), "the pong echoes the nonce");
                head_seq
            }
            other => panic!("expected pong {nonce}, got {other:?}"),
        }
    }

    /// Sends a `sync` and collects its whole answer: the snapshot (if any) and the `events`
    /// frames up to the first one without `hasMore`. Live `event` frames in between are skipped.
    pub async fn sync(&mut self, vector: eventsync::VectorClock, after: Option<u64>) -> SyncAnswer {
        self.send(&ClientMessage::Sync {
            vector_clock: vector,
            after,
        })
        .await;
        let mut answer = SyncAnswer::default();
        loop {
            match self.recv().await {
                ServerMessage::Snapshot { snapshot } => answer.snapshot = Some(snapshot),
                ServerMessage::Events {
                    events,
                    head_seq,
                    has_more,
                } => {
                    answer.frames.push((events.len(), head_seq, has_more));
                    answer.events.extend(events);
                    if !has_more {
                        return answer;
                    }
                }
                ServerMessage::Event { .. } => {}
                other => panic!("unexpected answer to sync: {other:?}"),
            }
        }
    }

    /// Reads until the first `ack` or `reject`, returning the live events seen before it and the
    /// answer.
    pub async fn answer(&mut self) -> (Vec<eventsync::Event>, ServerMessage) {
        let mut events = Vec::new();
        loop {
            match self.recv().await {
                ServerMessage::Event { events: more } => events.extend(more),
                answer @ (ServerMessage::Ack { .. } | ServerMessage::Reject { .. }) => {
                    return (events, answer)
                }
                other => panic!("expected event, ack or reject, got {other:?}"),
            }
        }
    }

    /// Expects an `error` frame with `code` next; returns its message.
    pub async fn expect_error(&mut self, code: protocol::ErrorCode) -> String {
        match self.recv().await {
            ServerMessage::Error { code: got, message } => {
                assert_eq!(got, code, "error code (message: {message})");
                assert!(!message.is_empty(), "error frames carry a message");
                message
            }
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// True when nothing at all arrives within `wait` (and the connection stays open).
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.stream.next())
            .await
            .is_err()
    }
}

impl Ws {
    /// Closes the connection with a WebSocket close frame and waits for the server's close.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = self.closed_within(WAIT).await;
    }
}

/// The collected answer to one `sync`.
#[derive(Debug, Default)]
pub struct SyncAnswer {
    pub snapshot: Option<protocol::Snapshot>,
    /// Every event of every `events` frame, in arrival order.
    pub events: Vec<eventsync::Event>,
    /// Per `events` frame: how many events, its `headSeq`, its `hasMore`.
    pub frames: Vec<(usize, Option<u64>, bool)>,
}

impl SyncAnswer {
    pub fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|e| e.sequence_num).collect()
    }
}

/// `GET /api/documents/{document}` as JSON (no token).
pub async fn document(server: &TestServer, document: &str) -> Value {
    let response = http()
        .get(server.url(&format!("/api/documents/{document}")))
        .send()
        .await
        .expect("GET document");
    assert_eq!(response.status(), 200, "GET /api/documents/{document}");
    response.json().await.expect("a snapshot")
}

/// `PUT /api/documents/{document}` without a token; returns the new `sequenceNum`.
pub async fn put(server: &TestServer, document: &str, body: &Value) -> u64 {
    let response = http()
        .put(server.url(&format!("/api/documents/{document}")))
        .json(body)
        .send()
        .await
        .expect("PUT document");
    assert_eq!(response.status(), 200, "PUT /api/documents/{document}");
    let answer: Value = response.json().await.expect("a write answer");
    answer["sequenceNum"].as_u64().expect("sequenceNum")
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

/// The JSON body of `GET url` (a document, a page of events, ...).
pub async fn get_json(url: impl reqwest::IntoUrl) -> serde_json::Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

/// Every event of a document's log, read through `GET /api/events` page by page (`limit`
/// events a page). Panics when a page starts with a snapshot (the log was compacted).
pub async fn read_log(http_base: &str, document: &str, limit: usize) -> Vec<Event> {
    let client = http();
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.sequence_num);
        let response = client
            .get(format!(
                "{http_base}/api/events/{document}?after={after}&limit={limit}"
            ))
            .send()
            .await
            .expect("GET /api/events answers");
        assert_eq!(
            response.status(),
            200,
            "GET /api/events/{document}?after={after}"
        );
        let page: EventsPage = response.json().await.expect("an EventsPage");
        assert!(
            page.snapshot.is_none(),
            "the log of {document} was compacted"
        );
        let empty = page.events.is_empty();
        events.extend(page.events);
        if !page.has_more || empty {
            return events;
        }
    }
}

/// A name no other test, nor an earlier run on the same database, uses.
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs plain SQL as another program would, on a connection of its own.
pub async fn run_sql(database: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database)
        .await
        .expect("another program connects");
    sqlx::raw_sql(sql)
        .execute(&pool)
        .await
        .expect("the SQL runs");
    pool.close().await;
}

/// The PostgreSQL URL of `scripts/with-postgres.sh`, or `None` when the PostgreSQL tests are
/// skipped on purpose (`EVENTSYNC_SKIP_POSTGRES=1`). Anything else is a loud failure: a test
/// that silently skips would pass without testing.
pub fn postgres_url() -> Option<String> {
    match std::env::var("EVENTSYNC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("EVENTSYNC_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("PostgreSQL test skipped (EVENTSYNC_SKIP_POSTGRES=1)");
            None
        }
        _ => panic!(
            "EVENTSYNC_TEST_POSTGRES_URL is not set: run the PostgreSQL tests under \
             scripts/with-postgres.sh (for example `bash scripts/with-postgres.sh cargo test -p \
             eventsync-server --test postgres`), or set EVENTSYNC_SKIP_POSTGRES=1 to skip them"
        ),
    }
}
