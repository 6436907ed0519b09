//! Issue 19 (schema validation and hooks) and issue 18 (the document size limit): what may enter a
//! document, checked where the log is ordered. Real server, real WebSockets and HTTP, native
//! clients; a refused edit leaves the log unchanged and reaches its client as a rejected edit.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsync::protocol::{ErrorCode, Event, Operation};
use eventsync::{SessionEvent, SyncClient};
use eventsync_server::auth::{Claims, Rights};
use eventsync_server::{Authentication, EditContext, Hooks, Refusal, SchemaRule};
use serde_json::{json, Value};
use support::api::{self, assert_error};
use support::{document, read_log, run_sql, TestServer, WAIT};

/// The edits a client saw refused: `(clientSeq, code, message)`.
type Refused = Arc<Mutex<Vec<(u64, ErrorCode, String)>>>;

/// A native client of `doc` that records the edits the server refused.
fn client(server: &TestServer, doc: &str, id: &str, token: Option<&str>) -> (SyncClient, Refused) {
    let mut builder = SyncClient::builder(&server.ws, doc).client_id(id);
    if let Some(token) = token {
        builder = builder.token(token);
    }
    let client = builder.connect().unwrap();
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let seen = rejected.clone();
    client.on_event(move |event| {
        if let SessionEvent::EditRejected {
            client_seq,
            code,
            message,
        } = event
        {
            seen.lock()
                .unwrap()
                .push((*client_seq, *code, message.clone()));
        }
    });
    (client, rejected)
}

