//! Hostile input that `ws_bad_input.rs` does not already send, over real WebSockets and HTTP:
//! absurd sequence numbers, edits of a deleted document, copy bombs, edits that would leave a
//! document `null`, and bad pointers and wrong types over HTTP. Each gets its documented code
//! (docs/PROTOCOL.md 10.2), nothing accepted before changes, and a bystander connected to the
//! same document keeps being served: the next event it gets is the next accepted edit.

mod support;

use eventsync::protocol::{ClientMessage, ErrorCode, Operation, ServerMessage, MAX_COUNTER};
use eventsync::VectorClock;
use serde_json::{json, Value};
use support::api::{self, assert_error};
use support::{document, edit, http, sse, TestServer, Ws};

/// Another client of the document, to show that the server keeps serving everyone else.
struct Bystander {
    ws: Ws,
}

impl Bystander {
    async fn join(server: &TestServer, doc: &str) -> Self {
        let (ws, _) = Ws::open(server, doc, "bystander").await;
        Bystander { ws }
    }

    /// The next live event it receives is `seq` (so nothing refused was broadcast before it),
    /// and a ping is still answered with the head.
    async fn next_event_is(&mut self, seq: u64) {
        self.next_events_are(seq, seq).await;
    }

    /// The next live events it receives are `first..=last`, in order, in one or more frames.
    async fn next_events_are(&mut self, first: u64, last: u64) {
        let mut seqs = Vec::new();
        while seqs.len() < (last + 1 - first) as usize {
            match self.ws.recv().await {
                ServerMessage::Event { events } => {
                    seqs.extend(events.iter().map(|e| e.sequence_num));
                }
                other => panic!("the bystander expected events {first}..={last}, got {other:?}"),
            }
        }
        assert_eq!(
            seqs,
            (first..=last).collect::<Vec<_>>(),
            "the bystander's next events"
        );
        assert_eq!(self.ws.ping(last).await, Some(last));
    }
}

/// `client` orders an edit setting `/n` and returns its `sequenceNum`.
async fn set_n(ws: &mut Ws, client_seq: u64, base: u64, n: u64) -> u64 {
    ws.submit(vec![edit(
        client_seq,
        base,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": n}]),
    )])
    .await;
    match ws.answer().await.1 {
        ServerMessage::Ack { edits } => edits[0].sequence_num,
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn expect_reject(answer: ServerMessage, client_seq: u64, code: ErrorCode, head_seq: u64) {
    match answer {
        ServerMessage::Reject {
            client_seq: got,
            code: got_code,
            head_seq: got_head,
            message,
        } => {
            assert_eq!(
                (got, got_code, got_head),
                (client_seq, code, head_seq),
                "{message}"
            );
            assert!(!message.is_empty());
        }
        other => panic!("expected reject {code:?}, got {other:?}"),
    }
}

/// Creates `doc` as `{"n": 0, "x": null}` (#1) and returns the creator's connection.
async fn created(server: &TestServer, doc: &str) -> Ws {
    let (mut alice, _) = Ws::open(server, doc, "alice").await;
    alice
        .submit(vec![edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"n": 0, "x": null}}]),
        )])
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { .. }));
    alice
}

