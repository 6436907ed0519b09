//! Fault injection end to end: native clients with file stores edit three documents through a
//! TCP fault proxy ([`support::proxy`]) in front of the real `eventsync-server` binary on a SQLite
//! file. The proxy cuts connections (after any number of bytes, so mid-frame too, and right as
//! a submit's answer comes back), delays chunks, refuses connections for a while, cuts them all
//! at once, and replays submits on a second connection; twice the server is SIGKILLed and
//! restarted on the same file (the proxy follows it to its new port), and clients crash (their
//! `SyncClient` dropped without closing) and come back from their file stores, some of them
//! while the server is down. Half the clients are a `SyncClient` of one document each (protocol
//! 1); the other half are a `SyncConnection` with all three documents on one socket (protocol 2),
//! editing any of them.
//!
//! Then the faults stop, and: every client holds the server's documents; every edit a client made
//! is in its document's log exactly once, at the `sequenceNum` it was acknowledged with, unless
//! the client reported it rejected (then it is not in the log); the logs hold nothing else.
//!
//! `EVENTSYNC_FAULT_SEED=N` runs one seed (a failure names its seed); by default three fixed
//! seeds run. The seed fixes the edits, the crash moments and the proxy's faults; thread timing
//! still varies from run to run. Every wait is bounded: a stuck run fails with a message.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsync::native::Backoff;
use eventsync::protocol::{Event, Operation, ServerMessage};
use eventsync::{SessionEvent, SyncClient, SyncConnection};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use support::process::ServerProcess;
use support::proxy::{Direction, Fault, FaultMix, FaultProxy, FaultStats, FrameScanner};
use support::{edit, get_json, read_log, Received, TempDir, TestServer, Ws, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const CLIENTS: usize = 8;
const EDITS_PER_CLIENT: usize = 80;
/// A whole seed's run, faults and convergence, ends within this or fails.
const RUN_LIMIT: Duration = Duration::from_secs(150);
/// After the faults stop, every client converges within this.
const CONVERGE: Duration = Duration::from_secs(60);
const DOCUMENTS: [&str; 3] = ["faults", "faults-b", "faults-c"];

// ----- the proxy itself -----

/// A handshake, a masked client frame and a 200-byte server frame (16-bit length), fed whole,
/// byte by byte and in odd chunks, give the same frames.
#[test]
fn the_frame_scanner_finds_frames_however_the_bytes_are_chunked() {
    let mut stream = b"GET /sync/x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let handshake = stream.len();
    let text = br#"{"type":"hello"}"#;
    let key = [1u8, 2, 3, 4];
    stream.extend_from_slice(&[0x81, 0x80 | text.len() as u8]);
    stream.extend_from_slice(&key);
    stream.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let first_frame_end = stream.len();
    let long = vec![b'x'; 200];
    stream.extend_from_slice(&[0x81, 126, 0, 200]);
    stream.extend_from_slice(&long);
    for chunk_len in [stream.len(), 1, 3, 7, 64] {
        let mut scanner = FrameScanner::default();
        let mut frames = Vec::new();
        let mut fed = 0;
        for chunk in stream.chunks(chunk_len) {
            frames.extend(scanner.feed(chunk));
            fed += chunk.len();
            let boundary = fed == handshake || fed == first_frame_end || fed == stream.len();
            assert_eq!(scanner.mid_frame(), !boundary, "after {fed} bytes");
        }
        assert_eq!(frames.len(), 2, "chunks of {chunk_len}");
        assert_eq!(frames[0].text(), Some(r#"{"type":"hello"}"#));
        assert_eq!(frames[0].raw, stream[handshake..first_frame_end]);
        assert_eq!(frames[1].payload, long);
        assert_eq!(frames[1].opcode, 1);
    }
}

/// A TCP server that takes one connection, writes `reply`, and returns everything it read up
/// to the end of the stream.
async fn sink_server(reply: Vec<u8>) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream.write_all(&reply).await;
        let mut received = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut received)).await;
        received
    });
    (addr, task)
}

