//! Webhooks (`src/webhook.rs`): every committed event is POSTed, signed, to a real HTTP
//! receiver on loopback, at least once and in order per document, through receiver outages and
//! a SIGKILLed server; the outbox is written only when webhooks are on, opens databases made
//! before it existed, and ignores compaction. PostgreSQL: two server processes on one database
//! share the outbox (run under scripts/with-postgres.sh, or EVENTSYNC_SKIP_POSTGRES=1).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use eventsync::protocol::{Operation, ServerMessage};
use eventsync_server::app::Config;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::process::ServerProcess;
use support::{api, edit, http, read_log, unique, TempDir, TestServer, Ws};

const SECRET: &str = "whsec_test_secret";

/// Every wait for deliveries is bounded by this.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// One request the receiver accepted (its signature verified).
#[derive(Debug, Clone)]
struct Delivery {
    document: String,
    seq: u64,
    event_id: String,
    timestamp: String,
    signature: String,
    body: String,
    at: Instant,
}

/// What the receiver saw, shared by its incarnations on one port.
#[derive(Default)]
struct Log {
    accepted: Vec<Delivery>,
    /// Requests refused because a check failed (should stay empty).
    bad: Vec<String>,
    /// `(document, seq)` answered 2xx.
    acked: HashSet<(String, u64)>,
    /// Requests for seq N+1 that came before N was answered 2xx (should stay empty).
    out_of_order: Vec<(String, u64)>,
    /// Requests answered 500 on purpose.
    failed_on_purpose: u64,
    requests: u64,
}

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Log>>,
    /// Answer 500 to every n-th request (0: never).
    fail_every: u64,
    /// Take this long to answer.
    delay: Duration,
}

/// A real HTTP receiver on 127.0.0.1 that verifies every request.
struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The receiver's checks; `Err` says which failed.
fn check(headers: &HeaderMap, body: &str) -> Result<(String, u64, String), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("no {name} header"))
    };
    if header("content-type")? != "application/json" {
        return Err("content-type".into());
    }
    let timestamp = header("eventsync-timestamp")?;
    let signature = header("eventsync-signature")?;
    let at: u64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    if unix_now().abs_diff(at) > 300 {
        return Err(format!("timestamp {at} too far from now"));
    }
    let hex = signature
        .strip_prefix("v1=")
        .ok_or("signature without v1=")?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("signature format: {signature}"));
    }
    if hmac_hex(SECRET, &format!("{timestamp}.{body}")) != hex {
        return Err("bad signature".into());
    }
    let payload: Value = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
    let event = &payload["event"];
    let document = payload["documentId"].as_str().ok_or("no documentId")?;
    if payload["type"] != "event" || event["documentId"] != document {
        return Err(format!("body shape: {payload}"));
    }
    let event_id = event["id"].as_str().ok_or("no event id")?.to_owned();
    if header("eventsync-event-id")? != event_id {
        return Err("Eventsync-Event-Id is not the event's id".into());
    }
    let seq = event["sequenceNum"].as_u64().ok_or("no sequenceNum")?;
    Ok((document.to_owned(), seq, event_id))
}

async fn receive(
    axum::extract::State(shared): axum::extract::State<Shared>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let checked = check(&headers, &body);
    let (document, seq, event_id) = match checked {
        Ok(found) => found,
        Err(why) => {
            shared.log.lock().unwrap().bad.push(why);
            return StatusCode::BAD_REQUEST;
        }
    };
    let fail = {
        let mut log = shared.log.lock().unwrap();
        log.requests += 1;
        if seq > 1 && !log.acked.contains(&(document.clone(), seq - 1)) {
            log.out_of_order.push((document.clone(), seq));
        }
        let fail = shared.fail_every > 0 && log.requests % shared.fail_every == 0;
        if fail {
            log.failed_on_purpose += 1;
        } else {
            log.accepted.push(Delivery {
                document: document.clone(),
                seq,
                event_id,
                timestamp: headers["eventsync-timestamp"].to_str().unwrap().to_owned(),
                signature: headers["eventsync-signature"].to_str().unwrap().to_owned(),
                body,
                at: Instant::now(),
            });
        }
        fail
    };
    tokio::time::sleep(shared.delay).await;
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    shared.log.lock().unwrap().acked.insert((document, seq));
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Listens on `port` (0: any) of 127.0.0.1.
    async fn start(port: u16, shared: Shared) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            task,
        }
    }

    fn new_shared(fail_every: u64, delay: Duration) -> Shared {
        Shared {
            log: Arc::default(),
            fail_every,
            delay,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Stops listening and closes its connections.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.shared.log.lock().unwrap()
    }
}

