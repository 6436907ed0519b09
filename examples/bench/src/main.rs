//! `eventsync-bench`: the native scenarios of `scripts/bench.sh`. Each subcommand prints one JSON
//! object (its measurements) on stdout; the script collects them into `docs/BENCHMARKS.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use eventsync::protocol::{self, ClientMessage, Edit, Operation, ServerMessage, PROTOCOL_VERSION};
use eventsync::queue::{FileStore, MemoryStore, Store};
use eventsync::{SyncClient, SyncConnection};
use eventsync_bench::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

mod costs;
mod fanout;
mod floor;
mod multiplex;
mod presence;
mod rules;
mod stalled;

#[derive(Parser)]
#[command(about = "eventsync benchmarks (native); each prints one JSON object")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Apply throughput: eventsync's replica against bare `json-patch`, in memory.
    Apply {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Rounds of each; the report takes the median.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Writes the benchmark document and `events` updates to a server, in submits of `batch`.
    Seed {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
    },
    /// Catch-up: a new native client syncing the document, through a byte-counting proxy.
    Catchup {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        /// The protocol version: 1 (`SyncClient` of its own) or 2 (a `SyncConnection`'s).
        #[arg(long, default_value_t = 1)]
        protocol: u32,
    },
    /// Offline flush: `edits` queued offline in a file store, then a client reconnecting.
    Flush {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 10_000)]
        edits: u64,
        /// The client's store file (created; must not exist).
        #[arg(long)]
        store: PathBuf,
    },
    /// Event and catch-up sizes with `writers` distinct writers in a document's history.
    Writers {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 10_000)]
        writers: u64,
        #[arg(long, default_value_t = 10_000)]
        events: u64,
    },
    /// Many small documents on one connection: open and catch-up time, server memory per open
    /// document (read from /proc for `server_pid`).
    Documents {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        documents: u64,
        /// Raw connections that each open every document, for the memory figure.
        #[arg(long, default_value_t = 10)]
        connections: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Overload: `stalled` subscribers that stop reading, `fast` ones that read, one writer at
    /// full speed; fast subscribers' latency, server memory (from /proc for `server_pid`), and
    /// whether the stalled ones get every event once they read again.
    Overload {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 20)]
        fast: u64,
        #[arg(long, default_value_t = 500)]
        stalled: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Rules: submit-to-ack time of edits to a 10 KB document (the server runs with or without
    /// `--schema`), and with `receiver` the webhook delivery time (the server's `--webhook` is
    /// `http://RECEIVER/hook`).
    Rules {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 1000)]
        edits: u64,
        /// Edits a second at most (0: one as soon as the last is acknowledged).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Where to listen for the server's webhook deliveries.
        #[arg(long)]
        receiver: Option<SocketAddr>,
    },
    /// Presence: `peers` connections on one document, each updating its presence `rate` times a
    /// second; delivery latency, server CPU and memory per peer (from /proc for `server_pid`).
    Presence {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 100)]
        peers: u64,
        #[arg(long, default_value_t = 10)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// The floor server: broadcasts every frame a connection sends (other than the handshake)
    /// to every other connection, nothing stored; prints `floor-server listening on ws://ADDR`.
    FloorServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Fan-out with raw protocol subscribers: one writer at `rate` updates a second for
    /// `seconds`, `subscribers` connections reading; latency, delivered fraction, server CPU per
    /// delivery and memory per idle connection (from /proc for `server_pid`).
    FanoutRaw {
        /// `ws://host:port` of eventsync-server, or of `floor-server` with `--floor`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        /// The server is the floor server.
        #[arg(long)]
        floor: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Fan-out to full native `SyncClient`s (one connection each), the same writer as
    /// `fanout-raw`.
    FanoutClients {
        /// `ws://host:port` of eventsync-server, or of `floor-server` with `--floor`
        #[arg(long)]
        url: String,
        /// With `--floor`: `floor` (the document of the floor's catch-up).
        #[arg(long)]
        document: String,
        /// The server is the floor server: one event a frame, and next to no server CPU on the
        /// shared cores, so that the clients' own cost per event shows.
        #[arg(long)]
        floor: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The catch-up floor: the whole log of `document` (on a server without snapshots), parsed
    /// with serde_json and applied with json-patch, nothing else.
    CatchupFloor {
        /// `ws://host:port`
        #[arg(long)]
        url: String,
        #[arg(long)]
        document: String,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Client CPU per delivered live event: `SyncSession` against serde_json, in process.
    ClientCpu {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

/// The size of a fan-out.
#[derive(clap::Args)]
struct LoadArgs {
    #[arg(long, default_value_t = 1000)]
    subscribers: u64,
    /// Updates a second offered by the writer.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    server_pid: u32,
    /// Seconds to wait for the last deliveries once the writer is done.
    #[arg(long, default_value_t = 30)]
    drain: u64,
}

impl LoadArgs {
    fn load(self) -> fanout::Load {
        fanout::Load {
            subscribers: self.subscribers,
            rate: self.rate,
            seconds: self.seconds,
            server_pid: self.server_pid,
            drain: Duration::from_secs(self.drain),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.scenario {
        Scenario::Apply { events, rounds } => apply(events, rounds),
        Scenario::Seed {
            url,
            document,
            events,
            batch,
        } => runtime().block_on(seed(&url, &document, events, batch)),
        Scenario::Catchup {
            url,
            document,
            protocol,
        } => runtime().block_on(catch_up(&url, &document, protocol)),
        Scenario::Flush {
            url,
            document,
            edits,
            store,
        } => runtime().block_on(flush(&url, &document, edits, store)),
        Scenario::Writers {
            url,
            document,
            writers,
            events,
        } => runtime().block_on(multiplex::writers(&url, &document, writers, events)),
        Scenario::Documents {
            url,
            documents,
            connections,
            server_pid,
        } => runtime().block_on(multiplex::documents(
            &url,
            documents,
            connections,
            server_pid,
        )),
        Scenario::Overload {
            url,
            document,
            fast,
            stalled,
            seconds,
            server_pid,
        } => runtime().block_on(stalled::run(
            &url, &document, fast, stalled, seconds, server_pid,
        )),
        Scenario::Rules {
            url,
            document,
            edits,
            rate,
            receiver,
        } => runtime().block_on(rules::run(&url, &document, edits, rate, receiver)),
        Scenario::Presence {
            url,
            document,
            peers,
            rate,
            seconds,
            server_pid,
        } => runtime().block_on(presence::presence(
            &url, &document, peers, rate, seconds, server_pid,
        )),
        Scenario::FloorServer { listen } => {
            runtime().block_on(floor::serve(listen));
            return;
        }
        Scenario::FanoutRaw {
            url,
            document,
            floor,
            load,
        } => runtime().block_on(fanout::raw(&url, &document, target(floor), load.load())),
        Scenario::FanoutClients {
            url,
            document,
            floor,
            load,
        } => runtime().block_on(fanout::clients(&url, &document, target(floor), load.load())),
        Scenario::CatchupFloor {
            url,
            document,
            rounds,
        } => runtime().block_on(costs::catchup_floor(&url, &document, rounds)),
        Scenario::ClientCpu { events, rounds } => costs::client_cpu(events, rounds),
    };
    println!("{result}");
}

/// The server of a fan-out.
fn target(floor: bool) -> fanout::Target {
    if floor {
        fanout::Target::Floor
    } else {
        fanout::Target::Eventsync
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn apply(count: u64, rounds: usize) -> Value {
    let mut eventsync_ms = Vec::new();
    let mut json_patch_ms = Vec::new();
    for _ in 0..rounds.max(1) {
        // Inputs are built outside the timed part: a client receives events already decoded.
        let events = update_events("bench", count);
        let patches = patches_of(&events);
        let mut replica = created_replica("bench");
        let started = Instant::now();
        let applied = apply_with_eventsync(&mut replica, events);
        eventsync_ms.push(millis(started.elapsed()));
        assert_eq!(applied, count + 1);

        let mut document = initial_document();
        let started = Instant::now();
        apply_with_json_patch(&mut document, patches);
        json_patch_ms.push(millis(started.elapsed()));
        assert_eq!(Some(&document), replica.document(), "both ways agree");
    }
    json!({
        "scenario": "apply", "target": "native", "events": count, "rounds": rounds,
        "eventsyncMs": median(eventsync_ms), "jsonPatchMs": median(json_patch_ms),
    })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn send(socket: &mut Socket, message: &ClientMessage) {
    socket
        .send(Message::text(protocol::encode(message)))
        .await
        .expect("send to the server");
}

/// The next protocol message from the server (skipping pings and other frames).
async fn receive(socket: &mut Socket) -> ServerMessage {
    loop {
        let frame = socket
            .next()
            .await
            .expect("the server closed the connection")
            .expect("read from the server");
        if let Message::Text(text) = frame {
            return protocol::decode_server(&text).expect("a valid server message");
        }
    }
}

/// Submits one edit and waits for its ack; returns the new head. Panics on a reject or an error.
async fn submit_one(socket: &mut Socket, edit: Edit, head: u64) -> u64 {
    send(socket, &ClientMessage::Submit { edits: vec![edit] }).await;
    loop {
        match receive(socket).await {
            ServerMessage::Ack { edits } => {
                return edits.iter().map(|a| a.sequence_num).max().unwrap_or(head)
            }
            ServerMessage::Reject { code, message, .. } => {
                panic!("the server refused an edit: {code:?} {message}")
            }
            // A submit the server could not read (too large, say) gets no ack: say so, not hang.
            ServerMessage::Error { code, message } => {
                panic!("the server answered the submit with an error: {code:?} {message}")
            }
            _ => {}
        }
    }
}

/// Seeds through the protocol itself (a real client's submits), so the server's log, snapshots
/// and caches are exactly what clients produce.
async fn seed(url: &str, document: &str, count: u64, batch: u64) -> Value {
    let started = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    send(
        &mut socket,
        &ClientMessage::Hello {
            protocol_versions: vec![PROTOCOL_VERSION],
            client_id: WRITER.into(),
            token: None,
        },
    )
    .await;
    let head = match receive(&mut socket).await {
        ServerMessage::Welcome { head_seq, .. } => head_seq,
        other => panic!("expected welcome, got {other:?}"),
    };
    assert_eq!(head, Some(0), "seed a fresh document");
    let create = Edit {
        client_seq: 1,
        base_seq: 0,
        operation: Operation::Create,
        patch: serde_json::from_value(
            json!([{"op": "add", "path": "", "value": initial_document()}]),
        )
        .expect("a root add"),
        shape: None,
    };
    let mut pending = vec![create];
    let mut next_update = 1;
    let mut head_seq = 0;
    loop {
        while next_update <= count && (pending.len() as u64) < batch {
            // Update `n` is the writer's edit `n + 1`, made on the head the server acknowledged.
            pending.push(Edit {
                client_seq: next_update + 1,
                base_seq: head_seq,
                operation: Operation::Update,
                patch: update_patch(next_update, json!(next_update)),
                shape: None,
            });
            next_update += 1;
        }
        if pending.is_empty() {
            break;
        }
        let last = pending.last().expect("not empty").client_seq;
        send(
            &mut socket,
            &ClientMessage::Submit {
                edits: std::mem::take(&mut pending),
            },
        )
        .await;
        loop {
            match receive(&mut socket).await {
                ServerMessage::Ack { edits } if edits.iter().any(|a| a.client_seq == last) => {
                    head_seq = edits
                        .iter()
                        .map(|a| a.sequence_num)
                        .max()
                        .unwrap_or(head_seq);
                    break;
                }
                ServerMessage::Reject { code, message, .. } => {
                    panic!("the server rejected the seed: {code:?} {message}")
                }
                ServerMessage::Error { code, message } => {
                    panic!("the server answered the seed with an error: {code:?} {message}")
                }
                _ => {}
            }
        }
    }
    socket.close(None).await.ok();
    json!({
        "scenario": "seed", "events": count, "headSeq": head_seq,
        "ms": millis(started.elapsed()),
    })
}

/// Bytes a proxy carried, per direction.
#[derive(Default)]
struct Traffic {
    to_client: AtomicU64,
    to_server: AtomicU64,
}

/// A loopback TCP proxy to `upstream` that counts the bytes on the wire (WebSocket frames and
/// the HTTP upgrade) in each direction.
async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Traffic>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let addr = listener.local_addr().expect("its address");
    let traffic = Arc::new(Traffic::default());
    let counts = traffic.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream)
                .await
                .expect("reach the server");
            client.set_nodelay(true).ok();
            server.set_nodelay(true).ok();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let (a, b) = (counts.clone(), counts.clone());
            tokio::spawn(pump(client_read, server_write, move |n| {
                a.to_server.fetch_add(n, Ordering::Relaxed);
            }));
            tokio::spawn(pump(server_read, client_write, move |n| {
                b.to_client.fetch_add(n, Ordering::Relaxed);
            }));
        }
    });
    (addr, traffic)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: impl Fn(u64),
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count(n as u64);
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    to.shutdown().await.ok();
}

fn socket_addr(url: &str) -> SocketAddr {
    let authority = url
        .trim_start_matches("ws://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    authority.parse().expect("the url is ws://IP:PORT")
}

async fn catch_up(url: &str, document: &str, protocol: u32) -> Value {
    let (proxy, traffic) = counting_proxy(socket_addr(url)).await;
    let started = Instant::now();
    let (client, connection) = if protocol == 2 {
        let connection = SyncConnection::builder(format!("ws://{proxy}"))
            .connect()
            .expect("a connection");
        let client = connection.open(document).expect("a client");
        (client, Some(connection))
    } else {
        let client = SyncClient::builder(format!("ws://{proxy}"), document)
            .connect()
            .expect("a client");
        (client, None)
    };
    client.sync_state().await.expect("caught up");
    let elapsed = started.elapsed();
    let applied_seq = client.applied_seq();
    let fields = client
        .document()
        .and_then(|d| d["fields"].as_object().map(|f| f.len()))
        .unwrap_or(0);
    client.close().await;
    if let Some(connection) = connection {
        connection.close().await;
    }
    json!({
        "scenario": "catchup", "target": "native", "protocol": protocol,
        "appliedSeq": applied_seq, "fields": fields,
        "ms": millis(elapsed),
        "bytesToClient": traffic.to_client.load(Ordering::Relaxed),
        "bytesToServer": traffic.to_server.load(Ordering::Relaxed),
    })
}

async fn flush(url: &str, document: &str, count: u64, store: PathBuf) -> Value {
    // Offline: a server address nobody listens on, so every edit waits in the queue. Queued in
    // memory, then stored once in the file the reconnecting client opens, so that only the flush
    // is timed; what queueing costs with the file store (an fsync per edit) is measured apart.
    let offline = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let nowhere = offline.local_addr().expect("its address");
    drop(offline);
    let queue = MemoryStore::new();
    {
        let client = SyncClient::builder(format!("ws://{nowhere}"), document)
            .client_id("offline-writer")
            .store(queue.clone())
            .connect()
            .expect("an offline client");
        client.create(initial_document()).expect("create");
        for n in 1..count {
            client
                .edit(update_patch(n, json!(n)))
                .expect("an offline edit");
        }
        assert_eq!(client.pending_count() as u64, count);
        client.close().await;
    }
    let state = queue.clone().load().expect("load").expect("a stored queue");
    FileStore::new(&store)
        .save(&state)
        .expect("store the queue");
    let queue_ms_per_edit = file_store_ms_per_edit(nowhere, &store.with_extension("probe")).await;

    let (proxy, traffic) = counting_proxy(socket_addr(url)).await;
    let started = Instant::now();
    let client = SyncClient::builder(format!("ws://{proxy}"), document)
        .client_id("offline-writer")
        .file_store(&store)
        .connect()
        .expect("the client again");
    client.flush().await.expect("flushed");
    let elapsed = started.elapsed();
    let pending = client.pending_count();
    let applied_seq = client.applied_seq();
    client.close().await;
    assert_eq!(pending, 0);
    json!({
        "scenario": "flush", "target": "native", "edits": count, "appliedSeq": applied_seq,
        "ms": millis(elapsed), "fileStoreMsPerQueuedEdit": queue_ms_per_edit,
        "bytesToClient": traffic.to_client.load(Ordering::Relaxed),
        "bytesToServer": traffic.to_server.load(Ordering::Relaxed),
    })
}

/// What queueing one offline edit costs with the file store, on a short queue (100 edits).
async fn file_store_ms_per_edit(nowhere: SocketAddr, path: &std::path::Path) -> f64 {
    const EDITS: u64 = 100;
    let client = SyncClient::builder(format!("ws://{nowhere}"), "probe")
        .file_store(path)
        .connect()
        .expect("an offline client");
    let started = Instant::now();
    client.create(initial_document()).expect("create");
    for n in 1..EDITS {
        client
            .edit(update_patch(n, json!(n)))
            .expect("an offline edit");
    }
    // Closing waits for the last save.
    client.close().await;
    millis(started.elapsed()) / EDITS as f64
}