#[tokio::test]
async fn absurd_positions_in_sync_and_after_are_refused_with_their_codes() {
    let server = TestServer::start().await;
    let mut alice = created(&server, "doc").await;
    let mut bystander = Bystander::join(&server, "doc").await;
    let before = document(&server, "doc").await;

    // WebSocket `sync`: positions past the head are impossible; numbers above 2^53 - 1 are not
    // counters of this protocol (section 1).
    for (vector, after) in [
        (VectorClock::new(), Some(MAX_COUNTER)),
        (VectorClock::new(), Some(MAX_COUNTER - 1)),
        (
            VectorClock::from_iter([("alice".to_string(), MAX_COUNTER)]),
            None,
        ),
        (VectorClock::from_iter([("nobody".to_string(), 2)]), Some(0)),
    ] {
        alice
            .send(&ClientMessage::Sync {
                vector_clock: vector,
                after,
            })
            .await;
        alice.expect_error(ErrorCode::InvalidSequence).await;
    }
    for frame in [
        r#"{"type":"sync","after":18446744073709551615}"#,
        r#"{"type":"sync","after":9007199254740992}"#,
        r#"{"type":"sync","vectorClock":{"alice":9007199254740992}}"#,
        r#"{"type":"sync","after":18446744073709551616}"#,
        r#"{"type":"sync","after":-5}"#,
        r#"{"type":"sync","vectorClock":{"alice":18446744073709551616}}"#,
        r#"{"type":"sync","vectorClock":{"alice":-1}}"#,
    ] {
        alice.send_text(frame).await;
        alice.expect_error(ErrorCode::MalformedFrame).await;
    }
    assert_eq!(alice.ping(1).await, Some(1));

    // The same over HTTP: GET /api/events, POST /api/sync and the SSE stream.
    let max = MAX_COUNTER;
    for query in [
        format!("?after={max}"),
        format!("?after={}&limit=5", max - 1),
    ] {
        assert_error(
            &api::events(&server, "doc", &query).await,
            400,
            "invalid_sequence",
        );
    }
    for query in [
        "?after=18446744073709551615",
        "?after=9007199254740992",
        "?limit=9007199254740992",
        "?after=+1",
        "?after=18446744073709551616",
        "?after=-1",
        "?after=1.5",
        "?after=0x10",
        "?limit=-1",
        "?limit=1e3",
    ] {
        assert_error(
            &api::events(&server, "doc", query).await,
            400,
            "malformed_frame",
        );
    }
    // A huge limit is only a large page (12.2: capped, not an error).
    let (status, page) = api::events(&server, "doc", &format!("?after=0&limit={max}")).await;
    assert_eq!((status, page["headSeq"].as_u64()), (200, Some(1)));
    assert_error(
        &api::sync(&server, "doc", &json!({"vectorClock": {"alice": max}})).await,
        400,
        "invalid_sequence",
    );
    for body in [
        json!({"vectorClock": {"alice": u64::MAX}}),
        json!({"vectorClock": {"alice": -1}}),
        json!({"vectorClock": {"alice": 1.5}}),
        json!({"vectorClock": {"alice": "1"}}),
    ] {
        assert_error(
            &api::sync(&server, "doc", &body).await,
            400,
            "malformed_frame",
        );
    }
    match sse::open(&server, &format!("/api/stream/doc?after={max}"), None).await {
        Ok(_) => panic!("a stream from after {max} started"),
        Err(answer) => assert_error(&answer, 400, "invalid_sequence"),
    }

    assert_eq!(document(&server, "doc").await, before);
    assert_eq!(set_n(&mut alice, 2, 1, 2).await, 2);
    bystander.next_event_is(2).await;
}

#[tokio::test]
async fn absurd_base_seqs_in_submit_are_invalid_sequence() {
    let server = TestServer::start().await;
    let mut alice = created(&server, "doc").await;
    let mut bystander = Bystander::join(&server, "doc").await;
    let before = document(&server, "doc").await;
    for (client_seq, base) in [(2, MAX_COUNTER), (3, MAX_COUNTER - 1), (4, 2)] {
        alice
            .submit(vec![edit(
                client_seq,
                base,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": 666}]),
            )])
            .await;
        expect_reject(
            alice.answer().await.1,
            client_seq,
            ErrorCode::InvalidSequence,
            1,
        );
    }
    assert_eq!(document(&server, "doc").await, before);
    assert_eq!(set_n(&mut alice, 5, 1, 5).await, 2);
    bystander.next_event_is(2).await;
}

