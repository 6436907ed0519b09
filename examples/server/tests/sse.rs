//! `GET /api/stream/{documentId}` (`docs/PROTOCOL.md` section 13) against a real server, read as
//! a real `text/event-stream`.

mod support;

use std::time::{Duration, Instant};

use eventsync::protocol::Event;
use eventsync::StateManager;
use serde_json::{json, Value};
use support::api::{self, assert_error, written};
use support::sse::{self, SseMessage, SseStream};
use support::{TestServer, WAIT};

/// Creates `doc` with `{"items": []}` (#1) and appends `count - 1` items over HTTP.
async fn write_items(server: &TestServer, document: &str, count: u64) {
    let (_, head) = api::get_document(server, document).await;
    let mut head = head["sequenceNum"].as_u64().unwrap();
    if head == 0 {
        assert_eq!(
            written(api::put(server, document, &json!({"items": []})).await),
            1
        );
        head = 1;
    }
    while head < count {
        head += 1;
        let patch = json!([{"op": "add", "path": "/items/-", "value": head}]);
        assert_eq!(written(api::patch(server, document, &patch).await), head);
    }
}

async fn open(server: &TestServer, path: &str, last_event_id: Option<&str>) -> SseStream {
    sse::open(server, path, last_event_id)
        .await
        .unwrap_or_else(|(status, body)| panic!("stream refused: {status} {body}"))
}

/// Reads `connected` and checks its data.
async fn connected(stream: &mut SseStream, document: &str, head_seq: u64) {
    let message = stream.next().await;
    assert_eq!(
        message.event, "connected",
        "connected comes first: {message:?}"
    );
    assert_eq!(message.id, None, "connected has no id");
    assert_eq!(
        message.json(),
        json!({"documentId": document, "headSeq": head_seq})
    );
}

/// The events of an `events` batch or a live `event`, after checking its `id:` line.
fn events_of(message: &SseMessage) -> Vec<Event> {
    let events: Vec<Event> = match message.event.as_str() {
        "events" => serde_json::from_str(&message.data).expect("an array of Event"),
        "event" => vec![serde_json::from_str(&message.data).expect("an Event")],
        other => panic!("unexpected SSE event {other}: {message:?}"),
    };
    let last = events.last().expect("not empty").sequence_num;
    assert_eq!(message.id, Some(last.to_string()), "{message:?}");
    events
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence_num).collect()
}

