//! Client-side floors of `scripts/bench.sh` (issue 17):
//!
//! - [`catchup_floor`]: a catch-up without a snapshot done with nothing but serde_json and
//!   json-patch: the events pages of a server's whole log, parsed just enough to get each
//!   event's patch, and the patches applied (`apply_with_json_patch`, the apply floor).
//! - [`client_cpu`]: what a client spends per delivered live event: the `event` frames fed to the
//!   sans-IO `SyncSession` (what `SyncClient` runs for each frame: decode, order, apply, report),
//!   against parsing the same frames with serde_json (and parsing plus applying their patch).

use std::time::Instant;

use eventsync::protocol::{self, ClientMessage, Event, Operation, ServerMessage};
use eventsync::{Diff, SessionConfig, SyncSession, VectorClock};
use futures::StreamExt;
use json_patch::Patch;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{median, millis, send};
use eventsync_bench::*;

/// An events page (or live frame), read just enough to get its events' patches.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    events: Vec<PageEvent>,
    #[serde(default, rename = "hasMore")]
    has_more: bool,
}

#[derive(Deserialize)]
struct PageEvent {
    diff: Option<PageDiff>,
}

#[derive(Deserialize)]
struct PageDiff {
    patch: Patch,
}

/// The patches of `frames`, in order.
fn parse_patches(frames: &[String]) -> Vec<Patch> {
    let mut patches = Vec::new();
    for frame in frames {
        let page: Page = serde_json::from_str(frame).expect("an events frame");
        patches.extend(
            page.events
                .into_iter()
                .filter_map(|e| e.diff)
                .map(|d| d.patch),
        );
    }
    patches
}

/// The whole log of `document` (a server without snapshots), read once through a raw
/// connection; then, `rounds` times, its events pages parsed and applied from nothing.
pub async fn catchup_floor(url: &str, document: &str, rounds: usize) -> Value {
    let started = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}/sync/{document}"))
        .await
        .expect("connect to the server");
    let hello = ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: "catchup-floor".into(),
        token: None,
    };
    send(&mut socket, &hello).await;
    let sync = ClientMessage::Sync {
        vector_clock: Default::default(),
        after: None,
    };
    send(&mut socket, &sync).await;
    let mut frames = Vec::new();
    let mut bytes = 0;
    loop {
        let frame = socket
            .next()
            .await
            .expect("the server closed the connection")
            .expect("read from the server");
        let Message::Text(text) = frame else { continue };
        if text.starts_with(r#"{"type":"snapshot""#) {
            panic!("the floor replays events: run it against a server without snapshots");
        }
        if !text.starts_with(r#"{"type":"events""#) {
            continue;
        }
        bytes += text.len();
        let last = !serde_json::from_str::<Page>(&text)
            .expect("an events page")
            .has_more;
        frames.push(text.as_str().to_owned());
        if last {
            break;
        }
    }
    let receive_ms = millis(started.elapsed());
    socket.close(None).await.ok();

    let (mut parse_ms, mut apply_ms, mut total_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut events = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let patches = parse_patches(&frames);
        let parsed = started.elapsed();
        events = patches.len();
        let mut document = Value::Null;
        let applying = Instant::now();
        apply_with_json_patch(&mut document, patches);
        let applied = applying.elapsed();
        parse_ms.push(millis(parsed));
        apply_ms.push(millis(applied));
        total_ms.push(millis(parsed + applied));
        let fields = document["fields"].as_object().map_or(0, |f| f.len());
        assert_eq!(fields as u64, FIELDS, "the floor rebuilt the document");
        drop(document);
    }
    json!({
        "scenario": "catchup-floor", "events": events, "frames": frames.len(), "bytes": bytes,
        "rounds": rounds, "receiveMs": receive_ms,
        "parseMs": median(parse_ms), "applyMs": median(apply_ms), "parseApplyMs": median(total_ms),
    })
}

/// The `event` frames of `count` live updates, as eventsync-server sends them (one event a
/// frame, a 24-digit id, a timestamp to the millisecond).
fn live_frames(count: u64) -> Vec<String> {
    update_events("bench", count)
        .into_iter()
        .map(|mut event| {
            event.timestamp = "2026-01-01T00:00:00.000Z".into();
            protocol::encode(&ServerMessage::Event {
                events: vec![event],
            })
        })
        .collect()
}

/// A session that has caught up with the creation of the benchmark document (event 1).
fn caught_up_session() -> SyncSession {
    let mut session = SyncSession::new(SessionConfig::new("bench", "reader"));
    session.handle_connected(0);
    session.handle_message(
        0,
        ServerMessage::Welcome {
            protocol_version: 1,
            document_id: "bench".into(),
            client_id: "reader".into(),
            head_seq: Some(1),
        },
    );
    let mut vector_clock = VectorClock::new();
    vector_clock.observe(WRITER, 1);
    let create = Event {
        id: format!("{:024x}", 1),
        document_id: "bench".into(),
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        sequence_num: 1,
        operation: Operation::Create,
        diff: Some(Diff::from_patch(
            serde_json::from_value(json!([{"op": "add", "path": "", "value": initial_document()}]))
                .expect("a patch"),
        )),
        vector_clock,
        client_id: WRITER.into(),
        client_seq: Some(1),
        server_seq: 0,
        metadata: Default::default(),
    };
    session.handle_message(
        0,
        ServerMessage::Events {
            events: vec![create],
            head_seq: Some(1),
            has_more: false,
        },
    );
    while session.poll_output().is_some() {}
    assert_eq!(session.applied_seq(), 1, "the session holds the document");
    session
}

/// Microseconds per frame of `count` live frames: the session, serde_json's parse into a
/// `Value`, and the parse of the patch plus its apply (json-patch). Medians of `rounds`.
pub fn client_cpu(count: u64, rounds: usize) -> Value {
    let frames = live_frames(count);
    let bytes: usize = frames.iter().map(String::len).sum();
    let (mut session_us, mut parse_us, mut parse_apply_us) = (Vec::new(), Vec::new(), Vec::new());
    let per_frame = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / count as f64;
    for _ in 0..rounds.max(1) {
        let mut session = caught_up_session();
        let started = Instant::now();
        for frame in &frames {
            session.handle_frame(1, frame);
            while session.poll_output().is_some() {}
        }
        session_us.push(per_frame(started));
        assert_eq!(session.applied_seq(), count + 1, "every event applied");
        drop(session);

        let started = Instant::now();
        for frame in &frames {
            let value: Value = serde_json::from_str(frame).expect("a frame");
            drop(value);
        }
        parse_us.push(per_frame(started));

        let mut document = initial_document();
        let started = Instant::now();
        for frame in &frames {
            let page: Page = serde_json::from_str(frame).expect("a frame");
            for diff in page.events.into_iter().filter_map(|e| e.diff) {
                json_patch::patch(&mut document, &diff.patch).expect("the patch applies");
            }
        }
        parse_apply_us.push(per_frame(started));
    }
    json!({
        "scenario": "client-cpu", "events": count, "rounds": rounds,
        "frameBytes": bytes as f64 / count.max(1) as f64,
        "sessionUsPerEvent": median(session_us),
        "parseUsPerEvent": median(parse_us),
        "parseApplyUsPerEvent": median(parse_apply_us),
    })
}
