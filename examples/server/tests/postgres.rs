//! The server on PostgreSQL, with real WebSocket clients:
//!
//! - catch-up and live events work as on SQLite, also from a second server on the same database;
//! - a plain-SQL write of a document's body (another program) becomes one `server` event that
//!   subscribers receive, also with two servers listening;
//! - two servers on one database: a burst of edits through both reaches subscribers on both in
//!   the same gapless order, every edit acked exactly once;
//! - simultaneous edits through both servers never share a `sequenceNum`: one is refused with
//!   `stale_base` and succeeds on resend;
//! - a client that knows more of the log than a server's cache (it read another server's write
//!   before this server heard of it) is neither refused a catch-up nor an edit;
//! - protocol 2: a `SyncConnection` on each of two servers, with the same documents open, sees
//!   the other's edits and a plain-SQL write, and converges.
//!
//! These tests need the server `scripts/with-postgres.sh` starts (it exports
//! `EVENTSYNC_TEST_POSTGRES_URL`). Without that variable they fail, unless
//! `EVENTSYNC_SKIP_POSTGRES=1` is set (quick local runs only). Every test uses its own document
//! ids, so they share the database and run in parallel.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use eventsync::protocol::{ClientMessage, ErrorCode, Event, Operation, ServerMessage};
use eventsync::StateManager;
use serde_json::{json, Value};
use support::{edit, http, read_log, unique, Received, TestServer, Ws, WAIT};

/// A server on the PostgreSQL database, without rate limits (the tests type fast).
async fn server_on(url: &str) -> TestServer {
    TestServer::start_on(url, |config| {
        config.rate_limit = 100_000;
        config.rate_burst = 100_000;
    })
    .await
}

/// What a submit of one edit came to.
#[derive(Debug)]
enum Answer {
    Acked { sequence_num: u64, duplicate: bool },
    Stale { head_seq: u64 },
}

/// A WebSocket client that follows the document: every live event it reads must continue its
/// `last` without a gap.
struct Client {
    id: String,
    ws: Ws,
    last: u64,
    /// Every live event read, in order.
    seen: Vec<Event>,
}

impl Client {
    async fn open(server: &TestServer, document: &str, id: &str) -> Self {
        let (ws, head) = Ws::open_at(&server.ws, document, id).await;
        Client {
            id: id.to_owned(),
            ws,
            last: head,
            seen: Vec::new(),
        }
    }

    fn take_events(&mut self, events: Vec<Event>) {
        assert_eq!(
            events[0].sequence_num,
            self.last + 1,
            "{}: live events skipped from #{} to #{}",
            self.id,
            self.last,
            events[0].sequence_num
        );
        for pair in events.windows(2) {
            assert_eq!(pair[1].sequence_num, pair[0].sequence_num + 1);
        }
        self.last = events.last().unwrap().sequence_num;
        self.seen.extend(events);
    }

    async fn next(&mut self) -> ServerMessage {
        match self.ws.receive(WAIT).await {
            Received::Message(message) => message,
            other => panic!("{}: expected a message, got {other:?}", self.id),
        }
    }

    /// Sends `submit` and reads up to its answer (taking the events before it).
    async fn submit(&mut self, client_seq: u64, operation: Operation, patch: Value) -> Answer {
        let edits = vec![edit(client_seq, self.last, operation, patch)];
        self.ws.send(&ClientMessage::Submit { edits }).await;
        loop {
            match self.next().await {
                ServerMessage::Event { events } => self.take_events(events),
                ServerMessage::Ack { edits } => {
                    assert_eq!(edits.len(), 1, "{}: {edits:?}", self.id);
                    assert_eq!(edits[0].client_seq, client_seq);
                    assert!(
                        edits[0].sequence_num <= self.last,
                        "{}: ack of #{} before its event",
                        self.id,
                        edits[0].sequence_num
                    );
                    return Answer::Acked {
                        sequence_num: edits[0].sequence_num,
                        duplicate: edits[0].duplicate,
                    };
                }
                ServerMessage::Reject {
                    client_seq: rejected,
                    code: ErrorCode::StaleBase,
                    head_seq,
                    ..
                } => {
                    assert_eq!(rejected, client_seq);
                    assert!(
                        self.last >= head_seq,
                        "{}: stale_base at head #{head_seq} before events after #{}",
                        self.id,
                        self.last
                    );
                    return Answer::Stale { head_seq };
                }
                other => panic!(
                    "{}: unexpected answer to edit {client_seq}: {other:?}",
                    self.id
                ),
            }
        }
    }

