//! The kit's own small protocol client: WebSocket frames, HTTP calls and an SSE reader, every wait
//! bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventsync::protocol::{self, ClientMessage, Edit, ErrorBody, Event, ServerMessage, Snapshot};
use eventsync::VectorClock;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Options;

/// What every check gets.
pub struct Ctx {
    pub opts: Options,
    pub http: reqwest::Client,
    base: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Ctx {
    pub fn new(opts: Options) -> Self {
        let base = opts.url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .build()
            .expect("an HTTP client without TLS always builds");
        Ctx { opts, http, base }
    }

    /// A document id no one else uses: `conf-<tag>-<unique>`.
    pub fn doc(&self, tag: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("conf-{tag}-{:x}{:x}-{n}", nanos, std::process::id())
    }

    /// The clientId of a connection: the token's when there is a token, else `conf-<name>`.
    pub fn client(&self, name: &str) -> String {
        if self.opts.token.is_some() {
            self.opts.client_id.clone()
        } else {
            format!("conf-{name}")
        }
    }

    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, document_id: &str) -> String {
        format!("{}/{document_id}", self.ws_connection_url())
    }

    /// The connection URL of protocol version 2 (`ws://HOST/sync`, 18.1).
    pub fn ws_connection_url(&self) -> String {
        let base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        format!("{base}/sync")
    }

    /// Opens a version 2 connection and completes its handshake (18.1).
    pub async fn session_v2(&self, client_id: &str) -> Result<Conn, String> {
        let mut conn = Conn::open(&self.ws_connection_url(), self.timeout()).await?;
        conn.send(&ClientMessage::Hello {
            protocol_versions: vec![protocol::PROTOCOL_VERSION, protocol::PROTOCOL_VERSION_2],
            client_id: client_id.to_string(),
            token: self.opts.token.clone(),
        })
        .await?;
        match conn.next_scoped().await? {
            (
                None,
                ServerMessage::Welcome {
                    protocol_version: 2,
                    document_id,
                    client_id: got,
                    head_seq: None,
                },
            ) if document_id.is_empty() && got == client_id => Ok(conn),
            (doc, other) => Err(format!(
                "hello [1, 2] at /sync: expected welcome with protocolVersion 2 and neither \
                 documentId nor headSeq (18.1), got {} {doc:?}",
                describe(&other)
            )),
        }
    }

    /// `hello` with the kit's token, if any.
    pub fn hello(&self, client_id: &str) -> ClientMessage {
        ClientMessage::Hello {
            protocol_versions: vec![protocol::PROTOCOL_VERSION],
            client_id: client_id.to_string(),
            token: self.opts.token.clone(),
        }
    }

    /// Opens a connection (no frame sent yet).
    pub async fn open(&self, document_id: &str) -> Result<Conn, String> {
        Conn::open(&self.ws_url(document_id), self.timeout()).await
    }

    /// Opens a connection and completes the handshake; returns it with `welcome.headSeq`.
    pub async fn session(&self, document_id: &str, client_id: &str) -> Result<(Conn, u64), String> {
        let mut conn = self.open(document_id).await?;
        conn.send(&self.hello(client_id)).await?;
        let head = conn.welcome(document_id, client_id).await?;
        Ok((conn, head))
    }

