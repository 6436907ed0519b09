//! Issue 16, "no silent failure": a client that cannot work says so at once (a bad server URL or
//! document id), one that cannot connect says why in its `Reconnecting` events (connection
//! refused, an HTTP answer instead of a WebSocket), and a closed client refuses work instead of
//! accepting and dropping it.

mod support;

use std::time::Duration;

use eventsync::{ClientError, SessionEvent, SyncClient, SyncConnection};
use futures::StreamExt;
use serde_json::json;
use support::{TestServer, WAIT};

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