#[tokio::test]
async fn edits_of_a_deleted_document_are_document_state_and_others_are_served() {
    let server = TestServer::start().await;
    let mut alice = created(&server, "doc").await;
    let mut bystander = Bystander::join(&server, "doc").await;
    // Bob deletes it (#2).
    let (mut bob, _) = Ws::open(&server, "doc", "bob").await;
    bob.submit(vec![edit(1, 1, Operation::Delete, json!([]))])
        .await;
    assert!(matches!(bob.answer().await.1, ServerMessage::Ack { .. }));
    bystander.next_event_is(2).await;
    let deleted = document(&server, "doc").await;
    assert_eq!(deleted["document"], Value::Null);

    // Alice, caught up, edits and deletes it: document_state; not caught up: stale_base.
    alice
        .recv_until(|m| matches!(m, ServerMessage::Event { .. }))
        .await;
    let set = json!([{"op": "replace", "path": "/n", "value": 1}]);
    alice
        .submit(vec![edit(2, 2, Operation::Update, set.clone())])
        .await;
    expect_reject(alice.answer().await.1, 2, ErrorCode::DocumentState, 2);
    alice
        .submit(vec![edit(3, 2, Operation::Delete, json!([]))])
        .await;
    expect_reject(alice.answer().await.1, 3, ErrorCode::DocumentState, 2);
    alice
        .submit(vec![edit(4, 1, Operation::Update, set.clone())])
        .await;
    expect_reject(alice.answer().await.1, 4, ErrorCode::StaleBase, 2);
    // Over HTTP.
    assert_error(
        &api::patch(&server, "doc", &set).await,
        409,
        "document_state",
    );
    assert_error(&api::delete(&server, "doc").await, 409, "document_state");
    assert_eq!(document(&server, "doc").await, deleted, "nothing changed");

    // It can be created again, and everyone gets that.
    alice
        .submit(vec![edit(
            5,
            2,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"again": true}}]),
        )])
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { .. }));
    bystander.next_event_is(3).await;
}

#[tokio::test]
async fn copy_bombs_are_too_large_over_websocket_and_http() {
    let server = TestServer::start().await;
    let mut alice = created(&server, "doc").await;
    let mut bystander = Bystander::join(&server, "doc").await;
    let before = document(&server, "doc").await;
    // 64 copies of the root into itself: 2^64 times the document, in about 2 KB.
    let bomb = Value::Array(
        (0..64)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect(),
    );
    alice
        .submit(vec![edit(2, 1, Operation::Update, bomb.clone())])
        .await;
    expect_reject(alice.answer().await.1, 2, ErrorCode::TooLarge, 1);
    assert_error(&api::patch(&server, "doc", &bomb).await, 413, "too_large");
    // Spread over the edits of one submit (each doubles the document): each edit is bounded by
    // the document it applies to, so the submit stops at the bound.
    let edits = (0..64)
        .map(|i| {
            edit(
                3 + i,
                1,
                Operation::Update,
                json!([{"op": "copy", "from": "", "path": format!("/c{i}")}]),
            )
        })
        .collect();
    alice.submit(edits).await;
    let (events, answer) = alice.answer().await;
    match alice.recv().await {
        ServerMessage::Reject {
            code: ErrorCode::TooLarge,
            ..
        } => {}
        other => panic!("expected a too_large reject after {answer:?}, got {other:?}"),
    }
    assert!(!events.is_empty() && events.len() < 64, "{}", events.len());
    let accepted = events.len() as u64;
    let after = document(&server, "doc").await;
    assert_eq!(after["sequenceNum"].as_u64(), Some(1 + accepted));
    assert_ne!(before, after);
    bystander.next_events_are(2, 1 + accepted).await;
    assert_eq!(set_n(&mut alice, 100, 1 + accepted, 7).await, 2 + accepted);
    bystander.next_event_is(2 + accepted).await;
}