/// Reads until the event `through` arrived; returns every message read. Batches come before
/// live events (section 13: one sequence, catch-up first).
async fn read_through(stream: &mut SseStream, through: u64) -> Vec<SseMessage> {
    let mut messages = Vec::new();
    let mut last = 0;
    while last < through {
        let message = stream.next().await;
        last = events_of(&message).last().unwrap().sequence_num;
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn a_stream_sends_connected_then_the_catch_up_then_live_events() {
    let server = TestServer::start().await;
    write_items(&server, "doc", 5).await;

    let mut stream = open(&server, "/api/stream/doc", None).await;
    assert_eq!(stream.headers["cache-control"], "no-cache");
    connected(&mut stream, "doc", 5).await;
    let batch = stream.next().await;
    assert_eq!(batch.event, "events");
    assert_eq!(batch.id.as_deref(), Some("5"));
    let caught_up = events_of(&batch);
    assert_eq!(seqs(&caught_up), vec![1, 2, 3, 4, 5]);
    let (_, page) = api::events(&server, "doc", "").await;
    assert_eq!(
        serde_json::to_value(&caught_up).unwrap(),
        page["events"],
        "the batch holds the log's events"
    );

    write_items(&server, "doc", 7).await;
    for seq in [6, 7] {
        let live = stream.next().await;
        assert_eq!(live.event, "event");
        assert_eq!(live.id, Some(seq.to_string()));
        let event: Event = serde_json::from_str(&live.data).unwrap();
        assert_eq!(event.sequence_num, seq);
        assert_eq!(event.client_id, "server");
        assert!(!live.data.contains('\n'), "one data line of compact JSON");
    }
    assert!(
        stream.try_next(Duration::from_millis(300)).await.is_none(),
        "nothing else"
    );

    // A stream of an empty log: connected, then #1 (in the catch-up if it was ordered before
    // the catch-up read the log, else live), and nothing twice.
    let mut empty = open(&server, "/api/stream/fresh", None).await;
    connected(&mut empty, "fresh", 0).await;
    write_items(&server, "fresh", 2).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(seqs(&events_of(&empty.next().await)));
    }
    assert_eq!(seen, vec![1, 2]);
    assert!(empty.try_next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn the_start_is_last_event_id_else_after_and_a_resume_has_no_gaps_and_no_repeats() {
    let server = TestServer::start().await;
    write_items(&server, "doc", 6).await;

    let mut stream = open(&server, "/api/stream/doc?after=3", None).await;
    connected(&mut stream, "doc", 6).await;
    assert_eq!(seqs(&events_of(&stream.next().await)), vec![4, 5, 6]);

    // The header wins over the parameter.
    let mut stream = open(&server, "/api/stream/doc?after=1", Some("4")).await;
    connected(&mut stream, "doc", 6).await;
    assert_eq!(seqs(&events_of(&stream.next().await)), vec![5, 6]);

    // At the head: nothing to catch up; the next message carries #7 (live, or in the catch-up
    // when #7 was ordered before the catch-up read the log).
    let mut stream = open(&server, "/api/stream/doc?after=6", None).await;
    connected(&mut stream, "doc", 6).await;
    write_items(&server, "doc", 7).await;
    assert_eq!(seqs(&events_of(&stream.next().await)), vec![7]);
    assert!(stream.try_next(Duration::from_millis(200)).await.is_none());

    // Read a while, drop the connection, write while away, resume from the last id seen.
    let mut seen: Vec<u64> = Vec::new();
    let mut stream = open(&server, "/api/stream/doc", None).await;
    connected(&mut stream, "doc", 7).await;
    seen.extend(seqs(&events_of(&stream.next().await)));
    write_items(&server, "doc", 9).await;
    let live = stream.next().await;
    seen.extend(seqs(&events_of(&live)));
    let last_id = live.id.clone().unwrap();
    assert_eq!(last_id, "8");
    drop(stream); // #9 may be in flight: it was not seen, so it must come again.
    write_items(&server, "doc", 11).await;

    let mut stream = open(&server, "/api/stream/doc", Some(&last_id)).await;
    connected(&mut stream, "doc", 11).await;
    let batch = stream.next().await;
    assert_eq!(batch.event, "events");
    seen.extend(seqs(&events_of(&batch)));
    write_items(&server, "doc", 12).await;
    seen.extend(seqs(&events_of(&stream.next().await)));
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_bad_or_future_position_is_an_http_error_before_the_stream_starts() {
    let server = TestServer::start().await;
    write_items(&server, "doc", 3).await;
    let refused = |r: Result<SseStream, (u16, Value)>| match r {
        Ok(_) => panic!("the stream started"),
        Err(answer) => answer,
    };
    let answer = refused(sse::open(&server, "/api/stream/doc?after=4", None).await);
    assert_error(&answer, 400, "invalid_sequence");
    let answer = refused(sse::open(&server, "/api/stream/doc", Some("4")).await);
    assert_error(&answer, 400, "invalid_sequence");
    let answer = refused(sse::open(&server, "/api/stream/doc?after=1", Some("99")).await);
    assert_error(&answer, 400, "invalid_sequence");
    let answer = refused(sse::open(&server, "/api/stream/never-written?after=1", None).await);
    assert_error(&answer, 400, "invalid_sequence");
    for bad in ["/api/stream/doc?after=x", "/api/stream/doc?after=-1"] {
        let answer = refused(sse::open(&server, bad, None).await);
        assert_error(&answer, 400, "malformed_frame");
    }
    let answer = refused(sse::open(&server, "/api/stream/doc", Some("abc")).await);
    assert_error(&answer, 400, "malformed_frame");
    let answer = refused(sse::open(&server, "/api/stream/bad!id", None).await);
    assert_error(&answer, 404, "unknown_document");
    // The refused streams left no connection open.
    let state = &server.server.as_ref().unwrap().state;
    assert_eq!(state.open_connections(), 0);
}

#[tokio::test]
async fn events_ordered_during_a_long_catch_up_arrive_once_and_in_order() {
    let server = TestServer::start().await;
    // Three catch-up pages of 1000, then writes racing the catch-up.
    support::bulk::seed_log(&server, "doc", 2500).await;
    let writer = {
        let url = server.url("/api/documents/doc");
        tokio::spawn(async move {
            for n in 0..50u64 {
                let patch = json!([{"op": "replace", "path": "/n", "value": 10_000 + n}]);
                let (status, body) = api::send(
                    support::http()
                        .patch(&url)
                        .header("content-type", "application/json-patch+json")
                        .body(patch.to_string()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    let mut stream = open(&server, "/api/stream/doc", None).await;
    let first = stream.next().await;
    assert_eq!(first.event, "connected");
    let head_at_start = first.json()["headSeq"].as_u64().unwrap();
    assert!((2500..=2550).contains(&head_at_start));
    // And a few more once the stream is known to be subscribed.
    for n in 0..20u64 {
        let patch = json!([{"op": "replace", "path": "/n", "value": 20_000 + n}]);
        written(api::patch(&server, "doc", &patch).await);
    }
    tokio::time::timeout(WAIT, writer)
        .await
        .expect("writer in time")
        .expect("writer ok");

    let messages = read_through(&mut stream, 2570).await;
    let mut all = Vec::new();
    let mut live_started = false;
    let (mut in_batches, mut live) = (0, 0);
    for message in &messages {
        let events = events_of(message);
        match message.event.as_str() {
            "events" => {
                assert!(!live_started, "every catch-up batch precedes live events");
                in_batches += events.len();
            }
            _ => {
                live_started = true;
                live += 1;
            }
        }
        all.extend(seqs(&events));
    }
    assert_eq!(all, (1..=2570).collect::<Vec<_>>(), "gapless, no repeats");
    assert!(
        live > 0,
        "the writes after connected came live or in the catch-up"
    );
    eprintln!("head at start {head_at_start}: {in_batches} in batches, {live} live");
    assert!(
        stream.try_next(Duration::from_millis(300)).await.is_none(),
        "nothing repeated after the end"
    );
}

#[tokio::test]
async fn two_hundred_quick_writes_reach_an_open_stream_without_gaps() {
    let server = TestServer::start().await;
    write_items(&server, "doc", 1).await;
    let mut stream = open(&server, "/api/stream/doc", None).await;
    connected(&mut stream, "doc", 1).await;
    let mut reader = StateManager::new("doc");
    for event in events_of(&stream.next().await) {
        reader.apply(&event).unwrap();
    }

    // Four writers, fifty writes each, all at once.
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let url = server.url("/api/documents/doc");
        writers.push(tokio::spawn(async move {
            for i in 0..50u64 {
                let patch = json!([{"op": "add", "path": "/items/-", "value": w * 100 + i}]);
                let (status, body) = api::send(
                    support::http()
                        .patch(&url)
                        .header("content-type", "application/json-patch+json")
                        .body(patch.to_string()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    let messages = read_through(&mut stream, 201).await;
    for writer in writers {
        writer.await.unwrap();
    }
    let mut expected = 2;
    for message in &messages {
        assert_eq!(message.event, "event", "live events only");
        for event in events_of(message) {
            assert_eq!(event.sequence_num, expected, "in order, no gap");
            expected += 1;
            reader.apply(&event).unwrap();
        }
    }
    assert_eq!(expected, 202);
    let (_, body) = api::get_document(&server, "doc").await;
    assert_eq!(body["sequenceNum"], 201);
    assert_eq!(Some(&body["document"]), reader.document());
    assert_eq!(body["document"]["items"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn graceful_shutdown_ends_the_stream() {
    let mut server = TestServer::start().await;
    write_items(&server, "doc", 2).await;
    let mut stream = open(&server, "/api/stream/doc", None).await;
    connected(&mut stream, "doc", 2).await;
    assert_eq!(seqs(&events_of(&stream.next().await)), vec![1, 2]);
    let state = server.server.as_ref().unwrap().state.clone();
    assert_eq!(state.open_connections(), 1);

    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for the stream"
    );
    assert_eq!(state.open_connections(), 0);
    assert!(stream.ended_within(WAIT).await, "the stream ended");
}