    /// An HTTP request with the kit's token (as a bearer header).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        authed: bool,
    ) -> Result<(u16, String), String> {
        let mut req = self.http.request(method.clone(), self.http_url(path));
        if authed {
            if let Some(token) = &self.opts.token {
                req = req.bearer_auth(token);
            }
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        Ok((status, text))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        self.request(reqwest::Method::GET, path, None, true).await
    }

    /// A `200` answer parsed as `T`.
    pub async fn get_ok<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let (status, body) = self.get(path).await?;
        parse_ok(&format!("GET {path}"), status, &body)
    }

    pub async fn post_ok<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, String> {
        let (status, text) = self
            .request(reqwest::Method::POST, path, Some(body), true)
            .await?;
        parse_ok(&format!("POST {path}"), status, &text)
    }

    /// `PUT /api/documents/{id}`: the new event's `sequenceNum`.
    pub async fn put_document(&self, document_id: &str, document: &Value) -> Result<u64, String> {
        let path = format!("/api/documents/{document_id}");
        let (status, text) = self
            .request(reqwest::Method::PUT, &path, Some(document), true)
            .await?;
        let answer: Value = parse_ok(&format!("PUT {path}"), status, &text)?;
        answer["sequenceNum"]
            .as_u64()
            .ok_or_else(|| format!("PUT {path}: answer {text} has no integer sequenceNum"))
    }

    /// Reads the whole retained log with `GET /api/events` (following `hasMore`).
    pub async fn read_log(&self, document_id: &str) -> Result<Log, String> {
        let mut log = Log::default();
        let mut after = 0;
        for _ in 0..1000 {
            let page: eventsync::protocol::EventsPage = self
                .get_ok(&format!("/api/events/{document_id}?after={after}"))
                .await?;
            if let Some(snapshot) = page.snapshot {
                if log.snapshot.is_none() && log.events.is_empty() {
                    after = snapshot.sequence_num;
                    log.snapshot = Some(snapshot);
                } else {
                    return Err("a later page of GET /api/events started with a snapshot".into());
                }
            }
            log.head = page.head_seq;
            if let Some(last) = page.events.last() {
                after = last.sequence_num;
            }
            let empty = page.events.is_empty();
            log.events.extend(page.events);
            if !page.has_more {
                return Ok(log);
            }
            if empty {
                return Err("GET /api/events: a page with hasMore true and no events".into());
            }
        }
        Err("GET /api/events: more than 1000 pages".into())
    }
}

/// A document's retained log, as read over HTTP.
#[derive(Debug, Default)]
pub struct Log {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Event>,
    pub head: u64,
}

pub fn parse_ok<T: serde::de::DeserializeOwned>(
    what: &str,
    status: u16,
    body: &str,
) -> Result<T, String> {
    if status != 200 {
        return Err(format!("{what}: status {status} ({})", short(body)));
    }
    serde_json::from_str(body)
        .map_err(|e| format!("{what}: unreadable answer: {e}: {}", short(body)))
}

/// Checks an HTTP error answer: its status and its ErrorBody's code.
pub fn expect_http_error(
    what: &str,
    (status, body): (u16, String),
    want_status: u16,
    want_code: &str,
) -> Result<(), String> {
    if status != want_status {
        return Err(format!(
            "{what}: status {status}, expected {want_status} {want_code} ({})",
            short(&body)
        ));
    }
    let parsed: ErrorBody = serde_json::from_str(&body).map_err(|e| {
        format!(
            "{what}: the body is not an ErrorBody ({e}): {}",
            short(&body)
        )
    })?;
    let code = code_name(&parsed.code);
    if code != want_code {
        return Err(format!("{what}: code {code}, expected {want_code}"));
    }
    Ok(())
}

