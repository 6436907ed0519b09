//! Catch-up, paging, live fan-out and the edit answers of docs/PROTOCOL.md sections 6-9, over
//! real WebSockets against a real server on a SQLite file.

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use eventsync::protocol::{Ack, ErrorCode, Operation, ServerMessage};
use eventsync::{Event, StateManager, VectorClock};
use serde_json::{json, Value};
use support::{document, edit, http, put, TestServer, Ws};

fn vector(entries: &[(&str, u64)]) -> VectorClock {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Submits one edit and expects it to be ordered (event, then a non-duplicate ack).
async fn order(ws: &mut Ws, client_seq: u64, base: u64, operation: Operation, patch: Value) -> u64 {
    ws.submit(vec![edit(client_seq, base, operation, patch)])
        .await;
    let (events, answer) = ws.answer().await;
    let ServerMessage::Ack { edits } = answer else {
        panic!("edit {client_seq} on base {base} was not acked: {answer:?}")
    };
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0].client_seq, client_seq);
    assert!(!edits[0].duplicate);
    let seq = edits[0].sequence_num;
    assert!(
        events.iter().any(|e| e.sequence_num == seq),
        "the event of edit {client_seq} (#{seq}) came before its ack"
    );
    seq
}

fn expect_ack(answer: ServerMessage) -> Vec<Ack> {
    match answer {
        ServerMessage::Ack { edits } => edits,
        other => panic!("expected ack, got {other:?}"),
    }
}

fn expect_reject(answer: ServerMessage, client_seq: u64, code: ErrorCode, head_seq: u64) {
    match answer {
        ServerMessage::Reject {
            client_seq: got,
            code: got_code,
            message,
            head_seq: got_head,
        } => {
            assert_eq!(
                (got, got_code, got_head),
                (client_seq, code, head_seq),
                "reject ({message})"
            );
            assert!(!message.is_empty());
        }
        other => panic!("expected reject {code:?} of {client_seq}, got {other:?}"),
    }
}

/// Builds the log of `doc` used by the catch-up tests:
/// #1 alice create, #2 bob, #3 alice, #4 server (HTTP PUT), #5 bob, #6 carol.
async fn six_event_log(server: &TestServer, doc: &str) {
    let (mut alice, _) = Ws::open(server, doc, "alice").await;
    let (mut bob, _) = Ws::open(server, doc, "bob").await;
    let (mut carol, _) = Ws::open(server, doc, "carol").await;
    let add = |v: &str| json!([{"op": "add", "path": "/cards/-", "value": v}]);
    let create = json!([{"op": "add", "path": "", "value": {"cards": []}}]);
    assert_eq!(order(&mut alice, 1, 0, Operation::Create, create).await, 1);
    assert_eq!(order(&mut bob, 1, 1, Operation::Update, add("b1")).await, 2);
    assert_eq!(
        order(&mut alice, 2, 2, Operation::Update, add("a2")).await,
        3
    );
    assert_eq!(
        put(
            server,
            doc,
            &json!({"cards": ["a1", "b1", "a2"], "title": "t"})
        )
        .await,
        4
    );
    assert_eq!(order(&mut bob, 2, 4, Operation::Update, add("b2")).await, 5);
    assert_eq!(
        order(&mut carol, 1, 5, Operation::Update, add("c1")).await,
        6
    );
    for ws in [alice, bob, carol] {
        ws.close().await;
    }
}

/// The seed's rule, straight from section 2, for checking answers.
fn missing(log: &[Event], vector: &VectorClock) -> Vec<u64> {
    log.iter()
        .filter(|e| e.sequence_num > vector.get(&e.client_id))
        .map(|e| e.sequence_num)
        .collect()
}

