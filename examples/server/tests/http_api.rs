//! The HTTP API (`docs/PROTOCOL.md` section 12) against a real server over real HTTP, with every
//! write also watched by a real WebSocket and a real SSE subscriber.

mod support;

use eventsync::protocol::{ClientMessage, Event, Operation, ServerMessage};
use eventsync::StateManager;
use serde_json::{json, Value};
use support::api::{self, assert_error, written};
use support::sse::{self, SseStream};
use support::{edit, http, TestServer, Ws};

/// The `sequenceNum`s of a page's events.
fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("a page has events: {page}"))
        .iter()
        .map(|e| e["sequenceNum"].as_u64().unwrap())
        .collect()
}

/// The next live event on a WebSocket (exactly one per frame from this server).
async fn ws_event(ws: &mut Ws) -> Event {
    match ws.recv().await {
        ServerMessage::Event { mut events } => {
            assert_eq!(events.len(), 1, "one event per frame");
            events.remove(0)
        }
        other => panic!("expected a live event, got {other:?}"),
    }
}

/// The next live SSE `event`, which must carry its `sequenceNum` as `id:`.
async fn sse_event(stream: &mut SseStream) -> Event {
    let message = stream.next().await;
    assert_eq!(message.event, "event", "{message:?}");
    let event: Event = serde_json::from_str(&message.data).expect("an Event");
    assert_eq!(message.id, Some(event.sequence_num.to_string()));
    event
}

/// Checks what every HTTP write's event looks like, on both live channels, and applies it to the
/// reader's copy; returns the event.
async fn broadcast(
    ws: &mut Ws,
    stream: &mut SseStream,
    reader: &mut StateManager,
    sequence_num: u64,
    operation: Operation,
) -> Event {
    let event = ws_event(ws).await;
    assert_eq!(sse_event(stream).await, event, "SSE and WebSocket agree");
    assert_eq!(event.sequence_num, sequence_num);
    assert_eq!(event.operation, operation);
    assert_eq!(event.client_id, "server", "HTTP writes without a token");
    assert_eq!(event.client_seq, None, "HTTP writes carry no clientSeq");
    assert_eq!(event.document_id, "board");
    assert!(!event.id.is_empty() && !event.timestamp.is_empty());
    assert_eq!(event.vector_clock.get("server"), sequence_num);
    assert_eq!(event.vector_clock.max_seq(), sequence_num);
    if operation == Operation::Delete {
        assert!(event.diff.is_none(), "a delete's diff is null");
    } else {
        assert!(event.diff.is_some(), "a write's diff is a patch");
    }
    reader.apply(&event).expect("the event applies");
    event
}

/// `GET /api/documents/board` must be the reader's document at `sequence_num`.
async fn assert_document(server: &TestServer, reader: &StateManager, sequence_num: u64) {
    let (status, body) = api::get_document(server, "board").await;
    assert_eq!(status, 200);
    assert_eq!(body["documentId"], "board");
    assert_eq!(body["sequenceNum"], sequence_num);
    assert_eq!(body["vectorClock"], json!({"server": sequence_num}));
    let expected = reader.document().cloned().unwrap_or(Value::Null);
    assert_eq!(body["document"], expected);
    assert_eq!(reader.applied_seq(), sequence_num);
}

