//! The native client's history API against a real server (`docs/PROTOCOL.md` 18.8): pages of
//! who, when and what changed, the document as of a position, restoring it as a new edit, and
//! the refusals (compacted, ahead of the log, a client of its own).

mod support;

use eventsync::{ErrorCode, SyncClient, SyncConnection};
use serde_json::json;
use support::{history, unique, TestServer, WAIT};

async fn opened(server: &TestServer, client: &str, document: &str) -> (SyncConnection, SyncClient) {
    let connection = SyncConnection::builder(&server.ws)
        .client_id(client)
        .connect()
        .expect("the connection starts");
    let handle = connection.open(document).expect("opens");
    tokio::time::timeout(WAIT, handle.sync_state())
        .await
        .expect("caught up in time")
        .expect("caught up");
    (connection, handle)
}

fn refused_with(result: Result<impl std::fmt::Debug, eventsync::ClientError>, want: ErrorCode) {
    match result {
        Err(eventsync::ClientError::Refused { code, .. }) if code == Some(want) => {}
        other => panic!("expected a refusal with {want}, got {other:?}"),
    }
}

#[tokio::test]
async fn history_version_at_and_restore_through_the_server() {
    let server = TestServer::start_with(history::configure).await;
    let document = unique("native-history");
    let (_alice_connection, alice) = opened(&server, "alice", &document).await;
    alice.create(json!({"title": "one", "items": []})).unwrap();
    alice
        .edit(json!([{"op": "add", "path": "/items/-", "value": "milk"}]))
        .unwrap();
    alice.update(|doc| doc["title"] = json!("two")).unwrap();
    tokio::time::timeout(WAIT, alice.flush())
        .await
        .unwrap()
        .unwrap();

    let page = tokio::time::timeout(WAIT, alice.history(0, Some(2)))
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.sequence_num).collect();
    assert_eq!((seqs, page.has_more, page.head_seq), (vec![1, 2], true, 3));
    assert!(page.entries.iter().all(|e| e.client_id == "alice"));
    assert!(page.entries.iter().all(|e| !e.timestamp.is_empty()));
    let rest = alice.history(2, None).await.unwrap();
    assert_eq!(rest.entries.len(), 1);
    assert!(!rest.has_more);

    let one = alice.version_at(1).await.unwrap();
    assert_eq!(one.document, Some(json!({"title": "one", "items": []})));
    assert_eq!(one.client_id.as_deref(), Some("alice"));
    assert!(one.timestamp.is_some());
    assert_eq!(alice.version_at(0).await.unwrap().document, None);
    refused_with(alice.version_at(99).await, ErrorCode::InvalidSequence);

    // Restore: one new edit, the difference from now to then, through the normal queue.
    let (_bob_connection, bob) = opened(&server, "bob", &document).await;
    bob.update(|doc| doc["items"] = json!(["bread"])).unwrap();
    tokio::time::timeout(WAIT, bob.flush())
        .await
        .unwrap()
        .unwrap();
    let client_seq = alice.restore(1).await.unwrap();
    assert!(client_seq > 0);
    assert_eq!(alice.document(), Some(json!({"title": "one", "items": []})));
    tokio::time::timeout(WAIT, alice.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.applied_seq(), 5, "one event for the restore");
    let (_, head) = support::api::get_document(&server, &document).await;
    assert_eq!(head["document"], json!({"title": "one", "items": []}));
    assert!(matches!(
        alice.restore(5).await,
        Err(eventsync::ClientError::InvalidArgument(_))
    ));

    // Compacted: more than 10 events, the history before the snapshot is gone.
    for n in 0..8 {
        alice.update(|doc| doc["n"] = json!(n)).unwrap();
    }
    tokio::time::timeout(WAIT, alice.flush())
        .await
        .unwrap()
        .unwrap();
    refused_with(alice.version_at(2).await, ErrorCode::HistoryCompacted);
    let page = alice.history(0, None).await.unwrap();
    // The snapshot is taken at the head of the write that crossed 10.
    let oldest = page.oldest_seq.expect("compacted");
    assert!((10..=13).contains(&oldest), "{oldest}");
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.sequence_num).collect();
    assert_eq!(seqs, (oldest + 1..=13).collect::<Vec<u64>>());
    assert_eq!(alice.version_at(oldest).await.unwrap().sequence_num, oldest);
    refused_with(
        alice.version_at(oldest - 1).await,
        ErrorCode::HistoryCompacted,
    );

    // A client of its own (protocol version 1) has no history requests.
    let own = SyncClient::builder(&server.ws, &document)
        .client_id("carol")
        .connect()
        .unwrap();
    refused_with(own.history(0, None).await, ErrorCode::UnexpectedMessage);
    own.close().await;
}