pub fn short(text: &str) -> String {
    let text = text.trim();
    if text.len() <= 160 {
        text.to_string()
    } else {
        let mut end = 160;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

/// The wire name of an error code (`stale_base`, ...).
pub fn code_name(code: &eventsync::protocol::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// What a read of the socket gave.
#[derive(Debug)]
pub enum Frame {
    Msg(ServerMessage),
    /// The connection ended: with the close frame's code, or `None` without one.
    Closed(Option<u16>),
}

/// One WebSocket connection.
pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    timeout: Duration,
    nonce: u64,
}

impl Conn {
    pub async fn open(url: &str, timeout: Duration) -> Result<Conn, String> {
        match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
            Err(_) => Err(format!("connecting to {url}: no answer within {timeout:?}")),
            Ok(Err(e)) => Err(format!("connecting to {url}: {e}")),
            Ok(Ok((ws, _))) => Ok(Conn {
                ws,
                timeout,
                nonce: 1000,
            }),
        }
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), String> {
        self.send_text(protocol::encode(message)).await
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.send_raw(Message::Text(text.into())).await
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("sending a frame: {e}")),
            Err(_) => Err("sending a frame: timed out".into()),
        }
    }

    /// The next protocol frame, or `Closed`. WebSocket pings are skipped.
    pub async fn recv(&mut self) -> Result<Frame, String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            match next {
                Err(_) => return Err(format!("no frame within {:?}", self.timeout)),
                Ok(None) => return Ok(Frame::Closed(None)),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ok(Frame::Closed(frame.map(|f| u16::from(f.code))))
                }
                Ok(Some(Err(e))) => {
                    use tokio_tungstenite::tungstenite::Error;
                    return match e {
                        Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) => {
                            Ok(Frame::Closed(None))
                        }
                        Error::Protocol(_) => Ok(Frame::Closed(None)),
                        other => Err(format!("reading a frame: {other}")),
                    };
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    return match protocol::decode_server(text.as_str()) {
                        Ok(ServerMessage::Unknown) => Err(format!(
                            "a server frame of a type protocol version 1 does not define (section 14): {}",
                            short(text.as_str())
                        )),
                        Ok(message) => Ok(Frame::Msg(message)),
                        Err(e) => Err(format!(
                            "an unreadable server frame ({e}): {}",
                            short(text.as_str())
                        )),
                    };
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    return Err("a binary frame from the server (section 4.2: text only)".into())
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a version 2 message about `document_id`.
    pub async fn send_about(
        &mut self,
        document_id: &str,
        message: ClientMessage,
    ) -> Result<(), String> {
        let frame = protocol::Scoped {
            document_id: Some(document_id.to_owned()),
            message,
        };
        self.send_text(protocol::encode(&frame)).await
    }

    /// The next frame of a version 2 connection, with the document it names; a close is an
    /// error.
    pub async fn next_scoped(&mut self) -> Result<(Option<String>, ServerMessage), String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| format!("no frame within {:?}", self.timeout))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let scoped = protocol::decode_server_scoped(text.as_str()).map_err(|e| {
                        format!("an unreadable server frame ({e}): {}", short(text.as_str()))
                    })?;
                    return Ok((scoped.document_id, scoped.message));
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err("the server closed the connection".into())
                }
                Some(Err(e)) => return Err(format!("reading a frame: {e}")),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next protocol frame; a close is an error.
    pub async fn next(&mut self) -> Result<ServerMessage, String> {
        match self.recv().await? {
            Frame::Msg(m) => Ok(m),
            Frame::Closed(_) => Err("the server closed the connection".into()),
        }
    }

    /// Reads a `welcome` and checks it; returns its `headSeq`.
    pub async fn welcome(&mut self, document_id: &str, client_id: &str) -> Result<u64, String> {
        match self.next().await? {
            ServerMessage::Welcome {
                protocol_version,
                document_id: doc,
                client_id: client,
                head_seq,
            } => {
                if protocol_version != protocol::PROTOCOL_VERSION {
                    return Err(format!(
                        "welcome.protocolVersion {protocol_version}, but the hello offered only [1]"
                    ));
                }
                if doc != document_id {
                    return Err(format!(
                        "welcome.documentId {doc:?}, expected {document_id:?}"
                    ));
                }
                if client != client_id {
                    return Err(format!(
                        "welcome.clientId {client:?}, expected {client_id:?}"
                    ));
                }
                head_seq.ok_or_else(|| "a welcome without headSeq (5.1: required)".to_string())
            }
            other => Err(format!("expected welcome, got {}", describe(&other))),
        }
    }

    /// Expects an `error` frame with this code (live `event` frames are skipped).
    pub async fn expect_error(&mut self, code: &str, after: &str) -> Result<(), String> {
        loop {
            match self.next().await.map_err(|e| format!("{after}: {e}"))? {
                ServerMessage::Event { .. } => continue,
                ServerMessage::Error { code: got, message } => {
                    let got = code_name(&got);
                    return if got == code {
                        Ok(())
                    } else {
                        Err(format!(
                            "{after}: error {got} ({message}), expected error {code}"
                        ))
                    };
                }
                other => {
                    return Err(format!(
                        "{after}: {}, expected error {code}",
                        describe(&other)
                    ))
                }
            }
        }
    }

    /// Expects the server to close the connection with the close code `code` (4.3), with
    /// nothing else sent first.
    pub async fn expect_close_code(&mut self, code: u16, after: &str) -> Result<(), String> {
        match self.recv().await {
            Ok(Frame::Closed(Some(got))) if got == code => Ok(()),
            Ok(Frame::Closed(got)) => Err(format!(
                "{after}: closed with {}, expected close code {code} (4.3)",
                got.map_or("no close frame".into(), |c| format!("code {c}"))
            )),
            Ok(Frame::Msg(m)) => Err(format!(
                "{after}: expected a close with code {code}, got {}",
                describe(&m)
            )),
            Err(e) => Err(format!("{after}: expected a close with code {code}: {e}")),
        }
    }

    /// Expects the server to close the connection, with nothing else sent first.
    pub async fn expect_closed(&mut self, after: &str) -> Result<(), String> {
        match self.recv().await {
            Ok(Frame::Closed(_)) => Ok(()),
            Ok(Frame::Msg(m)) => Err(format!(
                "{after}: expected the connection to close, got {}",
                describe(&m)
            )),
            Err(e) => Err(format!("{after}: expected the connection to close: {e}")),
        }
    }

    /// Sends a `ping` and expects its `pong` as the very next frame but live `event`s: proof
    /// that everything sent before it was answered with nothing more (4.2, in-order answers).
    pub async fn ping_next(&mut self, after: &str) -> Result<Option<u64>, String> {
        self.nonce += 1;
        let nonce = self.nonce;
        self.send(&ClientMessage::Ping { nonce: Some(nonce) })
            .await?;
        loop {
            match self.next().await.map_err(|e| format!("{after}: {e}"))? {
                ServerMessage::Event { .. } => continue,
                ServerMessage::Pong {
                    nonce: got,
                    head_seq,
                    ..
                } => {
                    return if got == Some(nonce) {
                        Ok(head_seq)
                    } else {
                        Err(format!("{after}: pong nonce {got:?}, expected {nonce}"))
                    };
                }
                other => {
                    return Err(format!(
                        "{after}: expected nothing more, got {}",
                        describe(&other)
                    ))
                }
            }
        }
    }

    /// Reads a complete `sync` answer (6.2): an optional snapshot, then `events` frames until one
    /// has `hasMore` false. Live `event` frames in between are set aside.
    pub async fn sync_answer(&mut self) -> Result<SyncAnswer, String> {
        let mut answer = SyncAnswer::default();
        let mut frames = 0;
        let mut snapshot_pending = false;
        loop {
            match self.next().await? {
                ServerMessage::Snapshot { snapshot } => {
                    // 6.3: first, or before a later page whose history was compacted meanwhile;
                    // always followed by an events frame.
                    if snapshot_pending {
                        return Err("two snapshot frames in a row in a sync answer (6.3)".into());
                    }
                    snapshot_pending = true;
                    if frames > 0 {
                        // A restart from the snapshot: what came before it is superseded.
                        answer.events.clear();
                    }
                    answer.snapshot = Some(snapshot);
                }
                ServerMessage::Events {
                    events,
                    head_seq,
                    has_more,
                } => {
                    frames += 1;
                    snapshot_pending = false;
                    let head = head_seq
                        .ok_or("an events frame without headSeq (6.2: required from servers)")?;
                    answer.head = head;
                    answer.frames += 1;
                    answer.events.extend(events);
                    if !has_more {
                        return Ok(answer);
                    }
                }
                ServerMessage::Event { events } => answer.live.extend(events),
                other => return Err(format!("in a sync answer: {}", describe(&other))),
            }
        }
    }

    /// Sends a `submit` and reads its answer: the submitter's `event`s, then `ack` entries and
    /// maybe a `reject`. Checks that each accepted edit's event came before the ack listing it.
    pub async fn submit(&mut self, edits: Vec<Edit>) -> Result<SubmitAnswer, String> {
        let wanted: Vec<u64> = edits.iter().map(|e| e.client_seq).collect();
        let empty = edits.is_empty();
        self.send(&ClientMessage::Submit { edits }).await?;
        let mut answer = SubmitAnswer::default();
        loop {
            let covered = answer.acks.len()
                + answer
                    .reject
                    .as_ref()
                    .and_then(|(seq, ..)| wanted.iter().position(|c| c == seq))
                    .map(|i| wanted.len() - i)
                    .unwrap_or(0);
            let stray = matches!(&answer.reject, Some((seq, ..)) if !wanted.contains(seq));
            if stray || (covered >= wanted.len() && !(empty && answer.ack_frames == 0)) {
                return Ok(answer);
            }
            match self.next().await? {
                ServerMessage::Event { events } => answer.events.extend(events),
                ServerMessage::Ack { edits } => {
                    answer.ack_frames += 1;
                    for ack in edits {
                        if !ack.duplicate
                            && !answer
                                .events
                                .iter()
                                .any(|e| e.sequence_num == ack.sequence_num)
                        {
                            return Err(format!(
                                "ack of clientSeq {} -> #{} before its event (8.2: the event comes first)",
                                ack.client_seq, ack.sequence_num
                            ));
                        }
                        answer.acks.push(ack);
                    }
                }
                ServerMessage::Reject {
                    client_seq,
                    code,
                    head_seq,
                    ..
                } => {
                    if answer.reject.is_some() {
                        return Err("two rejects for one submit (8.2)".into());
                    }
                    answer.reject = Some((client_seq, code_name(&code), head_seq));
                }
                other => return Err(format!("answering a submit: {}", describe(&other))),
            }
        }
    }

    /// Writes `count` events to a fresh document: a create of `{"n": 1}`, then updates setting
    /// `n` to 2, 3, ... so that the document at `sequenceNum` k is `{"n": k}`. Returns the events.
    pub async fn write_counter(&mut self, base: u64, count: u64) -> Result<Vec<Event>, String> {
        let edits = counter_edits(1, base, base + 1..=base + count);
        let answer = self.submit(edits).await?;
        if let Some((seq, code, _)) = answer.reject {
            return Err(format!(
                "writing the test data: edit {seq} rejected with {code}"
            ));
        }
        if answer.events.len() as u64 != count {
            return Err(format!(
                "writing {count} edits: {} events came back",
                answer.events.len()
            ));
        }
        Ok(answer.events)
    }
}

