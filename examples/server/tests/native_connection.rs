//! The native `SyncConnection` (protocol version 2): several documents on one socket to the real
//! reference server, their offline edits kept in one directory across a restart of the app and
//! of the server, each sent exactly once.

mod support;

use std::time::Duration;

use eventsync::native::Backoff;
use eventsync::{ClientError, SyncConnection};
use eventsync_server::app::{self, Config};
use serde_json::{json, Value};
use support::{get_json, read_log, TempDir, WAIT};

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).unwrap()
}

fn connection(server: &str, directory: &std::path::Path) -> SyncConnection {
    SyncConnection::builder(server)
        .directory(directory)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        })
        .connect()
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_share_a_connection_and_their_offline_edits_survive_restarts() {
    let dir = TempDir::new("native-connection");
    let mut config = Config::for_database(dir.sqlite_url());
    let server = app::start(&config).await.unwrap();
    config.listen = server.addr;
    let ws = format!("ws://{}", server.addr);
    let http = format!("http://{}", server.addr);
    let app_dir = dir.0.join("app");

    // Three documents on one connection, created and edited.
    let alice = connection(&ws, &app_dir);
    let id = alice.client_id();
    let docs: Vec<_> = ["todo", "notes", "board"]
        .iter()
        .map(|d| alice.open(*d).expect("opens"))
        .collect();
    for (i, doc) in docs.iter().enumerate() {
        tokio::time::timeout(WAIT, doc.sync_state())
            .await
            .unwrap()
            .unwrap();
        doc.create(json!({"n": i})).unwrap();
    }
    for doc in &docs {
        tokio::time::timeout(WAIT, doc.flush())
            .await
            .unwrap()
            .unwrap();
    }
    for (i, name) in ["todo", "notes", "board"].iter().enumerate() {
        let body = get_json(format!("{http}/api/documents/{name}")).await;
        assert_eq!(body["document"], json!({"n": i}), "{name}");
    }

    // The server goes away; the app edits two documents offline and quits.
    server.shutdown(WAIT).await;
    docs[0]
        .edit(patch(json!([{"op": "replace", "path": "/n", "value": 10}])))
        .unwrap();
    docs[2]
        .edit(patch(json!([{"op": "replace", "path": "/n", "value": 12}])))
        .unwrap();
    alice.close().await;
    drop(docs);
    drop(alice);

    // The app starts again from its directory (same client id, the edits pending) and the
    // server comes back: both edits go out, once.
    let alice = connection(&ws, &app_dir);
    assert_eq!(
        alice.client_id(),
        id,
        "the client id is kept in the directory"
    );
    let todo = alice.open("todo").unwrap();
    let board = alice.open("board").unwrap();
    assert_eq!(todo.pending_count(), 1);
    assert_eq!(todo.document(), Some(json!({"n": 10})));
    let server = {
        let mut started = None;
        for _ in 0..50 {
            match app::start(&config).await {
                Ok(server) => {
                    started = Some(server);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        started.expect("the server restarts")
    };
    for doc in [&todo, &board] {
        tokio::time::timeout(WAIT, doc.flush())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(read_log(&http, "todo", 100).await.len(), 2);
    assert_eq!(read_log(&http, "board", 100).await.len(), 2);
    assert_eq!(read_log(&http, "notes", 100).await.len(), 1);
    let body = get_json(format!("{http}/api/documents/board")).await;
    assert_eq!(body["document"], json!({"n": 12}));

    // A second client's connection sees the first's edits live, document by document.
    let bob = connection(&ws, &dir.0.join("bob"));
    let bob_todo = bob.open("todo").unwrap();
    tokio::time::timeout(WAIT, bob_todo.sync_state())
        .await
        .unwrap()
        .unwrap();
    todo.edit(patch(json!([{"op": "replace", "path": "/n", "value": 20}])))
        .unwrap();
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            if bob_todo.document() == Some(json!({"n": 20})) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "bob sees alice's edit live");

    // A closed document refuses edits loudly instead of accepting them into nowhere.
    board.close().await;
    assert!(matches!(
        board.edit(patch(json!([{"op": "replace", "path": "/n", "value": 99}]))),
        Err(ClientError::Closed)
    ));
    assert_eq!(board.document(), Some(json!({"n": 12})), "still readable");
    alice.close().await;
    bob.close().await;
    server.shutdown(WAIT).await;
}