/// Waits until `rejected` has `n` entries.
async fn refusals(
    rejected: &Mutex<Vec<(u64, ErrorCode, String)>>,
    n: usize,
) -> Vec<(u64, ErrorCode, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = rejected.lock().unwrap().clone();
        if now.len() >= n {
            return now;
        }
        assert!(Instant::now() < deadline, "refusals so far: {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_document_may_not_grow_past_the_size_limit_and_what_it_had_stays() {
    let server = TestServer::start_with(|config| config.max_document_bytes = 2_000).await;
    // HTTP: a whole document over the limit is refused; one under it is written.
    let big = json!({"text": "x".repeat(3_000)});
    assert_error(&api::put(&server, "sized", &big).await, 413, "too_large");
    assert_eq!(
        api::put(&server, "sized", &json!({"items": []})).await.0,
        200
    );

    // WebSocket: edits that each fit, until the document would pass the limit.
    let (alice, rejected) = client(&server, "sized", "alice", None);
    alice.sync_state().await.unwrap();
    for i in 0..10 {
        let item = format!("{i}{}", "y".repeat(299));
        alice
            .edit(json!([{"op": "add", "path": "/items/-", "value": item}]))
            .unwrap();
    }
    let refused = refusals(&rejected, 1).await;
    assert_eq!(refused[0].1, ErrorCode::TooLarge, "{refused:?}");
    alice.flush().await.unwrap();
    let stored = document(&server, "sized").await;
    let items = stored["document"]["items"].as_array().unwrap().len();
    assert!(
        (5..=6).contains(&items),
        "about 2000/300 items fit: {stored}"
    );
    assert_eq!(
        stored["sequenceNum"],
        items as u64 + 1,
        "one event per kept edit"
    );
    assert_eq!(alice.document().unwrap(), stored["document"]);

    // Room again after a removal: the limit is on the document, not on its history.
    let (status, _) = api::patch(
        &server,
        "sized",
        &json!([{"op": "remove", "path": "/items/0"}, {"op": "remove", "path": "/items/0"}]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        api::patch(
            &server,
            "sized",
            &json!([{"op": "add", "path": "/items/-", "value": "z".repeat(299)}])
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn a_schema_refuses_invalid_edits_over_websocket_http_and_sql_and_nothing_is_stored() {
    let schema_dir = support::TempDir::new("schema");
    let file = schema_dir.0.join("todo.schema.json");
    std::fs::write(
        &file,
        json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": {"type": "string", "maxLength": 20}}
            }
        })
        .to_string(),
    )
    .unwrap();
    let flag = format!("todo-*={}", file.display());
    let server = TestServer::start_with(|config| config.schemas = vec![flag]).await;

    // A document the schema does not cover takes anything.
    assert_eq!(
        api::put(&server, "notes", &json!({"items": 7})).await.0,
        200
    );
    // HTTP: an invalid create or patch is 422 invalid_document; the log keeps its head.
    assert_error(
        &api::put(&server, "todo-1", &json!({"items": "no"})).await,
        422,
        "invalid_document",
    );
    assert_eq!(
        api::put(&server, "todo-1", &json!({"items": []})).await.0,
        200
    );
    let bad = json!([{"op": "add", "path": "/items/-", "value": 42}]);
    let answer = api::patch(&server, "todo-1", &bad).await;
    assert_error(&answer, 422, "invalid_document");
    assert!(
        answer.1["message"].as_str().unwrap().contains("/items/0"),
        "the message says where: {}",
        answer.1
    );
    assert_eq!(document(&server, "todo-1").await["sequenceNum"], 1);

    // WebSocket: the invalid edit is rejected and dropped, the valid ones around it are kept.
    let (alice, rejected) = client(&server, "todo-1", "alice", None);
    alice.sync_state().await.unwrap();
    alice
        .edit(json!([{"op": "add", "path": "/items/-", "value": "milk"}]))
        .unwrap();
    alice.flush().await.unwrap();
    let long = "far too long for the schema's twenty characters";
    alice
        .edit(json!([{"op": "add", "path": "/items/-", "value": long}]))
        .unwrap();
    let refused = refusals(&rejected, 1).await;
    assert_eq!(refused[0].1, ErrorCode::InvalidDocument, "{refused:?}");
    alice
        .edit(json!([{"op": "add", "path": "/items/-", "value": "eggs"}]))
        .unwrap();
    alice.flush().await.unwrap();
    let stored = document(&server, "todo-1").await;
    assert_eq!(stored["document"], json!({"items": ["milk", "eggs"]}));
    assert_eq!(alice.document().unwrap(), stored["document"]);
    let log = read_log(&server.http, "todo-1", 100).await;
    assert_eq!(log.len(), 3, "create, milk, eggs: {log:?}");

    // SQL: an invalid change another program makes is skipped; a valid one becomes an event.
    let database = server.dir.sqlite_url();
    run_sql(
        &database,
        r#"UPDATE documents SET body = '{"items": [1, 2]}' WHERE document_id = 'todo-1'"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    run_sql(
        &database,
        r#"UPDATE documents SET body = '{"items": ["by SQL"]}' WHERE document_id = 'todo-1'"#,
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while document(&server, "todo-1").await["sequenceNum"] != 4 {
        assert!(
            Instant::now() < deadline,
            "the valid SQL change never became an event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = read_log(&server.http, "todo-1", 100).await;
    assert_eq!(
        log.len(),
        4,
        "only the valid SQL change is in the log: {log:?}"
    );
    let stored = document(&server, "todo-1").await;
    assert_eq!(stored["document"], json!({"items": ["by SQL"]}));
}

/// An application's rules: no "spam" anywhere in a document, only `owner` deletes, tokens of
/// the form `user:NAME` from the app's own login, and a record of every commit.
#[derive(Default, Clone)]
struct AppHooks {
    committed: Arc<Mutex<Vec<(String, u64, String)>>>,
}

fn mentions_spam(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("spam"),
        Value::Array(items) => items.iter().any(mentions_spam),
        Value::Object(members) => members.values().any(mentions_spam),
        _ => false,
    }
}

#[eventsync_server::async_trait]
impl Hooks for AppHooks {
    async fn authenticate(&self, request: &Authentication<'_>) -> Result<Option<Claims>, Refusal> {
        if request.headers.contains_key("x-banned") {
            return Err(Refusal::unauthorized("banned by the app"));
        }
        let Some(user) = request.token.and_then(|t| t.strip_prefix("user:")) else {
            return Ok(None);
        };
        Ok(Some(Claims {
            document_id: "*".into(),
            client_id: user.into(),
            rights: if user == "reader" {
                Rights::Read
            } else {
                Rights::Write
            },
            exp: u64::MAX / 2000,
        }))
    }

    fn check_edit(&self, edit: &EditContext<'_>) -> Result<(), Refusal> {
        if edit.after.is_some_and(mentions_spam) {
            return Err(Refusal::invalid("no spam, please"));
        }
        if edit.operation == Operation::Delete && edit.client_id != "owner" {
            assert!(
                edit.before.is_some(),
                "a delete sees the document it deletes"
            );
            return Err(Refusal::forbidden("only the owner deletes"));
        }
        Ok(())
    }

    fn committed(&self, event: &Event) {
        self.committed.lock().unwrap().push((
            event.document_id.clone(),
            event.sequence_num,
            event.client_id.clone(),
        ));
    }
}

#[tokio::test]
async fn hooks_refuse_edits_authenticate_clients_and_see_every_commit() {
    let hooks = AppHooks::default();
    let committed = hooks.committed.clone();
    let server = TestServer::start_built(
        |config| config.auth_secret = Some("built-in tokens stay usable".into()),
        |builder| {
            builder.hooks(hooks).schema(
                SchemaRule::new("board", &json!({"type": "object", "required": ["cards"]}))
                    .unwrap(),
            )
        },
    )
    .await;

    // WebSocket, with a token the app's hook understands: the client is bound to its user.
    let (alice, rejected) = client(&server, "board", "alice", Some("user:alice"));
    alice.sync_state().await.unwrap();
    alice.create(json!({"cards": []})).unwrap();
    alice
        .edit(json!([{"op": "add", "path": "/cards/-", "value": "plan"}]))
        .unwrap();
    alice.flush().await.unwrap();
    alice
        .edit(json!([{"op": "add", "path": "/cards/-", "value": "buy spam"}]))
        .unwrap();
    let refused = refusals(&rejected, 1).await;
    assert_eq!(refused[0].1, ErrorCode::InvalidDocument);
    assert!(refused[0].2.contains("no spam"), "{refused:?}");
    // The schema is asked too (before the hooks).
    alice
        .edit(json!([{"op": "remove", "path": "/cards"}]))
        .unwrap();
    let refused = refusals(&rejected, 2).await;
    assert_eq!(refused[1].1, ErrorCode::InvalidDocument, "{refused:?}");
    // Alice may not delete the board; the owner may not be impersonated with her token.
    alice.delete().unwrap();
    let refused = refusals(&rejected, 3).await;
    assert_eq!(refused[2].1, ErrorCode::Forbidden, "{refused:?}");
    alice.flush().await.unwrap();
    assert_eq!(alice.document(), Some(json!({"cards": ["plan"]})));

    // HTTP: the hook's user is the write's origin; a read-only user and a banned request are
    // refused with their codes.
    let http = support::http();
    let url = server.url("/api/documents/board");
    let patch = json!([{"op": "add", "path": "/cards/-", "value": "review"}]);
    let send = |token: &str, banned: bool| {
        let mut request = http
            .patch(&url)
            .bearer_auth(token)
            .header("content-type", "application/json-patch+json")
            .body(patch.to_string());
        if banned {
            request = request.header("x-banned", "1");
        }
        api::send(request)
    };
    assert_eq!(send("user:bob", false).await.0, 200);
    assert_error(&send("user:reader", false).await, 403, "forbidden");
    assert_error(&send("user:bob", true).await, 401, "unauthorized");
    assert_error(&send("not a token", false).await, 401, "unauthorized");

    // Every commit was seen once, in order, with its origin; refused edits were not.
    let (status, page) = api::send(
        http.get(server.url("/api/events/board?after=0&limit=100"))
            .bearer_auth("user:reader"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let log: Vec<Event> = serde_json::from_value(page["events"].clone()).unwrap();
    let seen = committed.lock().unwrap().clone();
    let expected: Vec<(String, u64, String)> = log
        .iter()
        .map(|e| ("board".to_owned(), e.sequence_num, e.client_id.clone()))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        seen.iter()
            .map(|(_, _, who)| who.as_str())
            .collect::<Vec<_>>(),
        ["alice", "alice", "bob"]
    );
}