/// Edits of a counter document: `clientSeq` from `first_seq`, every one with `baseSeq` `base`,
/// setting `n` to each value of `values` (the first a create when `base` is 0).
pub fn counter_edits(first_seq: u64, base: u64, values: impl Iterator<Item = u64>) -> Vec<Edit> {
    values
        .enumerate()
        .map(|(i, n)| {
            let create = base == 0 && i == 0;
            let patch = if create {
                serde_json::json!([{ "op": "add", "path": "", "value": { "n": n } }])
            } else {
                serde_json::json!([{ "op": "replace", "path": "/n", "value": n }])
            };
            edit(
                first_seq + i as u64,
                base,
                if create { "create" } else { "update" },
                patch,
            )
        })
        .collect()
}

/// An Edit from its parts.
pub fn edit(client_seq: u64, base_seq: u64, operation: &str, patch: Value) -> Edit {
    serde_json::from_value(serde_json::json!({
        "clientSeq": client_seq, "baseSeq": base_seq, "operation": operation, "patch": patch
    }))
    .expect("a well-formed edit")
}

#[derive(Debug, Default)]
pub struct SyncAnswer {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Event>,
    pub head: u64,
    pub frames: usize,
    pub live: Vec<Event>,
}

#[derive(Debug, Default)]
pub struct SubmitAnswer {
    pub events: Vec<Event>,
    pub acks: Vec<eventsync::protocol::Ack>,
    pub ack_frames: usize,
    /// `clientSeq`, code, `headSeq`.
    pub reject: Option<(u64, String, u64)>,
}

