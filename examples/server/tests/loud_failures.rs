//! Issue 16, "no silent failure": a client that cannot work says so at once (a bad server URL or
//! document id), one that cannot connect says why in its `Reconnecting` events (connection
//! refused, an HTTP answer instead of a WebSocket), a closed client refuses work instead of
//! accepting and dropping it, and an edit its store cannot save fails and is never sent.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use eventsync::{ClientError, SessionEvent, SyncClient, SyncConnection};
use futures::StreamExt;
use serde_json::{json, Value};
use support::{api, TempDir, TestServer, WAIT};

fn fast() -> eventsync::Backoff {
    eventsync::Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn bad_urls_and_document_ids_fail_when_the_client_is_made() {
    let invalid = |result: Result<(), ClientError>| match result {
        Err(ClientError::InvalidArgument(message)) => message,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let client = |url: &str, doc: &str| SyncClient::builder(url, doc).connect().map(drop);
    let connection = |url: &str| SyncConnection::builder(url).connect().map(drop);
    assert!(invalid(client("not a url", "todo")).contains("is not a URL"));
    assert!(invalid(client("http://127.0.0.1:8080", "todo")).contains("ws://"));
    assert!(invalid(client("ws://127.0.0.1:8080/sync/todo", "todo")).contains("adds /sync"));
    assert!(invalid(client("ws://127.0.0.1:8080", "a b")).contains("invalid documentId"));
    assert!(invalid(connection("ws://")).contains("names no host"));
    let fine = SyncConnection::builder("ws://127.0.0.1:9")
        .connect()
        .unwrap();
    assert!(invalid(fine.open("../etc").map(drop)).contains("invalid documentId"));
    // The message is a sentence, for people.
    let err = SyncClient::builder("ws://h", "todo?x")
        .connect()
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("invalid documentId"), "{err}");
}

/// The reason of the first `Reconnecting` event of `client`.
async fn first_reason(client: &SyncClient) -> (String, u64) {
    let mut events = client.events();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if let SessionEvent::Reconnecting {
                reason,
                retry_in_ms,
            } = event
            {
                return (reason, retry_in_ms);
            }
        }
        panic!("the events ended")
    })
    .await
    .expect("a Reconnecting event in time")
}

