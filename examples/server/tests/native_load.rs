//! Many native clients editing one document at once through the real server.

mod support;

use std::time::Duration;

use eventsync::native::Backoff;
use eventsync::SyncClient;
use eventsync_server::app::{self, Config};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use support::{get_json, TempDir, WAIT};

/// How long the clients may take to send their edits and catch up. The work is CPU-bound:
/// each client rebases its pending edits over every remote event, and replays them; about
/// 60 s of CPU on two cores with 50 clients, and twice the wall time on a machine busy with
/// other builds. The bound is for a hang, not a speed target (that is `scripts/bench.sh`).
const SETTLE: Duration = Duration::from_secs(300);

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).unwrap()
}

fn random_edit(rng: &mut ChaCha8Rng, doc: &Value, me: usize) -> Value {
    let items = doc["items"].as_array().map_or(0, Vec::len);
    match rng.random_range(0..5) {
        0 if items > 0 => {
            json!([{"op": "remove", "path": format!("/items/{}", rng.random_range(0..items))}])
        }
        1 if items > 1 => {
            json!([{"op": "move", "from": format!("/items/{}", rng.random_range(0..items)), "path": format!("/items/{}", rng.random_range(0..items))}])
        }
        2 => {
            json!([{"op": "add", "path": format!("/counters/c{}", rng.random_range(0..10)), "value": rng.random_range(0..1000)}])
        }
        3 => {
            json!([{"op": "add", "path": format!("/by/{me}"), "value": rng.random_range(0..1000)}])
        }
        _ => {
            json!([{"op": "add", "path": format!("/items/{}", rng.random_range(0..=items)), "value": format!("{me}-{}", rng.random_range(0..1000))}])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_making_a_hundred_random_edits_each_converge() {
    let dir = TempDir::new("load");
    let server = app::start(&Config::for_database(dir.sqlite_url()))
        .await
        .unwrap();
    let ws = format!("ws://{}", server.addr);
    let client = |id: &str| {
        SyncClient::builder(ws.clone(), "load")
            .client_id(id)
            .backoff(Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
            })
            .connect()
            .unwrap()
    };
    let seed: u64 = std::env::var("EVENTSYNC_LOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let creator = client("creator");
    creator
        .create(json!({"items": [], "counters": {}, "by": {}}))
        .unwrap();
    tokio::time::timeout(WAIT, creator.flush())
        .await
        .unwrap()
        .unwrap();
    let count: usize = std::env::var("EVENTSYNC_LOAD_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for me in 0..count {
        let c = client(&format!("client-{me}"));
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + me as u64);
            tokio::time::timeout(WAIT, c.sync_state())
                .await
                .expect("synced")
                .unwrap();
            for _ in 0..100 {
                let doc = c.document().unwrap();
                c.edit(patch(random_edit(&mut rng, &doc, me)))
                    .expect("a valid edit");
                if rng.random_bool(0.1) {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
                }
            }
            tokio::time::timeout(SETTLE, c.flush())
                .await
                .expect("flushed")
                .unwrap();
            c
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    for c in &clients {
        tokio::time::timeout(SETTLE, c.sync_state())
            .await
            .expect("synced")
            .unwrap();
    }
    let url = format!("http://{}/api/documents/load", server.addr);
    let body: Value = get_json(url).await;
    eprintln!(
        "{count} clients converged in {:?} at sequenceNum {}",
        started.elapsed(),
        body["sequenceNum"]
    );
    for c in &clients {
        assert_eq!(c.pending_count(), 0);
        assert_eq!(
            c.document().unwrap(),
            body["document"],
            "client {} differs (seed {seed})",
            c.client_id()
        );
    }
    for c in &clients {
        c.close().await;
    }
    server.shutdown(WAIT).await;
}
