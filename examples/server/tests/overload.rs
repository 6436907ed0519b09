//! Issue 18, overload: what the real server binary queues for a subscriber that stopped reading
//! is bounded in bytes (`--max-queued-bytes`), fast subscribers of the same document keep
//! receiving every event in order meanwhile, and each stalled one, once it reads again, catches
//! up from the store with nothing missing.

mod support;

use std::collections::BTreeMap;

use eventsync::protocol::{ClientMessage, Operation, ServerMessage};
use eventsync::VectorClock;
use serde_json::json;
use support::process::ServerProcess;
use support::{edit, TempDir, Ws, WAIT};

const STALLED: usize = 8;
const EDITS: u64 = 8_000;
const BATCH: u64 = 20;
const QUEUE_BYTES: u64 = 256 * 1024;

/// Connects as `client`, asks for everything after `head` and reads the (empty) answer.
async fn subscriber(ws_base: &str, client: &str) -> Ws {
    let (mut ws, head) = Ws::open_at(ws_base, "hot", client).await;
    ws.send(&ClientMessage::Sync {
        vector_clock: VectorClock::new(),
        after: Some(head),
    })
    .await;
    ws.recv_until(|m| {
        matches!(
            m,
            ServerMessage::Events {
                has_more: false,
                ..
            }
        )
    })
    .await;
    ws
}

/// Reads until the event at `head` arrived; returns the sequence numbers in arrival order.
async fn read_to(ws: &mut Ws, head: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&head) {
        match ws.recv().await {
            ServerMessage::Event { events } | ServerMessage::Events { events, .. } => {
                seen.extend(events.iter().map(|e| e.sequence_num))
            }
            _ => {}
        }
    }
    seen
}

/// Every event after the subscription's start exactly once, in order.
fn assert_gapless(who: &str, seen: &[u64], from: u64, head: u64) {
    let expected: Vec<u64> = (from..=head).collect();
    assert!(
        seen == expected.as_slice(),
        "{who}: {} events, first {:?}, last {:?}; expected {from}..={head}",
        seen.len(),
        seen.first(),
        seen.last()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscribers_cost_a_bounded_queue_and_lose_nothing() {
    let dir = TempDir::new("overload");
    let bound = QUEUE_BYTES.to_string();
    let server = ServerProcess::start_with_args(
        &dir.sqlite_url(),
        &dir.0,
        "overload",
        &["--max-queued-bytes", &bound],
    )
    .await;
    server.create("hot", &json!({"v": ""})).await;

    let (mut writer, head) = Ws::open_at(&server.ws, "hot", "writer").await;
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        stalled.push(subscriber(&server.ws, &format!("stalled-{i}")).await);
    }
    // One subscriber keeps reading while the others do not.
    let mut fast_ws = subscriber(&server.ws, "fast").await;
    let last = head + EDITS;
    let fast = tokio::spawn(async move { read_to(&mut fast_ws, last).await });

    let baseline = server.status_kib("VmRSS");
    let mut peak = baseline;
    let text = "x".repeat(2000);
    let mut acked = BTreeMap::new();
    for batch in 0..EDITS / BATCH {
        let first = head + batch * BATCH;
        let edits = (0..BATCH)
            .map(|k| {
                let seq = first + k + 1;
                let value = format!("{text}{seq}");
                let patch = json!([{"op": "replace", "path": "/v", "value": value}]);
                edit(seq, first, Operation::Update, patch)
            })
            .collect();
        writer.submit(edits).await;
        let ack = writer
            .recv_until(|m| matches!(m, ServerMessage::Ack { .. }))
            .await;
        if let ServerMessage::Ack { edits, .. } = ack {
            acked.extend(edits.iter().map(|r| (r.client_seq, r.sequence_num)));
        }
        if batch % 25 == 0 {
            peak = peak.max(server.status_kib("VmRSS"));
        }
    }
    peak = peak.max(server.status_kib("VmRSS"));
    assert_eq!(acked.len() as u64, EDITS, "every edit acknowledged");

    // The fast subscriber got everything in order while the others stalled.
    let seen = tokio::time::timeout(WAIT, fast).await.unwrap().unwrap();
    assert_gapless("fast", &seen, head + 1, last);

    // Without the bound the server held every batch for the stalled subscribers (about 3x the
    // 16 MB written, whoever stalled); with it, a queue's bound each plus the rest.
    let growth_kib = peak.saturating_sub(baseline);
    let allowed_kib = STALLED as u64 * 2 * QUEUE_BYTES / 1024 + 24 * 1024;
    assert!(
        growth_kib < allowed_kib,
        "server memory grew by {growth_kib} KiB with {STALLED} stalled subscribers (allowed {allowed_kib} KiB)"
    );

    // Each stalled subscriber reads again and gets every event, once, in order.
    for (i, ws) in stalled.iter_mut().enumerate() {
        let seen = read_to(ws, last).await;
        assert_gapless(&format!("stalled-{i}"), &seen, head + 1, last);
    }
}