#[tokio::test]
async fn edits_that_would_leave_the_document_null_are_invalid_patch() {
    let server = TestServer::start().await;
    // A create that sets nothing: every client would refuse the event.
    let (mut alice, _) = Ws::open(&server, "empty", "alice").await;
    let mut bystander = Bystander::join(&server, "empty").await;
    for (client_seq, patch) in [
        (1, json!([])),
        (2, json!([{"op": "test", "path": "", "value": null}])),
    ] {
        alice
            .submit(vec![edit(client_seq, 0, Operation::Create, patch)])
            .await;
        expect_reject(
            alice.answer().await.1,
            client_seq,
            ErrorCode::InvalidPatch,
            0,
        );
    }
    assert_eq!(document(&server, "empty").await["sequenceNum"], 0);
    alice
        .submit(vec![edit(
            3,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"x": null}}]),
        )])
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { .. }));
    bystander.next_event_is(1).await;
    // A move or copy of a null member to the root, over WebSocket and HTTP.
    let before = document(&server, "empty").await;
    for (client_seq, op) in [(4, "move"), (5, "copy")] {
        let patch = json!([{"op": op, "from": "/x", "path": ""}]);
        alice
            .submit(vec![edit(client_seq, 1, Operation::Update, patch.clone())])
            .await;
        expect_reject(
            alice.answer().await.1,
            client_seq,
            ErrorCode::InvalidPatch,
            1,
        );
        assert_error(
            &api::patch(&server, "empty", &patch).await,
            422,
            "invalid_patch",
        );
    }
    assert_eq!(document(&server, "empty").await, before);
    let mut late = Bystander::join(&server, "empty").await;
    let caught_up = late.ws.sync(VectorClock::new(), None).await;
    assert_eq!(
        caught_up.seqs(),
        vec![1],
        "a new client can read the whole log"
    );
    alice
        .submit(vec![edit(
            6,
            1,
            Operation::Update,
            json!([{"op": "add", "path": "/y", "value": 1}]),
        )])
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { .. }));
    bystander.next_event_is(2).await;
    late.next_event_is(2).await;
}

#[tokio::test]
async fn bad_pointers_wrong_types_and_missing_fields_over_http_are_refused() {
    let server = TestServer::start().await;
    let mut alice = created(&server, "doc").await;
    let mut bystander = Bystander::join(&server, "doc").await;
    let before = document(&server, "doc").await;
    for body in [
        // JSON Pointers that are not pointers.
        json!([{"op": "add", "path": "n", "value": 1}]),
        json!([{"op": "add", "path": "/~2", "value": 1}]),
        json!([{"op": "move", "from": "x", "path": "/y"}]),
        // Wrong types and missing fields.
        json!({"op": "add", "path": "/n", "value": 1}),
        json!([{"op": "add", "path": "/n"}]),
        json!([{"op": "increment", "path": "/n"}]),
        json!([{"path": "/n", "value": 1}]),
        json!([{"op": "add", "path": 5, "value": 1}]),
        json!("[]"),
    ] {
        // JSON that is not an RFC 6902 patch: malformed over HTTP (12.5), as a WebSocket frame
        // carrying it is (Appendix B).
        assert_error(
            &api::patch(&server, "doc", &body).await,
            400,
            "malformed_frame",
        );
    }
    // Not JSON at all.
    let not_json = http()
        .patch(server.url("/api/documents/doc"))
        .header("content-type", "application/json-patch+json")
        .body("[{\"op\": \"add\", \"path\": \"/n\", \"value\": 1},]");
    assert_error(&api::send(not_json).await, 400, "malformed_frame");
    for body in [
        json!({"vectorClock": []}),
        json!({"vectorClock": "alice"}),
        json!({"clientId": 5}),
        json!([]),
    ] {
        assert_error(
            &api::sync(&server, "doc", &body).await,
            400,
            "malformed_frame",
        );
    }
    let not_an_object = http()
        .put(server.url("/api/documents/doc"))
        .header("content-type", "application/json")
        .body("{\"n\": 1,}");
    assert_error(&api::send(not_an_object).await, 400, "malformed_frame");
    assert_eq!(document(&server, "doc").await, before);
    assert_eq!(set_n(&mut alice, 2, 1, 2).await, 2);
    bystander.next_event_is(2).await;
}