#[tokio::test]
async fn catch_up_from_an_empty_vector_sends_the_whole_log_in_order() {
    let server = TestServer::start().await;
    six_event_log(&server, "board").await;

    let (mut dave, head) = Ws::open(&server, "board", "dave").await;
    assert_eq!(head, 6);
    let answer = dave.sync(VectorClock::new(), None).await;
    assert!(answer.snapshot.is_none());
    assert_eq!(answer.frames, vec![(6, Some(6), false)]);
    assert_eq!(answer.seqs(), vec![1, 2, 3, 4, 5, 6]);

    let origins: Vec<(&str, Option<u64>)> = answer
        .events
        .iter()
        .map(|e| (e.client_id.as_str(), e.client_seq))
        .collect();
    assert_eq!(
        origins,
        vec![
            ("alice", Some(1)),
            ("bob", Some(1)),
            ("alice", Some(2)),
            ("server", None),
            ("bob", Some(2)),
            ("carol", Some(1)),
        ]
    );
    assert_eq!(answer.events[0].operation, Operation::Create);
    // Each event carries its own entry; merged in order they make the document's vector (2).
    assert_eq!(answer.events[5].vector_clock, vector(&[("carol", 6)]));
    let mut merged = VectorClock::new();
    for event in &answer.events {
        merged.merge(&event.vector_clock);
    }
    assert_eq!(
        merged,
        vector(&[("alice", 3), ("bob", 5), ("server", 4), ("carol", 6)])
    );
    for event in &answer.events {
        assert_eq!(event.document_id, "board");
        assert!(!event.id.is_empty() && !event.timestamp.is_empty());
    }

    // Applying the catch-up gives the document the server holds.
    let mut state = StateManager::new("board");
    for event in &answer.events {
        state.apply(event).expect("every event applies");
    }
    let snapshot = document(&server, "board").await;
    assert_eq!(snapshot["sequenceNum"], 6);
    assert_eq!(state.document(), Some(&snapshot["document"]));
    assert_eq!(
        snapshot["document"],
        json!({"cards": ["a1", "b1", "a2", "b2", "c1"], "title": "t"})
    );
}

#[tokio::test]
async fn catch_up_from_a_partial_vector_follows_the_seed_rule() {
    let server = TestServer::start().await;
    six_event_log(&server, "board").await;
    let (mut dave, _) = Ws::open(&server, "board", "dave").await;
    let log = dave.sync(VectorClock::new(), None).await.events;

    let cases: Vec<(VectorClock, Vec<u64>)> = vec![
        // Named origins above their entry, every event of unnamed ones, in order.
        (vector(&[("alice", 3), ("bob", 2)]), vec![4, 5, 6]),
        (vector(&[("bob", 5)]), vec![1, 3, 4, 6]),
        (vector(&[("alice", 1)]), vec![2, 3, 4, 5, 6]),
        (vector(&[("server", 4)]), vec![1, 2, 3, 5, 6]),
        (vector(&[("alice", 1), ("carol", 6)]), vec![2, 3, 4, 5]),
        // An origin without events names nothing: everything is missing.
        (vector(&[("zed", 2)]), vec![1, 2, 3, 4, 5, 6]),
        // Up to date: one empty frame, so that the sync has a visible answer.
        (
            vector(&[("alice", 3), ("bob", 5), ("server", 4), ("carol", 6)]),
            vec![],
        ),
    ];
    for (vector, expected) in cases {
        assert_eq!(missing(&log, &vector), expected, "the test's own rule");
        let answer = dave.sync(vector.clone(), None).await;
        assert!(answer.snapshot.is_none());
        assert_eq!(answer.seqs(), expected, "vector {vector:?}");
        assert_eq!(answer.frames.len(), 1, "vector {vector:?}");
        assert_eq!(answer.frames[0].1, Some(6));
        for event in &answer.events {
            assert_eq!(Some(event), log.iter().find(|e| e.id == event.id));
        }
    }
    // The connection is still fine, and nothing changed.
    assert_eq!(dave.ping(1).await, Some(6));
}

