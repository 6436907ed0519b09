//! The fan-out scenarios of `scripts/bench.sh` against the floor (issue 17): one writer at a fixed
//! rate and many subscribers on one document, on loopback.
//!
//! - [`raw`]: raw protocol subscribers (tokio-tungstenite; `hello`, `sync`, then each live frame
//!   parsed with serde_json just enough to read the writer's timestamp), against eventsync-server
//!   or the floor server (`floor.rs`).
//! - [`clients`]: the same writer and rate, the subscribers full native `SyncClient`s.
//!
//! The writer (on a thread of its own) stamps each update's value with the time it made it
//! (microseconds on this process's clock, which every subscriber shares); against
//! eventsync-server it keeps one submit in flight, as the reference client does. Measured: delivery latency, the delivered fraction,
//! the server's CPU (utime + stime from /proc) and this process's per delivery, the server's
//! resident memory per idle connection (after every subscriber caught up), and the writer's
//! submit-to-ack times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsync::native::ClientEvent;
use eventsync::protocol::{self, ClientMessage, Edit, Event, Operation, ServerMessage};
use eventsync::{Diff, SyncClient, VectorClock};
use futures::{SinkExt, StreamExt};
use json_patch::PatchOperation;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::multiplex::rss_kb;
use crate::presence::cpu_time;
use crate::{receive, send, Socket};
use eventsync_bench::update_patch;

/// The writer's client id (its events' origin): one of its own for every run, so that runs can
/// share a server (and the same length every time: the floor's frames are as long as
/// eventsync's).
fn writer_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("fanout-writer-{:08x}", nanos ^ std::process::id())
}

/// Subscribers connect this many at a time, each group caught up before the next: a thousand
/// handshakes at once only measure the accept queue.
const GROUP: usize = 50;

/// What the scenario is run against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Eventsync,
    /// The floor server: the writer sends it the `event` frames eventsync-server would
    /// broadcast, and it sends them on as they are (and acks each at once).
    Floor,
}

impl Target {
    /// The `system` of the scenario's figures.
    fn name(self) -> &'static str {
        match self {
            Target::Eventsync => "eventsync",
            Target::Floor => "floor",
        }
    }
}

/// The scenario's size and the server to read /proc for.
pub struct Load {
    pub subscribers: u64,
    /// Updates a second offered by the writer.
    pub rate: u64,
    pub seconds: u64,
    pub server_pid: u32,
    /// How long to wait for the last deliveries once the writer is done.
    pub drain: Duration,
}

impl Load {
    fn updates(&self) -> u64 {
        (self.rate * self.seconds).max(1)
    }
}

/// Microseconds since `origin`, the clock of every stamp and receipt.
fn micros(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A live frame, read just enough to find the writer's stamps: `events[].diff.patch[].value`.
#[derive(Deserialize)]
struct LiveFrame {
    #[serde(default)]
    events: Vec<LiveEvent>,
}

#[derive(Deserialize)]
struct LiveEvent {
    diff: Option<LiveDiff>,
}

#[derive(Deserialize)]
struct LiveDiff {
    patch: Vec<LiveOp>,
}

#[derive(Deserialize)]
struct LiveOp {
    value: Option<u64>,
}

/// A raw version 1 connection to `document` that has read its `welcome` and its first catch-up.
async fn connect_raw(url: &str, document: &str, client_id: &str) -> (Socket, u64) {
    // Reads of 8 KiB, as the native client's (tungstenite zero-fills a whole read buffer per
    // read, 128 KiB by default), and no Nagle.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        format!("{url}/sync/{document}"),
        Some(config),
        true,
    )
    .await
    .expect("connect to the server");
    let hello = ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: client_id.into(),
        token: None,
    };
    send(&mut socket, &hello).await;
    let sync = ClientMessage::Sync {
        vector_clock: Default::default(),
        after: None,
    };
    send(&mut socket, &sync).await;
    loop {
        match receive(&mut socket).await {
            ServerMessage::Events {
                has_more: false,
                head_seq,
                ..
            } => return (socket, head_seq.unwrap_or(0)),
            ServerMessage::Error { code, message } => panic!("refused: {code:?} {message}"),
            _ => {}
        }
    }
}