pub fn describe(message: &ServerMessage) -> String {
    let text = protocol::encode(message);
    format!("frame {}", short(&text))
}

/// The vector of a client that has applied `events` in order.
pub fn vector_of(events: &[Event]) -> VectorClock {
    let mut v = VectorClock::new();
    for e in events {
        v.observe(&e.client_id, e.sequence_num);
    }
    v
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Reads an event stream incrementally.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes_like::Bytes>>,
    buf: String,
    timeout: Duration,
}

mod bytes_like {
    pub type Bytes = Vec<u8>;
}

impl SseReader {
    pub fn new(resp: reqwest::Response, timeout: Duration) -> Self {
        let stream = resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed();
        SseReader {
            stream,
            buf: String::new(),
            timeout,
        }
    }

    /// The next event (comments skipped); `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_string();
                self.buf.drain(..end + 2);
                let mut event = SseEvent::default();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (field, value) = match line.split_once(':') {
                        Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                        None => (line, ""),
                    };
                    match field {
                        "event" => {
                            event.event = value.to_string();
                            any = true;
                        }
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                            any = true;
                        }
                        "id" => event.id = Some(value.to_string()),
                        _ => {}
                    }
                }
                if any {
                    if event.event.is_empty() {
                        event.event = "message".into();
                    }
                    return Ok(Some(event));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(format!("no SSE event within {:?}", self.timeout)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(format!("reading the event stream: {e}")),
                Ok(Some(Ok(bytes))) => {
                    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
                    self.buf.push_str(&text.replace('\r', "\n"));
                }
            }
        }
    }
}
