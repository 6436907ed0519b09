//! Snapshots and compacted history (`docs/PROTOCOL.md` 6.3, 3.7, 8.3 step 2) against a real
//! server that stores a snapshot every 10 events and keeps 5 events behind the latest one.

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use eventsync::protocol::{self, ClientMessage, Event, Operation, ServerMessage, Snapshot};
use eventsync::session::{Output, SessionConfig, SessionEvent, SyncSession};
use eventsync::{StateManager, VectorClock};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::api::{self, written};
use support::{edit, sse, TestServer, Ws, WAIT};
use tokio_tungstenite::tungstenite::Message;

async fn snapshotting_server() -> TestServer {
    TestServer::start_with(|c| {
        c.snapshot_every = 10;
        c.retain_events = Some(5);
    })
    .await
}

fn add_item(value: Value) -> Value {
    json!([{"op": "add", "path": "/items/-", "value": value}])
}

/// Writes 37 events to `doc` and returns all of them as a watcher saw them live:
/// #1-#5 alice's edits 1-5 (a create, then updates), #6-#7 bob's edits 1-2, #8-#37 HTTP writes.
/// With a snapshot every 10 events and 5 retained, the store then holds the snapshot at #30 and
/// the events from #26 on.
async fn thirty_seven(server: &TestServer) -> Vec<Event> {
    let (mut watcher, _) = Ws::open(server, "doc", "watcher").await;
    let acked = |m: &ServerMessage| matches!(m, ServerMessage::Ack { .. });
    let (mut alice, _) = Ws::open(server, "doc", "alice").await;
    let create = json!([{"op": "add", "path": "", "value": {"title": "t", "items": []}}]);
    let mut edits = vec![edit(1, 0, Operation::Create, create)];
    for n in 2..=5 {
        edits.push(edit(
            n,
            0,
            Operation::Update,
            add_item(json!(format!("a{n}"))),
        ));
    }
    alice.send(&ClientMessage::Submit { edits }).await;
    let ServerMessage::Ack { edits } = alice.recv_until(acked).await else {
        unreachable!()
    };
    assert_eq!(edits.len(), 5);
    let (mut bob, _) = Ws::open(server, "doc", "bob").await;
    let edits = vec![
        edit(1, 5, Operation::Update, add_item(json!("b1"))),
        edit(2, 5, Operation::Update, add_item(json!("b2"))),
    ];
    bob.send(&ClientMessage::Submit { edits }).await;
    let ServerMessage::Ack { edits } = bob.recv_until(acked).await else {
        unreachable!()
    };
    assert_eq!(edits[1].sequence_num, 7);
    for n in 8..=37u64 {
        let answer = api::patch(server, "doc", &add_item(json!(n))).await;
        assert_eq!(written(answer), n);
    }
    let mut events = Vec::new();
    while events.len() < 37 {
        match watcher.recv().await {
            ServerMessage::Event { events: live } => events.extend(live),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        events.iter().map(|e| e.sequence_num).collect::<Vec<_>>(),
        (1..=37).collect::<Vec<_>>()
    );
    events
}

/// A reader that has applied `events` up to `position`.
fn reader_at(events: &[Event], position: u64) -> StateManager {
    let mut reader = StateManager::new("doc");
    for event in events.iter().take(position as usize) {
        reader.apply(event).unwrap();
    }
    reader
}

/// Sends a `sync` and reads its whole answer: the snapshot (if any) and every event.
async fn ws_sync(
    ws: &mut Ws,
    vector: VectorClock,
    after: Option<u64>,
) -> (Option<Snapshot>, Vec<Event>) {
    ws.send(&ClientMessage::Sync {
        vector_clock: vector,
        after,
    })
    .await;
    let mut snapshot = None;
    let mut events = Vec::new();
    loop {
        match ws.recv().await {
            ServerMessage::Snapshot { snapshot: s } => {
                assert!(
                    snapshot.is_none() && events.is_empty(),
                    "the snapshot comes first"
                );
                snapshot = Some(s);
            }
            ServerMessage::Events {
                events: page,
                head_seq,
                has_more,
            } => {
                events.extend(page);
                if !has_more {
                    assert_eq!(head_seq, Some(37));
                    return (snapshot, events);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence_num).collect()
}

/// Applies a catch-up answer to a reader (6.3, 6.4) and checks it equals the server's document.
async fn assert_converges(
    server: &TestServer,
    mut reader: StateManager,
    snapshot: Option<&Snapshot>,
    events: &[Event],
) {
    if let Some(snapshot) = snapshot {
        reader.install_snapshot(snapshot.clone()).unwrap();
    }
    for event in events {
        let received = reader.receive(event.clone()).unwrap();
        assert!(!received.gap, "no gap after the snapshot");
        for ready in received.ready {
            reader.apply(&ready).unwrap();
        }
    }
    let (_, body) = api::get_document(server, "doc").await;
    assert_eq!(reader.applied_seq(), body["sequenceNum"].as_u64().unwrap());
    assert_eq!(Some(&body["document"]), reader.document());
    assert_eq!(
        serde_json::to_value(reader.state_vector()).unwrap(),
        body["vectorClock"]
    );
}

/// The document of [`thirty_seven`]'s log at `position`, as a snapshot.
fn snapshot_at(log: &[Event], position: u64) -> Snapshot {
    let reader = reader_at(log, position);
    Snapshot {
        document_id: "doc".into(),
        sequence_num: position,
        document: reader.document().cloned(),
        vector_clock: reader.state_vector().clone(),
    }
}

fn vector(entries: &[(&str, u64)]) -> VectorClock {
    entries.iter().map(|(c, s)| (c.to_string(), *s)).collect()
}

#[tokio::test]
async fn websocket_catch_ups_start_with_a_snapshot_only_when_behind_the_retained_history() {
    let server = snapshotting_server().await;
    let log = thirty_seven(&server).await;
    let snapshot_30 = snapshot_at(&log, 30);
    assert_eq!(
        snapshot_30.vector_clock,
        vector(&[("alice", 5), ("bob", 7), ("server", 30)])
    );
    let snapshot_37 = snapshot_at(&log, 37);
    let (mut carol, head) = Ws::open(&server, "doc", "carol").await;
    assert_eq!(head, 37);

    // A new client: not the whole log, nor the stored snapshot (#30) and the events after it,
    // but the head as a snapshot, and no events (6.3).
    let (snapshot, events) = ws_sync(&mut carol, VectorClock::new(), None).await;
    assert_eq!(snapshot.as_ref(), Some(&snapshot_37));
    assert_eq!(seqs(&events), Vec::<u64>::new());
    assert_converges(
        &server,
        StateManager::new("doc"),
        snapshot.as_ref(),
        &events,
    )
    .await;
    // The stored snapshot is the one at #30 (what the head snapshot saves the client: #31-#37).
    let (_, page) = api::events(&server, "doc", "?after=0&limit=0").await;
    assert_eq!(
        page["snapshot"],
        serde_json::to_value(&snapshot_30).unwrap()
    );

    // Older than the retained history (#26 on), by cursor and by vector: the head too.
    for (vector_clock, after) in [
        (vector(&[("alice", 2)]), Some(2)),
        (vector(&[("alice", 2)]), None),
        (vector(&[("alice", 5), ("bob", 7), ("server", 20)]), None),
    ] {
        let position = after.unwrap_or(vector_clock.max_seq());
        let (snapshot, events) = ws_sync(&mut carol, vector_clock.clone(), after).await;
        assert_eq!(
            snapshot.as_ref(),
            Some(&snapshot_37),
            "{vector_clock:?} {after:?}"
        );
        assert_eq!(seqs(&events), Vec::<u64>::new());
        assert_converges(
            &server,
            reader_at(&log, position),
            snapshot.as_ref(),
            &events,
        )
        .await;
    }

    // Within the retained history: just the tail, whether before or after the snapshot.
    for position in [26, 27, 33, 36, 37] {
        let (snapshot, events) = ws_sync(&mut carol, VectorClock::new(), Some(position)).await;
        assert_eq!(snapshot, None, "after {position}");
        assert_eq!(seqs(&events), (position + 1..=37).collect::<Vec<_>>());
        assert_converges(&server, reader_at(&log, position), None, &events).await;
    }
    let vector_33 = reader_at(&log, 33).state_vector().clone();
    let (snapshot, events) = ws_sync(&mut carol, vector_33, None).await;
    assert_eq!(snapshot, None);
    assert_eq!(seqs(&events), (34..=37).collect::<Vec<_>>());
}

#[tokio::test]
async fn http_and_sse_catch_ups_start_with_a_snapshot_when_history_is_compacted() {
    let server = snapshotting_server().await;
    let log = thirty_seven(&server).await;
    let snapshot_30 = serde_json::to_value(snapshot_at(&log, 30)).unwrap();
    let page_seqs = |page: &Value| -> Vec<u64> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sequenceNum"].as_u64().unwrap())
            .collect()
    };

    let (status, page) = api::events(&server, "doc", "?after=0").await;
    assert_eq!(status, 200);
    assert_eq!(page["snapshot"], snapshot_30);
    assert_eq!(page_seqs(&page), (31..=37).collect::<Vec<_>>());
    assert_eq!(page["headSeq"], 37);
    assert_eq!(page["hasMore"], false);
    let events: Vec<Event> = serde_json::from_value(page["events"].clone()).unwrap();
    let snapshot: Snapshot = serde_json::from_value(page["snapshot"].clone()).unwrap();
    assert_converges(&server, StateManager::new("doc"), Some(&snapshot), &events).await;

    // Paging from a compacted position: the snapshot, then continue after the page.
    let (_, page) = api::events(&server, "doc", "?after=2&limit=3").await;
    assert_eq!(page["snapshot"], snapshot_30);
    assert_eq!(page_seqs(&page), vec![31, 32, 33]);
    assert_eq!(page["hasMore"], true);
    let (_, page) = api::events(&server, "doc", "?after=33&limit=3").await;
    assert!(page.get("snapshot").is_none());
    assert_eq!(page_seqs(&page), vec![34, 35, 36]);
    assert_eq!(page["hasMore"], true);
    // limit=0 still says what to install and that events follow it.
    let (_, page) = api::events(&server, "doc", "?after=0&limit=0").await;
    assert_eq!(page["snapshot"], snapshot_30);
    assert_eq!(page_seqs(&page), Vec::<u64>::new());
    assert_eq!(page["hasMore"], true);
    // Within the retained history: no snapshot.
    let (_, page) = api::events(&server, "doc", "?after=25").await;
    assert!(page.get("snapshot").is_none(), "{page}");
    assert_eq!(page_seqs(&page), (26..=37).collect::<Vec<_>>());

    // POST /api/sync answers as a WebSocket sync does (6.3): the head as a snapshot.
    let snapshot_37 = serde_json::to_value(snapshot_at(&log, 37)).unwrap();
    for body in [json!({}), json!({"vectorClock": {"alice": 2}})] {
        let (status, page) = api::sync(&server, "doc", &body).await;
        assert_eq!(status, 200);
        assert_eq!(page["snapshot"], snapshot_37, "{body}");
        assert_eq!(page_seqs(&page), Vec::<u64>::new());
    }

    // SSE: connected, the snapshot (the head, id 37), then nothing to catch up.
    let mut stream = sse::open(&server, "/api/stream/doc?after=3", None)
        .await
        .expect("stream opens");
    assert_eq!(stream.next().await.event, "connected");
    let message = stream.next().await;
    assert_eq!(message.event, "snapshot");
    assert_eq!(message.id.as_deref(), Some("37"));
    assert_eq!(message.json(), snapshot_37);
    // The next message is the next edit, live.
    written(api::patch(&server, "doc", &add_item(json!("live"))).await);
    let message = stream.next().await;
    assert_eq!(message.event, "event");
    assert_eq!(message.id.as_deref(), Some("38"));
}

#[tokio::test]
async fn an_edit_resent_after_its_event_was_compacted_is_still_a_duplicate() {
    let server = snapshotting_server().await;
    thirty_seven(&server).await;
    let (_, body) = api::events(&server, "doc", "?after=0&limit=1").await;
    assert_eq!(body["snapshot"]["sequenceNum"], 30, "events 1-25 are gone");

    let (mut alice, head) = Ws::open(&server, "doc", "alice").await;
    assert_eq!(head, 37);
    // Edit 2 was #2, long compacted; edit 6 is new.
    let edits = vec![
        edit(2, 37, Operation::Update, add_item(json!("a2 again"))),
        edit(6, 37, Operation::Update, add_item(json!("a6"))),
    ];
    alice.send(&ClientMessage::Submit { edits }).await;
    let ServerMessage::Event { events } = alice.recv().await else {
        panic!("the new edit's event comes first")
    };
    assert_eq!(seqs(&events), vec![38]);
    assert_eq!(events[0].client_seq, Some(6));
    let ServerMessage::Ack { edits } = alice.recv().await else {
        panic!("then the ack")
    };
    let acks: Vec<(u64, u64, bool)> = edits
        .iter()
        .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
        .collect();
    assert_eq!(acks, vec![(2, 2, true), (6, 38, false)]);

    // The whole compacted prefix, resent against its original base: every one a duplicate.
    let mut edits = vec![edit(
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {}}]),
    )];
    for n in 2..=5 {
        edits.push(edit(n, 0, Operation::Update, add_item(json!(n))));
    }
    alice.send(&ClientMessage::Submit { edits }).await;
    let ServerMessage::Ack { edits } = alice.recv().await else {
        panic!("an ack, and no event")
    };
    let acks: Vec<(u64, u64, bool)> = edits
        .iter()
        .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
        .collect();
    assert_eq!(acks, (1..=5).map(|n| (n, n, true)).collect::<Vec<_>>());
    let (_, body) = api::get_document(&server, "doc").await;
    assert_eq!(body["sequenceNum"], 38, "nothing was applied again");
    assert_eq!(body["document"]["items"].as_array().unwrap().len(), 37);
}

mod sessions;