/// Waits until every `(document, 1..=head)` of `heads` was accepted; then checks that the
/// first deliveries of each document came in `sequenceNum` order, that nothing was refused and
/// that no event came before its predecessor was acknowledged.
async fn wait_delivered(shared: &Shared, heads: &BTreeMap<String, u64>) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let missing: Vec<(String, u64)> = {
            let log = shared.log.lock().unwrap();
            let seen: HashSet<(&str, u64)> = log
                .accepted
                .iter()
                .map(|d| (d.document.as_str(), d.seq))
                .collect();
            heads
                .iter()
                .flat_map(|(doc, head)| (1..=*head).map(move |seq| (doc.clone(), seq)))
                .filter(|(doc, seq)| !seen.contains(&(doc.as_str(), *seq)))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {DELIVERY_WAIT:?}: {} events, first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = shared.log.lock().unwrap();
    assert!(log.bad.is_empty(), "refused requests: {:?}", log.bad);
    assert!(
        log.out_of_order.is_empty(),
        "sent before the previous event was acknowledged: {:?}",
        log.out_of_order
    );
    for document in heads.keys() {
        let mut firsts = Vec::new();
        for delivery in log.accepted.iter().filter(|d| &d.document == document) {
            if !firsts.contains(&delivery.seq) {
                firsts.push(delivery.seq);
            }
        }
        let sorted: Vec<u64> = (1..=heads[document]).collect();
        assert_eq!(firsts, sorted, "first deliveries of {document}");
    }
}

fn with_webhook(url: String) -> impl FnOnce(&mut Config) {
    move |config| {
        config.webhook = Some(url);
        config.webhook_secret = Some(SECRET.into());
        config.rate_limit = 100_000;
        config.rate_burst = 100_000;
    }
}

/// Submits one edit over the WebSocket and returns its `sequenceNum`.
async fn order(ws: &mut Ws, client_seq: u64, base: u64, operation: Operation, patch: Value) -> u64 {
    ws.submit(vec![edit(client_seq, base, operation, patch)])
        .await;
    match ws.answer().await.1 {
        ServerMessage::Ack { edits } => edits[0].sequence_num,
        other => panic!("edit {client_seq} not acked: {other:?}"),
    }
}

