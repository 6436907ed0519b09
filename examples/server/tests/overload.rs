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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a version-2 WebSocket, or says how the upgrade was refused: status and error code.
async fn try_upgrade(ws_base: &str) -> Result<Socket, (u16, String)> {
    match tokio_tungstenite::connect_async(format!("{ws_base}/sync")).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or(b"{}")).unwrap();
            let code = body["code"].as_str().unwrap_or("").to_owned();
            Err((response.status().as_u16(), code))
        }
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

#[tokio::test]
async fn connection_and_write_floods_are_refused_with_rate_limited_and_others_are_served() {
    let server = support::TestServer::start_with(|config| {
        config.max_connections_per_address = 6;
        config.max_streams_per_address = 2;
        config.http_write_rate = 5;
        config.http_write_burst = 5;
    })
    .await;
    let put = support::http()
        .put(server.url("/api/documents/hot"))
        .json(&json!({"n": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    // An existing client, connected before the flood.
    let (mut existing, head) = Ws::open(&server, "hot", "existing").await;

    // Five more from the same address fit; the seventh is refused.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(try_upgrade(&server.ws).await.expect("under the limit"));
    }
    let refused = try_upgrade(&server.ws).await.expect_err("over the limit");
    assert_eq!(refused, (429, "rate_limited".to_owned()));

    // SSE streams: at most 2 per address (and they count as connections: close some first).
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stream = |n: u32| {
        support::http()
            .get(server.url(&format!("/api/stream/hot?after={head}&n={n}")))
            .send()
    };
    let (first, second) = (stream(1).await.unwrap(), stream(2).await.unwrap());
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = stream(3).await.unwrap();
    assert_eq!(third.status(), 429);
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");

    // HTTP writes: a token bucket per address (burst 5 here).
    let mut statuses = Vec::new();
    for n in 1..=8 {
        let patch = json!([{"op": "replace", "path": "/n", "value": n}]);
        let response = support::http()
            .patch(server.url("/api/documents/hot"))
            .json(&patch)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");

    // The client connected before the floods is still served.
    existing
        .submit(vec![edit(
            1,
            head + 5,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": 100}]),
        )])
        .await;
    let ack = existing
        .recv_until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
        .await;
    assert!(matches!(ack, ServerMessage::Ack { .. }), "{ack:?}");
    drop((first, second));
}

#[tokio::test]
async fn the_server_wide_connection_limit_refuses_only_new_connections() {
    let server = support::TestServer::start_with(|config| config.max_connections = 2).await;
    let (mut a, _) = Ws::open(&server, "wide", "a").await;
    let (_b, _) = Ws::open(&server, "wide", "b").await;
    let refused = try_upgrade(&server.ws).await.expect_err("full");
    assert_eq!(refused, (429, "rate_limited".to_owned()));
    assert_eq!(a.ping(7).await, Some(0), "the admitted ones go on");
}
