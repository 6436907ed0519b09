//! A seeded TCP fault proxy for WebSocket clients and a real server, on loopback.
//!
//! Every accepted connection is relayed to the current target (which can change: a restarted
//! server listens elsewhere) and given a fault drawn from the proxy's seed:
//!
//! - [`Fault::Clean`]: relayed as it is (chunks may still be delayed);
//! - [`Fault::CutAfter`]: cut after a number of bytes in one direction, which usually falls in
//!   the middle of a WebSocket frame: the peer gets a truncated frame, then the end of the stream;
//! - [`Fault::CutAtAnswer`]: cut as the server's answer to a submit comes back (its `ack`, or the
//!   live `event` of one of the client's own edits): the edit went through, the client never
//!   heard so, and it has to find out after reconnecting;
//! - [`Fault::ReplaySubmit`]: the client's upgrade request, `hello` and `submit` are sent again,
//!   byte for byte, on a second connection of the proxy's own: the same edits arrive twice, as
//!   when a request is retried over a new connection.
//!
//! On top of that, chunks are delayed at random, [`FaultProxy::refuse_for`] closes every new
//! connection at once for a while, and [`FaultProxy::cut_all`] cuts every live one.
//!
//! TCP cannot lose a segment without losing the connection (the kernel retransmits it), and it
//! never reorders or duplicates bytes within one, so over TCP "dropping" is cutting, and
//! duplicates happen across connections (a resend after a reconnect, or the replay above).
//!
//! The seed fixes the fault of the n-th connection and the delays of its chunks. Which client
//! opens the n-th connection depends on the scheduler, so a seed replays the same mix of faults,
//! not the same interleaving.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::WAIT;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// The fault one connection is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Clean,
    CutAfter { direction: Direction, bytes: usize },
    CutAtAnswer,
    ReplaySubmit,
}

/// How often each fault is drawn (relative weights) and how chunks are delayed.
#[derive(Debug, Clone)]
pub struct FaultMix {
    pub clean: u32,
    pub cut_after: u32,
    pub cut_at_answer: u32,
    pub replay_submit: u32,
    /// `CutAfter` cuts after 1 to this many bytes (the handshake alone is a few hundred).
    pub max_cut_bytes: usize,
    /// The chance that a chunk waits before it is relayed.
    pub delay_chance: f64,
    /// The longest such wait.
    pub max_delay: Duration,
    /// Every connection gets this fault (for tests of the proxy itself).
    pub forced: Option<Fault>,
}

impl FaultMix {
    /// Only relays.
    pub fn clean() -> Self {
        FaultMix {
            clean: 1,
            cut_after: 0,
            cut_at_answer: 0,
            replay_submit: 0,
            max_cut_bytes: 1,
            delay_chance: 0.0,
            max_delay: Duration::ZERO,
            forced: None,
        }
    }

