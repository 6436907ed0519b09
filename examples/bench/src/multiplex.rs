//! The protocol 2 scenarios of `scripts/bench.sh`: what events and catch-up cost as the number of
//! distinct writers grows (events no longer carry the document's vector clock), and many
//! documents on one connection (time to open and catch up, server memory per open document).

use std::time::Instant;

use eventsync::protocol::{self, ClientMessage, Edit, Operation, Scoped, ServerMessage};
use eventsync::SyncConnection;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{millis, receive, send, Socket};

/// A raw version 2 connection: `hello`, then frames about documents.
struct Mux {
    socket: Socket,
}

impl Mux {
    async fn connect(url: &str, client_id: &str) -> Mux {
        let (socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync"))
            .await
            .expect("connect to the server");
        let mut mux = Mux { socket };
        mux.send(
            None,
            ClientMessage::Hello {
                protocol_versions: vec![2],
                client_id: client_id.into(),
                token: None,
            },
        )
        .await;
        match mux.receive().await.1 {
            ServerMessage::Welcome { .. } => mux,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    async fn send(&mut self, document_id: Option<&str>, message: ClientMessage) {
        let frame = Scoped {
            document_id: document_id.map(str::to_owned),
            message,
        };
        self.socket
            .send(Message::text(protocol::encode(&frame)))
            .await
            .expect("send to the server");
    }

    /// The next frame's document and message, and its size in bytes.
    async fn receive_sized(&mut self) -> (Option<String>, ServerMessage, usize) {
        loop {
            let frame = self
                .socket
                .next()
                .await
                .expect("the server closed the connection")
                .expect("read from the server");
            if let Message::Text(text) = frame {
                let scoped = protocol::decode_server_scoped(&text).expect("a valid frame");
                return (scoped.document_id, scoped.message, text.len());
            }
        }
    }

    async fn receive(&mut self) -> (Option<String>, ServerMessage) {
        let (document, message, _) = self.receive_sized().await;
        (document, message)
    }

    /// Opens `document` and reads its whole log from the start; the bytes of the catch-up frames
    /// and the head.
    async fn open_and_catch_up(&mut self, document: &str) -> (usize, u64) {
        self.send(Some(document), ClientMessage::Open).await;
        self.send(
            Some(document),
            ClientMessage::Sync {
                vector_clock: Default::default(),
                after: None,
            },
        )
        .await;
        let mut bytes = 0;
        loop {
            let (_, message, size) = self.receive_sized().await;
            match message {
                ServerMessage::Events {
                    has_more: false,
                    head_seq,
                    ..
                } => return (bytes + size, head_seq.unwrap_or(0)),
                ServerMessage::Events { .. } | ServerMessage::Snapshot { .. } => bytes += size,
                ServerMessage::Opened { .. } => {}
                other => panic!("unexpected during catch-up: {other:?}"),
            }
        }
    }
}

/// Events from `writers` distinct clients: `events` one-field updates of a tiny document, each
/// writer writing its share on a version 1 connection of its own. Then the size of one more
/// update as a live event (version 2 and version 1 subscribers) and of a new client's catch-up.
pub async fn writers(url: &str, document: &str, writers: u64, events: u64) -> Value {
    let started = Instant::now();
    let writers = writers.clamp(1, events.max(1));
    let per_writer = events / writers;
    let mut head = 0;
    for writer in 0..writers {
        let id = format!("w{writer}");
        let count = per_writer + u64::from(writer < events % writers);
        head = write(url, document, &id, head, count, writer == 0).await;
    }
    let written_ms = millis(started.elapsed());
    // One more update, by a writer of the document, watched live by a subscriber of each version.
    let mut v2 = Mux::connect(url, "watcher-2").await;
    v2.send(Some(document), ClientMessage::Open).await;
    match v2.receive().await.1 {
        ServerMessage::Opened { .. } => {}
        other => panic!("expected opened, got {other:?}"),
    }
    let (mut v1, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect");
    send(
        &mut v1,
        &ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: "watcher-1".into(),
            token: None,
        },
    )
    .await;
    receive(&mut v1).await;
    let last = format!("w{}", writers - 1);
    let next_seq = per_writer + 2; // past anything this writer sent
    write_one(url, document, &last, head, next_seq).await;
    let v2_bytes = loop {
        if let (_, ServerMessage::Event { .. }, size) = v2.receive_sized().await {
            break size;
        }
    };
    let v1_bytes = loop {
        let frame = v1.next().await.expect("open").expect("read");
        if let Message::Text(text) = frame {
            if text.contains("\"event\"") {
                break text.len();
            }
        }
    };
    // A new client's catch-up from nothing: every event (the server keeps them all here).
    let mut reader = Mux::connect(url, "reader").await;
    let started = Instant::now();
    let (catch_up_bytes, head_seq) = reader.open_and_catch_up(document).await;
    let catch_up_ms = millis(started.elapsed());
    json!({
        "scenario": "writers", "writers": writers, "events": events + 2, "headSeq": head_seq,
        "writeMs": written_ms,
        "liveEventBytesV2": v2_bytes, "liveEventBytesV1": v1_bytes,
        "catchUpBytesV2": catch_up_bytes, "catchUpMs": catch_up_ms,
    })
}

/// Writes `count` updates as `client_id` (the first writer also creates the document), in
/// submits of up to 1000 edits; returns the new head.
async fn write(
    url: &str,
    document: &str,
    client_id: &str,
    mut head: u64,
    count: u64,
    create: bool,
) -> u64 {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    hello(&mut socket, client_id).await;
    let mut edits = Vec::new();
    if create {
        edits.push(Edit {
            client_seq: 1,
            base_seq: 0,
            operation: Operation::Create,
            patch: serde_json::from_value(json!([{"op": "add", "path": "", "value": {"v": 0}}]))
                .expect("a patch"),
            shape: None,
        });
    }
    let mut next = 0;
    while next < count || !edits.is_empty() {
        while next < count && edits.len() < 1000 {
            next += 1;
            edits.push(update(client_seq(create, next), head, next));
        }
        head = submit(&mut socket, std::mem::take(&mut edits)).await;
    }
    socket.close(None).await.ok();
    head
}

async fn write_one(url: &str, document: &str, client_id: &str, head: u64, client_seq: u64) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    hello(&mut socket, client_id).await;
    submit(&mut socket, vec![update(client_seq, head, client_seq)]).await;
    socket.close(None).await.ok();
}

fn client_seq(created: bool, n: u64) -> u64 {
    n + u64::from(created)
}

fn update(client_seq: u64, base_seq: u64, value: u64) -> Edit {
    Edit {
        client_seq,
        base_seq,
        operation: Operation::Update,
        patch: serde_json::from_value(json!([{"op": "replace", "path": "/v", "value": value}]))
            .expect("a patch"),
        shape: None,
    }
}

async fn hello(socket: &mut Socket, client_id: &str) {
    send(
        socket,
        &ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: client_id.into(),
            token: None,
        },
    )
    .await;
    match receive(socket).await {
        ServerMessage::Welcome { .. } => {}
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// Submits `edits` and waits for the ack of the last; returns the head it names.
async fn submit(socket: &mut Socket, edits: Vec<Edit>) -> u64 {
    let last = edits.last().expect("edits").client_seq;
    send(socket, &ClientMessage::Submit { edits }).await;
    loop {
        match receive(socket).await {
            ServerMessage::Ack { edits } if edits.iter().any(|a| a.client_seq == last) => {
                return edits.iter().map(|a| a.sequence_num).max().unwrap_or(0);
            }
            ServerMessage::Reject { code, message, .. } => {
                panic!("the server rejected a write: {code:?} {message}")
            }
            _ => {}
        }
    }
}

/// `documents` small documents on one connection: created, then opened and caught up by a new
/// `SyncConnection` (timed, `sync_state` on all of them at once); then `connections` raw connections each open
/// every document, and the server's resident memory before and after the opens gives its cost
/// per open (connection, document).
pub async fn documents(url: &str, documents: u64, connections: u64, server_pid: u32) -> Value {
    let ids: Vec<String> = (0..documents).map(|n| format!("small-{n}")).collect();
    // Created through raw connections, pipelined, 150 each: within the default rate limit's
    // burst, so that the server runs with its defaults.
    for (n, chunk) in ids.chunks(150).enumerate() {
        let mut writer = Mux::connect(url, &format!("creator-{n}")).await;
        for id in chunk {
            writer.send(Some(id), ClientMessage::Open).await;
            let create = Edit {
                client_seq: 1,
                base_seq: 0,
                operation: Operation::Create,
                patch: serde_json::from_value(
                    json!([{"op": "add", "path": "", "value": {"title": id, "done": false}}]),
                )
                .expect("a patch"),
                shape: None,
            };
            writer
                .send(
                    Some(id),
                    ClientMessage::Submit {
                        edits: vec![create],
                    },
                )
                .await;
        }
        let mut acked = 0;
        while acked < chunk.len() {
            match writer.receive().await.1 {
                ServerMessage::Ack { .. } => acked += 1,
                ServerMessage::Reject { code, message, .. } => panic!("{code:?}: {message}"),
                _ => {}
            }
        }
    }

    // A new app: one connection, every document opened and caught up.
    let started = Instant::now();
    let connection = SyncConnection::builder(url)
        .client_id("opener")
        .connect()
        .expect("a connection");
    let handles: Vec<_> = ids
        .iter()
        .map(|id| connection.open(id.as_str()).expect("open"))
        .collect();
    // As an app would: every document's sync_state at once (the frames pipeline on the socket).
    for synced in futures::future::join_all(handles.iter().map(|h| h.sync_state())).await {
        synced.expect("caught up");
    }
    let open_ms = millis(started.elapsed());
    assert!(handles.iter().all(|h| h.document().is_some()));
    connection.close().await;

    // Server memory per open (connection, document): raw connections that open every document
    // (the documents' heads are cached already: what grows is per connection and document).
    let mut idle = Vec::new();
    for n in 0..connections {
        idle.push(Mux::connect(url, &format!("idle-{n}")).await);
    }
    let after_connections = rss_kb(server_pid);
    for mux in &mut idle {
        for id in &ids {
            mux.send(Some(id), ClientMessage::Open).await;
        }
        let mut opened = 0;
        while opened < documents {
            if let (_, ServerMessage::Opened { .. }) = mux.receive().await {
                opened += 1;
            }
        }
    }
    let after_open = rss_kb(server_pid);
    let pairs = (connections * documents).max(1);
    let per_pair = (after_open.saturating_sub(after_connections)) as f64 * 1024.0 / pairs as f64;
    json!({
        "scenario": "documents", "documents": documents, "openAndCatchUpMs": open_ms,
        "connections": connections, "serverRssKb": after_open,
        "bytesPerOpenDocument": per_pair,
    })
}

/// A process's resident memory, in KiB.
pub(crate) fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
