//! Durability of the real `eventsync-server` binary on a SQLite file:
//!
//! - SIGKILL in the middle of a load of concurrent WebSocket edits, restart on the same file, a
//!   few rounds: every acknowledged edit is in the log at its acknowledged `sequenceNum`, the log
//!   is gapless from 1, no (clientId, clientSeq) is ordered twice, and unacknowledged edits resent
//!   after the restart are ordered exactly once (`duplicate: true` when the killed process had
//!   stored them);
//! - SIGTERM closes open WebSocket connections with a close frame (1001) and exits 0;
//! - a database that cannot be opened exits 2, an address that cannot be bound exits 3, each
//!   with a clear message on stderr.
//!
//! The kill moments come from a seed (printed; set `EVENTSYNC_TEST_SEED` to replay them).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsync::protocol::{ClientMessage, ErrorCode, Event, Operation, ServerMessage};
use serde_json::{json, Value};
use support::process::{free_port, read, wait_exit, ServerProcess, BINARY};
use support::{edit, get_json, read_log, Received, TempDir, Ws, WAIT};

/// splitmix64: enough randomness for kill moments, and reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("EVENTSYNC_TEST_SEED") {
        Ok(value) => value.parse().expect("EVENTSYNC_TEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    eprintln!("seed {seed} (set EVENTSYNC_TEST_SEED={seed} to replay the kill moments)");
    seed
}

/// One client of the load: submits one edit at a time and remembers what was acknowledged.
#[derive(Debug, Clone)]
struct Writer {
    client_id: String,
    /// The `clientSeq` of the next new edit.
    next_seq: u64,
    /// `clientSeq` → acknowledged `sequenceNum`, over every round.
    acked: BTreeMap<u64, u64>,
    /// An edit sent but not answered when the connection broke (resent in the next round).
    unanswered: Option<u64>,
    /// The answers to the resends of `unanswered` edits: (clientSeq, sequenceNum, duplicate).
    resends: Vec<(u64, u64, bool)>,
}

impl Writer {
    fn new(index: usize) -> Self {
        Writer {
            client_id: format!("writer-{index}"),
            next_seq: 1,
            acked: BTreeMap::new(),
            unanswered: None,
            resends: Vec::new(),
        }
    }

    /// The edit `client_seq` adds a key of its own, so it applies on any base.
    fn patch(&self, client_seq: u64) -> Value {
        json!([{ "op": "add", "path": format!("/{}-{client_seq}", self.client_id), "value": client_seq }])
    }

    /// Connects, resends its unanswered edit, then submits new edits until `stop` is set (or
    /// the connection breaks). Panics on any answer the protocol does not allow here.
    ///
    /// With `abandon_after` = n, after n acks it drops the connection as soon as the event of
    /// its next edit arrives, before the ack: a lost ack, resent in the next round.
    async fn run(
        mut self,
        ws_base: String,
        document: String,
        stop: Arc<AtomicBool>,
        acks: Arc<AtomicUsize>,
        abandon_after: Option<usize>,
    ) -> Self {
        let mut acked_now = 0;
        let Some(mut ws) = Ws::try_connect_url(&format!("{ws_base}/sync/{document}")).await else {
            return self;
        };
        let hello = ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: self.client_id.clone(),
            token: None,
        };
        if !ws.try_send(&hello).await {
            return self;
        }
        let mut last = match ws.receive(WAIT).await {
            Received::Message(ServerMessage::Welcome { head_seq, .. }) => head_seq.unwrap_or(0),
            Received::Closed(_) => return self,
            other => panic!("{}: expected welcome, got {other:?}", self.client_id),
        };
        let mut resending = self.unanswered;
        loop {
            let client_seq = match self.unanswered {
                Some(client_seq) => client_seq,
                None if stop.load(Ordering::SeqCst) => return self,
                None => {
                    self.next_seq += 1;
                    self.next_seq - 1
                }
            };
            self.unanswered = Some(client_seq);
            let submit = ClientMessage::Submit {
                edits: vec![edit(
                    client_seq,
                    last,
                    Operation::Update,
                    self.patch(client_seq),
                )],
            };
            if !ws.try_send(&submit).await {
                return self;
            }
            loop {
                match ws.receive(WAIT).await {
                    Received::Message(ServerMessage::Event { events }) => {
                        let first = events[0].sequence_num;
                        assert_eq!(first, last + 1, "{}: a gap in live events", self.client_id);
                        last = events.last().unwrap().sequence_num;
                        let own = events.iter().any(|e| {
                            e.client_id == self.client_id && e.client_seq == Some(client_seq)
                        });
                        if own && abandon_after == Some(acked_now) {
                            return self;
                        }
                    }
                    Received::Message(ServerMessage::Ack { edits }) => {
                        assert_eq!(edits.len(), 1, "{}: {edits:?}", self.client_id);
                        let ack = &edits[0];
                        assert_eq!(ack.client_seq, client_seq);
                        assert!(ack.sequence_num <= last, "the event precedes its ack");
                        if resending == Some(client_seq) {
                            self.resends
                                .push((client_seq, ack.sequence_num, ack.duplicate));
                        } else {
                            assert!(
                                !ack.duplicate,
                                "{}: a new edit acked as a duplicate",
                                self.client_id
                            );
                        }
                        resending = None;
                        let previous = self.acked.insert(client_seq, ack.sequence_num);
                        assert!(
                            previous.is_none(),
                            "{}: {client_seq} acked twice",
                            self.client_id
                        );
                        self.unanswered = None;
                        acked_now += 1;
                        acks.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Received::Message(ServerMessage::Reject {
                        code: ErrorCode::StaleBase,
                        head_seq,
                        client_seq: rejected,
                        ..
                    }) => {
                        assert_eq!(rejected, client_seq);
                        // Every event up to head_seq came before the reject (8.2).
                        assert!(
                            last >= head_seq,
                            "{}: reject ahead of the events",
                            self.client_id
                        );
                        break;
                    }
                    Received::Message(other) => {
                        panic!("{}: unexpected answer {other:?}", self.client_id)
                    }
                    Received::Closed(_) => return self,
                    Received::TimedOut => panic!(
                        "{}: no answer to edit {client_seq} within {WAIT:?}",
                        self.client_id
                    ),
                }
            }
        }
    }
}

