//! docs/PROTOCOL.md 8.4: HTTP writes take part in the stale-edit rule like any event. A stale
//! WebSocket edit is transformed over an HTTP write the server ordered (it knows its
//! operations), not refused; a conflicting one is refused `conflict`.

mod support;

use eventsync::protocol::{Edit, ErrorCode, Operation, ServerMessage};
use serde_json::json;
use support::{document, http, put, TestServer, Ws};

/// An edit of one shaped operation (as the reference client sends it).
fn shaped(client_seq: u64, base_seq: u64, patch: serde_json::Value, shape: Vec<bool>) -> Edit {
    Edit {
        client_seq,
        base_seq,
        operation: Operation::Update,
        patch: serde_json::from_value(patch).unwrap(),
        shape: Some(shape),
    }
}

async fn patch(server: &TestServer, doc: &str, body: serde_json::Value) {
    let response = http()
        .patch(server.url(&format!("/api/documents/{doc}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_stale_edit_is_transformed_over_an_http_write() {
    let server = TestServer::start().await;
    let doc = "transform";
    assert_eq!(
        put(&server, doc, &json!({"items": ["a"], "title": "t"})).await,
        1
    );
    let (mut alice, head) = Ws::open(&server, doc, "alice").await;
    assert_eq!(head, 1);
    // An HTTP PATCH inserts at the front while alice's edit (made against #1) is in flight.
    patch(
        &server,
        doc,
        json!([{"op": "add", "path": "/items/0", "value": "http"}]),
    )
    .await;
    alice
        .submit(vec![shaped(
            1,
            1,
            json!([{"op": "add", "path": "/items/1", "value": "alice"}]),
            vec![true],
        )])
        .await;
    let (events, answer) = alice.answer().await;
    assert!(
        matches!(answer, ServerMessage::Ack { ref edits } if edits[0].sequence_num == 3),
        "{answer:?}"
    );
    assert_eq!(events.len(), 2, "the HTTP write's event, then alice's");
    // Alice meant "after a": the transform shifted her index past the HTTP insert.
    assert_eq!(
        document(&server, doc).await["document"]["items"],
        json!(["http", "a", "alice"])
    );
    // A stale edit that sets what an HTTP write set meanwhile is a conflict for the client.
    patch(
        &server,
        doc,
        json!([{"op": "replace", "path": "/title", "value": "http"}]),
    )
    .await;
    alice
        .submit(vec![shaped(
            2,
            3,
            json!([{"op": "replace", "path": "/title", "value": "alice"}]),
            vec![false],
        )])
        .await;
    match alice.answer().await.1 {
        ServerMessage::Reject {
            code: ErrorCode::Conflict,
            client_seq: 2,
            ..
        } => {}
        other => panic!("expected reject conflict, got {other:?}"),
    }
}
