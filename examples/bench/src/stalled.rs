//! The overload scenario of `scripts/bench.sh` (issue 18): `stalled` subscribers connect, catch up
//! and stop reading, `fast` subscribers read everything, and one writer submits 1 KB edits as
//! fast as the server acknowledges them. Measures the fast subscribers' delivery latency (each
//! edit carries its send time), the server's memory growth (from /proc for `server_pid`), and,
//! once the stalled subscribers read again, that each of them gets every event.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use eventsync::protocol::{ClientMessage, Edit, Operation, ServerMessage, PROTOCOL_VERSION};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::multiplex::rss_kb;
use crate::{receive, send, submit_one, Socket};

/// How many stalled subscribers read again at the end and are checked for every event.
const CHECKED: usize = 20;

/// Microseconds since `origin`, as the edits carry them.
fn micros(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

/// A subscriber of `document` that has read its `welcome` and the catch-up after it.
async fn subscriber(url: &str, document: &str, client: String) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    let hello = ClientMessage::Hello {
        protocol_versions: vec![PROTOCOL_VERSION],
        client_id: client,
        token: None,
    };
    send(&mut socket, &hello).await;
    let sync = ClientMessage::Sync {
        vector_clock: Default::default(),
        after: Some(0),
    };
    send(&mut socket, &sync).await;
    loop {
        match receive(&mut socket).await {
            ServerMessage::Events {
                has_more: false, ..
            } => return socket,
            ServerMessage::Error { code, message } => panic!("refused: {code:?} {message}"),
            _ => {}
        }
    }
}

/// The value of the first `"t"` member anywhere in `value`.
pub(crate) fn sent_at(value: &Value) -> Option<u64> {
    match value {
        Value::Object(members) => members
            .get("t")
            .and_then(Value::as_u64)
            .or_else(|| members.values().find_map(sent_at)),
        Value::Array(items) => items.iter().find_map(sent_at),
        _ => None,
    }
}

/// Reads `socket` until it has seen `head`, within `limit`: whether it got every event after
/// the position it had read up to before stalling (snapshots, which a far-behind catch-up may
/// start with, cover the events up to theirs).
async fn read_until(socket: &mut Socket, head: u64, limit: Duration) -> bool {
    let mut seen = BTreeSet::new();
    let mut covered = 0;
    let deadline = tokio::time::Instant::now() + limit;
    while seen.last().copied().unwrap_or(0).max(covered) < head {
        let text = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            other => {
                eprintln!(
                    "a stalled subscriber stopped at #{} of #{head}: {other:?}",
                    seen.last().copied().unwrap_or(0).max(covered)
                );
                return false;
            }
        };
        match eventsync::protocol::decode_server(&text) {
            Ok(ServerMessage::Event { events } | ServerMessage::Events { events, .. }) => {
                seen.extend(events.iter().map(|e| e.sequence_num));
            }
            Ok(ServerMessage::Snapshot { snapshot }) => {
                covered = covered.max(snapshot.sequence_num)
            }
            Ok(_) => {}
            Err(err) => panic!("unreadable frame: {err}"),
        }
    }
    // From the first event it had not read (or the last snapshot) to the head, without a gap.
    let from = seen.first().copied().unwrap_or(head + 1).min(covered + 1);
    (from..=head).all(|seq| seq <= covered || seen.contains(&seq))
}