#[tokio::test]
async fn catch_up_after_a_cursor_and_impossible_positions() {
    let server = TestServer::start().await;
    six_event_log(&server, "board").await;
    let (mut dave, _) = Ws::open(&server, "board", "dave").await;

    assert_eq!(
        dave.sync(VectorClock::new(), Some(0)).await.seqs(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        dave.sync(VectorClock::new(), Some(2)).await.seqs(),
        vec![3, 4, 5, 6]
    );
    // `after` wins over the vector (6.1).
    assert_eq!(
        dave.sync(vector(&[("alice", 1), ("carol", 6)]), Some(4))
            .await
            .seqs(),
        vec![5, 6]
    );
    let up_to_date = dave.sync(VectorClock::new(), Some(6)).await;
    assert_eq!(up_to_date.frames, vec![(0, Some(6), false)]);

    // A position ahead of the head: `invalid_sequence` and nothing else (6.2).
    for (vector, after) in [
        (VectorClock::new(), Some(7)),
        (vector(&[("bob", 7)]), None),
        (vector(&[("alice", 100)]), Some(2)),
    ] {
        dave.send(&eventsync::ClientMessage::Sync {
            vector_clock: vector,
            after,
        })
        .await;
        dave.expect_error(ErrorCode::InvalidSequence).await;
        // The next frame is the pong: no events frame followed the error.
        assert_eq!(dave.ping(7).await, Some(6));
    }
}

#[tokio::test]
async fn long_catch_ups_are_paged_with_has_more() {
    // No snapshots, so that a fresh client gets the events themselves.
    let server = TestServer::start_with(|c| c.snapshot_every = 0).await;
    let (mut alice, _) = Ws::open(&server, "long", "alice").await;
    // One submit of 1500 edits: #1 creates, #2..#1500 update.
    let mut edits = vec![edit(
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"n": 0}}]),
    )];
    for seq in 2..=1500u64 {
        edits.push(edit(
            seq,
            0,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": seq}]),
        ));
    }
    alice.submit(edits).await;
    let (events, answer) = alice.answer().await;
    assert_eq!(events.len(), 1500);
    let acks = expect_ack(answer);
    assert_eq!(acks.len(), 1500);
    assert!(acks
        .iter()
        .enumerate()
        .all(|(i, a)| a.client_seq == i as u64 + 1 && a.sequence_num == i as u64 + 1));
    let (mut bob, _) = Ws::open(&server, "long", "bob").await;
    for seq in 1..=5u64 {
        order(
            &mut bob,
            seq,
            1499 + seq,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": 0}]),
        )
        .await;
    }

    let (mut carol, head) = Ws::open(&server, "long", "carol").await;
    assert_eq!(head, 1505);
    let check_pages = |answer: &support::SyncAnswer| {
        let (last, rest) = answer.frames.split_last().expect("at least one frame");
        assert!(!last.2, "the last frame has hasMore false");
        assert!(rest.iter().all(|f| f.2), "earlier frames have hasMore true");
        assert!(answer
            .frames
            .iter()
            .all(|f| f.0 <= 1000 && f.1 == Some(1505)));
    };

    let all = carol.sync(VectorClock::new(), None).await;
    assert_eq!(
        all.frames,
        vec![(1000, Some(1505), true), (505, Some(1505), false)]
    );
    assert_eq!(all.seqs(), (1..=1505).collect::<Vec<_>>());

    let tail = carol.sync(VectorClock::new(), Some(300)).await;
    check_pages(&tail);
    assert_eq!(tail.frames.len(), 2);
    assert_eq!(tail.seqs(), (301..=1505).collect::<Vec<_>>());

    // Vector form over more than a page: the seed's rule holds on every page, and the answer
    // ends with a frame without hasMore even when the first 1000 events are all known.
    let known = carol.sync(vector(&[("alice", 1500)]), None).await;
    check_pages(&known);
    assert_eq!(known.seqs(), vec![1501, 1502, 1503, 1504, 1505]);

    let v = vector(&[("alice", 100), ("bob", 1502)]);
    let mixed = carol.sync(v.clone(), None).await;
    check_pages(&mixed);
    assert_eq!(mixed.seqs(), missing(&all.events, &v));
    assert_eq!(
        mixed.seqs(),
        (101..=1500).chain(1503..=1505).collect::<Vec<_>>()
    );

    // The HTTP form of the same catch-up (12.1) answers the missing events too.
    let page: Value = http()
        .post(server.url("/api/sync/long"))
        .json(&json!({"clientId": "carol", "vectorClock": {"alice": 1500}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequenceNum"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1501, 1502, 1503, 1504, 1505]);
    assert_eq!(page["hasMore"], false);
    assert_eq!(page["headSeq"], 1505);
    assert_eq!(carol.ping(2).await, Some(1505));
}

mod live;

/// The seed's `StateVectorManager`: a `sync` records the vector the client told, in the
/// background (its answer does not wait for the write), and of several syncs the newest stays.
#[tokio::test]
async fn a_sync_is_recorded_as_the_clients_state_vector_the_newest_one_staying() {
    let server = TestServer::start().await;
    six_event_log(&server, "recorded").await;

    let (mut dave, _) = Ws::open(&server, "recorded", "dave").await;
    let first = dave.sync(VectorClock::new(), None).await;
    assert_eq!(first.seqs(), vec![1, 2, 3, 4, 5, 6]);
    let told = vector(&[("alice", 3), ("bob", 5), ("carol", 6), ("server", 4)]);
    let second = dave.sync(told.clone(), None).await;
    assert!(second.events.is_empty());

    // The server's own database, read as another process would.
    let store = eventsync_server::store::open(&server.dir.sqlite_url())
        .await
        .expect("open the server's database");
    let mut recorded = Vec::new();
    for _ in 0..200 {
        recorded = store
            .state_vectors("recorded")
            .await
            .expect("read the vectors");
        if recorded.iter().any(|v| v.vector_clock == told) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dave_vectors: Vec<_> = recorded.iter().filter(|v| v.client_id == "dave").collect();
    assert_eq!(dave_vectors.len(), 1, "one record per client: {recorded:?}");
    assert_eq!(dave_vectors[0].vector_clock, told);
    assert!(dave_vectors[0].last_updated.is_some());
}
