//! The shortest end-to-end path: create over WebSocket, see it over HTTP.

mod support;

use eventsync::protocol::{ClientMessage, Operation, ServerMessage};
use serde_json::json;
use support::{edit, get_json, TestServer, Ws};

#[tokio::test]
async fn an_edit_over_websocket_is_ordered_acked_and_readable_over_http() {
    let server = TestServer::start().await;
    let (mut ws, head) = Ws::open(&server, "smoke", "alice").await;
    assert_eq!(head, 0);
    ws.send(&ClientMessage::Submit {
        edits: vec![edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"n": 1}}]),
        )],
    })
    .await;
    let ServerMessage::Event { events } = ws.recv().await else {
        panic!("the event comes first")
    };
    assert_eq!(events[0].sequence_num, 1);
    assert!(matches!(ws.recv().await, ServerMessage::Ack { edits } if edits[0].sequence_num == 1));
    let doc: serde_json::Value = get_json(server.url("/api/documents/smoke")).await;
    assert_eq!(doc["document"], json!({"n": 1}));
    assert_eq!(doc["sequenceNum"], 1);
}
