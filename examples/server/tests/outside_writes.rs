//! Changes other programs make to the database with plain SQL (`docs/PROTOCOL.md` section 17),
//! on both backends with a real server: each becomes one event of the `server` origin, and the
//! document stays usable, also after a restart.
//!
//! The PostgreSQL test needs the server `scripts/with-postgres.sh` starts (or
//! `EVENTSYNC_SKIP_POSTGRES=1`).

mod support;

use std::time::{Duration, Instant};

use eventsync::protocol::{Operation, ServerMessage};
use eventsync::StateManager;
use serde_json::{json, Value};
use support::{
    document, edit, http, put, read_log, run_sql, unique, TempDir, TestServer, Ws, WAIT,
};

async fn server_on(database: &str) -> TestServer {
    TestServer::start_on(database, |config| {
        config.rate_limit = 100_000;
        config.rate_burst = 100_000;
    })
    .await
}

/// The next live event on `ws`.
async fn next_event(ws: &mut Ws) -> eventsync::Event {
    match ws
        .recv_until(|m| matches!(m, ServerMessage::Event { .. }))
        .await
    {
        ServerMessage::Event { mut events } => events.remove(0),
        _ => unreachable!(),
    }
}

/// Polls `GET /api/documents` until the document reaches `sequence_num`.
async fn wait_for_seq(server: &TestServer, doc: &str, sequence_num: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = document(server, doc).await;
        if snapshot["sequenceNum"] == sequence_num {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "{doc} stayed at {snapshot}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The issue's failure: `DELETE FROM documents` left the document stuck (every write refused,
/// sequence 0 after a restart). Now it is a delete event and everything goes on.
async fn a_deleted_row_is_a_delete_event_and_the_document_stays_usable(database: &str) {
    let mut server = server_on(database).await;
    let doc = unique("outside");
    assert_eq!(put(&server, &doc, &json!({"n": 1})).await, 1);
    let (mut watcher, head) = Ws::open(&server, &doc, "watcher").await;
    assert_eq!(head, 1);

    run_sql(
        database,
        &format!("DELETE FROM documents WHERE document_id = '{doc}'"),
    )
    .await;
    let deleted = next_event(&mut watcher).await;
    assert_eq!(
        (
            deleted.sequence_num,
            deleted.operation,
            deleted.client_id.as_str()
        ),
        (2, Operation::Delete, "server")
    );
    let snapshot = document(&server, &doc).await;
    assert_eq!(
        (
            snapshot["sequenceNum"].clone(),
            snapshot["document"].clone()
        ),
        (json!(2), Value::Null)
    );

    // Writable again: a PUT creates it, a PATCH and a WebSocket edit change it.
    assert_eq!(put(&server, &doc, &json!({"n": 3})).await, 3);
    let patched = http()
        .patch(server.url(&format!("/api/documents/{doc}")))
        .json(&json!([{"op": "replace", "path": "/n", "value": 4}]))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let (mut alice, head) = Ws::open(&server, &doc, "alice").await;
    assert_eq!(head, 4);
    alice
        .submit(vec![edit(
            1,
            4,
            Operation::Update,
            json!([{"op": "add", "path": "/by", "value": "alice"}]),
        )])
        .await;
    match alice.answer().await.1 {
        ServerMessage::Ack { edits } => assert_eq!(edits[0].sequence_num, 5),
        other => panic!("{other:?}"),
    }

    // A row another program inserts for a document the log never had: a create event.
    let fresh = unique("outside-new");
    run_sql(
        database,
        &format!(
            r#"INSERT INTO documents (document_id, body, head_seq, vector) VALUES ('{fresh}', '{{"made":"by SQL"}}', 0, '{{}}')"#
        ),
    )
    .await;
    let created = wait_for_seq(&server, &fresh, 1).await;
    assert_eq!(created["document"], json!({"made": "by SQL"}));

    // After a restart the heads are the log's.
    server.stop().await;
    let mut server = server_on(database).await;
    let snapshot = document(&server, &doc).await;
    assert_eq!(snapshot["sequenceNum"], 5);
    assert_eq!(snapshot["document"], json!({"n": 4, "by": "alice"}));
    let log = read_log(&server.http, &doc, 1000).await;
    let mut state = StateManager::new(&doc);
    for event in &log {
        state.apply(event).expect("the log replays");
    }
    assert_eq!(state.document(), Some(&json!({"n": 4, "by": "alice"})));
    assert_eq!(log[0].operation, Operation::Create);
    assert_eq!(
        read_log(&server.http, &fresh, 1000).await[0].operation,
        Operation::Create
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outside_writes() {
    let dir = TempDir::new("outside");
    a_deleted_row_is_a_delete_event_and_the_document_stays_usable(&dir.sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outside_writes() {
    let url = match std::env::var("EVENTSYNC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("EVENTSYNC_SKIP_POSTGRES").as_deref() == Ok("1") => return,
        _ => panic!("EVENTSYNC_TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh"),
    };
    a_deleted_row_is_a_delete_event_and_the_document_stays_usable(&url).await;
}