#[tokio::test]
async fn a_cut_after_n_bytes_relays_exactly_n_bytes_in_that_direction() {
    let sent: Vec<u8> = (0..100).collect();
    for direction in [Direction::Up, Direction::Down] {
        let (target, server) = sink_server(sent.clone()).await;
        let fault = Fault::CutAfter {
            direction,
            bytes: 37,
        };
        let proxy = FaultProxy::start(target, 1, FaultMix::only(fault)).await;
        let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(&sent).await.unwrap();
        let mut received = Vec::new();
        let _ = tokio::time::timeout(WAIT, client.read_to_end(&mut received))
            .await
            .expect("the proxy ends the connection");
        drop(client);
        let at_server = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
        match direction {
            Direction::Up => assert_eq!(at_server, sent[..37]),
            Direction::Down => assert_eq!(received, sent[..37]),
        }
        let stats = proxy.stats();
        assert_eq!(stats.cuts_after_bytes, 1);
        // 37 bytes that are no HTTP handshake leave it unfinished: mid-"frame".
        assert_eq!(stats.cuts_mid_frame, 1);
    }
}

#[tokio::test]
async fn a_cut_at_the_answer_loses_the_ack_and_the_resend_is_a_duplicate() {
    let mut server = TestServer::start().await;
    support::put(&server, "answer", &json!({})).await;
    let target = server.server.as_ref().unwrap().addr;
    let proxy = FaultProxy::start(target, 2, FaultMix::only(Fault::CutAtAnswer)).await;
    let (mut ws, head) = Ws::open_at(&proxy.ws(), "answer", "alice").await;
    let patch = json!([{"op": "add", "path": "/a", "value": 1}]);
    ws.submit(vec![edit(1, head, Operation::Update, patch.clone())])
        .await;
    match ws.receive(WAIT).await {
        Received::Closed(_) => {}
        other => panic!("the proxy should cut before the answer, got {other:?}"),
    }
    assert_eq!(proxy.stats().cuts_at_answer, 1);

    // The edit went through; its resend is acknowledged as a duplicate at the same place.
    proxy.calm();
    let (mut ws, _) = Ws::open_at(&proxy.ws(), "answer", "alice").await;
    ws.submit(vec![edit(1, head, Operation::Update, patch)])
        .await;
    let (_, answer) = ws.answer().await;
    match answer {
        ServerMessage::Ack { edits } => {
            assert!(edits[0].duplicate, "{edits:?}");
            assert_eq!(edits[0].sequence_num, head + 1);
        }
        other => panic!("expected an ack, got {other:?}"),
    }
    let log = read_log(&server.http, "answer", 100).await;
    assert_eq!(log.len() as u64, head + 1, "ordered once");
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_submit_is_ordered_once() {
    let mut server = TestServer::start().await;
    support::put(&server, "replay", &json!({})).await;
    let target = server.server.as_ref().unwrap().addr;
    let proxy = FaultProxy::start(target, 3, FaultMix::only(Fault::ReplaySubmit)).await;
    let (mut ws, head) = Ws::open_at(&proxy.ws(), "replay", "bob").await;
    let patch = json!([{"op": "add", "path": "/b", "value": 2}]);
    ws.submit(vec![edit(1, head, Operation::Update, patch)])
        .await;
    let (_, answer) = ws.answer().await;
    let ServerMessage::Ack { edits } = answer else {
        panic!("expected an ack, got {answer:?}");
    };
    let deadline = Instant::now() + WAIT;
    while proxy.stats().replays_acked == 0 {
        assert!(Instant::now() < deadline, "the replay got no ack");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Whichever of the two came second was the duplicate.
    let stats = proxy.stats();
    assert_eq!(stats.replays, 1);
    assert_ne!(edits[0].duplicate, stats.replays_acked_as_duplicate == 1);
    let log = read_log(&server.http, "replay", 100).await;
    let from_bob: Vec<&Event> = log.iter().filter(|e| e.client_id == "bob").collect();
    assert_eq!(from_bob.len(), 1, "ordered once: {log:?}");
    assert_eq!(from_bob[0].sequence_num, edits[0].sequence_num);
    server.stop().await;
}

#[tokio::test]
async fn refused_connections_fail_until_the_proxy_calms_down() {
    let mut server = TestServer::start().await;
    let target = server.server.as_ref().unwrap().addr;
    let proxy = FaultProxy::start(target, 4, FaultMix::clean()).await;
    proxy.refuse_for(Duration::from_secs(60));
    let url = format!("{}/sync/refused", proxy.ws());
    assert!(Ws::try_connect_url(&url).await.is_none());
    assert_eq!(proxy.stats().refused, 1);
    proxy.calm();
    let (ws, _) = Ws::open_at(&proxy.ws(), "refused", "carol").await;
    ws.close().await;
    server.stop().await;
}

// ----- clients under faults -----

/// What each client was told, over all its lives (crashes included).
#[derive(Debug, Default, Clone)]
struct ClientRecord {
    /// Every `clientSeq` `edit` returned.
    made: BTreeSet<u64>,
    /// `clientSeq` → acknowledged `sequenceNum`.
    acked: BTreeMap<u64, u64>,
    /// `clientSeq` → why it was rejected.
    rejected: BTreeMap<u64, String>,
    /// Acks that contradicted an earlier ack.
    contradictions: Vec<String>,
}

/// What each (client, document) was told, under `clientId@documentId`.
type Ledger = Arc<Mutex<HashMap<String, ClientRecord>>>;

fn ledger_key(client_id: &str, document: &str) -> String {
    format!("{client_id}@{document}")
}

fn record(ledger: &Ledger, client_id: &str, event: &SessionEvent) {
    let mut ledger = ledger.lock().unwrap();
    let entry = ledger.entry(client_id.to_owned()).or_default();
    match event {
        SessionEvent::Acked {
            client_seq,
            sequence_num,
        } => {
            if let Some(before) = entry.acked.insert(*client_seq, *sequence_num) {
                if before != *sequence_num {
                    entry.contradictions.push(format!(
                        "{client_seq} acked as #{before}, then as #{sequence_num}"
                    ));
                }
            }
        }
        SessionEvent::EditRejected {
            client_seq,
            code,
            message,
        } => {
            entry
                .rejected
                .insert(*client_seq, format!("{code:?}: {message}"));
        }
        _ => {}
    }
}

/// A client under test: one document on a socket of its own, or all of them on one connection.
enum Party {
    Single(&'static str, SyncClient),
    Connection(SyncConnection, Vec<SyncClient>),
}

impl Party {
    /// Each document's handle, by index in [`DOCUMENTS`].
    fn handles(&self) -> Vec<(&'static str, &SyncClient)> {
        match self {
            Party::Single(document, client) => vec![(*document, client)],
            Party::Connection(_, handles) => DOCUMENTS.iter().copied().zip(handles).collect(),
        }
    }

    async fn close(&self) {
        match self {
            Party::Single(_, client) => client.close().await,
            Party::Connection(connection, _) => connection.close().await,
        }
    }
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
    }
}

/// Opens (or reopens, after a crash) client `me` from its file store(s), through the proxy:
/// even ones a `SyncClient` of one document, odd ones a `SyncConnection` with every document.
fn open_party(proxy_ws: &str, me: usize, dir: &Path, ledger: &Ledger) -> Party {
    let id = format!("client-{me}");
    // The test runs on one thread: no client task can run before these listeners are in.
    let listen = |client: &SyncClient, document: &str| {
        let ledger = ledger.clone();
        let key = ledger_key(&id, document);
        client.on_event(move |event| record(&ledger, &key, event));
    };
    if me % 2 == 0 {
        let document = DOCUMENTS[me / 2 % 3];
        let client = SyncClient::builder(proxy_ws, document)
            .client_id(&id)
            .file_store(dir.join(format!("{id}.json")))
            .backoff(backoff())
            .connect()
            .expect("the client opens from its store");
        listen(&client, document);
        return Party::Single(document, client);
    }
    let connection = SyncConnection::builder(proxy_ws)
        .client_id(&id)
        .directory(dir.join(&id))
        .backoff(backoff())
        .connect()
        .expect("the connection starts");
    let handles = DOCUMENTS
        .iter()
        .map(|document| {
            let handle = connection
                .open(*document)
                .expect("the document opens from its store");
            listen(&handle, document);
            handle
        })
        .collect();
    Party::Connection(connection, handles)
}

/// A random edit of `{"items": [...], "counters": {...}}`: inserts (many at the same indexes, 0
/// and 1), appends, removes, replaces, counters set and removed; now and then two ops at once.
fn random_edit(rng: &mut ChaCha8Rng, document: &Value, me: usize, n: usize) -> Value {
    let items = document["items"].as_array().map_or(0, Vec::len);
    let counters = document["counters"].as_object();
    let value = format!("c{me}-{n}");
    let mut ops = Vec::new();
    let pick = if items > 30 {
        5
    } else {
        rng.random_range(0..10)
    };
    match pick {
        0..=2 => ops.push(json!({"op": "add", "path": format!("/items/{}", rng.random_range(0..=items.min(1))), "value": value})),
        3 => ops.push(json!({"op": "add", "path": "/items/-", "value": value})),
        4 | 5 if items > 0 => {
            ops.push(json!({"op": "remove", "path": format!("/items/{}", rng.random_range(0..items))}))
        }
        6 if items > 0 => ops.push(json!({"op": "replace", "path": format!("/items/{}", rng.random_range(0..items)), "value": value})),
        7 => {
            // Two ops: an insert at the front and a counter.
            ops.push(json!({"op": "add", "path": "/items/0", "value": value}));
            ops.push(json!({"op": "add", "path": format!("/counters/k{}", rng.random_range(0..4)), "value": n}));
        }
        8 => {
            let key = format!("k{}", rng.random_range(0..4));
            if counters.is_some_and(|c| c.contains_key(&key)) {
                ops.push(json!({"op": "remove", "path": format!("/counters/{key}")}));
            } else {
                ops.push(json!({"op": "add", "path": format!("/counters/{key}"), "value": n}));
            }
        }
        _ => ops.push(json!({"op": "add", "path": format!("/counters/k{}", rng.random_range(0..4)), "value": n})),
    }
    Value::Array(ops)
}

/// Waits until `done` holds, or panics with `what` after `limit`.
async fn wait_for(limit: Duration, what: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One client's life under faults: edits, crashes now and then (or when asked to), and the
/// client it ends with.
async fn run_client(
    me: usize,
    seed: u64,
    proxy_ws: String,
    dir: PathBuf,
    ledger: Ledger,
    made: Arc<AtomicUsize>,
    crash_now: Arc<AtomicBool>,
) -> (Party, usize) {
    let id = format!("client-{me}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(me as u64));
    let mut party = open_party(&proxy_ws, me, &dir, &ledger);
    let has_all = |party: &Party| party.handles().iter().all(|(_, h)| h.document().is_some());
    wait_for(
        Duration::from_secs(30),
        || format!("{id} never received its documents through the proxy"),
        || has_all(&party),
    )
    .await;
    let mut crashes = 0;
    for n in 0..EDITS_PER_CLIENT {
        if crash_now.swap(false, Ordering::SeqCst) || rng.random_bool(0.02) {
            // An app crash: no close, nothing saved beyond what the client saved by itself.
            drop(party);
            crashes += 1;
            // The dropped client's task stops at its next await; give it that moment before
            // another one opens the same files.
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
            party = open_party(&proxy_ws, me, &dir, &ledger);
            // Crashed before its first edit of a document, the client may never have saved it
            // (applied events are saved lazily): it fetches it again.
            wait_for(
                Duration::from_secs(30),
                || format!("{id} never received its documents again after a crash"),
                || has_all(&party),
            )
            .await;
        }
        let handles = party.handles();
        let (document_id, client) = handles[rng.random_range(0..handles.len())];
        let document = client
            .document()
            .unwrap_or_else(|| panic!("{id}: {document_id} is gone after {n} edits"));
        let patch = random_edit(&mut rng, &document, me, n);
        let client_seq = client
            .edit(patch)
            .unwrap_or_else(|err| panic!("{id}: a valid edit of {document_id} failed: {err}"));
        ledger
            .lock()
            .unwrap()
            .entry(ledger_key(&id, document_id))
            .or_default()
            .made
            .insert(client_seq);
        made.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..60))).await;
    }
    (party, crashes)
}

fn fault_mix() -> FaultMix {
    FaultMix {
        clean: 4,
        cut_after: 3,
        cut_at_answer: 3,
        replay_submit: 1,
        max_cut_bytes: 1500,
        delay_chance: 0.2,
        max_delay: Duration::from_millis(30),
        forced: None,
    }
}

/// Checks the log against what the clients were told; returns how many edits were rejected.
fn check_log(log: &[Event], ledger: &HashMap<String, ClientRecord>) -> usize {
    let mut in_log: HashMap<&str, BTreeMap<u64, u64>> = HashMap::new();
    for (index, event) in log.iter().enumerate() {
        assert_eq!(event.sequence_num, index as u64 + 1, "the log has a gap");
        if index == 0 {
            continue; // the document's creation over HTTP
        }
        let client_seq = event
            .client_seq
            .unwrap_or_else(|| panic!("#{} is no client edit: {event:?}", event.sequence_num));
        assert!(
            ledger.contains_key(&event.client_id),
            "#{} comes from unknown client {}",
            event.sequence_num,
            event.client_id
        );
        let seqs = in_log.entry(&event.client_id).or_default();
        if let Some(earlier) = seqs.insert(client_seq, event.sequence_num) {
            panic!(
                "{} clientSeq {client_seq} is in the log twice: #{earlier} and #{}",
                event.client_id, event.sequence_num
            );
        }
    }
    let mut rejected = 0;
    for (client_id, record) in ledger {
        assert!(
            record.contradictions.is_empty(),
            "{client_id}: {:?}",
            record.contradictions
        );
        let logged = in_log.remove(client_id.as_str()).unwrap_or_default();
        for client_seq in logged.keys() {
            assert!(
                record.made.contains(client_seq),
                "{client_id} clientSeq {client_seq} is in the log, but the client never made it"
            );
            assert!(
                !record.rejected.contains_key(client_seq),
                "{client_id} clientSeq {client_seq} is in the log, yet it was reported rejected ({})",
                record.rejected[client_seq]
            );
        }
        for client_seq in &record.made {
            assert!(
                logged.contains_key(client_seq) || record.rejected.contains_key(client_seq),
                "{client_id} clientSeq {client_seq} was lost: not in the log, never rejected"
            );
        }
        for (client_seq, sequence_num) in &record.acked {
            assert_eq!(
                logged.get(client_seq),
                Some(sequence_num),
                "{client_id} clientSeq {client_seq} was acked as #{sequence_num}"
            );
        }
        rejected += record.rejected.len();
    }
    rejected
}

/// One seed's whole run; panics on any violation.
async fn run_seed(seed: u64) -> FaultStats {
    let started = Instant::now();
    let dir = TempDir::new("faults");
    let database = dir.sqlite_url();
    let mut server = ServerProcess::start(&database, &dir.0, "server-0").await;
    for document in DOCUMENTS {
        server
            .create(document, &json!({"items": [], "counters": {}}))
            .await;
    }
    let proxy = FaultProxy::start(server.addr, seed, fault_mix()).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ledger: Ledger = Arc::default();
    let made = Arc::new(AtomicUsize::new(0));
    let crash_flags: Vec<Arc<AtomicBool>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|me| {
            tokio::spawn(run_client(
                me,
                seed,
                proxy.ws(),
                dir.0.clone(),
                ledger.clone(),
                made.clone(),
                crash_flags[me].clone(),
            ))
        })
        .collect();

    // The schedule, by how many edits have been made.
    let total = CLIENTS * EDITS_PER_CLIENT;
    // A client task that ended early (a panic, say) ends the waiting: joining it below tells why.
    let reached = |fraction: f64| {
        let made = made.clone();
        let target = (total as f64 * fraction) as usize;
        let tasks = &tasks;
        async move {
            wait_for(
                Duration::from_secs(60),
                || {
                    format!(
                        "only {} of {target} edits made",
                        made.load(Ordering::SeqCst)
                    )
                },
                || {
                    made.load(Ordering::SeqCst) >= target
                        || tasks.iter().any(tokio::task::JoinHandle::is_finished)
                },
            )
            .await
        }
    };
    reached(0.15).await;
    proxy.refuse_for(Duration::from_millis(rng.random_range(200..800)));
    reached(0.25).await;
    proxy.cut_all();
    let mut kills = 0;
    for (at, tag) in [(0.35, "server-1"), (0.65, "server-2")] {
        reached(at).await;
        server.kill();
        kills += 1;
        // A client or two crash while the server is down, with edits queued offline.
        for _ in 0..2 {
            crash_flags[rng.random_range(0..CLIENTS)].store(true, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        server = ServerProcess::start(&database, &dir.0, tag).await;
        proxy.retarget(server.addr);
    }
    reached(0.8).await;
    proxy.refuse_for(Duration::from_millis(rng.random_range(200..800)));
    proxy.cut_all();

    let mut parties = Vec::new();
    let mut crashes = 0;
    for task in tasks {
        let (party, crashed) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the clients finish their edits in time")
            .expect("client task");
        parties.push(party);
        crashes += crashed;
    }

    // The faults stop; everything converges.
    proxy.calm();
    let handles: Vec<(&str, &SyncClient)> = parties.iter().flat_map(Party::handles).collect();
    for (document, client) in &handles {
        let flushed = tokio::time::timeout(CONVERGE, client.flush()).await;
        assert!(
            matches!(flushed, Ok(Ok(()))),
            "{} did not flush {document} within {CONVERGE:?} after the faults stopped ({} pending, {:?}): {flushed:?}\n{}",
            client.client_id(),
            client.pending_count(),
            client.status(),
            server.logs()
        );
    }
    let mut in_logs = 0;
    let mut rejected = 0;
    for document in DOCUMENTS {
        let snapshot: Value = get_json(format!("{}/api/documents/{document}", server.http)).await;
        let head = snapshot["sequenceNum"].as_u64().expect("sequenceNum");
        let readers: Vec<&SyncClient> = handles
            .iter()
            .filter(|(d, _)| *d == document)
            .map(|(_, client)| *client)
            .collect();
        for client in &readers {
            wait_for(
                CONVERGE,
                || {
                    format!(
                        "{} stays at #{} of #{head} of {document}",
                        client.client_id(),
                        client.applied_seq()
                    )
                },
                || client.applied_seq() >= head,
            )
            .await;
        }
        for client in &readers {
            assert_eq!(client.pending_count(), 0, "{}", client.client_id());
            assert_eq!(
                client.document().as_ref(),
                Some(&snapshot["document"]),
                "{} differs from the server's {document}",
                client.client_id()
            );
        }
        let log = read_log(&server.http, document, 200).await;
        assert_eq!(log.len() as u64, head);
        // This document's part of the ledger, by client id.
        let suffix = format!("@{document}");
        let records: HashMap<String, ClientRecord> = ledger
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(key, record)| {
                let client_id = key.strip_suffix(&suffix)?;
                Some((client_id.to_owned(), record.clone()))
            })
            .collect();
        eprintln!("seed {seed}: checking the log of {document}");
        rejected += check_log(&log, &records);
        in_logs += log.len() - 1;
    }
    let stats = proxy.stats();
    eprintln!(
        "seed {seed}: {} edits made, {in_logs} in the logs, {rejected} rejected, {crashes} client crashes, {kills} server kills, {:?}\n  proxy: {stats:?}",
        made.load(Ordering::SeqCst),
        started.elapsed()
    );
    for party in &parties {
        party.close().await;
    }
    stats
}

fn seeds() -> Vec<u64> {
    match std::env::var("EVENTSYNC_FAULT_SEED") {
        Ok(seed) => vec![seed.parse().expect("EVENTSYNC_FAULT_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    }
}

/// The clients, the proxy and this test share one thread (the server is its own process), so
/// an event listener is always in place before a client's task first runs.
#[tokio::test]
async fn clients_converge_and_lose_no_edit_through_cuts_replays_crashes_and_server_kills() {
    let mut faults = FaultStats::default();
    for seed in seeds() {
        eprintln!("fault seed {seed}");
        let run = tokio::spawn(tokio::time::timeout(RUN_LIMIT, run_seed(seed)));
        let outcome = run.await;
        let replay = format!(
            "EVENTSYNC_FAULT_SEED={seed} cargo test -p eventsync-server --test faults clients_converge"
        );
        match outcome {
            Ok(Ok(stats)) => {
                faults.cuts_after_bytes += stats.cuts_after_bytes;
                faults.cuts_mid_frame += stats.cuts_mid_frame;
                faults.cuts_at_answer += stats.cuts_at_answer;
                faults.replays_acked += stats.replays_acked;
                faults.refused += stats.refused;
            }
            Ok(Err(_)) => {
                panic!("seed {seed} did not finish within {RUN_LIMIT:?}; replay: {replay}")
            }
            Err(err) => {
                let panic = err.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed: {message}\nreplay: {replay}");
            }
        }
    }
    // The faults this test is about did happen (the seeds decide how often; one seed alone
    // may miss a kind). A replayed submit that got an answer counts whichever of the two copies
    // came second: the replay acknowledged as a duplicate, or the replay ordered and the client's
    // own copy acknowledged as the duplicate (a race the server's speed decides); either way the
    // server saw one submit twice, and the logs' check above found it ordered once.
    if std::env::var("EVENTSYNC_FAULT_SEED").is_ok() {
        eprintln!("faults over the run: {faults:?}");
        return;
    }
    assert!(
        faults.cuts_mid_frame > 0
            && faults.cuts_at_answer > 0
            && faults.replays_acked > 0
            && faults.refused > 0,
        "some kind of fault never happened: {faults:?}"
    );
}