/// WebSocket edits, HTTP writes and a write of the `documents` table: every event delivered,
/// signed, in order; the ids are the log's; a wrong secret does not verify; the delay from
/// the write to the delivery is measured.
async fn edits_and_writes_are_delivered(database: &str, outside_sql: bool) {
    let receiver = Receiver::start(0, Receiver::new_shared(0, Duration::ZERO)).await;
    let server = TestServer::start_on(database, with_webhook(receiver.url())).await;
    let edited = unique("wh-ws");
    let written = unique("wh-http");

    let (mut alice, _) = Ws::open(&server, &edited, "alice").await;
    let create = json!([{"op": "add", "path": "", "value": {"items": []}}]);
    let mut head = order(&mut alice, 1, 0, Operation::Create, create).await;
    for n in 2..=20 {
        let add = json!([{"op": "add", "path": "/items/-", "value": n}]);
        head = order(&mut alice, n, head, Operation::Update, add).await;
    }

    // HTTP writes, one at a time, each waited for: the commit-to-delivery delay.
    let mut delays = Vec::new();
    for n in 1..=40u64 {
        let started = Instant::now();
        let (status, answer) = if n == 1 {
            api::put(&server, &written, &json!({"n": 1})).await
        } else {
            api::patch(
                &server,
                &written,
                &json!([{"op": "replace", "path": "/n", "value": n}]),
            )
            .await
        };
        assert_eq!(status, 200, "{answer}");
        let seq = answer["sequenceNum"].as_u64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let delivered_at = loop {
            let at = receiver
                .log()
                .accepted
                .iter()
                .find(|d| d.document == written && d.seq == seq)
                .map(|d| d.at);
            if let Some(at) = at {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "#{seq} of {written} not delivered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        delays.push(delivered_at - started);
    }
    delays.sort();
    let p95 = delays[delays.len() * 95 / 100 - 1];
    eprintln!(
        "write-to-delivery delay: median {:?}, p95 {p95:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(p95 < Duration::from_secs(1), "p95 {p95:?}");

    let mut heads = BTreeMap::from([(edited.clone(), head), (written.clone(), 40)]);
    if outside_sql {
        let outside = unique("wh-sql");
        let sql = format!(
            "INSERT INTO documents (document_id, body, head_seq, vector) \
             VALUES ('{outside}', '{{\"from\": \"sql\"}}', 0, '{{}}')"
        );
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(database).await.unwrap();
        sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
        pool.close().await;
        heads.insert(outside, 1);
    }
    wait_delivered(&receiver.shared, &heads).await;

    // The deliveries carry the log's events (the id is the idempotency key).
    for (document, head) in [(&edited, head), (&written, 40)] {
        let log = read_log(&server.http, document, 100).await;
        assert_eq!(log.len() as u64, head);
        let receiver_log = receiver.log();
        for event in &log {
            let delivery = receiver_log
                .accepted
                .iter()
                .find(|d| &d.document == document && d.seq == event.sequence_num)
                .unwrap();
            assert_eq!(delivery.event_id, event.id);
            let payload: Value = serde_json::from_str(&delivery.body).unwrap();
            assert_eq!(payload["event"]["clientId"], event.client_id.as_str());
        }
    }
    // A receiver with another secret refuses them: the signature is the secret's.
    let receiver_log = receiver.log();
    let one = &receiver_log.accepted[0];
    let hex = one.signature.strip_prefix("v1=").unwrap();
    assert_eq!(
        hmac_hex(SECRET, &format!("{}.{}", one.timestamp, one.body)),
        hex
    );
    assert_ne!(
        hmac_hex("another secret", &format!("{}.{}", one.timestamp, one.body)),
        hex
    );
    assert!(eventsync_server::webhook::verify(
        SECRET,
        &one.timestamp,
        &one.signature,
        &one.body,
        unix_now()
    ));
    assert!(!eventsync_server::webhook::verify(
        "another secret",
        &one.timestamp,
        &one.signature,
        &one.body,
        unix_now()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_edits_and_writes_are_delivered_signed_in_order() {
    let dir = TempDir::new("webhooks");
    edits_and_writes_are_delivered(&dir.sqlite_url(), true).await;
}

/// The receiver goes away and comes back on the same port (and then fails every 4th request)
/// while writes keep coming: every committed event is delivered, in order per document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_receiver_outage() {
    let shared = Receiver::new_shared(4, Duration::ZERO);
    // The first incarnation answers every request, into the same log as the second.
    let first = Shared {
        fail_every: 0,
        ..shared.clone()
    };
    let receiver = Receiver::start(0, first).await;
    let port = receiver.addr.port();
    let server = TestServer::start_with(with_webhook(receiver.url())).await;
    let documents: Vec<String> = (0..3).map(|i| unique(&format!("wh-outage-{i}"))).collect();
    let writing = {
        let documents = documents.clone();
        let base = server.http.clone();
        tokio::spawn(async move {
            let client = http();
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(4) {
                n += 1;
                for document in &documents {
                    let answer = client
                        .put(format!("{base}/api/documents/{document}"))
                        .json(&json!({"n": n}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    receiver.stop().await;
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted_at = Instant::now();
    let receiver = Receiver::start(port, shared.clone()).await;
    writing.await.unwrap();
    let mut heads = BTreeMap::new();
    for document in &documents {
        heads.insert(
            document.clone(),
            read_log(&server.http, document, 1000).await.len() as u64,
        );
    }
    wait_delivered(&shared, &heads).await;
    let log = receiver.log();
    assert!(
        log.failed_on_purpose > 0,
        "the receiver failed some requests"
    );
    // The receiver was really gone (nothing arrived meanwhile), and what was written then came
    // after it was back.
    assert!(!log
        .accepted
        .iter()
        .any(|d| d.at > stopped_at && d.at < restarted_at));
    let later = log.accepted.iter().filter(|d| d.at > restarted_at).count();
    assert!(later > 0, "nothing was delivered after the outage");
    eprintln!(
        "{} events, {} deliveries accepted ({later} after the outage), {} failed on purpose",
        heads.values().sum::<u64>(),
        log.accepted.len(),
        log.failed_on_purpose
    );
}

/// The server binary is SIGKILLed while its outbox has a backlog (a slow receiver) and
/// restarted on the same database: every committed event is delivered afterwards, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_killed_server() {
    let dir = TempDir::new("webhooks-kill");
    let database = dir.sqlite_url();
    let shared = Receiver::new_shared(0, Duration::from_millis(50));
    let receiver = Receiver::start(0, shared.clone()).await;
    let url = receiver.url();
    let flags = ["--webhook", url.as_str(), "--webhook-secret", SECRET];
    let mut server = ServerProcess::start_with_args(&database, &dir.0, "first", &flags).await;
    let documents: Vec<String> = (0..4).map(|i| unique(&format!("wh-kill-{i}"))).collect();
    let client = http();
    for n in 1..=30u64 {
        for document in &documents {
            let answer = client
                .put(format!("{}/api/documents/{document}", server.http))
                .json(&json!({"n": n}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    }
    let before = receiver.log().accepted.len();
    server.kill();
    assert!(
        before < 120,
        "the kill came after every delivery ({before})"
    );
    let server = ServerProcess::start_with_args(&database, &dir.0, "second", &flags).await;
    let heads: BTreeMap<String, u64> = documents.iter().map(|d| (d.clone(), 30)).collect();
    for document in &documents {
        assert_eq!(read_log(&server.http, document, 1000).await.len(), 30);
    }
    wait_delivered(&shared, &heads).await;
    eprintln!(
        "{before} of 120 delivered before the kill, {} deliveries in all",
        receiver.log().accepted.len()
    );
}

/// Without `--webhook` no outbox row is written; a database whose outbox table is missing (made
/// before webhooks) opens and delivers; compaction does not touch the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_written_only_with_webhooks_and_ignores_compaction() {
    let dir = TempDir::new("webhooks-off");
    let database = dir.sqlite_url();
    let document = unique("wh-off");
    let mut server = TestServer::start_on(&database, |_| {}).await;
    for n in 1..=3u64 {
        assert_eq!(api::put(&server, &document, &json!({"n": n})).await.0, 200);
    }
    server.stop().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no outbox rows without --webhook");
    // As a database of an older server: no outbox table.
    sqlx::raw_sql("DROP TABLE webhook_outbox")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let receiver = Receiver::start(0, Receiver::new_shared(0, Duration::ZERO)).await;
    let server = TestServer::start_on(&database, |config| {
        with_webhook(receiver.url())(config);
        config.snapshot_every = 3;
        config.retain_events = Some(1);
    })
    .await;
    for n in 4..=20u64 {
        assert_eq!(api::put(&server, &document, &json!({"n": n})).await.0, 200);
    }
    // Events 1..=3 were appended with webhooks off: they are not in the outbox.
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let seqs: Vec<u64> = receiver.log().accepted.iter().map(|d| d.seq).collect();
        let mut firsts: Vec<u64> = Vec::new();
        for seq in &seqs {
            if !firsts.contains(seq) {
                firsts.push(*seq);
            }
        }
        if firsts.len() >= 17 {
            assert_eq!(firsts, (4..=20).collect::<Vec<u64>>());
            break;
        }
        assert!(Instant::now() < deadline, "delivered only {seqs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, page) = api::events(&server, &document, "?after=0").await;
    assert!(
        page["snapshot"].is_object(),
        "the log was compacted: {page}"
    );
}

/// `--webhook` without `--webhook-secret` refuses to start, with a message naming the flag.
#[tokio::test]
async fn a_webhook_without_a_secret_refuses_to_start() {
    let dir = TempDir::new("webhooks-nosecret");
    let output = std::process::Command::new(support::process::BINARY)
        .args(["--database", &dir.sqlite_url(), "--listen", "127.0.0.1:0"])
        .args(["--webhook", "http://127.0.0.1:9/hook"])
        .env_remove("EVENTSYNC_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--webhook-secret"), "{stderr}");

    let mut config = Config::for_database(dir.sqlite_url());
    config.webhook = Some("http://127.0.0.1:9/hook".into());
    let refused = eventsync_server::app::start(&config).await;
    let Err(err) = refused else {
        panic!("started without a secret")
    };
    assert!(err.to_string().contains("--webhook-secret"), "{err}");
}

#[test]
fn help_does_not_show_the_webhook_secret() {
    let output = std::process::Command::new(support::process::BINARY)
        .arg("--help")
        .env("EVENTSYNC_WEBHOOK_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("--webhook-secret"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_edits_and_writes_are_delivered_signed_in_order() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    edits_and_writes_are_delivered(&url, true).await;
}

/// Two server processes on one PostgreSQL database, both delivering, writes going to both:
/// each event delivered, each document in order (the leases keep them apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_share_the_outbox_in_order() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let shared = Receiver::new_shared(0, Duration::from_millis(2));
    let receiver = Receiver::start(0, shared.clone()).await;
    let one = TestServer::start_on(&url, with_webhook(receiver.url())).await;
    let two = TestServer::start_on(&url, with_webhook(receiver.url())).await;
    let documents: Vec<String> = (0..3).map(|i| unique(&format!("wh-pg2-{i}"))).collect();
    for n in 1..=20u64 {
        for (i, document) in documents.iter().enumerate() {
            let server = if (n as usize + i) % 2 == 0 {
                &one
            } else {
                &two
            };
            let (status, answer) = api::put(server, document, &json!({"n": n})).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    let heads: BTreeMap<String, u64> = documents.iter().map(|d| (d.clone(), 20)).collect();
    wait_delivered(&shared, &heads).await;
}