#[tokio::test]
async fn health_answers_ok() {
    let server = TestServer::start().await;
    let (status, body) = api::send(http().get(server.url("/health"))).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn a_document_is_created_updated_patched_deleted_and_recreated_and_each_write_is_broadcast() {
    let server = TestServer::start().await;

    // Never written: an absent document at 0, not an error.
    let (status, body) = api::get_document(&server, "board").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"documentId": "board", "sequenceNum": 0, "document": null, "vectorClock": {}})
    );

    let (mut ws, head) = Ws::open(&server, "board", "watcher").await;
    assert_eq!(head, 0);
    let mut stream = sse::open(&server, "/api/stream/board", None)
        .await
        .expect("stream opens");
    let connected = stream.next().await;
    assert_eq!(connected.event, "connected");
    assert_eq!(
        connected.json(),
        json!({"documentId": "board", "headSeq": 0})
    );
    let mut reader = StateManager::new("board");

    // PUT of an absent document: a create.
    let first = json!({"title": "Sprint 12", "cards": []});
    assert_eq!(written(api::put(&server, "board", &first).await), 1);
    let event = broadcast(&mut ws, &mut stream, &mut reader, 1, Operation::Create).await;
    assert_eq!(
        serde_json::to_value(event.diff.unwrap()).unwrap(),
        json!({"patch": [{"op": "add", "path": "", "value": first}]})
    );
    assert_document(&server, &reader, 1).await;
    assert_eq!(reader.document(), Some(&first));

    // PUT of a present document: an update.
    let second = json!({"title": "Sprint 12 (extended)", "cards": [{"id": "c1", "done": false}]});
    assert_eq!(written(api::put(&server, "board", &second).await), 2);
    broadcast(&mut ws, &mut stream, &mut reader, 2, Operation::Update).await;
    assert_document(&server, &reader, 2).await;
    assert_eq!(reader.document(), Some(&second));

    // PATCH as application/json-patch+json, then as application/json.
    let patch = json!([
        {"op": "test", "path": "/cards/0/id", "value": "c1"},
        {"op": "replace", "path": "/cards/0/done", "value": true}
    ]);
    assert_eq!(written(api::patch(&server, "board", &patch).await), 3);
    broadcast(&mut ws, &mut stream, &mut reader, 3, Operation::Update).await;
    assert_document(&server, &reader, 3).await;
    let patch = json!([{"op": "add", "path": "/cards/-", "value": {"id": "c2", "done": false}}]);
    let answer = api::patch_as(&server, "board", "application/json", &patch).await;
    assert_eq!(written(answer), 4);
    broadcast(&mut ws, &mut stream, &mut reader, 4, Operation::Update).await;
    assert_document(&server, &reader, 4).await;
    assert_eq!(
        reader.document(),
        Some(&json!({
            "title": "Sprint 12 (extended)",
            "cards": [{"id": "c1", "done": true}, {"id": "c2", "done": false}]
        }))
    );

    // DELETE: a delete event; the document reads as absent.
    assert_eq!(written(api::delete(&server, "board").await), 5);
    broadcast(&mut ws, &mut stream, &mut reader, 5, Operation::Delete).await;
    assert_document(&server, &reader, 5).await;
    assert_eq!(reader.document(), None);

    // PUT after the delete: created again.
    let third = json!({"title": "again"});
    assert_eq!(written(api::put(&server, "board", &third).await), 6);
    broadcast(&mut ws, &mut stream, &mut reader, 6, Operation::Create).await;
    assert_document(&server, &reader, 6).await;
    assert_eq!(reader.document(), Some(&third));

    // The log read back over HTTP is the one that was broadcast.
    let (status, page) = api::events(&server, "board", "").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(page["headSeq"], 6);
    assert_eq!(page["hasMore"], false);
}

