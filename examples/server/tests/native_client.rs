//! The native `SyncClient` against the real reference server over real WebSockets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use eventsync::native::Backoff;
use eventsync::{ConnectionStatus, SessionEvent, SyncClient};
use eventsync_server::app::{self, Config, RunningServer};
use serde_json::{json, Value};
use support::{get_json, TempDir, WAIT};

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).unwrap()
}

/// A server that can be stopped and started again on the same address and database.
struct Restartable {
    config: Config,
    server: Option<RunningServer>,
    _dir: TempDir,
}

impl Restartable {
    async fn start() -> Self {
        let dir = TempDir::new("native");
        let mut config = Config::for_database(dir.sqlite_url());
        let server = app::start(&config).await.unwrap();
        config.listen = server.addr;
        Restartable {
            config,
            server: Some(server),
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    fn ws(&self) -> String {
        format!("ws://{}", self.addr())
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(WAIT).await;
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        // The port was just released; binding again may need a moment.
        for _ in 0..50 {
            match app::start(&self.config).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("server did not restart");
    }

    async fn document(&self, id: &str) -> Value {
        let url = format!("http://{}/api/documents/{id}", self.addr());
        let body: Value = get_json(url).await;
        body
    }
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    }
}

fn client(server: &Restartable, doc: &str, id: &str) -> SyncClient {
    SyncClient::builder(server.ws(), doc)
        .client_id(id)
        .backoff(fast_backoff())
        .connect()
        .unwrap()
}

async fn settle(clients: &[&SyncClient]) {
    for c in clients {
        tokio::time::timeout(WAIT, c.flush())
            .await
            .expect("flushed in time")
            .unwrap();
    }
    for c in clients {
        tokio::time::timeout(WAIT, c.sync_state())
            .await
            .expect("synced in time")
            .unwrap();
    }
}

#[tokio::test]
async fn two_clients_converge_on_concurrent_edits_and_array_inserts() {
    let server = Restartable::start().await;
    let alice = client(&server, "list", "alice");
    let bob = client(&server, "list", "bob");
    alice.create(json!({"title": "t", "items": ["x"]})).unwrap();
    settle(&[&alice]).await;
    tokio::time::timeout(WAIT, bob.sync_state())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.document(), alice.document());
    // Both insert at the front and set the title at once.
    alice
        .edit(patch(
            json!([{"op": "add", "path": "/items/0", "value": "a"}]),
        ))
        .unwrap();
    bob.edit(patch(
        json!([{"op": "add", "path": "/items/0", "value": "b"}]),
    ))
    .unwrap();
    alice
        .edit(patch(
            json!([{"op": "replace", "path": "/title", "value": "alice"}]),
        ))
        .unwrap();
    bob.update(|doc| doc["title"] = json!("bob")).unwrap();
    settle(&[&alice, &bob]).await;
    let server_doc = server.document("list").await["document"].clone();
    assert_eq!(alice.document().unwrap(), server_doc);
    assert_eq!(bob.document().unwrap(), server_doc);
    let items = server_doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "both inserts survive: {server_doc}");
    assert!(items.contains(&json!("a")) && items.contains(&json!("b")));
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn edits_made_while_the_server_is_down_arrive_once_it_is_back() {
    let mut server = Restartable::start().await;
    let alice = client(&server, "down", "alice");
    let bob = client(&server, "down", "bob");
    let mut statuses = alice.events();
    alice.create(json!({"log": []})).unwrap();
    settle(&[&alice, &bob]).await;
    server.stop().await;
    for i in 0..5 {
        alice
            .edit(patch(
                json!([{"op": "add", "path": "/log/-", "value": format!("a{i}")}]),
            ))
            .unwrap();
        bob.edit(patch(
            json!([{"op": "add", "path": "/log/-", "value": format!("b{i}")}]),
        ))
        .unwrap();
    }
    assert_eq!(alice.pending_count(), 5);
    // The app saw the connection go away.
    let offline = tokio::time::timeout(WAIT, async {
        use futures::StreamExt;
        while let Some(event) = statuses.next().await {
            if matches!(
                event,
                SessionEvent::Status(ConnectionStatus::Offline | ConnectionStatus::Reconnecting)
            ) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(offline);
    server.restart().await;
    settle(&[&alice, &bob]).await;
    let server_doc = server.document("down").await["document"].clone();
    assert_eq!(server_doc["log"].as_array().unwrap().len(), 10);
    assert_eq!(alice.document().unwrap(), server_doc);
    assert_eq!(bob.document().unwrap(), server_doc);
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn a_server_restart_mid_session_loses_and_duplicates_nothing() {
    let mut server = Restartable::start().await;
    let alice = client(&server, "mid", "alice");
    alice.create(json!({"n": []})).unwrap();
    settle(&[&alice]).await;
    for round in 0..3 {
        for i in 0..20 {
            alice
                .edit(patch(
                    json!([{"op": "add", "path": "/n/-", "value": round * 100 + i}]),
                ))
                .unwrap();
            if i == 10 {
                server.restart().await;
            }
        }
    }
    settle(&[&alice]).await;
    let body = server.document("mid").await;
    assert_eq!(body["document"]["n"].as_array().unwrap().len(), 60);
    assert_eq!(body["sequenceNum"], 61, "one event per edit, none twice");
    assert_eq!(alice.document().unwrap(), body["document"]);
    alice.close().await;
}

#[tokio::test]
async fn an_app_restart_while_offline_keeps_its_edits() {
    let mut server = Restartable::start().await;
    let dir = TempDir::new("app");
    let path = dir.0.join("alice.json");
    let alice = SyncClient::builder(server.ws(), "offline")
        .client_id("alice")
        .file_store(&path)
        .backoff(fast_backoff())
        .connect()
        .unwrap();
    alice.create(json!({"notes": []})).unwrap();
    settle(&[&alice]).await;
    server.stop().await;
    alice
        .edit(patch(
            json!([{"op": "add", "path": "/notes/-", "value": "written offline"}]),
        ))
        .unwrap();
    alice.close().await;
    drop(alice);
    // The app starts again, still offline: the edit is there, from the file.
    let alice = SyncClient::builder(server.ws(), "offline")
        .file_store(&path)
        .backoff(fast_backoff())
        .connect()
        .unwrap();
    assert_eq!(
        alice.client_id(),
        "alice",
        "the id comes back from the store"
    );
    assert_eq!(alice.pending_count(), 1);
    assert_eq!(
        alice.document().unwrap(),
        json!({"notes": ["written offline"]})
    );
    server.restart().await;
    settle(&[&alice]).await;
    let body = server.document("offline").await;
    assert_eq!(body["document"], json!({"notes": ["written offline"]}));
    assert_eq!(body["sequenceNum"], 2);
    alice.close().await;
}

#[tokio::test]
async fn a_refused_token_is_an_error_not_a_reconnect_loop() {
    let dir = TempDir::new("refused");
    let mut config = Config::for_database(dir.sqlite_url());
    config.auth_secret = Some("secret".into());
    let server = app::start(&config).await.unwrap();
    let alice = SyncClient::builder(format!("ws://{}", server.addr), "doc")
        .client_id("alice")
        .token("forged.token")
        .backoff(fast_backoff())
        .connect()
        .unwrap();
    let err = tokio::time::timeout(WAIT, alice.sync_state())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("unauthorized") || err.to_string().contains("Unauthorized"),
        "{err}"
    );
    alice.close().await;
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_catch_up_reaches_on_events_in_batches_not_one_call_per_event() {
    let server = Restartable::start().await;
    let writer = client(&server, "batched", "writer");
    writer.create(json!({"n": 0})).unwrap();
    for n in 1..=200 {
        writer
            .edit(patch(json!([{"op": "replace", "path": "/n", "value": n}])))
            .unwrap();
    }
    settle(&[&writer]).await;
    writer.close().await;

    let reader = SyncClient::builder(server.ws(), "batched")
        .client_id("reader")
        .backoff(fast_backoff())
        .connect()
        .unwrap();
    let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = batches.clone();
    reader.on_events(move |events| {
        let applied = events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Applied { .. }))
            .count();
        sink.lock().unwrap().push(applied);
    });
    tokio::time::timeout(WAIT, reader.sync_state())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.document(), Some(json!({"n": 200})));
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 201, "{batches:?}");
    assert!(
        batches.iter().filter(|&&n| n > 0).count() < 10,
        "201 events came in {} calls: {batches:?}",
        batches.len()
    );
    reader.close().await;
}

/// `update` reads the document, changes it and queues the difference in one step: a remote
/// event that the client's task (on another thread) applies while the closure runs must not
/// make the difference land on another document than the one it was taken from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_takes_its_difference_from_the_document_it_changes() {
    let server = Restartable::start().await;
    let writer = client(&server, "atomic", "writer");
    writer.create(json!({"items": ["first"]})).unwrap();
    settle(&[&writer]).await;
    let updater = client(&server, "atomic", "updater");
    tokio::time::timeout(WAIT, updater.sync_state())
        .await
        .unwrap()
        .unwrap();
    // The writer appends an item and removes the first, over and over: the list keeps shifting
    // under the updater, which replaces its last item.
    let writing = tokio::spawn(async move {
        for n in 0..300 {
            writer
                .edit(patch(
                    json!([{"op": "add", "path": "/items/-", "value": format!("w{n}")}]),
                ))
                .unwrap();
            writer
                .edit(patch(json!([{"op": "remove", "path": "/items/0"}])))
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writer
    });
    for n in 0..200 {
        updater
            .update(|doc| {
                // An app computing its change for a moment.
                std::thread::sleep(Duration::from_millis(1));
                if let Some(last) = doc["items"].as_array_mut().and_then(|i| i.last_mut()) {
                    *last = json!(format!("u{n}"));
                }
            })
            .unwrap_or_else(|err| panic!("update {n} of a document with items failed: {err}"));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let writer = writing.await.unwrap();
    settle(&[&writer, &updater]).await;
    let server_doc = server.document("atomic").await["document"].clone();
    assert_eq!(updater.document().unwrap(), server_doc);
    writer.close().await;
    updater.close().await;
}