    /// Every connection gets exactly `fault` (no delays).
    pub fn only(fault: Fault) -> Self {
        FaultMix {
            forced: Some(fault),
            ..FaultMix::clean()
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Fault {
        if let Some(fault) = self.forced {
            return fault;
        }
        let total = self.clean + self.cut_after + self.cut_at_answer + self.replay_submit;
        let mut pick = rng.random_range(0..total.max(1));
        if pick < self.clean {
            return Fault::Clean;
        }
        pick -= self.clean;
        if pick < self.cut_after {
            let direction = if rng.random_bool(0.5) {
                Direction::Up
            } else {
                Direction::Down
            };
            let bytes = rng.random_range(1..=self.max_cut_bytes.max(1));
            return Fault::CutAfter { direction, bytes };
        }
        pick -= self.cut_after;
        if pick < self.cut_at_answer {
            Fault::CutAtAnswer
        } else {
            Fault::ReplaySubmit
        }
    }
}

/// What the proxy did (cumulative).
#[derive(Debug, Clone, Default)]
pub struct FaultStats {
    pub connections: u64,
    pub refused: u64,
    /// The target did not accept (the server was down).
    pub unreachable: u64,
    pub cuts_after_bytes: u64,
    /// Of those, cuts that left a WebSocket frame (or the HTTP handshake) half sent.
    pub cuts_mid_frame: u64,
    pub cuts_at_answer: u64,
    /// Connections cut by [`FaultProxy::cut_all`].
    pub cut_by_partition: u64,
    pub delayed_chunks: u64,
    pub replays: u64,
    /// Replayed submits the server answered with an `ack`.
    pub replays_acked: u64,
    /// Of those, `ack`s marked `duplicate` (the server had the edits already).
    pub replays_acked_as_duplicate: u64,
    /// `ack`s marked `duplicate` relayed to clients.
    pub duplicate_acks_relayed: u64,
}

struct Shared {
    target: Mutex<SocketAddr>,
    mix: Mutex<FaultMix>,
    seed: u64,
    /// No new connection is relayed before this.
    refuse_until: Mutex<Option<Instant>>,
    /// Once set, no more faults: every connection (live or new) is relayed as it is.
    calm: AtomicBool,
    /// Bumped by `cut_all`: every live connection ends.
    partition: watch::Sender<u64>,
    stats: Mutex<FaultStats>,
    next_connection: AtomicU64,
}

impl Shared {
    fn count(&self, update: impl FnOnce(&mut FaultStats)) {
        update(&mut self.stats.lock().unwrap());
    }
}

/// The proxy: listens on a loopback port of its own until dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr, seed: u64, mix: FaultMix) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            mix: Mutex::new(mix),
            seed,
            refuse_until: Mutex::new(None),
            calm: AtomicBool::new(false),
            partition: watch::channel(0).0,
            stats: Mutex::new(FaultStats::default()),
            next_connection: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(accepting.clone(), client));
            }
        });
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// `ws://` URL of the proxy, for clients.
    pub fn ws(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// New connections go to `target` (live ones stay where they are).
    pub fn retarget(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// New connections are closed at once for `wait`.
    pub fn refuse_for(&self, wait: Duration) {
        *self.shared.refuse_until.lock().unwrap() = Some(Instant::now() + wait);
    }

    /// Cuts every live connection (a network partition of a moment).
    pub fn cut_all(&self) {
        self.shared
            .partition
            .send_modify(|generation| *generation += 1);
    }

    /// No more faults, delays or refusals, for live connections too.
    pub fn calm(&self) {
        self.shared.calm.store(true, Ordering::SeqCst);
        *self.shared.refuse_until.lock().unwrap() = None;
    }

    /// The mix drawn from for new connections.
    pub fn set_mix(&self, mix: FaultMix) {
        *self.shared.mix.lock().unwrap() = mix;
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

/// Per-connection state both directions share.
struct Connection {
    shared: Arc<Shared>,
    fault: Fault,
    /// The client's upgrade request and `hello`, as sent (for a replay).
    upgrade: Mutex<Vec<u8>>,
    hello: Mutex<Option<Vec<u8>>>,
    /// Protocol 2: each document's last `open`, as sent (a replayed submit needs it first).
    opens: Mutex<std::collections::HashMap<String, Vec<u8>>>,
    client_id: Mutex<Option<String>>,
    replayed: AtomicBool,
}

impl Connection {
    fn faulty(&self) -> bool {
        !self.shared.calm.load(Ordering::SeqCst)
    }
}

/// How a direction ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The sender closed its side (forwarded as a half-close).
    Finished,
    /// The connection is over (an error, or a fault): both sides are dropped.
    Cut,
}

async fn relay(shared: Arc<Shared>, client: TcpStream) {
    let number = shared.next_connection.fetch_add(1, Ordering::SeqCst);
    shared.count(|s| s.connections += 1);
    let refusing = shared
        .refuse_until
        .lock()
        .unwrap()
        .is_some_and(|until| Instant::now() < until);
    if refusing && !shared.calm.load(Ordering::SeqCst) {
        shared.count(|s| s.refused += 1);
        return;
    }
    let target = *shared.target.lock().unwrap();
    let server = match tokio::time::timeout(WAIT, TcpStream::connect(target)).await {
        Ok(Ok(server)) => server,
        _ => {
            shared.count(|s| s.unreachable += 1);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Each connection draws from a generator of its own, seeded by its number, so that what it
    // draws does not depend on the order connections are served in.
    let mut rng =
        ChaCha8Rng::seed_from_u64(shared.seed ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let fault = if shared.calm.load(Ordering::SeqCst) {
        Fault::Clean
    } else {
        shared.mix.lock().unwrap().draw(&mut rng)
    };
    let connection = Arc::new(Connection {
        shared: shared.clone(),
        fault,
        upgrade: Mutex::new(Vec::new()),
        hello: Mutex::new(None),
        opens: Mutex::default(),
        client_id: Mutex::new(None),
        replayed: AtomicBool::new(false),
    });
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let down_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let up = pump(
        connection.clone(),
        Direction::Up,
        client_read,
        server_write,
        up_rng,
    );
    let down = pump(
        connection.clone(),
        Direction::Down,
        server_read,
        client_write,
        down_rng,
    );
    let mut partition = shared.partition.subscribe();
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            end = &mut up, if !up_done => {
                if end == End::Cut { break; }
                up_done = true;
            }
            end = &mut down, if !down_done => {
                if end == End::Cut { break; }
                down_done = true;
            }
            changed = partition.changed() => {
                if changed.is_ok() && connection.faulty() {
                    shared.count(|s| s.cut_by_partition += 1);
                }
                break;
            }
        }
    }
    // Dropping both halves of both streams closes the two connections.
}

/// Relays one direction of a connection, applying its fault.
async fn pump(
    connection: Arc<Connection>,
    direction: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut rng: ChaCha8Rng,
) -> End {
    let shared = connection.shared.clone();
    let mut scanner = FrameScanner::default();
    let mut relayed = 0usize;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Finished;
            }
            Ok(read) => read,
            Err(_) => return End::Cut,
        };
        let chunk = &buffer[..read];
        let (delay_chance, max_delay) = {
            let mix = shared.mix.lock().unwrap();
            (mix.delay_chance, mix.max_delay)
        };
        if connection.faulty() && delay_chance > 0.0 && rng.random_bool(delay_chance) {
            let wait = rng.random_range(Duration::ZERO..=max_delay);
            shared.count(|s| s.delayed_chunks += 1);
            tokio::time::sleep(wait).await;
        }
        let faulty = connection.faulty();
        match connection.fault {
            Fault::CutAfter {
                direction: cut_direction,
                bytes,
            } if faulty && cut_direction == direction && relayed + read >= bytes => {
                let part = &chunk[..bytes - relayed];
                scanner.feed(part);
                let _ = to.write_all(part).await;
                let _ = to.flush().await;
                let mid_frame = scanner.mid_frame();
                shared.count(|s| {
                    s.cuts_after_bytes += 1;
                    s.cuts_mid_frame += u64::from(mid_frame);
                });
                return End::Cut;
            }
            _ => {}
        }
        let handshake_before = scanner.handshake_done();
        let frames = scanner.feed(chunk);
        if direction == Direction::Up {
            if !handshake_before {
                // The upgrade request is the start of the stream, up to the end of its headers.
                let mut upgrade = connection.upgrade.lock().unwrap();
                upgrade.extend_from_slice(chunk);
                if let Some(len) = scanner.handshake_len {
                    upgrade.truncate(len);
                }
            }
            for frame in &frames {
                note_hello(&connection, frame);
            }
        } else {
            for frame in &frames {
                if frame.is_duplicate_ack() {
                    shared.count(|s| s.duplicate_acks_relayed += 1);
                }
            }
        }
        if direction == Direction::Down && faulty && connection.fault == Fault::CutAtAnswer {
            let client_id = connection.client_id.lock().unwrap().clone();
            let answer = frames
                .iter()
                .find(|frame| frame.answers_a_submit(client_id.as_deref()));
            if let Some(answer) = answer {
                // Relay what came before the answer; the answer itself never arrives.
                let _ = to.write_all(&chunk[..answer.start.unwrap_or(0)]).await;
                let _ = to.flush().await;
                shared.count(|s| s.cuts_at_answer += 1);
                return End::Cut;
            }
        }
        if to.write_all(chunk).await.is_err() {
            return End::Cut;
        }
        relayed += read;
        if direction == Direction::Up && faulty && connection.fault == Fault::ReplaySubmit {
            if let Some(submit) = frames.iter().find(|frame| frame.is_submit()) {
                if !connection.replayed.swap(true, Ordering::SeqCst) {
                    tokio::spawn(replay(connection.clone(), submit.clone()));
                }
            }
        }
    }
}