    /// Submits an edit until it is acked (resending it after `stale_base` with a new base);
    /// returns its `sequenceNum` and how many times it was stale.
    async fn submit_until_acked(&mut self, client_seq: u64, patch: Value) -> (u64, usize) {
        let mut stale = 0;
        loop {
            match self
                .submit(client_seq, Operation::Update, patch.clone())
                .await
            {
                Answer::Acked {
                    sequence_num,
                    duplicate,
                } => {
                    assert!(!duplicate, "{}: {client_seq} was ordered before", self.id);
                    return (sequence_num, stale);
                }
                Answer::Stale { .. } => {
                    stale += 1;
                    assert!(stale < 1000, "{}: stale forever", self.id);
                }
            }
        }
    }

    /// Reads live events until `sequence_num` arrived.
    async fn wait_for(&mut self, sequence_num: u64) {
        while self.last < sequence_num {
            match self.next().await {
                ServerMessage::Event { events } => self.take_events(events),
                other => panic!("{}: expected events, got {other:?}", self.id),
            }
        }
    }

    /// True when nothing arrives within `wait`.
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        match self.ws.receive(wait).await {
            Received::TimedOut => true,
            Received::Message(ServerMessage::Event { events }) => {
                self.take_events(events);
                false
            }
            other => panic!("{}: unexpected {other:?}", self.id),
        }
    }
}

