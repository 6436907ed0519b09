//! The kit against the reference server (SQLite and PostgreSQL, with and without snapshots and
//! authentication), and against a broken fake server, which it must catch.
//!
//! The PostgreSQL run needs `EVENTSYNC_TEST_POSTGRES_URL` (run under `scripts/with-postgres.sh`);
//! without it the test fails, unless `EVENTSYNC_SKIP_POSTGRES=1` is set.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventsync_conformance::{render, run, CheckResult, Options, Outcome};
use eventsync_server::app::{self, Config, RunningServer};
use eventsync_server::auth::{Authority, Claims, Rights, ANY_DOCUMENT};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The auth checks, skipped without a token (53: presence with a read-only token).
const AUTH: &[u32] = &[30, 31, 32, 33, 53];
/// The snapshot check, skipped by a server that keeps its history.
const SNAPSHOTS: u32 = 29;
/// The presence timeout check, skipped unless the kit is told the server's timeout.
const PRESENCE_TIMEOUT: u32 = 54;
/// The rules check, skipped unless the kit is told a member the server's rules refuse.
const RULES: u32 = 57;
/// Every check of the kit.
const CHECKS: usize = 57;
/// The member the servers of these tests refuse, through a JSON Schema (11.1).
const REFUSED: &str = "refusedByRules";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "eventsync-conf-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sqlite(&self) -> String {
        format!("sqlite:{}", self.0.join("events.db").display())
    }

    /// A `--schema` for every document that refuses [`REFUSED`], written in this folder.
    fn refusing_schema(&self) -> String {
        let file = self.0.join("refuse.schema.json");
        let schema = serde_json::json!({"not": {"required": [REFUSED]}});
        std::fs::write(&file, schema.to_string()).unwrap();
        format!("*={}", file.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(config: Config) -> (RunningServer, String) {
    let server = app::start(&config)
        .await
        .expect("the reference server starts");
    let url = format!("http://{}", server.addr);
    (server, url)
}

/// Runs the kit; asserts no failure, and that exactly `skipped` were skipped.
async fn run_clean(options: &Options, skipped: &[u32]) -> Vec<CheckResult> {
    let results = run(options).await;
    let report = render(&results);
    println!("{report}");
    assert_eq!(results.len(), CHECKS, "{report}");
    for r in &results {
        match &r.outcome {
            Outcome::Pass => assert!(!skipped.contains(&r.number), "{} ran\n{report}", r.number),
            Outcome::Fail(reason) => {
                panic!("check {} {} failed: {reason}\n{report}", r.number, r.name)
            }
            Outcome::Skipped(reason) => assert!(
                skipped.contains(&r.number),
                "check {} {} skipped: {reason}\n{report}",
                r.number,
                r.name
            ),
        }
    }
    results
}

/// What a run without a token, a presence timeout or snapshots skips.
fn without_auth_and_snapshots() -> Vec<u32> {
    let mut skipped = without_auth_and_timeout();
    skipped.push(SNAPSHOTS);
    skipped
}

/// What a run without a token or a presence timeout skips (and without rules).
fn without_auth_and_timeout() -> Vec<u32> {
    let mut skipped = AUTH.to_vec();
    skipped.push(PRESENCE_TIMEOUT);
    skipped.push(RULES);
    skipped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_on_sqlite_passes() {
    let dir = TempDir::new("sqlite");
    let mut config = Config::for_database(dir.sqlite());
    config.schemas = vec![dir.refusing_schema()];
    let (server, url) = start(config).await;
    let mut options = Options::new(url);
    // The defaults keep every event: no page may start with a snapshot (check 39).
    options.retains_history = true;
    options.refused_member = Some(REFUSED.into());
    let mut skipped = without_auth_and_snapshots();
    skipped.retain(|n| *n != RULES);
    run_clean(&options, &skipped).await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_with_compaction_serves_snapshots() {
    let dir = TempDir::new("snap");
    let mut config = Config::for_database(dir.sqlite());
    config.snapshot_every = 10;
    config.retain_events = Some(5);
    let (server, url) = start(config).await;
    let mut options = Options::new(url);
    options.expect_snapshots = true;
    run_clean(&options, &without_auth_and_timeout()).await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_with_auth_passes_the_auth_checks() {
    let dir = TempDir::new("auth");
    let mut config = Config::for_database(dir.sqlite());
    config.auth_secret = Some("conformance-secret".into());
    // Short, so that the presence timeout check (54) runs.
    config.presence_timeout = 2;
    config.schemas = vec![dir.refusing_schema()];
    let (server, url) = start(config).await;
    let authority = Authority::new("conformance-secret");
    let token = |client_id: &str, rights| {
        authority.issue(&Claims {
            document_id: ANY_DOCUMENT.into(),
            client_id: client_id.into(),
            rights,
            exp: 4_000_000_000,
        })
    };
    let mut options = Options::new(url.clone());
    options.token = Some(token("conformance", Rights::Write));
    // A second clientId for the presence checks, which may only read.
    options.read_token = Some(token("conformance-reader", Rights::Read));
    options.presence_timeout = Some(Duration::from_secs(2));
    options.refused_member = Some(REFUSED.into());
    run_clean(&options, &[SNAPSHOTS]).await;
    // Without a token, against a server that wants one, the kit fails (and says why).
    let mut options = Options::new(url);
    options.only = vec![2];
    let results = run(&options).await;
    assert!(
        matches!(&results[0].outcome, Outcome::Fail(reason) if reason.contains("unauthorized")),
        "{}",
        render(&results)
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_on_postgres_passes() {
    let url = match std::env::var("EVENTSYNC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("EVENTSYNC_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("PostgreSQL test skipped (EVENTSYNC_SKIP_POSTGRES=1)");
            return;
        }
        _ => panic!(
            "EVENTSYNC_TEST_POSTGRES_URL is not set: run under \
             `bash scripts/with-postgres.sh cargo test -p eventsync-conformance` \
             (or set EVENTSYNC_SKIP_POSTGRES=1 to skip it)"
        ),
    };
    let mut config = Config::for_database(url);
    config.snapshot_every = 10;
    config.retain_events = Some(5);
    let (server, base) = start(config).await;
    let mut options = Options::new(base);
    options.expect_snapshots = true;
    run_clean(&options, &without_auth_and_timeout()).await;
    server.shutdown(Duration::from_secs(5)).await;
}

/// A broken server: its `welcome` names protocol version 2 (not offered), and its catch-up skips
/// `sequenceNum` 2. HTTP requests get no valid answer.
async fn broken_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let frame: serde_json::Value =
                        serde_json::from_str(text.as_str()).unwrap_or_default();
                    let answer = match frame["type"].as_str() {
                        Some("hello") => serde_json::json!({
                            "type": "welcome", "protocolVersion": 2, "documentId": "x",
                            "clientId": frame["clientId"], "headSeq": 0
                        }),
                        _ => serde_json::json!({ "type": "events", "events": [], "headSeq": 3 }),
                    };
                    if ws
                        .send(Message::Text(answer.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_server_fails() {
    let url = broken_server().await;
    let mut options = Options::new(url);
    options.timeout = Duration::from_secs(2);
    options.only = vec![1, 2, 10, 25];
    let results = run(&options).await;
    let report = render(&results);
    println!("{report}");
    assert_eq!(results.len(), 4, "{report}");
    for r in &results {
        assert!(
            matches!(r.outcome, Outcome::Fail(_)),
            "check {} did not fail\n{report}",
            r.number
        );
    }
    let handshake = &results[1];
    assert!(
        handshake.outcome.reason().contains("protocolVersion 2"),
        "{report}"
    );
    assert!(
        report.ends_with("conformance: 0 passed, 4 failed, 0 skipped\n"),
        "{report}"
    );
}

/// A server that speaks the handshake right but numbers events with a gap: 1, 3, 4, ...
#[allow(clippy::result_large_err)] // the callback type is tungstenite's
async fn gapped_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    type Logs = std::collections::HashMap<String, (u64, Vec<serde_json::Value>)>;
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Logs::new()));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let logs = logs.clone();
            tokio::spawn(async move {
                let path = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                let seen = path.clone();
                let callback =
                    move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp| {
                        *seen.lock().unwrap() = req.uri().path().to_string();
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let doc = path
                    .lock()
                    .unwrap()
                    .trim_start_matches("/sync/")
                    .to_string();
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let frame: serde_json::Value =
                        serde_json::from_str(text.as_str()).unwrap_or_default();
                    let answers = {
                        let mut answers = Vec::new();
                        let mut logs = logs.lock().unwrap();
                        let (next, log) = logs.entry(doc.clone()).or_insert((1, Vec::new()));
                        match frame["type"].as_str() {
                            Some("hello") => answers.push(serde_json::json!({
                                "type": "welcome", "protocolVersion": 1, "documentId": doc,
                                "clientId": frame["clientId"], "headSeq": 0
                            })),
                            Some("submit") => {
                                let mut acks = Vec::new();
                                for edit in frame["edits"].as_array().cloned().unwrap_or_default() {
                                    let seq = *next;
                                    *next += if seq == 1 { 2 } else { 1 };
                                    let client =
                                        frame["clientId"].as_str().unwrap_or("conf-writer");
                                    let event = serde_json::json!({
                                        "id": format!("e{seq}"), "documentId": doc,
                                        "timestamp": "2026-01-01T00:00:00Z", "sequenceNum": seq,
                                        "operation": edit["operation"], "diff": { "patch": edit["patch"] },
                                        "vectorClock": { client: seq }, "clientId": client,
                                        "clientSeq": edit["clientSeq"]
                                    });
                                    log.push(event.clone());
                                    answers.push(
                                        serde_json::json!({ "type": "event", "events": [event] }),
                                    );
                                    acks.push(serde_json::json!({ "clientSeq": edit["clientSeq"], "sequenceNum": seq }));
                                }
                                answers.push(serde_json::json!({ "type": "ack", "edits": acks }));
                            }
                            Some("ping") => answers.push(
                                serde_json::json!({ "type": "pong", "nonce": frame["nonce"] }),
                            ),
                            _ => answers.push(serde_json::json!({
                                "type": "events", "events": log.clone(), "headSeq": *next - 1
                            })),
                        }
                        answers
                    };
                    for answer in answers {
                        if ws
                            .send(Message::Text(answer.to_string().into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_gaps_fails() {
    let url = gapped_server().await;
    let mut options = Options::new(url);
    options.timeout = Duration::from_secs(2);
    options.only = vec![2, 10, 17];
    let results = run(&options).await;
    let report = render(&results);
    println!("{report}");
    assert!(
        matches!(results[0].outcome, Outcome::Pass),
        "the handshake is right\n{report}"
    );
    for r in &results[1..] {
        assert!(
            matches!(&r.outcome, Outcome::Fail(reason) if reason.contains("where 2 was due")),
            "check {} did not catch the gap\n{report}",
            r.number
        );
    }
}