#[tokio::test]
async fn failed_writes_answer_an_error_body_with_the_right_status_and_store_nothing() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 1024).await;
    let (mut ws, _) = Ws::open(&server, "doc", "watcher").await;

    // Writes to an absent document.
    assert_error(
        &api::put(&server, "doc", &Value::Null).await,
        422,
        "invalid_patch",
    );
    let patch = json!([{"op": "add", "path": "/a", "value": 1}]);
    assert_error(
        &api::patch(&server, "doc", &patch).await,
        409,
        "document_state",
    );
    assert_error(&api::delete(&server, "doc").await, 409, "document_state");

    assert_eq!(
        written(api::put(&server, "doc", &json!({"a": [1]})).await),
        1
    );
    assert_eq!(ws_event(&mut ws).await.sequence_num, 1);

    // Patches that fail are atomic: nothing of them is applied, no event is written.
    for failing in [
        json!([{"op": "add", "path": "/a/-", "value": 2}, {"op": "test", "path": "/a/0", "value": 9}]),
        json!([{"op": "remove", "path": "/missing"}]),
        json!([{"op": "replace", "path": "", "value": null}]),
    ] {
        assert_error(
            &api::patch(&server, "doc", &failing).await,
            422,
            "invalid_patch",
        );
    }
    assert_error(
        &api::put(&server, "doc", &Value::Null).await,
        422,
        "invalid_patch",
    );

    // Bodies that are not JSON.
    assert_error(
        &api::put_raw(&server, "doc", b"{\"a\": ".to_vec()).await,
        400,
        "malformed_frame",
    );
    assert_error(
        &api::send(
            http()
                .patch(server.url("/api/documents/doc"))
                .header("content-type", "application/json-patch+json")
                .body("[{\"op\": \"add\","),
        )
        .await,
        400,
        "malformed_frame",
    );
    assert_error(
        &api::send(
            http()
                .post(server.url("/api/sync/doc"))
                .header("content-type", "application/json")
                .body("not json"),
        )
        .await,
        400,
        "malformed_frame",
    );

    // Bodies over the limit (just over it, and far over it) and nested too deeply.
    let just_over = json!({"text": "x".repeat(1100)});
    assert_error(
        &api::put(&server, "doc", &just_over).await,
        413,
        "too_large",
    );
    let far_over = json!({"text": "x".repeat(10_000)});
    assert_error(&api::put(&server, "doc", &far_over).await, 413, "too_large");
    let far_over_patch = json!([{"op": "add", "path": "/t", "value": "x".repeat(10_000)}]);
    assert_error(
        &api::patch(&server, "doc", &far_over_patch).await,
        413,
        "too_large",
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_error(
        &api::put_raw(&server, "doc", deep.into_bytes()).await,
        413,
        "too_large",
    );

    // Document ids outside the rules of section 1, on every route.
    let long = "x".repeat(129);
    for id in ["has%20space", "bad!id", long.as_str()] {
        let url = |path: &str| server.url(&format!("{path}{id}"));
        let answers = [
            api::send(http().get(url("/api/documents/"))).await,
            api::send(http().put(url("/api/documents/")).body("{}")).await,
            api::send(http().patch(url("/api/documents/")).body("[]")).await,
            api::send(http().delete(url("/api/documents/"))).await,
            api::send(http().get(url("/api/events/"))).await,
            api::send(http().post(url("/api/sync/")).body("{}")).await,
            api::send(http().get(url("/api/stream/"))).await,
        ];
        for answer in &answers {
            assert_error(answer, 404, "unknown_document");
        }
    }

    // None of it reached the log or the subscribers.
    let (_, body) = api::get_document(&server, "doc").await;
    assert_eq!(body["sequenceNum"], 1);
    assert_eq!(body["document"], json!({"a": [1]}));
    assert!(
        ws.try_recv(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "a failed write broadcasts nothing"
    );
}

/// Writes a log with three origins: #1 server (create), #2 alice, #3 bob, #4 server, #5 alice.
async fn three_origins(server: &TestServer, document: &str) {
    assert_eq!(
        written(api::put(server, document, &json!({"items": []})).await),
        1
    );
    let submit = |client_seq, base_seq, value| ClientMessage::Submit {
        edits: vec![edit(
            client_seq,
            base_seq,
            Operation::Update,
            json!([{"op": "add", "path": "/items/-", "value": value}]),
        )],
    };
    let acked = |m: &ServerMessage| matches!(m, ServerMessage::Ack { .. });
    let (mut alice, _) = Ws::open(server, document, "alice").await;
    let (mut bob, _) = Ws::open(server, document, "bob").await;
    alice.send(&submit(1, 1, "a1")).await;
    assert!(
        matches!(alice.recv_until(acked).await, ServerMessage::Ack { edits } if edits[0].sequence_num == 2)
    );
    bob.send(&submit(1, 2, "b1")).await;
    assert!(
        matches!(bob.recv_until(acked).await, ServerMessage::Ack { edits } if edits[0].sequence_num == 3)
    );
    let patch = json!([{"op": "add", "path": "/items/-", "value": "s"}]);
    assert_eq!(written(api::patch(server, document, &patch).await), 4);
    alice.send(&submit(2, 4, "a2")).await;
    assert!(
        matches!(alice.recv_until(acked).await, ServerMessage::Ack { edits } if edits[0].sequence_num == 5)
    );
}

#[tokio::test]
async fn post_sync_answers_exactly_the_events_a_state_vector_misses() {
    let server = TestServer::start().await;
    three_origins(&server, "doc").await;

    let cases = [
        (json!({}), vec![1, 2, 3, 4, 5]),
        (json!({"vectorClock": {}}), vec![1, 2, 3, 4, 5]),
        (
            json!({"clientId": "carol", "documentId": "doc", "vectorClock": {"server": 1, "alice": 2}}),
            vec![3, 4, 5],
        ),
        // The seed's rule, not a cursor: every event of an origin the vector does not name.
        (json!({"vectorClock": {"alice": 5}}), vec![1, 3, 4]),
        (json!({"vectorClock": {"server": 4, "bob": 3}}), vec![2, 5]),
        (
            json!({"documentId": "", "vectorClock": {"server": 4, "alice": 5, "bob": 3}}),
            vec![],
        ),
    ];
    for (vector, expected) in cases {
        let (status, page) = api::sync(&server, "doc", &vector).await;
        assert_eq!(status, 200, "{vector}: {page}");
        assert_eq!(seqs(&page), expected, "{vector}");
        assert_eq!(page["headSeq"], 5);
        assert_eq!(page["hasMore"], false);
        assert!(page.get("snapshot").is_none(), "no snapshot: {page}");
    }
    // The events are the log's, whole.
    let (_, page) = api::sync(
        &server,
        "doc",
        &json!({"vectorClock": {"server": 4, "bob": 3}}),
    )
    .await;
    let alice: Vec<Event> = serde_json::from_value(page["events"].clone()).unwrap();
    assert_eq!(alice[0].client_id, "alice");
    assert_eq!(alice[0].client_seq, Some(1));
    assert_eq!(alice[1].client_seq, Some(2));
    // An event carries its own entry, not the document's whole vector (section 2).
    assert_eq!(alice[1].vector_clock.len(), 1);
    assert_eq!(alice[1].vector_clock.get("alice"), alice[1].sequence_num);

    assert_error(
        &api::sync(
            &server,
            "doc",
            &json!({"documentId": "other", "vectorClock": {}}),
        )
        .await,
        400,
        "malformed_frame",
    );
    assert_error(
        &api::sync(&server, "doc", &json!({"vectorClock": {"alice": 6}})).await,
        400,
        "invalid_sequence",
    );
    for bad in [
        json!({"vectorClock": {"alice": "3"}}),
        json!({"vectorClock": {"alice": -1}}),
        json!({"vectorClock": {"alice": 1.5}}),
        json!([]),
    ] {
        assert_error(
            &api::sync(&server, "doc", &bad).await,
            400,
            "malformed_frame",
        );
    }
}

#[tokio::test]
async fn get_events_pages_through_the_whole_log() {
    let server = TestServer::start().await;
    assert_eq!(written(api::put(&server, "log", &json!({"n": 0})).await), 1);
    for n in 2..=25u64 {
        let patch = json!([{"op": "replace", "path": "/n", "value": n}]);
        assert_eq!(written(api::patch(&server, "log", &patch).await), n);
    }

    // Page by page, asking again with `after` = the last sequenceNum while hasMore.
    let mut all = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, page) = api::events(&server, "log", &format!("?after={after}&limit=10")).await;
        assert_eq!(status, 200);
        assert_eq!(page["headSeq"], 25);
        pages += 1;
        let got = seqs(&page);
        assert!(got.len() <= 10);
        all.extend(got.iter().copied());
        if page["hasMore"] == false {
            break;
        }
        assert_eq!(page["hasMore"], true);
        after = *got.last().unwrap();
    }
    assert_eq!(pages, 3);
    assert_eq!(all, (1..=25).collect::<Vec<_>>());

    // A page that ends exactly at the head has nothing more.
    let (_, page) = api::events(&server, "log", "?after=20&limit=5").await;
    assert_eq!(seqs(&page), vec![21, 22, 23, 24, 25]);
    assert_eq!(page["hasMore"], false);
    let (_, page) = api::events(&server, "log", "?after=19&limit=5").await;
    assert_eq!(seqs(&page), vec![20, 21, 22, 23, 24]);
    assert_eq!(page["hasMore"], true);

    // Defaults: after 0, limit 1000; unknown parameters are ignored.
    let (_, page) = api::events(&server, "log", "?unknown=1").await;
    assert_eq!(seqs(&page), (1..=25).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], false);

    // limit=0: no events, just headSeq and whether anything follows `after`.
    let (_, page) = api::events(&server, "log", "?limit=0").await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    assert_eq!(page["headSeq"], 25);
    assert_eq!(page["hasMore"], true);
    let (_, page) = api::events(&server, "log", "?after=25&limit=0").await;
    assert_eq!(page["hasMore"], false);
    let (_, page) = api::events(&server, "log", "?after=25").await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    assert_eq!(page["hasMore"], false);

    // A never-written document has an empty log.
    let (status, page) = api::events(&server, "nothing-here", "").await;
    assert_eq!(status, 200);
    assert_eq!(page, json!({"events": [], "headSeq": 0, "hasMore": false}));

    assert_error(
        &api::events(&server, "log", "?after=26").await,
        400,
        "invalid_sequence",
    );
    for query in [
        "?after=abc",
        "?after=-1",
        "?after=1.5",
        "?limit=x",
        "?limit=-3",
    ] {
        assert_error(
            &api::events(&server, "log", query).await,
            400,
            "malformed_frame",
        );
    }
}

#[tokio::test]
async fn get_events_treats_a_limit_above_10000_as_10000() {
    let server = TestServer::start().await;
    support::bulk::seed_log(&server, "big", 10_050).await;

    let (status, page) = api::events(&server, "big", "?limit=20000").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&page), (1..=10_000).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["headSeq"], 10_050);
    let (_, page) = api::events(&server, "big", "?after=10000&limit=20000").await;
    assert_eq!(seqs(&page), (10_001..=10_050).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], false);
    let (_, page) = api::events(&server, "big", "?after=5").await;
    assert_eq!(
        seqs(&page),
        (6..=1005).collect::<Vec<_>>(),
        "the default limit is 1000"
    );
    assert_eq!(page["hasMore"], true);
    let (_, body) = api::get_document(&server, "big").await;
    assert_eq!(body["document"], json!({"n": 10_049}));
}