/// A document's snapshot through `GET /api/documents`.
async fn read_document(server: &TestServer, document: &str) -> Value {
    let response = http()
        .get(server.url(&format!("/api/documents/{document}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Creates `document` with `body` through `PUT`; returns its `sequenceNum`.
async fn put_document(server: &TestServer, document: &str, body: &Value) -> u64 {
    let response = http()
        .put(server.url(&format!("/api/documents/{document}")))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["sequenceNum"].as_u64().unwrap()
}

/// The document the log builds.
fn replay(document: &str, log: &[Event]) -> Option<Value> {
    let mut state = StateManager::new(document);
    for event in log {
        state.apply(event).expect("the log applies");
    }
    state.document().cloned()
}

fn assert_gapless(log: &[Event], from: u64, to: u64) {
    let seqs: Vec<u64> = log.iter().map(|e| e.sequence_num).collect();
    assert_eq!(seqs, (from..=to).collect::<Vec<_>>(), "not gapless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_and_live_events_work_as_on_sqlite() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-catch-up");
    let mut server = server_on(&url).await;

    let mut alice = Client::open(&server, &document, "alice").await;
    assert_eq!(alice.last, 0);
    let created = alice
        .submit(
            1,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"cards": []}}]),
        )
        .await;
    assert!(matches!(
        created,
        Answer::Acked {
            sequence_num: 1,
            duplicate: false
        }
    ));
    let (seq, _) = alice
        .submit_until_acked(2, json!([{"op": "add", "path": "/cards/-", "value": "c1"}]))
        .await;
    assert_eq!(seq, 2);

    // Catch-up from nothing, then by cursor.
    let mut bob = Client::open(&server, &document, "bob").await;
    assert_eq!(bob.last, 2);
    bob.ws
        .send(&ClientMessage::Sync {
            vector_clock: Default::default(),
            after: None,
        })
        .await;
    let ServerMessage::Events {
        events,
        head_seq,
        has_more,
    } = bob.next().await
    else {
        panic!("expected events")
    };
    assert_eq!(head_seq, Some(2));
    assert!(!has_more);
    assert_eq!(events, alice.seen);
    bob.ws
        .send(&ClientMessage::Sync {
            vector_clock: Default::default(),
            after: Some(1),
        })
        .await;
    let ServerMessage::Events { events, .. } = bob.next().await else {
        panic!("expected events")
    };
    assert_eq!(events, alice.seen[1..]);

    // Live.
    let (seq, _) = alice
        .submit_until_acked(3, json!([{"op": "add", "path": "/cards/-", "value": "c2"}]))
        .await;
    assert_eq!(seq, 3);
    bob.wait_for(3).await;
    assert_eq!(bob.seen, alice.seen[2..]);

    let log = read_log(&server.http, &document, 2).await;
    assert_eq!(log, alice.seen);
    let snapshot = read_document(&server, &document).await;
    assert_eq!(snapshot["sequenceNum"], 3);
    assert_eq!(snapshot["document"], json!({"cards": ["c1", "c2"]}));

    // Another server process on the same database serves the same log.
    let mut other = server_on(&url).await;
    assert_eq!(read_log(&other.http, &document, 1000).await, log);
    let (mut carol, head) = Ws::open_at(&other.ws, &document, "carol").await;
    assert_eq!(head, 3);
    carol
        .send(&ClientMessage::Sync {
            vector_clock: Default::default(),
            after: Some(0),
        })
        .await;
    let ServerMessage::Events { events, .. } = carol.recv().await else {
        panic!("expected events")
    };
    assert_eq!(events, log);
    other.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_sql_write_becomes_one_server_event_on_every_server() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-external");
    let mut a = server_on(&url).await;
    let mut b = server_on(&url).await;

    let mut alice = Client::open(&a, &document, "alice").await;
    alice
        .submit(
            1,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"title": "draft", "n": 1}}]),
        )
        .await;
    let mut watcher_a = Client::open(&a, &document, "watcher-a").await;
    let mut watcher_b = Client::open(&b, &document, "watcher-b").await;
    assert_eq!((watcher_a.last, watcher_b.last), (1, 1));

    // Another program changes the row with plain SQL.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("a separate pool connects");
    let body = json!({"title": "edited by SQL", "n": 2, "tags": ["x"]});
    let written = sqlx::raw_sql(&format!(
        "UPDATE documents SET body = '{body}' WHERE document_id = '{document}'"
    ))
    .execute(&pool)
    .await
    .expect("the plain UPDATE runs");
    assert_eq!(written.rows_affected(), 1);

    for watcher in [&mut watcher_a, &mut watcher_b] {
        watcher.wait_for(2).await;
        let event = &watcher.seen[0];
        assert_eq!(event.client_id, "server", "{}", watcher.id);
        assert_eq!(event.client_seq, None);
        assert_eq!(event.operation, Operation::Update);
    }
    assert_eq!(watcher_a.seen, watcher_b.seen);
    // Exactly one event, although both servers were told.
    assert!(watcher_a.quiet_for(Duration::from_millis(700)).await);
    assert!(watcher_b.quiet_for(Duration::from_millis(10)).await);

    let log = read_log(&b.http, &document, 1000).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1], watcher_a.seen[0]);
    assert_eq!(replay(&document, &log), Some(body.clone()));
    for server in [&a, &b] {
        let snapshot = read_document(server, &document).await;
        assert_eq!(snapshot["sequenceNum"], 2);
        assert_eq!(snapshot["document"], body);
    }

    // Edits go on from the new head, on both servers.
    alice.wait_for(2).await;
    let (seq, _) = alice
        .submit_until_acked(2, json!([{"op": "replace", "path": "/n", "value": 3}]))
        .await;
    assert_eq!(seq, 3);
    watcher_b.wait_for(3).await;
    let snapshot = read_document(&b, &document).await;
    assert_eq!(snapshot["document"]["n"], 3);
    assert_eq!(snapshot["document"]["title"], "edited by SQL");

    pool.close().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_through_two_servers_reaches_both_in_one_gapless_order() {
    const EDITS: u64 = 100;
    const WRITERS: u64 = 4;
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-burst");
    let mut a = server_on(&url).await;
    let mut b = server_on(&url).await;
    assert_eq!(put_document(&a, &document, &json!({})).await, 1);

    let mut watcher_a = Client::open(&a, &document, "watcher-a").await;
    let mut watcher_b = Client::open(&b, &document, "watcher-b").await;
    assert_eq!((watcher_a.last, watcher_b.last), (1, 1));

    let mut writers = Vec::new();
    for index in 0..WRITERS {
        let server = if index % 2 == 0 { &a } else { &b };
        let mut client = Client::open(server, &document, &format!("writer-{index}")).await;
        writers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut stale = 0;
            for client_seq in 1..=EDITS / WRITERS {
                let key = format!("/{}-{client_seq}", client.id);
                let (seq, times) = client
                    .submit_until_acked(client_seq, json!([{"op": "add", "path": key, "value": 1}]))
                    .await;
                acks.push((client.id.clone(), client_seq, seq));
                stale += times;
            }
            (acks, stale)
        }));
    }
    let mut acks = Vec::new();
    let mut stale = 0;
    for writer in writers {
        let (mut some, times) = tokio::time::timeout(WAIT * 3, writer)
            .await
            .expect("the writers finish in time")
            .expect("writer");
        acks.append(&mut some);
        stale += times;
    }
    eprintln!("{EDITS} edits through two servers, {stale} stale_base rejections");

    // Acked exactly once each, at distinct sequenceNums 2..=101.
    assert_eq!(acks.len() as u64, EDITS);
    let seqs: HashSet<u64> = acks.iter().map(|(_, _, seq)| *seq).collect();
    assert_eq!(seqs, (2..=EDITS + 1).collect());

    watcher_a.wait_for(EDITS + 1).await;
    watcher_b.wait_for(EDITS + 1).await;
    assert_gapless(&watcher_a.seen, 2, EDITS + 1);
    assert_eq!(
        watcher_a.seen, watcher_b.seen,
        "both servers sent one order"
    );
    let log = read_log(&b.http, &document, 30).await;
    assert_eq!(log[1..], watcher_a.seen);
    assert_eq!(read_log(&a.http, &document, 1000).await, log);
    let by_edit: HashMap<(String, u64), u64> = log
        .iter()
        .filter_map(|e| Some(((e.client_id.clone(), e.client_seq?), e.sequence_num)))
        .collect();
    for (client, client_seq, seq) in &acks {
        assert_eq!(by_edit.get(&(client.clone(), *client_seq)), Some(seq));
    }
    let expected = replay(&document, &log).expect("the document exists");
    assert_eq!(expected.as_object().unwrap().len() as u64, EDITS);
    for server in [&a, &b] {
        let snapshot = read_document(server, &document).await;
        assert_eq!(snapshot["sequenceNum"], EDITS + 1);
        assert_eq!(snapshot["document"], expected);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_edits_through_two_servers_never_share_a_sequence_num() {
    const ROUNDS: u64 = 20;
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-race");
    let mut a = server_on(&url).await;
    let mut b = server_on(&url).await;
    assert_eq!(put_document(&a, &document, &json!({})).await, 1);
    let mut alice = Client::open(&a, &document, "alice").await;
    let mut bob = Client::open(&b, &document, "bob").await;

    let mut stale = 0;
    let mut acked: HashMap<u64, (String, u64)> = HashMap::new();
    for round in 0..ROUNDS {
        let head = 1 + 2 * round;
        alice.wait_for(head).await;
        bob.wait_for(head).await;
        let client_seq = round + 1;
        let patch = |who: &str| json!([{"op": "add", "path": format!("/{who}-{client_seq}"), "value": round}]);
        // Both edits on the same base, at the same moment, through different servers.
        let (first_a, first_b) = tokio::join!(
            alice.submit(client_seq, Operation::Update, patch("alice")),
            bob.submit(client_seq, Operation::Update, patch("bob")),
        );
        for (client, answer) in [(&mut alice, first_a), (&mut bob, first_b)] {
            let seq = match answer {
                Answer::Acked {
                    sequence_num,
                    duplicate,
                } => {
                    assert!(!duplicate);
                    sequence_num
                }
                Answer::Stale { head_seq } => {
                    assert!(head_seq > head, "stale_base names the event that won");
                    stale += 1;
                    let id = client.id.clone();
                    client.submit_until_acked(client_seq, patch(&id)).await.0
                }
            };
            let previous = acked.insert(seq, (client.id.clone(), client_seq));
            assert!(
                previous.is_none(),
                "#{seq} acked to {previous:?} and to {} {client_seq}",
                client.id
            );
        }
    }
    assert!(stale > 0, "the edits never raced");
    eprintln!("{ROUNDS} rounds, {stale} stale_base rejections");
    let log = read_log(&a.http, &document, 1000).await;
    assert_gapless(&log, 1, 1 + 2 * ROUNDS);
    for event in &log[1..] {
        assert_eq!(
            acked.get(&event.sequence_num),
            Some(&(event.client_id.clone(), event.client_seq.unwrap()))
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ahead_of_this_servers_cache_is_served_and_can_edit() {
    const ROUNDS: u64 = 30;
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-ahead");
    let mut a = server_on(&url).await;
    let mut b = server_on(&url).await;
    assert_eq!(put_document(&a, &document, &json!({"n": 0})).await, 1);
    let mut alice = Client::open(&a, &document, "alice").await;
    for round in 1..=ROUNDS {
        // A write through server B, then at once a catch-up and an edit through server A, which
        // may not have heard of B's write yet: neither is refused as ahead of the log.
        let seq = http()
            .patch(b.url(&format!("/api/documents/{document}")))
            .json(&json!([{"op": "replace", "path": "/n", "value": round}]))
            .send()
            .await
            .unwrap();
        assert_eq!(seq.status(), 200);
        let seq = seq.json::<Value>().await.unwrap()["sequenceNum"]
            .as_u64()
            .unwrap();
        // A client that read B's write elsewhere asks server A for what follows it.
        let page = http()
            .get(a.url(&format!("/api/events/{document}?after={seq}&limit=0")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
        alice
            .ws
            .send(&ClientMessage::Sync {
                vector_clock: Default::default(),
                after: Some(alice.last),
            })
            .await;
        loop {
            match alice.next().await {
                ServerMessage::Events { events, .. } => {
                    // A catch-up may repeat live events already received (6.4).
                    let last = alice.last;
                    let events: Vec<Event> = events
                        .into_iter()
                        .filter(|e| e.sequence_num > last)
                        .collect();
                    if !events.is_empty() {
                        alice.take_events(events);
                    }
                    break;
                }
                ServerMessage::Event { events } => alice.take_events(events),
                other => panic!("unexpected {other:?}"),
            }
        }
        let patch = json!([{"op": "add", "path": format!("/alice-{round}"), "value": round}]);
        alice.submit_until_acked(round, patch).await;
    }
    let log = read_log(&a.http, &document, 1000).await;
    assert_gapless(&log, 1, 1 + 2 * ROUNDS);
    a.stop().await;
    b.stop().await;
}

/// Protocol 2 on two servers: a `SyncConnection` on each, with the same two documents open,
/// receives the other server's edits and a plain-SQL write through `LISTEN/NOTIFY`, and every
/// handle converges on what both servers hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_2_connections_on_two_servers_see_each_others_edits_and_sql_writes() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let documents = [unique("pg-v2-x"), unique("pg-v2-y")];
    let mut a = server_on(&url).await;
    let mut b = server_on(&url).await;
    let on = |server: &TestServer, client: &str| {
        eventsync::SyncConnection::builder(&server.ws)
            .client_id(client)
            .connect()
            .expect("the connection starts")
    };
    let alice = on(&a, "alice");
    let bob = on(&b, "bob");
    let open = |connection: &eventsync::SyncConnection| {
        documents
            .iter()
            .map(|d| connection.open(d.as_str()).expect("opens"))
            .collect::<Vec<_>>()
    };
    let (at_a, at_b) = (open(&alice), open(&bob));
    for handle in at_a.iter().chain(&at_b) {
        tokio::time::timeout(WAIT, handle.sync_state())
            .await
            .expect("caught up in time")
            .expect("caught up");
    }
    // Alice creates one document through server A, Bob the other through server B.
    at_a[0].create(json!({"items": []})).unwrap();
    at_b[1].create(json!({"items": []})).unwrap();
    let arrived =
        |handles: &[eventsync::SyncClient]| handles.iter().all(|h| h.document().is_some());
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(arrived(&at_a) && arrived(&at_b)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the creations crossed servers in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both write both documents at once.
    for round in 0..10 {
        for handles in [&at_a, &at_b] {
            for handle in handles.iter() {
                let item = format!("{}-{round}", handle.client_id());
                handle
                    .edit(json!([{"op": "add", "path": "/items/-", "value": item}]))
                    .unwrap();
            }
        }
    }
    for handle in at_a.iter().chain(&at_b) {
        tokio::time::timeout(WAIT, handle.flush())
            .await
            .expect("flushed in time")
            .expect("flushed");
    }
    // Another program rewrites the first document with plain SQL: both connections see it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("a separate pool connects");
    let body = json!({"items": ["from SQL"]});
    sqlx::raw_sql(&format!(
        "UPDATE documents SET body = '{body}' WHERE document_id = '{}'",
        documents[0]
    ))
    .execute(&pool)
    .await
    .expect("the plain UPDATE runs");
    let deadline = tokio::time::Instant::now() + WAIT;
    while at_a[0].document() != Some(body.clone()) || at_b[0].document() != Some(body.clone()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SQL write reached both connections"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every handle holds what both servers hold, with all 20 items of the other document.
    for (index, document) in documents.iter().enumerate() {
        let head = read_document(&a, document).await;
        assert_eq!(head, read_document(&b, document).await);
        let seq = head["sequenceNum"].as_u64().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while at_a[index].applied_seq() < seq || at_b[index].applied_seq() < seq {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{document} converged in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(at_a[index].document().as_ref(), Some(&head["document"]));
        assert_eq!(at_b[index].document().as_ref(), Some(&head["document"]));
        let log = read_log(&a.http, document, 1000).await;
        assert_gapless(&log, 1, seq);
    }
    assert_eq!(
        at_b[1].document().unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    pool.close().await;
    alice.close().await;
    bob.close().await;
    a.stop().await;
    b.stop().await;
}
