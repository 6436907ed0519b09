//! Sync sessions against a compacting server: convergence through snapshots, edits compacted
//! while in flight, catch-ups racing compaction, readers that fall behind it.

use super::*;

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

    // A new client installs the head (#37) as a snapshot: no event of the tail after the stored
    // snapshot (#30) to apply.
    let mut carol = Driver::new(&server, "carol");
    carol.connect().await;
    let document = carol.converge(&server).await;
    assert_eq!(carol.session.applied_seq(), 37);
    assert_eq!(carol.applied(), Vec::<u64>::new());
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
    reader.install_snapshot(snapshot).unwrap();
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
    reader.install_snapshot(snapshot).unwrap();
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
