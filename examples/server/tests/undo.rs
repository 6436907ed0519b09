//! Issue 15, undo and redo: native clients on the real server over real WebSockets. Only a
//! client's own edits are undone, others' changes stay, a conflict at the same place follows
//! the client's policy and is reported, and the steps survive a restart with the file store.

mod support;

use std::time::Duration;

use eventsync::{ConflictPolicy, SessionEvent, SyncClient, SyncConnection};
use futures::StreamExt;
use serde_json::{json, Value};
use support::{document, TempDir, TestServer, WAIT};

/// Waits until `client`'s document satisfies `done`.
async fn until(client: &SyncClient, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let doc = client.document().unwrap_or(Value::Null);
        if done(&doc) {
            return doc;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up at {doc}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn client(server: &TestServer, id: &str, policy: ConflictPolicy) -> SyncClient {
    SyncClient::builder(&server.ws, "undo")
        .client_id(id)
        .conflict_policy(policy)
        .connect()
        .unwrap()
}

#[tokio::test]
async fn undo_reverts_only_this_clients_edits_and_redo_brings_them_back() {
    let server = TestServer::start().await;
    let alice = client(&server, "alice", ConflictPolicy::ServerWins);
    let bob = client(&server, "bob", ConflictPolicy::ServerWins);
    alice.sync_state().await.unwrap();
    alice.create(json!({"items": [], "title": "T"})).unwrap();
    assert!(!alice.can_undo(), "a create is not undoable");
    alice.flush().await.unwrap();
    until(&bob, |d| d["items"].is_array()).await;

    alice
        .edit(json!([{"op": "add", "path": "/items/-", "value": "milk"}]))
        .unwrap();
    alice.stop_capturing().unwrap();
    until(&bob, |d| d["items"] == json!(["milk"])).await;
    // Bob inserts before Alice's item: her undo follows it to its new index.
    bob.edit(json!([{"op": "add", "path": "/items/0", "value": "eggs"}]))
        .unwrap();
    until(&alice, |d| d["items"] == json!(["eggs", "milk"])).await;

    assert!(alice.can_undo() && !alice.can_redo());
    assert!(alice.undo().unwrap().is_some());
    assert_eq!(alice.document().unwrap()["items"], json!(["eggs"]));
    until(&bob, |d| d["items"] == json!(["eggs"])).await;
    assert!(!alice.can_undo() && alice.can_redo());
    assert_eq!(alice.undo().unwrap(), None, "nothing left to undo");

    assert!(alice.redo().unwrap().is_some());
    until(&bob, |d| d["items"] == json!(["eggs", "milk"])).await;
    alice.flush().await.unwrap();
    assert_eq!(
        document(&server, "undo").await["document"]["items"],
        json!(["eggs", "milk"])
    );

    // Edits in one transaction are one step, however far apart.
    alice
        .transact(|| {
            alice
                .edit(json!([{"op": "replace", "path": "/title", "value": "A"}]))
                .unwrap();
            std::thread::sleep(Duration::from_millis(600));
            alice
                .edit(json!([{"op": "add", "path": "/items/-", "value": "tea"}]))
                .unwrap();
        })
        .unwrap();
    alice.undo().unwrap();
    let doc = alice.document().unwrap();
    assert_eq!(
        (doc["title"].clone(), doc["items"].clone()),
        (json!("T"), json!(["eggs", "milk"]))
    );
    until(&bob, |d| {
        d["title"] == "T" && d["items"] == json!(["eggs", "milk"])
    })
    .await;
}

#[tokio::test]
async fn an_undo_conflicting_with_a_remote_change_follows_the_policy_and_is_reported() {
    for (policy, expected) in [
        (ConflictPolicy::ServerWins, json!("B")),
        (ConflictPolicy::ClientWins, json!("T")),
    ] {
        let server = TestServer::start().await;
        let alice = client(&server, "alice", policy.clone());
        let bob = client(&server, "bob", ConflictPolicy::ServerWins);
        alice.sync_state().await.unwrap();
        alice.create(json!({"title": "T"})).unwrap();
        alice.flush().await.unwrap();
        alice
            .edit(json!([{"op": "replace", "path": "/title", "value": "A"}]))
            .unwrap();
        until(&bob, |d| d["title"] == "A").await;
        let mut events = alice.events();
        bob.edit(json!([{"op": "replace", "path": "/title", "value": "B"}]))
            .unwrap();
        until(&alice, |d| d["title"] == "B").await;
        // The conflict is reported when the remote change reaches the step.
        let conflict = tokio::time::timeout(WAIT, async {
            while let Some(event) = events.next().await {
                if let SessionEvent::UndoConflict { redo, conflict } = event {
                    return (redo, conflict.path);
                }
            }
            panic!("the events ended")
        })
        .await
        .unwrap();
        assert_eq!(conflict, (false, "/title".to_owned()), "{policy:?}");
        alice.undo().unwrap();
        alice.flush().await.unwrap();
        until(&bob, |d| d["title"] == expected).await;
        assert_eq!(
            document(&server, "undo").await["document"]["title"],
            expected,
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn undo_works_offline_and_its_steps_survive_a_restart() {
    // Offline from the first moment: undo is an edit like any other, queued.
    let offline = SyncClient::builder("ws://127.0.0.1:9", "offline")
        .connect()
        .unwrap();
    offline.create(json!({"n": 0})).unwrap();
    offline
        .edit(json!([{"op": "replace", "path": "/n", "value": 1}]))
        .unwrap();
    assert!(offline.undo().unwrap().is_some());
    assert_eq!(offline.document().unwrap(), json!({"n": 0}));
    assert_eq!(offline.pending_count(), 3);
    offline.close().await;

    let server = TestServer::start().await;
    let dir = TempDir::new("undo-store");
    let open = || {
        SyncConnection::builder(&server.ws)
            .client_id("alice")
            .directory(&dir.0)
            .connect()
            .unwrap()
    };
    let connection = open();
    let alice = connection.open("undo").unwrap();
    alice.sync_state().await.unwrap();
    alice.create(json!({"n": 0})).unwrap();
    alice.flush().await.unwrap();
    alice
        .edit(json!([{"op": "replace", "path": "/n", "value": 1}]))
        .unwrap();
    alice.stop_capturing().unwrap();
    alice
        .edit(json!([{"op": "replace", "path": "/n", "value": 2}]))
        .unwrap();
    alice.undo().unwrap();
    assert_eq!(alice.document().unwrap(), json!({"n": 1}));
    connection.close().await;
    drop(alice);

    // A restart from the store keeps both stacks: one more undo, then a redo of both.
    let connection = open();
    let alice = connection.open("undo").unwrap();
    assert!(alice.can_undo() && alice.can_redo());
    alice.undo().unwrap();
    assert_eq!(alice.document().unwrap(), json!({"n": 0}));
    alice.redo().unwrap();
    alice.redo().unwrap();
    assert_eq!(alice.document().unwrap(), json!({"n": 2}));
    alice.flush().await.unwrap();
    assert_eq!(document(&server, "undo").await["document"], json!({"n": 2}));
    connection.close().await;
}