#[tokio::test]
async fn a_client_that_cannot_connect_says_why() {
    // A port nobody listens on: refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = SyncClient::builder(format!("ws://127.0.0.1:{port}"), "todo")
        .backoff(fast())
        .connect()
        .unwrap();
    let (reason, retry) = first_reason(&down).await;
    assert!(
        reason.contains("cannot connect to ws://127.0.0.1:"),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    assert!(retry <= 100, "{retry}");
    // Waiting can be bounded by the app.
    let waited = tokio::time::timeout(Duration::from_millis(200), down.sync_state()).await;
    assert!(
        waited.is_err(),
        "sync_state cannot finish with the server down"
    );

    // Something that answers HTTP but is not an eventsync endpoint: its status is the reason.
    let server = TestServer::start().await;
    let wrong = SyncConnection::builder(format!("{}/not-here", server.ws))
        .backoff(fast())
        .connect()
        .unwrap();
    let handle = wrong.open("todo").unwrap();
    let (reason, _) = first_reason(&handle).await;
    assert!(reason.contains("HTTP 404"), "{reason}");
}

#[tokio::test]
async fn a_closed_client_refuses_work_instead_of_losing_it() {
    let server = TestServer::start().await;
    let client = SyncClient::builder(&server.ws, "closing")
        .connect()
        .unwrap();
    client.sync_state().await.unwrap();
    client.create(json!({"items": []})).unwrap();
    client.flush().await.unwrap();
    // A patch as plain JSON works; JSON that is no RFC 6902 patch is refused, changing nothing.
    client
        .edit(json!([{"op": "add", "path": "/items/-", "value": 0}]))
        .unwrap();
    match client.edit(json!([{"op": "increment", "path": "/n"}])) {
        Err(ClientError::InvalidArgument(message)) => {
            assert!(message.starts_with("not an RFC 6902 patch"), "{message}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    client.flush().await.unwrap();
    client.close().await;
    let patch = serde_json::from_value(json!([{"op": "add", "path": "/items/-", "value": 1}]));
    assert!(matches!(
        client.edit::<Vec<_>>(patch.unwrap()),
        Err(ClientError::Closed)
    ));
    assert!(matches!(
        client.sync_state().await,
        Err(ClientError::Closed)
    ));
    assert_eq!(client.document(), Some(json!({"items": [0]})), "unchanged");
}

/// A store directory whose saves fail while broken: it is moved aside and a regular file takes
/// its place (permissions would not stop a test running as root).
struct Broken(PathBuf);

impl Broken {
    fn new(dir: &Path) -> Self {
        std::fs::rename(dir, aside(dir)).unwrap();
        std::fs::write(dir, "not a directory").unwrap();
        Broken(dir.to_owned())
    }

    fn mend(self) {
        std::fs::remove_file(&self.0).unwrap();
        std::fs::rename(aside(&self.0), &self.0).unwrap();
    }
}

fn aside(dir: &Path) -> PathBuf {
    dir.with_extension("aside")
}

fn store_error<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::Store(err)) => err.to_string(),
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// The server's log of `document`: each event's client id, clientSeq and patch.
async fn logged(server: &TestServer, document: &str) -> Vec<(String, u64, Value)> {
    let (status, page) = api::events(server, document, "").await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let client = e["clientId"].as_str().unwrap().to_owned();
            (
                client,
                e["clientSeq"].as_u64().unwrap(),
                e["diff"]["patch"].clone(),
            )
        })
        .collect()
}

/// `client` (synced, its document `{"items": []}` in the log) edits while its store directory
/// `dir` is broken: each call that edits fails with the store's error and changes nothing, and
/// nothing of it reaches the server; once the store works again the next edit is saved, sent
/// and logged.
async fn unsaved_edits_fail(server: &TestServer, document: &str, client: &SyncClient, dir: &Path) {
    // A saved edit, for an undo to take back.
    let add = json!([{"op": "add", "path": "/items/-", "value": "a"}]);
    client.edit(add).unwrap();
    client.flush().await.unwrap();
    assert!(client.can_undo());
    let before = client.document();
    let mut log = logged(server, document).await;

    let broken = Broken::new(dir);
    store_error(client.undo());
    assert_eq!(client.document(), before);
    let add = json!([{"op": "add", "path": "/items/-", "value": "lost"}]);
    let message = store_error(client.edit(add));
    assert!(message.contains("storage I/O failed"), "{message}");
    store_error(client.update(|doc| doc["title"] = json!("lost")));
    store_error(client.delete());
    assert_eq!(client.document(), before, "the document is unchanged");
    assert_eq!(client.pending_count(), 0, "nothing is queued");
    // Had a submit left, the server would have it by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(logged(server, document).await, log);

    broken.mend();
    let add = json!([{"op": "add", "path": "/items/-", "value": "kept"}]);
    let kept = client.edit(add).unwrap();
    assert_eq!(client.document(), Some(json!({"items": ["a", "kept"]})));
    tokio::time::timeout(WAIT, client.flush())
        .await
        .unwrap()
        .unwrap();
    // The kept edit, sent after the failed ones, is all the log gained: none of those.
    let kept_patch = json!([{"op": "add", "path": "/items/1", "value": "kept"}]);
    log.push((client.client_id(), kept, kept_patch));
    assert_eq!(logged(server, document).await, log);
    let (_, body) = api::get_document(server, document).await;
    assert_eq!(body["document"], json!({"items": ["a", "kept"]}));
}

#[tokio::test]
async fn an_edit_its_store_cannot_save_fails_and_is_never_sent() {
    let server = TestServer::start().await;
    let data = TempDir::new("unsaved");
    let dir = data.0.join("store");
    std::fs::create_dir(&dir).unwrap();
    let client = SyncClient::builder(&server.ws, "unsaved")
        .file_store(dir.join("unsaved.json"))
        .connect()
        .unwrap();
    client.sync_state().await.unwrap();
    assert_eq!(client.create(json!({"items": []})).unwrap(), 1);
    client.flush().await.unwrap();
    unsaved_edits_fail(&server, "unsaved", &client, &dir).await;
    client.close().await;
}

#[tokio::test]
async fn an_edit_of_a_connection_its_store_cannot_save_fails_and_is_never_sent() {
    let server = TestServer::start().await;
    let data = TempDir::new("unsaved-v2");
    let dir = data.0.join("store");
    let connection = SyncConnection::builder(&server.ws)
        .directory(&dir)
        .connect()
        .unwrap();
    let client = connection.open("unsaved").unwrap();
    client.sync_state().await.unwrap();
    // A create fails the same way: the document stays absent.
    let broken = Broken::new(&dir);
    store_error(client.create(json!({"lost": true})));
    assert_eq!(client.document(), None);
    broken.mend();
    assert_eq!(client.create(json!({"items": []})).unwrap(), 2);
    client.flush().await.unwrap();
    let (_, body) = api::get_document(&server, "unsaved").await;
    assert_eq!(body["document"], json!({"items": []}));
    unsaved_edits_fail(&server, "unsaved", &client, &dir).await;
    connection.close().await;
}