/// What the writer measured.
struct Written {
    sent: u64,
    /// Submit-to-ack times (from a write's send to its ack), in milliseconds.
    acks: Vec<f64>,
    /// Edit-to-ack times (from an update being made to its ack, the wait for the write in
    /// flight included), in milliseconds.
    edit_acks: Vec<f64>,
    submits: u64,
    rejects: u64,
}

/// The submit in flight: when it was sent and its updates' stamps.
struct Inflight {
    sent: u64,
    stamps: Vec<u64>,
}

/// Makes `updates` updates at `rate` a second, each due at its own time whatever came before
/// (a fixed offered rate, as the JavaScript fan-out's writer), its value the time it was made.
/// It writes as the reference client does: one write in flight, the updates made meanwhile in
/// the next one. To eventsync-server a write is a `submit`; to the floor server the `event`
/// frame eventsync-server would broadcast for that submit (its events in one frame), which the
/// floor broadcasts and acks at once.
async fn write(
    url: &str,
    document: &str,
    target: Target,
    updates: u64,
    rate: u64,
    origin: Instant,
) -> Written {
    let writer = writer_id();
    let (mut socket, mut head) = connect_raw(url, document, &writer).await;
    let mut written = Written {
        sent: 0,
        acks: Vec::new(),
        edit_acks: Vec::new(),
        submits: 0,
        rejects: 0,
    };
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = tokio::time::Instant::now();
    let mut next = 1;
    let mut settled = 0;
    let mut pending: Vec<(Edit, u64)> = Vec::new();
    let mut inflight: Option<Inflight> = None;
    // After the last update, the acks have this long to come.
    let give_up = start + period.mul_f64(updates as f64) + Duration::from_secs(60);
    while settled < updates {
        let due = start + period.mul_f64((next - 1) as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(due), if next <= updates => {
                let stamp = micros(origin);
                let edit = Edit {
                    client_seq: next,
                    base_seq: 0,
                    operation: Operation::Update,
                    patch: update_patch(next, json!(stamp)),
                    shape: None,
                };
                pending.push((edit, stamp));
                next += 1;
                written.sent += 1;
            }
            frame = socket.next() => {
                let Some(Ok(frame)) = frame else { break };
                let Message::Text(text) = frame else { continue };
                let now = micros(origin);
                match protocol::decode_server(&text) {
                    Ok(ServerMessage::Ack { edits }) => {
                        let Some(done) = inflight.take() else { continue };
                        written.acks.push(now.saturating_sub(done.sent) as f64 / 1000.0);
                        for stamp in &done.stamps {
                            written.edit_acks.push(now.saturating_sub(*stamp) as f64 / 1000.0);
                        }
                        let count = done.stamps.len() as u64;
                        // The floor's acks list nothing: its events are numbered here.
                        head = edits.iter().map(|a| a.sequence_num).max().unwrap_or(head + count);
                        settled += count;
                    }
                    Ok(ServerMessage::Reject { code, message, head_seq, .. }) => {
                        if written.rejects == 0 {
                            eprintln!("fan-out: the server refused an update: {code:?} {message}");
                        }
                        let Some(done) = inflight.take() else { continue };
                        written.rejects += done.stamps.len() as u64;
                        settled += done.stamps.len() as u64;
                        head = head_seq;
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(give_up) => break,
        }
        if inflight.is_none() && !pending.is_empty() {
            let (edits, stamps): (Vec<Edit>, Vec<u64>) = pending
                .drain(..)
                .map(|(mut edit, stamp)| {
                    // Made on the head this writer, the document's only one, has seen acked.
                    edit.base_seq = head;
                    (edit, stamp)
                })
                .unzip();
            let frame = match target {
                Target::Eventsync => protocol::encode(&ClientMessage::Submit { edits }),
                Target::Floor => floor_events(document, &writer, head, edits),
            };
            inflight = Some(Inflight {
                sent: micros(origin),
                stamps,
            });
            written.submits += 1;
            socket
                .send(Message::text(frame))
                .await
                .expect("send to the server");
        }
    }
    written
}

/// [`write`] on a thread and runtime of its own: the writer keeps its pace and stamps its updates
/// on time however busy the subscribers keep this process's runtime (as a writer elsewhere
/// would).
async fn write_apart(
    url: &str,
    document: &str,
    target: Target,
    updates: u64,
    rate: u64,
    origin: Instant,
) -> Written {
    let (url, document) = (url.to_owned(), document.to_owned());
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the writer")
            .block_on(write(&url, &document, target, updates, rate, origin))
    })
    .await
    .expect("the writer")
}

/// The `event` frame eventsync-server would broadcast for `edits` of the writer made on `head`:
/// the same members, the same sizes (a 24-digit id, a timestamp to the millisecond), the events
/// of one submit in one frame.
fn floor_events(document: &str, writer: &str, head: u64, edits: Vec<Edit>) -> String {
    let events = edits
        .into_iter()
        .zip(head + 1..)
        .map(|(edit, sequence_num)| {
            let mut vector_clock = VectorClock::new();
            vector_clock.observe(writer, sequence_num);
            Event {
                id: format!("{sequence_num:024x}"),
                document_id: document.to_owned(),
                timestamp: "2026-01-01T00:00:00.000Z".into(),
                sequence_num,
                operation: Operation::Update,
                diff: Some(Diff::from_patch(edit.patch)),
                vector_clock,
                client_id: writer.into(),
                client_seq: Some(edit.client_seq),
                server_seq: 0,
                metadata: Default::default(),
            }
        })
        .collect();
    protocol::encode(&ServerMessage::Event { events })
}

/// What one subscriber saw: latencies (µs), bytes and frames of the live stream, unreadable
/// frames.
#[derive(Default)]
struct Seen {
    latencies: Vec<u32>,
    bytes: u64,
    frames: u64,
    unreadable: u64,
}

/// Reads live frames until `updates` events arrived or `stop` says the drain is over.
async fn read_live(
    mut socket: Socket,
    updates: u64,
    origin: Instant,
    stop: watch::Receiver<bool>,
    delivered: Arc<AtomicU64>,
) -> Seen {
    let mut seen = Seen::default();
    let mut count = 0;
    let mut stopped = std::pin::pin!(async move {
        let mut stop = stop;
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    while count < updates {
        let next = tokio::select! {
            biased;
            _ = &mut stopped => break,
            next = socket.next() => next,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            _ => break,
        };
        let now = micros(origin);
        seen.bytes += text.len() as u64;
        seen.frames += 1;
        match serde_json::from_str::<LiveFrame>(&text) {
            Ok(frame) => {
                for event in frame.events {
                    let stamp = event
                        .diff
                        .and_then(|d| d.patch.into_iter().next())
                        .and_then(|op| op.value);
                    if let Some(stamp) = stamp {
                        seen.latencies
                            .push(u32::try_from(now.saturating_sub(stamp)).unwrap_or(u32::MAX));
                        count += 1;
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => seen.unreadable += 1,
        }
    }
    seen
}

/// Waits until `delivered` reaches `expected`, or `drain` has passed.
async fn drained(delivered: &AtomicU64, expected: u64, drain: Duration) {
    let deadline = Instant::now() + drain;
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Latency quantiles (ms) of `latencies` (µs), sorted in place.
fn quantiles(latencies: &mut [u32]) -> Value {
    latencies.sort_unstable();
    let pick = |q: f64| -> Option<f64> {
        if latencies.is_empty() {
            return None;
        }
        let at = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        Some(latencies[at] as f64 / 1000.0)
    };
    json!({"p50Ms": pick(0.5), "p95Ms": pick(0.95), "p99Ms": pick(0.99), "maxMs": pick(1.0)})
}

/// The p50 and p99 of `acks`, sorted in place.
fn ack_quantiles(acks: &mut [f64]) -> (Option<f64>, Option<f64>) {
    acks.sort_by(f64::total_cmp);
    let pick = |q: f64| -> Option<f64> {
        if acks.is_empty() {
            return None;
        }
        let at = ((acks.len() as f64 * q).ceil() as usize).clamp(1, acks.len()) - 1;
        Some(acks[at])
    };
    (pick(0.5), pick(0.99))
}

/// CPU time of the server and of this process, to take differences of.
struct Cpu {
    server: Duration,
    own: Duration,
}

impl Cpu {
    fn now(server_pid: u32) -> Cpu {
        Cpu {
            server: cpu_time(server_pid),
            own: cpu_time(std::process::id()),
        }
    }
}

/// The figures every fan-out reports.
#[allow(clippy::too_many_arguments)]
fn figures(
    system: &str,
    scenario: &str,
    load: &Load,
    latencies: &mut [u32],
    written: Written,
    cpu: (Cpu, Cpu),
    rss: (u64, u64),
    window: Duration,
) -> Value {
    let delivered = latencies.len() as u64;
    let expected = load.updates() * load.subscribers;
    let per_delivery = |used: Duration| -> Option<f64> {
        (delivered > 0).then(|| used.as_secs_f64() * 1e6 / delivered as f64)
    };
    let (before, after) = cpu;
    let server_cpu = after.server.saturating_sub(before.server);
    let own_cpu = after.own.saturating_sub(before.own);
    let mut acks = written.acks;
    let mut edit_acks = written.edit_acks;
    let mut result = json!({
        "scenario": scenario, "system": system, "subscribers": load.subscribers,
        "rate": load.rate, "seconds": load.seconds, "updates": written.sent,
        "expected": expected, "delivered": delivered,
        "deliveredFraction": if expected > 0 { delivered as f64 / expected as f64 } else { 0.0 },
        "windowMs": window.as_secs_f64() * 1000.0,
        "serverCpuMs": server_cpu.as_secs_f64() * 1000.0,
        "serverCpuUsPerDelivery": per_delivery(server_cpu),
        "clientCpuUsPerDelivery": per_delivery(own_cpu),
        "serverRssKbIdle": rss.1,
        "serverBytesPerIdleConnection":
            (rss.1.saturating_sub(rss.0) * 1024) as f64 / load.subscribers.max(1) as f64,
        "rejects": written.rejects, "submits": written.submits,
    });
    let merge = |result: &mut Value, more: Value| {
        for (k, v) in more.as_object().expect("an object") {
            result[k] = v.clone();
        }
    };
    merge(&mut result, quantiles(latencies));
    if !acks.is_empty() {
        let (p50, p99) = ack_quantiles(&mut acks);
        let (edit_p50, edit_p99) = ack_quantiles(&mut edit_acks);
        merge(
            &mut result,
            json!({"ackP50Ms": p50, "ackP99Ms": p99, "editAckP50Ms": edit_p50, "editAckP99Ms": edit_p99}),
        );
    }
    result
}

/// Connects `count` subscribers with `connect(i)`, `GROUP` at a time.
async fn connect_all<T, F, Fut>(count: u64, connect: F) -> Vec<T>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut all = Vec::with_capacity(count as usize);
    let mut next = 0;
    while next < count {
        let end = (next + GROUP as u64).min(count);
        all.extend(futures::future::join_all((next..end).map(&connect)).await);
        next = end;
    }
    all
}

/// Raw subscribers against eventsync-server or the floor server.
pub async fn raw(url: &str, document: &str, target: Target, load: Load) -> Value {
    let origin = Instant::now();
    let rss_before = rss_kb(load.server_pid);
    let sockets = connect_all(load.subscribers, |i| async move {
        connect_raw(url, document, &format!("raw-{i}")).await.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kb(load.server_pid);

    let updates = load.updates();
    let (stop, stopped) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    for socket in sockets {
        readers.spawn(read_live(
            socket,
            updates,
            origin,
            stopped.clone(),
            delivered.clone(),
        ));
    }
    let cpu_before = Cpu::now(load.server_pid);
    let started = Instant::now();
    let written = write_apart(url, document, target, updates, load.rate, origin).await;
    drained(&delivered, updates * load.subscribers, load.drain).await;
    let window = started.elapsed();
    let cpu_after = Cpu::now(load.server_pid);
    let _ = stop.send(true);
    let mut seen = Seen::default();
    while let Some(joined) = readers.join_next().await {
        let mut one = joined.expect("a subscriber");
        seen.latencies.append(&mut one.latencies);
        seen.bytes += one.bytes;
        seen.frames += one.frames;
        seen.unreadable += one.unreadable;
    }
    let system = target.name();
    let mut result = figures(
        system,
        "fanout-raw",
        &load,
        &mut seen.latencies,
        written,
        (cpu_before, cpu_after),
        (rss_before, rss_idle),
        window,
    );
    result["frameBytes"] = json!(seen.bytes as f64 / seen.frames.max(1) as f64);
    result["eventsPerFrame"] =
        json!(result["delivered"].as_f64().unwrap_or(0.0) / seen.frames.max(1) as f64);
    result["unreadableFrames"] = json!(seen.unreadable);
    result
}

/// The first operation's value, the writer's stamp.
fn stamp_of(event: &Event) -> Option<u64> {
    let patch = event.diff.as_ref()?.patch.as_ref()?;
    match patch.first()? {
        PatchOperation::Add(op) => op.value.as_u64(),
        PatchOperation::Replace(op) => op.value.as_u64(),
        _ => None,
    }
}

/// Full native `SyncClient`s (protocol version 1, a connection each) against eventsync-server
/// or the floor server.
pub async fn clients(url: &str, document: &str, target: Target, load: Load) -> Value {
    let origin = Instant::now();
    let rss_before = rss_kb(load.server_pid);
    let clients = connect_all(load.subscribers, |i| async move {
        let client = SyncClient::builder(url, document)
            .client_id(format!("client-{i}"))
            .connect()
            .expect("a client");
        tokio::time::timeout(Duration::from_secs(60), client.sync_state())
            .await
            .expect("caught up within 60 s")
            .expect("caught up");
        client
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kb(load.server_pid);

    let updates = load.updates();
    let expected = updates * load.subscribers;
    let delivered = Arc::new(AtomicU64::new(0));
    // The steps that applied the writer's events: one a frame.
    let frames = Arc::new(AtomicU64::new(0));
    let mut latencies = Vec::new();
    let mut subscriptions = Vec::new();
    for client in &clients {
        let mine = Arc::new(Mutex::new(Vec::<u32>::with_capacity(updates as usize)));
        let (into, count, frames) = (mine.clone(), delivered.clone(), frames.clone());
        subscriptions.push(client.on_events(move |events| {
            let now = micros(origin);
            let mut into = into.lock().expect("latencies");
            let before = into.len();
            for event in events {
                if let ClientEvent::Applied { event, own: false } = event {
                    if let Some(stamp) = stamp_of(event) {
                        let latency = now.saturating_sub(stamp);
                        into.push(u32::try_from(latency).unwrap_or(u32::MAX));
                    }
                }
            }
            let seen = (into.len() - before) as u64;
            if seen > 0 {
                count.fetch_add(seen, Ordering::Relaxed);
                frames.fetch_add(1, Ordering::Relaxed);
            }
        }));
        latencies.push(mine);
    }
    let cpu_before = Cpu::now(load.server_pid);
    let started = Instant::now();
    let written = write_apart(url, document, target, updates, load.rate, origin).await;
    drained(&delivered, expected, load.drain).await;
    let window = started.elapsed();
    let cpu_after = Cpu::now(load.server_pid);
    for subscription in &subscriptions {
        subscription.cancel();
    }
    let mut all: Vec<u32> = latencies
        .iter()
        .flat_map(|l| std::mem::take(&mut *l.lock().expect("latencies")))
        .collect();
    let system = target.name();
    let mut result = figures(
        system,
        "fanout-clients",
        &load,
        &mut all,
        written,
        (cpu_before, cpu_after),
        (rss_before, rss_idle),
        window,
    );
    result["eventsPerFrame"] = json!(
        result["delivered"].as_f64().unwrap_or(0.0) / frames.load(Ordering::Relaxed).max(1) as f64
    );
    futures::future::join_all(clients.iter().map(|c| c.close())).await;
    result
}