/// Checks the whole log against what the writers were told; returns (clientId, clientSeq) →
/// sequenceNum of every edit in it.
fn check_log(log: &[Event], writers: &[Writer]) -> HashMap<(String, u64), u64> {
    let mut ordered = HashMap::new();
    let mut highest: HashMap<&str, u64> = HashMap::new();
    for (index, event) in log.iter().enumerate() {
        assert_eq!(
            event.sequence_num,
            index as u64 + 1,
            "the log is not gapless from 1"
        );
        let Some(client_seq) = event.client_seq else {
            continue;
        };
        let key = (event.client_id.clone(), client_seq);
        if let Some(earlier) = ordered.insert(key, event.sequence_num) {
            panic!(
                "{} clientSeq {client_seq} is in the log twice: #{earlier} and #{}",
                event.client_id, event.sequence_num
            );
        }
        let high = highest.entry(&event.client_id).or_default();
        assert!(
            client_seq > *high,
            "{}: clientSeq {client_seq} ordered after {high}",
            event.client_id
        );
        *high = client_seq;
    }
    for writer in writers {
        for (client_seq, sequence_num) in &writer.acked {
            assert_eq!(
                ordered.get(&(writer.client_id.clone(), *client_seq)),
                Some(sequence_num),
                "{} clientSeq {client_seq} was acked as #{sequence_num}",
                writer.client_id
            );
        }
    }
    ordered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_no_acknowledged_edit_and_resends_apply_exactly_once() {
    const WRITERS: usize = 4;
    const KILLS: usize = 4;
    let started = Instant::now();
    let mut rng = Rng(seed());
    let dir = TempDir::new("durability");
    let database = format!("sqlite:{}", dir.0.join("events.db").display());
    let document = "durable";

    let mut server = ServerProcess::start(&database, &dir.0, "server-0").await;
    server.create(document, &json!({})).await;

    let mut writers: Vec<Writer> = (0..WRITERS).map(Writer::new).collect();
    let mut kills = 0;
    let mut duplicates = 0;
    for round in 0..=KILLS {
        let last_round = round == KILLS;
        // What the previous process stored, read before anyone resends.
        let log = read_log(&server.http, document, 1 + (round * 37) % 500).await;
        let ordered = check_log(&log, &writers);
        let expected: Vec<Option<(u64, Option<u64>)>> = writers
            .iter()
            .map(|w| {
                w.unanswered
                    .map(|k| (k, ordered.get(&(w.client_id.clone(), k)).copied()))
            })
            .collect();
        let resends_before: Vec<usize> = writers.iter().map(|w| w.resends.len()).collect();

        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        // One writer of each killed round loses an ack (its resend must be a duplicate).
        let abandoning = (!last_round).then(|| rng.range(0, WRITERS as u64) as usize);
        let abandon_after = rng.range(1, 3) as usize;
        let tasks: Vec<_> = writers
            .drain(..)
            .enumerate()
            .map(|(index, w)| {
                tokio::spawn(w.run(
                    server.ws.clone(),
                    document.to_owned(),
                    stop.clone(),
                    acks.clone(),
                    (abandoning == Some(index)).then_some(abandon_after),
                ))
            })
            .collect();

        let target = rng.range(12, 80) as usize;
        let deadline = Instant::now() + WAIT;
        while acks.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {} of {target} acks within {WAIT:?}\n{}",
                acks.load(Ordering::SeqCst),
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if last_round {
            stop.store(true, Ordering::SeqCst);
        } else {
            tokio::time::sleep(Duration::from_micros(rng.range(0, 20_000))).await;
            server.kill();
            kills += 1;
        }
        for task in tasks {
            let writer = tokio::time::timeout(WAIT * 2, task)
                .await
                .expect("writers end in time")
                .expect("writer task");
            writers.push(writer);
        }

        // The resends of this round: exactly once, and a duplicate exactly when stored.
        for (index, writer) in writers.iter().enumerate() {
            let Some((client_seq, stored)) = expected[index] else {
                continue;
            };
            let Some(&(resent, sequence_num, duplicate)) =
                writer.resends.get(resends_before[index])
            else {
                // The kill came before the resend was answered: it is still unanswered.
                assert_eq!(writer.unanswered, Some(client_seq));
                continue;
            };
            assert_eq!(resent, client_seq);
            match stored {
                Some(stored) => {
                    assert!(duplicate, "{} {client_seq}: stored as #{stored}, but applied again as #{sequence_num}", writer.client_id);
                    assert_eq!(sequence_num, stored);
                    duplicates += 1;
                }
                None => {
                    assert!(
                        !duplicate,
                        "{} {client_seq}: not stored, yet a duplicate",
                        writer.client_id
                    );
                    assert!(sequence_num > log.len() as u64);
                }
            }
        }

        if !last_round {
            server =
                ServerProcess::start(&database, &dir.0, &format!("server-{}", round + 1)).await;
        }
    }

    // The end: nothing unanswered, the log and the document agree with every ack.
    assert!(writers.iter().all(|w| w.unanswered.is_none()));
    assert!(duplicates > 0, "no resend was answered as a duplicate");
    let log = read_log(&server.http, document, 1000).await;
    let ordered = check_log(&log, &writers);
    let acked: usize = writers.iter().map(|w| w.acked.len()).sum();
    assert_eq!(ordered.len(), acked, "every edit in the log was acked once");
    assert_eq!(log.len(), acked + 1, "the create and the acked edits");
    let snapshot: Value = get_json(format!("{}/api/documents/{document}", server.http)).await;
    assert_eq!(snapshot["sequenceNum"], log.len() as u64);
    let keys: HashSet<String> = snapshot["document"]
        .as_object()
        .expect("the document is an object")
        .keys()
        .cloned()
        .collect();
    let expected: HashSet<String> = ordered
        .keys()
        .map(|(client, seq)| format!("{client}-{seq}"))
        .collect();
    assert_eq!(
        keys, expected,
        "the document holds exactly the ordered edits"
    );
    eprintln!(
        "{kills} kills, {acked} acked edits, {duplicates} resends answered as duplicates, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sigterm_closes_websockets_with_a_close_frame_and_exits_zero() {
    let dir = TempDir::new("sigterm");
    let database = format!("sqlite:{}", dir.0.join("events.db").display());
    let mut server = ServerProcess::start(&database, &dir.0, "server").await;
    let (mut alice, _) = Ws::open_at(&server.ws, "closing", "alice").await;
    let (mut bob, _) = Ws::open_at(&server.ws, "closing-too", "bob").await;

    server.terminate();
    for ws in [&mut alice, &mut bob] {
        match ws.receive(WAIT).await {
            Received::Closed(Some(code)) => assert_eq!(code, 1001, "going away"),
            other => panic!("expected a close frame, got {other:?}\n{}", server.logs()),
        }
    }
    let status = wait_exit(&mut server.child, WAIT)
        .await
        .unwrap_or_else(|| panic!("no exit within {WAIT:?} of SIGTERM\n{}", server.logs()));
    assert_eq!(status.code(), Some(0), "{}", server.logs());
}

/// Runs the binary to its exit; returns the exit code and stderr.
async fn run_to_exit(args: &[&str], dir: &Path, tag: &str) -> (Option<i32>, String) {
    let stderr = dir.join(format!("{tag}.stderr"));
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("the server binary starts");
    let status = wait_exit(&mut child, WAIT).await;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.unwrap_or_else(|| panic!("{args:?}: still running after {WAIT:?}"));
    (status.code(), read(&stderr))
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_exits_2() {
    let dir = TempDir::new("no-db");
    let missing = dir.0.join("missing").join("events.db");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let database = format!("sqlite:{}", missing.display());
    let (code, stderr) = run_to_exit(
        &["--listen", &listen, "--database", &database],
        &dir.0,
        "sqlite",
    )
    .await;
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot open the database") && stderr.contains("missing"),
        "stderr: {stderr}"
    );
    assert!(!missing.exists());

    // Nothing listens on a port that was just free: refused at once, also exit 2.
    let database = format!("postgres://postgres@127.0.0.1:{}/none", free_port());
    let (code, stderr) = run_to_exit(
        &["--listen", &listen, "--database", &database],
        &dir.0,
        "postgres",
    )
    .await;
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot open the database"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn a_busy_port_exits_3() {
    let dir = TempDir::new("busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let database = format!("sqlite:{}", dir.0.join("events.db").display());
    let (code, stderr) = run_to_exit(
        &["--listen", &listen, "--database", &database],
        &dir.0,
        "busy",
    )
    .await;
    assert_eq!(code, Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "stderr: {stderr}"
    );
    drop(taken);
}
