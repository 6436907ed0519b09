//! Snapshots and compacted history (`docs/PROTOCOL.md` 6.3, 3.7, 8.3 step 2) against a real
//! server that stores a snapshot every 10 events and keeps 5 events behind the latest one.

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
        reader.install_snapshot(snapshot).unwrap();
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

fn vector(entries: &[(&str, u64)]) -> VectorClock {
    entries.iter().map(|(c, s)| (c.to_string(), *s)).collect()
}

#[tokio::test]
async fn websocket_catch_ups_start_with_a_snapshot_only_when_behind_the_retained_history() {
    let server = snapshotting_server().await;
    let log = thirty_seven(&server).await;
    let snapshot_30 = {
        let reader = reader_at(&log, 30);
        Snapshot {
            document_id: "doc".into(),
            sequence_num: 30,
            document: reader.document().cloned(),
            vector_clock: reader.state_vector().clone(),
        }
    };
    assert_eq!(
        snapshot_30.vector_clock,
        vector(&[("alice", 5), ("bob", 7), ("server", 30)])
    );
    let (mut carol, head) = Ws::open(&server, "doc", "carol").await;
    assert_eq!(head, 37);

    // A new client: the snapshot, then the events after it, not the whole log.
    let (snapshot, events) = ws_sync(&mut carol, VectorClock::new(), None).await;
    assert_eq!(snapshot.as_ref(), Some(&snapshot_30));
    assert_eq!(seqs(&events), (31..=37).collect::<Vec<_>>());
    assert_eq!(
        events,
        log[30..].to_vec(),
        "the events as they were broadcast"
    );
    assert_converges(
        &server,
        StateManager::new("doc"),
        snapshot.as_ref(),
        &events,
    )
    .await;

    // Older than the retained history (#26 on), by cursor and by vector: snapshot + tail.
    for (vector_clock, after) in [
        (vector(&[("alice", 2)]), Some(2)),
        (vector(&[("alice", 2)]), None),
        (vector(&[("alice", 5), ("bob", 7), ("server", 20)]), None),
    ] {
        let position = after.unwrap_or(vector_clock.max_seq());
        let (snapshot, events) = ws_sync(&mut carol, vector_clock.clone(), after).await;
        assert_eq!(
            snapshot.as_ref(),
            Some(&snapshot_30),
            "{vector_clock:?} {after:?}"
        );
        assert_eq!(seqs(&events), (31..=37).collect::<Vec<_>>());
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
    let snapshot_30 = serde_json::to_value(Snapshot {
        document_id: "doc".into(),
        sequence_num: 30,
        document: reader_at(&log, 30).document().cloned(),
        vector_clock: reader_at(&log, 30).state_vector().clone(),
    })
    .unwrap();
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

    for body in [json!({}), json!({"vectorClock": {"alice": 2}})] {
        let (status, page) = api::sync(&server, "doc", &body).await;
        assert_eq!(status, 200);
        assert_eq!(page["snapshot"], snapshot_30, "{body}");
        assert_eq!(page_seqs(&page), (31..=37).collect::<Vec<_>>());
    }

    // SSE: connected, the snapshot (id 30), then the events after it.
    let mut stream = sse::open(&server, "/api/stream/doc?after=3", None)
        .await
        .expect("stream opens");
    assert_eq!(stream.next().await.event, "connected");
    let message = stream.next().await;
    assert_eq!(message.event, "snapshot");
    assert_eq!(message.id.as_deref(), Some("30"));
    assert_eq!(message.json(), snapshot_30);
    let message = stream.next().await;
    assert_eq!(message.event, "events");
    assert_eq!(message.id.as_deref(), Some("37"));
    let events: Vec<Event> = serde_json::from_str(&message.data).unwrap();
    assert_eq!(seqs(&events), (31..=37).collect::<Vec<_>>());
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

/// Runs a real [`SyncSession`] over a real WebSocket.
struct Driver {
    session: SyncSession,
    socket: Option<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    url: String,
    epoch: Instant,
    /// Every event the session reported.
    events: Vec<SessionEvent>,
}

impl Driver {
    fn new(server: &TestServer, client: &str) -> Self {
        Driver {
            session: SyncSession::new(SessionConfig::new("doc", client)),
            socket: None,
            url: format!("{}/sync/doc", server.ws),
            epoch: Instant::now(),
            events: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn connect(&mut self) {
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&self.url))
            .await
            .expect("connect in time")
            .expect("websocket connects");
        self.socket = Some(socket);
        self.session.handle_connected(self.now());
        self.drain().await;
    }

    /// Loses the connection without a goodbye.
    fn drop_connection(&mut self) {
        self.socket = None;
        self.session.handle_disconnected(self.now());
    }

    /// Carries out the session's outputs.
    async fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Persist => {}
                Output::Transmit(message) => {
                    if let Some(socket) = &mut self.socket {
                        socket
                            .send(Message::Text(protocol::encode(&message).into()))
                            .await
                            .expect("send");
                    }
                }
                Output::Event(event) => self.events.push(event),
                Output::Close { reason, .. } => panic!("the session closed: {reason}"),
            }
        }
    }

    /// Feeds frames and timeouts to the session until `done` holds (or panics after [`WAIT`]).
    async fn run_until(&mut self, mut done: impl FnMut(&SyncSession) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.session) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the session did not get there: applied {}, pending {}, status {:?}; events {:?}",
                self.session.applied_seq(),
                self.session.pending_count(),
                self.session.status(),
                self.events
            );
            let wake = self
                .session
                .poll_timeout()
                .map_or(50, |at| at.saturating_sub(self.now()).min(50));
            let socket = self.socket.as_mut().expect("connected");
            match tokio::time::timeout(Duration::from_millis(wake), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let now = self.now();
                    self.session.handle_frame(now, &text);
                }
                Ok(Some(Ok(_))) => {}
                Ok(None) | Ok(Some(Err(_))) => panic!("the server closed the connection"),
                Err(_) => {
                    let now = self.now();
                    if self.session.poll_timeout().is_some_and(|at| now >= at) {
                        self.session.handle_timeout(now);
                    }
                }
            }
            self.drain().await;
        }
    }

    /// Runs until the session is settled at the server's head; returns the server's document.
    async fn converge(&mut self, server: &TestServer) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (_, body) = api::get_document(server, "doc").await;
            let head = body["sequenceNum"].as_u64().unwrap();
            self.run_until(|s| s.is_settled() && s.applied_seq() >= head)
                .await;
            let (_, again) = api::get_document(server, "doc").await;
            if again["sequenceNum"] == head {
                assert_eq!(self.session.confirmed(), Some(&again["document"]));
                assert_eq!(self.session.document(), Some(&again["document"]));
                return again["document"].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server kept moving"
            );
        }
    }

    fn applied(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Applied { event, .. } => Some(event.sequence_num),
                _ => None,
            })
            .collect()
    }
}

