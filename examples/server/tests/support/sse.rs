//! A small `text/event-stream` reader over a real HTTP response, with bounded waits.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

use super::WAIT;

/// One server-sent event (comments such as `: keep-alive` are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    /// The `event:` name (`message` when the event had none).
    pub event: String,
    /// The `id:` field, when the event had one.
    pub id: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseMessage {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {}", self.data))
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// An open event stream.
pub struct SseStream {
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
    body: ByteStream,
    buffer: Vec<u8>,
    ready: VecDeque<SseMessage>,
    current: Option<SseMessage>,
    /// Comment lines seen so far (without the leading colon), e.g. ` keep-alive`.
    pub comments: Vec<String>,
    ended: bool,
}

impl SseStream {
    /// Reads the events of a successful `text/event-stream` response.
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type:?}"
        );
        SseStream {
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            buffer: Vec::new(),
            ready: VecDeque::new(),
            current: None,
            comments: Vec::new(),
            ended: false,
        }
    }

    /// The next event; panics when none comes within [`WAIT`].
    pub async fn next(&mut self) -> SseMessage {
        match self.try_next(WAIT).await {
            Some(message) => message,
            None => panic!("no SSE event within {WAIT:?} (ended: {})", self.ended),
        }
    }

    /// The next event within `wait`, or `None` (the stream ended, or nothing came).
    pub async fn try_next(&mut self, wait: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(message);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(bytes))) => {
                    self.buffer.extend_from_slice(&bytes);
                    self.parse();
                }
            }
        }
    }

    /// True when the server ended the stream within `wait` (events still arriving are skipped).
    pub async fn ended_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.try_next(left).await.is_none() {
                return self.ended;
            }
        }
    }

    /// Reads complete lines off the buffer; a blank line dispatches the event being built.
    fn parse(&mut self) {
        while let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).expect("SSE lines are UTF-8");
            if line.is_empty() {
                if let Some(mut message) = self.current.take() {
                    if message.event.is_empty() {
                        message.event = "message".into();
                    }
                    self.ready.push_back(message);
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.to_owned());
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            let message = self.current.get_or_insert_with(|| SseMessage {
                event: String::new(),
                id: None,
                data: String::new(),
            });
            match field {
                "event" => message.event = value.to_owned(),
                "id" => message.id = Some(value.to_owned()),
                "data" => {
                    if !message.data.is_empty() {
                        message.data.push('\n');
                    }
                    message.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// Opens `GET {path}` (for example `/api/stream/doc?after=3`) with an optional `Last-Event-ID`.
/// A non-200 answer is returned as its status and JSON body.
pub async fn open(
    server: &super::TestServer,
    path: &str,
    last_event_id: Option<&str>,
) -> Result<SseStream, (u16, Value)> {
    // No overall timeout on this client: the stream stays open; every read is bounded instead.
    let client = reqwest::Client::builder()
        .connect_timeout(WAIT)
        .build()
        .unwrap();
    let mut request = client.get(server.url(path));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = tokio::time::timeout(WAIT, request.send())
        .await
        .expect("stream answered in time")
        .expect("stream request");
    if response.status() != reqwest::StatusCode::OK {
        let status = response.status().as_u16();
        let body = tokio::time::timeout(WAIT, response.json::<Value>())
            .await
            .expect("error body in time")
            .expect("error body is JSON");
        return Err((status, body));
    }
    Ok(SseStream::new(response))
}