/// Runs the scenario; `stalled` may be 0 (the baseline).
pub async fn run(
    url: &str,
    document: &str,
    fast: u64,
    stalled: u64,
    seconds: u64,
    server_pid: u32,
) -> Value {
    let origin = Instant::now();
    let mut writer = subscriber(url, document, "overload-writer".into()).await;
    let mut fast_sockets = Vec::new();
    for i in 0..fast {
        fast_sockets.push(subscriber(url, document, format!("fast-{i}")).await);
    }
    let rss_before = rss_kb(server_pid);
    let mut stalled_sockets = Vec::new();
    for i in 0..stalled {
        stalled_sockets.push(subscriber(url, document, format!("stalled-{i}")).await);
    }
    let rss_connected = rss_kb(server_pid);

    // Fast subscribers: the latency of every event, until the writer is done.
    let mut readers = JoinSet::new();
    for mut socket in fast_sockets {
        readers.spawn(async move {
            let mut latencies = Vec::new();
            let mut last = 0;
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let now = micros(origin);
                if let Ok(ServerMessage::Event { events }) =
                    eventsync::protocol::decode_server(&text)
                {
                    for event in events {
                        last = event.sequence_num;
                        let diff = serde_json::to_value(&event.diff).unwrap_or(Value::Null);
                        if let Some(t) = sent_at(&diff) {
                            latencies.push(now.saturating_sub(t) as f64 / 1000.0);
                        }
                    }
                }
                if text.contains("\"overload-done\"") {
                    break;
                }
            }
            (latencies, last)
        });
    }

    // The writer: one submit in flight, 1 KB each, for `seconds`.
    let pad = "x".repeat(1000);
    let mut client_seq = 1;
    let mut head = 0;
    let mut peak_rss = rss_connected;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    while Instant::now() < end || client_seq == 1 {
        let (operation, patch) = if client_seq == 1 && head == 0 {
            (
                Operation::Create,
                json!([{"op": "add", "path": "", "value": {"payload": {}}}]),
            )
        } else {
            let value = json!({"t": micros(origin), "pad": pad});
            (
                Operation::Update,
                json!([{"op": "replace", "path": "/payload", "value": value}]),
            )
        };
        let edit = Edit {
            client_seq,
            base_seq: head,
            operation,
            patch: serde_json::from_value(patch).expect("a patch"),
            shape: None,
        };
        head = submit_one(&mut writer, edit, head).await;
        client_seq += 1;
        sent += 1;
        if sent % 256 == 0 {
            peak_rss = peak_rss.max(rss_kb(server_pid));
        }
    }
    // The last edit says the run is over.
    let done = Edit {
        client_seq,
        base_seq: head,
        operation: Operation::Update,
        patch: serde_json::from_value(
            json!([{"op": "replace", "path": "/payload", "value": "overload-done"}]),
        )
        .expect("a patch"),
        shape: None,
    };
    send(&mut writer, &ClientMessage::Submit { edits: vec![done] }).await;
    head += 1;
    let elapsed = origin.elapsed();
    peak_rss = peak_rss.max(rss_kb(server_pid));

    let mut latencies = Vec::new();
    let mut fast_complete = 0;
    while let Some(joined) = readers.join_next().await {
        let (mut l, last) = joined.expect("a reader");
        latencies.append(&mut l);
        fast_complete += u64::from(last >= head);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];

    // Some stalled subscribers read again: each must get every event it had not yet read. (All
    // of them would make the server encode and send gigabytes: each missed the whole run.) The
    // others go away.
    let checked = stalled_sockets.len().min(CHECKED);
    drop(stalled_sockets.split_off(checked));
    let mut catching_up = JoinSet::new();
    for mut socket in stalled_sockets {
        catching_up
            .spawn(async move { read_until(&mut socket, head, Duration::from_secs(120)).await });
    }
    let mut stalled_complete = 0;
    while let Some(joined) = catching_up.join_next().await {
        stalled_complete += u64::from(joined.expect("a stalled subscriber"));
    }
    json!({
        "scenario": "overload", "fast": fast, "stalled": stalled, "seconds": seconds,
        "edits": sent, "editsPerSecond": sent as f64 / elapsed.as_secs_f64(),
        "p50Ms": at(0.5), "p99Ms": at(0.99), "maxMs": at(1.0),
        "fastComplete": fast_complete, "stalledChecked": checked, "stalledComplete": stalled_complete,
        "serverRssKbBefore": rss_before,
        "serverRssKbPerStalled": if stalled > 0 { (peak_rss.saturating_sub(rss_connected)) as f64 / stalled as f64 } else { 0.0 },
        "serverRssGrowthKb": peak_rss.saturating_sub(rss_before),
    })
}