fn items(document: &Value) -> Vec<Value> {
    document["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_sync_session_converges_through_snapshots_live_writes_and_offline_edits() {
    let server = snapshotting_server().await;
    thirty_seven(&server).await;

    // A new client installs the snapshot at #30 and applies only #31-#37.
    let mut carol = Driver::new(&server, "carol");
    carol.connect().await;
    let document = carol.converge(&server).await;
    assert_eq!(carol.session.applied_seq(), 37);
    assert_eq!(carol.applied(), (31..=37).collect::<Vec<_>>());
    assert_eq!(items(&document).len(), 36);

    // Edits while HTTP writes race them (stale bases, rebases, snapshots at #40 and #50).
    let writer = {
        let url = server.url("/api/documents/doc");
        tokio::spawn(async move {
            for n in 0..15 {
                let (status, body) = api::send(
                    support::http()
                        .patch(&url)
                        .header("content-type", "application/json-patch+json")
                        .body(add_item(json!(format!("w{n}"))).to_string()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    for n in 0..5 {
        let now = carol.now();
        carol
            .session
            .edit(
                now,
                serde_json::from_value(add_item(json!(format!("c{n}")))).unwrap(),
            )
            .unwrap();
        carol.drain().await;
        carol.run_until(|_| true).await;
    }
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    let document = carol.converge(&server).await;
    assert_eq!(items(&document).len(), 36 + 15 + 5);
    assert_eq!(carol.session.applied_seq(), 57);

    // Offline edits while the server moves on and compacts past carol's position.
    carol.drop_connection();
    for n in 0..3 {
        let now = carol.now();
        carol
            .session
            .edit(
                now,
                serde_json::from_value(add_item(json!(format!("offline{n}")))).unwrap(),
            )
            .unwrap();
    }
    carol.drain().await;
    for n in 0..20 {
        written(api::patch(&server, "doc", &add_item(json!(format!("away{n}")))).await);
    }
    let applied_before = carol.applied().len();
    carol.connect().await;
    let document = carol.converge(&server).await;
    assert_eq!(carol.session.pending_count(), 0);
    let items = items(&document);
    assert_eq!(items.len(), 36 + 15 + 5 + 20 + 3);
    for n in 0..3 {
        let item = json!(format!("offline{n}"));
        assert_eq!(
            items.iter().filter(|i| **i == item).count(),
            1,
            "{item} once"
        );
    }
    // The reconnect went through a snapshot: #58-#70 were never applied one by one.
    let reapplied = &carol.applied()[applied_before..];
    assert!(
        reapplied.first().is_some_and(|seq| *seq > 70),
        "applied after the reconnect: {reapplied:?}"
    );
}

#[tokio::test]
async fn a_session_whose_edit_was_ordered_then_compacted_while_it_was_away_converges() {
    let server = snapshotting_server().await;
    thirty_seven(&server).await;
    let mut dave = Driver::new(&server, "dave");
    dave.connect().await;
    dave.converge(&server).await;

    // The edit reaches the server, which orders it as #38; the connection is lost before the
    // event and the ack come back.
    let now = dave.now();
    dave.session
        .edit(
            now,
            serde_json::from_value(add_item(json!("dave"))).unwrap(),
        )
        .unwrap();
    dave.drain().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = api::get_document(&server, "doc").await;
        if body["sequenceNum"] == 38 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit was not ordered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dave.drop_connection();
    assert_eq!(dave.session.pending_count(), 1);

    // Meanwhile #38 is folded into the snapshot at #50 and compacted away.
    for n in 39..=52u64 {
        written(api::patch(&server, "doc", &add_item(json!(n))).await);
    }
    let (_, page) = api::events(&server, "doc", "?after=37&limit=0").await;
    assert_eq!(page["snapshot"]["sequenceNum"], 50);

    // Back: the snapshot already holds the edit, and its resend is a duplicate of #38.
    dave.connect().await;
    let document = dave.converge(&server).await;
    assert_eq!(dave.session.pending_count(), 0);
    let dave_items = items(&document)
        .into_iter()
        .filter(|i| *i == json!("dave"))
        .count();
    assert_eq!(dave_items, 1, "the edit is in the document once");
}

#[tokio::test]
async fn catch_ups_racing_compaction_are_gapless() {
    let server = TestServer::start_with(|c| {
        c.snapshot_every = 5;
        c.retain_events = Some(1);
    })
    .await;
    written(api::put(&server, "doc", &json!({"items": []})).await);
    let writer = {
        let url = server.url("/api/documents/doc");
        tokio::spawn(async move {
            for n in 0..300 {
                let (status, body) = api::send(
                    support::http()
                        .patch(&url)
                        .header("content-type", "application/json-patch+json")
                        .body(add_item(json!(n)).to_string()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    let mut checked = 0;
    let mut last_head: u64 = 1;
    while !writer.is_finished() {
        for query in [
            "?after=0".to_owned(),
            format!("?after={}", last_head.saturating_sub(3)),
            format!("?after={last_head}"),
        ] {
            let (status, page) = api::events(&server, "doc", &query).await;
            assert_eq!(status, 200, "{query}: {page}");
            let after: u64 = query[7..].parse().unwrap();
            let snapshot = page
                .get("snapshot")
                .map(|s| s["sequenceNum"].as_u64().unwrap());
            let mut expected = snapshot.unwrap_or(after) + 1;
            for event in page["events"].as_array().unwrap() {
                assert_eq!(
                    event["sequenceNum"], expected,
                    "{query}: a gap after the snapshot {snapshot:?}"
                );
                expected += 1;
            }
            let head = page["headSeq"].as_u64().unwrap();
            assert!(
                expected - 1 <= head && snapshot.unwrap_or(0) <= head,
                "{query}: the page goes past its headSeq {head}: snapshot {snapshot:?}, last {}",
                expected - 1
            );
            last_head = head;
            checked += 1;
        }
    }
    writer.await.unwrap();
    eprintln!("{checked} pages checked");
}

#[tokio::test]
async fn a_websocket_that_falls_behind_the_compacted_history_is_closed_not_sent_a_gap() {
    let server = snapshotting_server().await;
    written(api::put(&server, "doc", &json!({"blob": ""})).await);
    let (mut slow, head) = Ws::open(&server, "doc", "slow").await;
    assert_eq!(head, 1);
    // It reads nothing while 1600 events of 64 KiB are ordered: its socket fills up (here
    // after some 60 events), its connection falls more than the broker's 1024 batches behind,
    // and events it has not been sent yet are compacted away.
    let blob = "x".repeat(64 * 1024);
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let url = server.url("/api/documents/doc");
        let blob = blob.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..800u64 {
                let patch =
                    json!([{"op": "replace", "path": "/blob", "value": format!("{w}-{n}-{blob}")}]);
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
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("writers in time")
            .unwrap();
    }
    // Whatever it is sent is gapless; as it cannot be sent what was compacted, it is closed.
    let mut expected = 2;
    while let Some(message) = slow.try_recv(WAIT).await {
        match message {
            ServerMessage::Event { events } => {
                for event in events {
                    assert_eq!(event.sequence_num, expected, "a gap in the live stream");
                    expected += 1;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        slow.closed_within(Duration::ZERO).await,
        "closed, not just silent (got through #{})",
        expected - 1
    );
    assert!(expected < 1602, "it did fall behind");

    // Reconnected, it catches up from the snapshot.
    let (mut again, head) = Ws::open(&server, "doc", "slow").await;
    assert_eq!(head, 1601);
    again
        .send(&ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: Some(expected - 1),
        })
        .await;
    let ServerMessage::Snapshot { snapshot } = again.recv().await else {
        panic!("a snapshot first")
    };
    let ServerMessage::Events { events, .. } = again.recv().await else {
        panic!("then the tail")
    };
    let mut reader = StateManager::new("doc");
    reader.install_snapshot(&snapshot).unwrap();
    for event in &events {
        reader.apply(event).unwrap();
    }
    let (_, body) = api::get_document(&server, "doc").await;
    assert_eq!(reader.applied_seq(), 1601);
    assert_eq!(Some(&body["document"]), reader.document());
}

#[tokio::test]
async fn an_sse_stream_that_falls_behind_the_compacted_history_ends_and_resumes_from_a_snapshot() {
    let server = snapshotting_server().await;
    written(api::put(&server, "doc", &json!({"blob": ""})).await);
    let mut stream = sse::open(&server, "/api/stream/doc", None)
        .await
        .expect("stream opens");
    assert_eq!(stream.next().await.event, "connected");
    assert_eq!(stream.next().await.event, "events");
    // As for the WebSocket: it reads nothing while 2500 events of 32 KiB are ordered and
    // compacted (here its socket and channel fill after some 250 events).
    let blob = "x".repeat(32 * 1024);
    for n in 0..2500u64 {
        let patch = json!([{"op": "replace", "path": "/blob", "value": format!("{n}-{blob}")}]);
        written(api::patch(&server, "doc", &patch).await);
    }
    // One sequence: the live events it was sent are gapless, and a snapshot never appears
    // in the middle of it (13); the stream ends instead.
    let mut expected = 2;
    while let Some(message) = stream.try_next(WAIT).await {
        assert_eq!(
            message.event, "event",
            "only live events: {}",
            message.event
        );
        let event: Event = serde_json::from_str(&message.data).unwrap();
        assert_eq!(event.sequence_num, expected, "a gap in the stream");
        expected += 1;
    }
    assert!(
        stream.ended_within(Duration::ZERO).await,
        "ended, not silent (got through #{})",
        expected - 1
    );
    assert!(expected < 2502, "it did fall behind");
    eprintln!("the slow stream got through #{}", expected - 1);

    // The browser's reconnection (Last-Event-ID) starts over with the snapshot.
    let last_id = (expected - 1).to_string();
    let mut stream = sse::open(&server, "/api/stream/doc", Some(&last_id))
        .await
        .expect("stream opens");
    assert_eq!(stream.next().await.event, "connected");
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let snapshot: Snapshot = serde_json::from_str(&snapshot.data).unwrap();
    let mut reader = StateManager::new("doc");
    reader.install_snapshot(&snapshot).unwrap();
    while reader.applied_seq() < 2501 {
        let message = stream.next().await;
        let events: Vec<Event> = match message.event.as_str() {
            "events" => serde_json::from_str(&message.data).unwrap(),
            "event" => vec![serde_json::from_str(&message.data).unwrap()],
            other => panic!("unexpected {other}"),
        };
        for event in &events {
            reader.apply(event).unwrap();
        }
    }
    let (_, body) = api::get_document(&server, "doc").await;
    assert_eq!(Some(&body["document"]), reader.document());
}