/// Remembers the client's `hello` and (protocol 2) its `open`s, for a replay, and its client id.
fn note_hello(connection: &Connection, frame: &Frame) {
    let Some(text) = frame.text() else {
        return;
    };
    if !text.contains("\"hello\"") && !text.contains("\"open\"") {
        return;
    }
    let Ok(message) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if message["type"] == "hello" {
        *connection.hello.lock().unwrap() = Some(frame.raw.clone());
        *connection.client_id.lock().unwrap() = message["clientId"].as_str().map(str::to_owned);
    } else if let ("open", Some(document)) = (
        message["type"].as_str().unwrap_or(""),
        message["documentId"].as_str(),
    ) {
        let mut opens = connection.opens.lock().unwrap();
        opens.insert(document.to_owned(), frame.raw.clone());
    }
}

/// Sends the client's upgrade request, `hello` (and on protocol 2 the document's `open`) and
/// `submit` again on a new connection, and reads the answer (which nobody else sees).
async fn replay(connection: Arc<Connection>, submit: Frame) {
    let shared = connection.shared.clone();
    let upgrade = connection.upgrade.lock().unwrap().clone();
    let Some(mut hello) = connection.hello.lock().unwrap().clone() else {
        return;
    };
    let document = submit
        .text()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|m| m["documentId"].as_str().map(str::to_owned));
    if let Some(document) = document {
        match connection.opens.lock().unwrap().get(&document) {
            Some(open) => hello.extend_from_slice(open),
            None => return,
        }
    }
    if !upgrade.ends_with(b"\r\n\r\n") {
        return;
    }
    shared.count(|s| s.replays += 1);
    let target = *shared.target.lock().unwrap();
    let exchange = async {
        let mut server = TcpStream::connect(target).await.ok()?;
        server.write_all(&upgrade).await.ok()?;
        server.write_all(&hello).await.ok()?;
        server.write_all(&submit.raw).await.ok()?;
        let mut scanner = FrameScanner::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = server.read(&mut buffer).await.ok()?;
            if read == 0 {
                return None;
            }
            for frame in scanner.feed(&buffer[..read]) {
                let Some(text) = frame.text() else { continue };
                let message: serde_json::Value = serde_json::from_str(text).ok()?;
                match message["type"].as_str() {
                    Some("ack") if frame.is_duplicate_ack() => {
                        return Some(ReplayAnswer::Duplicate)
                    }
                    Some("ack") => return Some(ReplayAnswer::Ordered),
                    Some("reject") | Some("error") => return None,
                    _ => {}
                }
            }
        }
    };
    if let Ok(Some(answer)) = tokio::time::timeout(WAIT, exchange).await {
        shared.count(|s| {
            s.replays_acked += 1;
            s.replays_acked_as_duplicate += u64::from(answer == ReplayAnswer::Duplicate);
        });
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ReplayAnswer {
    /// The replay came second: acknowledged as a duplicate.
    Duplicate,
    /// The replay came first: its edits were ordered (the client's own submit is the duplicate).
    Ordered,
}

/// One WebSocket frame seen in a byte stream.
#[derive(Debug, Clone)]
pub struct Frame {
    pub opcode: u8,
    /// Unmasked.
    pub payload: Vec<u8>,
    /// The frame's bytes as they were sent.
    pub raw: Vec<u8>,
    /// Where the frame began in the chunk that completed it (`None`: in an earlier chunk).
    pub start: Option<usize>,
}

impl Frame {
    pub fn text(&self) -> Option<&str> {
        (self.opcode == 1)
            .then(|| std::str::from_utf8(&self.payload).ok())
            .flatten()
    }

    fn message_type(&self) -> Option<String> {
        let message: serde_json::Value = serde_json::from_str(self.text()?).ok()?;
        message["type"].as_str().map(str::to_owned)
    }

    fn is_submit(&self) -> bool {
        self.message_type().as_deref() == Some("submit")
    }

    fn is_duplicate_ack(&self) -> bool {
        self.text()
            .is_some_and(|text| text.contains("\"duplicate\":true"))
            && self.message_type().as_deref() == Some("ack")
    }

    /// An `ack`, or a live `event` frame holding an edit of `client_id`.
    fn answers_a_submit(&self, client_id: Option<&str>) -> bool {
        let Some(text) = self.text() else {
            return false;
        };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(text) else {
            return false;
        };
        match message["type"].as_str() {
            Some("ack") => true,
            Some("event") => message["events"].as_array().is_some_and(|events| {
                events.iter().any(|event| {
                    client_id.is_some_and(|id| event["clientId"] == id)
                        && event["clientSeq"].is_u64()
                })
            }),
            _ => false,
        }
    }
}

/// Splits one direction of a WebSocket connection into its HTTP handshake and its frames
/// (RFC 6455 5.2), however the bytes are chunked.
#[derive(Debug, Default)]
pub struct FrameScanner {
    /// Bytes of the handshake or of the current frame not yet complete.
    partial: Vec<u8>,
    /// The handshake's length, once its end (`\r\n\r\n`) has been seen.
    handshake_len: Option<usize>,
}

impl FrameScanner {
    pub fn handshake_done(&self) -> bool {
        self.handshake_len.is_some()
    }

    /// True when the bytes fed so far end inside the handshake or a frame.
    pub fn mid_frame(&self) -> bool {
        !self.partial.is_empty() || self.handshake_len.is_none()
    }

    /// Takes the next bytes; returns the frames they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut offset = 0;
        if self.handshake_len.is_none() {
            let before = self.partial.len();
            self.partial.extend_from_slice(chunk);
            match find(&self.partial, b"\r\n\r\n") {
                Some(end) => {
                    let end = end + 4;
                    self.handshake_len = Some(end);
                    offset = end - before;
                    self.partial.clear();
                }
                None => return frames,
            }
        }
        while offset < chunk.len() {
            let start = self.partial.is_empty().then_some(offset);
            let wanted = frame_len(&self.partial);
            let take = match wanted {
                Some(total) => total - self.partial.len(),
                // The header is not complete: take one byte at a time until it is.
                None => 1,
            }
            .min(chunk.len() - offset);
            self.partial
                .extend_from_slice(&chunk[offset..offset + take]);
            offset += take;
            if let Some(total) = frame_len(&self.partial) {
                if self.partial.len() == total {
                    let raw = std::mem::take(&mut self.partial);
                    frames.push(decode_frame(raw, start));
                }
            }
        }
        frames
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The whole length of the frame that `header` begins, once its header is complete.
fn frame_len(header: &[u8]) -> Option<usize> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let (payload, mut len) = match header[1] & 0x7f {
        126 => {
            if header.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([header[2], header[3]]) as usize, 4)
        }
        127 => {
            if header.len() < 10 {
                return None;
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[2..10]);
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        short => (short as usize, 2),
    };
    if masked {
        len += 4;
    }
    Some(len + payload)
}

fn decode_frame(raw: Vec<u8>, start: Option<usize>) -> Frame {
    let masked = raw[1] & 0x80 != 0;
    let header = match raw[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let (key, body) = if masked {
        (
            Some([
                raw[header],
                raw[header + 1],
                raw[header + 2],
                raw[header + 3],
            ]),
            header + 4,
        )
    } else {
        (None, header)
    };
    let mut payload = raw[body..].to_vec();
    if let Some(key) = key {
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[index % 4];
        }
    }
    Frame {
        opcode: raw[0] & 0x0f,
        payload,
        raw,
        start,
    }
}
