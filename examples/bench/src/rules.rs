//! The rules scenario of `scripts/bench.sh` (issue 19): one writer edits a 10 KB document, one
//! submit in flight, and the time from each submit to its ack is measured; `scripts/bench.sh` runs
//! it against a server without rules, with `--schema` and with `--webhook`. With `receiver`, it
//! also listens for the webhook deliveries and measures how long each edit took from its submit
//! to its delivery (each edit carries its send time).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use eventsync::protocol::{ClientMessage, Edit, Operation, PROTOCOL_VERSION};
use serde_json::{json, Value};

use crate::{send, submit_one};

/// Items in the document: 100 of about 100 bytes, 10 KB in all.
const ITEMS: usize = 100;

fn item(i: usize, t: u64) -> Value {
    json!({"text": format!("item {i:03} {}", "x".repeat(70)), "done": i % 2 == 0, "t": t})
}

/// The webhook deliveries' latencies (ms), filled by the receiver.
type Latencies = Arc<Mutex<Vec<f64>>>;

/// Listens on `address` for webhook POSTs; each delivery's latency goes into the list.
async fn receiver(address: SocketAddr, origin: Instant) -> Latencies {
    let latencies: Latencies = Arc::default();
    let seen = latencies.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                let now = origin.elapsed().as_micros() as u64;
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                // The create's items carry 0: only the timed edits count.
                let sent = crate::stalled::sent_at(&body["event"]["diff"]).filter(|t| *t > 0);
                if let Some(t) = sent {
                    seen.lock()
                        .expect("latencies")
                        .push(now.saturating_sub(t) as f64 / 1000.0);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("the receiver's port is free");
    tokio::spawn(async move { axum::serve(listener, app).await });
    latencies
}

fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * q) as usize]
}

/// Runs the scenario: `edits` sequential submits on `document`, at most `rate` a second (0: as
/// fast as the acks come).
pub async fn run(
    url: &str,
    document: &str,
    edits: u64,
    rate: u64,
    receiver_at: Option<SocketAddr>,
) -> Value {
    let origin = Instant::now();
    let deliveries = match receiver_at {
        Some(address) => Some(receiver(address, origin).await),
        None => None,
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    let hello = ClientMessage::Hello {
        protocol_versions: vec![PROTOCOL_VERSION],
        client_id: "rules-writer".into(),
        token: None,
    };
    send(&mut socket, &hello).await;
    let items: Vec<Value> = (0..ITEMS).map(|i| item(i, 0)).collect();
    let mut head = 0;
    let mut acks = Vec::new();
    let mut pace = (rate > 0).then(|| {
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    });
    for client_seq in 1..=edits + 1 {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let (operation, patch) = if client_seq == 1 {
            let root = json!({"title": "bench", "items": items});
            (
                Operation::Create,
                json!([{"op": "add", "path": "", "value": root}]),
            )
        } else {
            let i = (client_seq as usize) % ITEMS;
            let value = item(i, origin.elapsed().as_micros() as u64);
            (
                Operation::Update,
                json!([{"op": "replace", "path": format!("/items/{i}"), "value": value}]),
            )
        };
        let edit = Edit {
            client_seq,
            base_seq: head,
            operation,
            patch: serde_json::from_value(patch).expect("a patch"),
            shape: None,
        };
        let sent = Instant::now();
        head = submit_one(&mut socket, edit, head).await;
        if client_seq > 1 {
            acks.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mut result = json!({
        "scenario": "rules", "edits": edits, "rate": rate, "documentBytes": serde_json::to_string(&items).map_or(0, |s| s.len()),
        "ackP50Ms": quantile(&mut acks, 0.5), "ackP99Ms": quantile(&mut acks, 0.99),
    });
    if let Some(deliveries) = deliveries {
        // Every edit's delivery, or what arrived within 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (deliveries.lock().expect("latencies").len() as u64) < edits
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut latencies = deliveries.lock().expect("latencies").clone();
        result["delivered"] = json!(latencies.len());
        if !latencies.is_empty() {
            result["webhookP50Ms"] = json!(quantile(&mut latencies, 0.5));
            result["webhookP95Ms"] = json!(quantile(&mut latencies, 0.95));
        }
    }
    result
}
