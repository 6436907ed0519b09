//! The presence scenario of `scripts/bench.sh` (`docs/PROTOCOL.md` 18.7): `peers` connections on
//! one document, each publishing its presence `rate` times a second. Measures how long an update
//! takes to reach the other peers (each state carries its send time), and the server's CPU and
//! memory per peer (from /proc for `server_pid`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsync::protocol::{self, ClientMessage, Scoped, ServerMessage};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::multiplex::rss_kb;
use crate::Socket;

fn frame(document: Option<&str>, message: ClientMessage) -> Message {
    Message::text(protocol::encode(&Scoped {
        document_id: document.map(str::to_owned),
        message,
    }))
}

/// A connection that has opened `document`.
async fn join(url: &str, client: &str, document: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync"))
        .await
        .expect("connect to the server");
    let hello = ClientMessage::Hello {
        protocol_versions: vec![2],
        client_id: client.into(),
        token: None,
    };
    socket.send(frame(None, hello)).await.expect("send");
    socket
        .send(frame(Some(document), ClientMessage::Open))
        .await
        .expect("send");
    loop {
        let next = socket.next().await.expect("open").expect("read");
        if let Message::Text(text) = next {
            let scoped = protocol::decode_server_scoped(&text).expect("a valid frame");
            if matches!(scoped.message, ServerMessage::Opened { .. }) {
                return socket;
            }
        }
    }
}

/// CPU time a process has used (user + system), from /proc.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server runs");
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Microseconds since `epoch`, the clock every peer stamps its states with.
fn micros(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Runs the scenario: `peers` connections, `rate` updates a second each, for `seconds` after a
/// second of warm-up.
pub async fn presence(
    url: &str,
    document: &str,
    peers: u64,
    rate: u64,
    seconds: u64,
    server_pid: u32,
) -> Value {
    let rss_before = rss_kb(server_pid);
    let mut sockets = Vec::new();
    for peer in 0..peers {
        sockets.push(join(url, &format!("peer-{peer}"), document).await);
    }
    let rss_joined = rss_kb(server_pid);
    let epoch = Instant::now();
    let warm_up = Duration::from_secs(1);
    let measure = Duration::from_secs(seconds);
    let end = warm_up + measure;
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let interval = Duration::from_micros(1_000_000 / rate.max(1));
    let (mut senders, mut readers) = (Vec::new(), Vec::new());
    for (index, socket) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = socket.split();
        let document = document.to_owned();
        // Each peer's updates start at its own phase of the interval.
        let phase = interval.mul_f64(index as f64 / peers.max(1) as f64);
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            let mut ticker = tokio::time::interval(interval);
            let mut sent = 0u64;
            while epoch.elapsed() < end {
                ticker.tick().await;
                let state = json!({"cursor": {"x": sent, "y": index}, "t": micros(epoch)});
                let message = ClientMessage::Presence { state };
                if sink.send(frame(Some(&document), message)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sent, sink)
        }));
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let stop = tokio::time::Instant::from_std(epoch + end + Duration::from_millis(500));
            while let Ok(Some(Ok(next))) = tokio::time::timeout_at(stop, stream.next()).await {
                let Message::Text(text) = next else { continue };
                let Ok(scoped) = protocol::decode_server_scoped(&text) else {
                    continue;
                };
                let ServerMessage::Presence(update) = scoped.message else {
                    continue;
                };
                let now = micros(epoch);
                for peer in update.peers {
                    let Some(sent) = peer.state.get("t").and_then(Value::as_u64) else {
                        continue;
                    };
                    if sent >= warm_up.as_micros() as u64 && sent < end.as_micros() as u64 {
                        mine.push(now.saturating_sub(sent));
                    }
                }
            }
            latencies.lock().expect("latencies").extend(mine);
        }));
    }
    tokio::time::sleep(warm_up).await;
    let cpu_start = cpu_time(server_pid);
    tokio::time::sleep(measure).await;
    let cpu_used = cpu_time(server_pid).saturating_sub(cpu_start);
    let rss_running = rss_kb(server_pid);
    let (mut sent, mut sinks) = (0, Vec::new());
    for task in senders {
        if let Ok((count, sink)) = task.await {
            sent += count;
            sinks.push(sink);
        }
    }
    for task in readers {
        let _ = task.await;
    }
    drop(sinks);
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let at = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[at] as f64 / 1000.0
    };
    let delivered = latencies.len() as u64;
    let cpu_us = cpu_used.as_micros() as f64;
    json!({
        "scenario": "presence", "system": "eventsync", "peers": peers, "rate": rate,
        "seconds": seconds, "sent": sent, "deliveredInWindow": delivered,
        "p50Ms": pick(0.5), "p99Ms": pick(0.99), "maxMs": pick(1.0),
        "serverCpuPercent": cpu_us / measure.as_micros() as f64 * 100.0,
        "serverCpuUsPerDelivery": if delivered > 0 { cpu_us / delivered as f64 } else { 0.0 },
        "serverRssKbPerPeer": rss_joined.saturating_sub(rss_before) as f64 / peers.max(1) as f64,
        "serverRssKbRunning": rss_running,
    })
}
