//! Protocol version 2 against a real server (`docs/PROTOCOL.md` section 18): many documents on one
//! WebSocket at `/sync`, each with its catch-up, live events, submits and refusals, beside version
//! 1 connections and HTTP writes to the same documents.

mod support;

use std::time::Duration;

use eventsync::protocol::{
    self, ClientMessage, ErrorCode, Event, Operation, Scoped, ServerMessage,
};
use eventsync::VectorClock;
use eventsync_server::auth::{Authority, Claims, Rights};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use support::{edit, put, TestServer, Ws, WAIT};
use tokio_tungstenite::tungstenite::Message;

/// A raw version 2 client.
struct Mux {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Mux {
    async fn connect(server: &TestServer, client: &str, token: Option<&str>) -> Self {
        let (stream, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async(format!("{}/sync", server.ws)),
        )
        .await
        .expect("connect in time")
        .expect("the upgrade");
        let mut mux = Mux { stream };
        mux.send_raw(protocol::encode(&ClientMessage::Hello {
            protocol_versions: vec![1, 2],
            client_id: client.into(),
            token: token.map(str::to_owned),
        }))
        .await;
        match mux.recv().await {
            (
                None,
                ServerMessage::Welcome {
                    protocol_version: 2,
                    ..
                },
            ) => mux,
            other => panic!("expected a version 2 welcome, got {other:?}"),
        }
    }

    async fn send_raw(&mut self, text: String) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    async fn send(&mut self, document_id: &str, message: ClientMessage) {
        let frame = Scoped {
            document_id: Some(document_id.to_owned()),
            message,
        };
        self.send_raw(protocol::encode(&frame)).await;
    }

    async fn recv(&mut self) -> (Option<String>, ServerMessage) {
        loop {
            let next = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("the connection is open")
                .expect("a frame");
            if let Message::Text(text) = next {
                let scoped = protocol::decode_server_scoped(&text).expect("frames parse");
                return (scoped.document_id, scoped.message);
            }
        }
    }

    /// Opens a document and reads its `opened`; returns its headSeq.
    async fn open(&mut self, document_id: &str) -> u64 {
        self.send(document_id, ClientMessage::Open).await;
        match self.recv().await {
            (Some(doc), ServerMessage::Opened { head_seq }) if doc == document_id => head_seq,
            other => panic!("expected opened {document_id}, got {other:?}"),
        }
    }

    /// Every live event received within `wait`, by document.
    async fn live_for(&mut self, wait: Duration) -> Vec<(String, Event)> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout_at(deadline, self.stream.next()).await
        {
            let scoped = protocol::decode_server_scoped(&text).unwrap();
            if let ServerMessage::Event { events } = scoped.message {
                let doc = scoped
                    .document_id
                    .expect("an event frame names its document");
                got.extend(events.into_iter().map(|e| (doc.clone(), e)));
            }
        }
        got
    }
}

fn create(client_seq: u64, value: serde_json::Value) -> eventsync::Edit {
    edit(
        client_seq,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": value}]),
    )
}

#[tokio::test]
async fn many_documents_share_one_connection_beside_version_1_clients() {
    let server = TestServer::start().await;
    assert_eq!(put(&server, "todo", &json!({"items": []})).await, 1);
    let mut alice = Mux::connect(&server, "alice", None).await;
    assert_eq!(alice.open("todo").await, 1);
    assert_eq!(alice.open("notes").await, 0);
    // Catch-up per document: compact events (no documentId, no vectorClock on the wire).
    alice
        .send(
            "todo",
            ClientMessage::Sync {
                vector_clock: VectorClock::new(),
                after: None,
            },
        )
        .await;
    match alice.recv().await {
        (
            Some(doc),
            ServerMessage::Events {
                events,
                head_seq: Some(1),
                ..
            },
        ) => {
            assert_eq!(doc, "todo");
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].document_id, "todo", "filled from the frame");
            assert!(events[0].vector_clock.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Submits to two documents on the one connection: each answered in its document.
    alice
        .send(
            "notes",
            ClientMessage::Submit {
                edits: vec![create(1, json!({"text": ""}))],
            },
        )
        .await;
    let mut acked = Vec::new();
    while acked.is_empty() {
        match alice.recv().await {
            (Some(doc), ServerMessage::Ack { edits }) => acked.push((doc, edits[0].sequence_num)),
            (Some(doc), ServerMessage::Event { .. }) => assert_eq!(doc, "notes"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(acked, vec![("notes".to_string(), 1)]);

    // A version 1 client of todo and an HTTP write: alice sees both, each in its document; a
    // document she has not opened sends her nothing.
    let (mut bob, head) = Ws::open(&server, "todo", "bob").await;
    assert_eq!(head, 1);
    bob.submit(vec![edit(
        1,
        1,
        Operation::Update,
        json!([{"op": "add", "path": "/items/-", "value": "milk"}]),
    )])
    .await;
    assert!(matches!(bob.answer().await.1, ServerMessage::Ack { .. }));
    put(&server, "notes", &json!({"text": "hello"})).await;
    put(&server, "elsewhere", &json!({"x": 1})).await;
    let live = alice.live_for(Duration::from_millis(500)).await;
    let seen: Vec<(String, u64, String)> = live
        .iter()
        .map(|(doc, e)| (doc.clone(), e.sequence_num, e.client_id.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("todo".to_string(), 2, "bob".to_string()),
            ("notes".to_string(), 2, "server".to_string()),
        ]
    );

    // Closing a document stops its events; the other goes on.
    alice.send("todo", ClientMessage::Close).await;
    assert!(
        matches!(alice.recv().await, (Some(doc), ServerMessage::Closed { code: None, .. }) if doc == "todo")
    );
    put(&server, "todo", &json!({"items": ["x"]})).await;
    put(&server, "notes", &json!({"text": "again"})).await;
    let live = alice.live_for(Duration::from_millis(500)).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0, "notes");
    // A ping names the heads of the documents still open.
    alice
        .send_raw(protocol::encode(&ClientMessage::Ping { nonce: Some(7) }))
        .await;
    match alice.recv().await {
        (
            None,
            ServerMessage::Pong {
                nonce: Some(7),
                heads: Some(heads),
                ..
            },
        ) => {
            assert_eq!(
                heads.into_iter().collect::<Vec<_>>(),
                vec![("notes".to_string(), 3)]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_token_opens_the_documents_it_names_and_a_refusal_closes_only_that_one() {
    const SECRET: &str = "multiplexed-secret";
    let server = TestServer::start_with(|c| c.auth_secret = Some(SECRET.into())).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = Authority::new(SECRET).issue(&Claims {
        document_id: "board-42.*".into(),
        client_id: "alice".into(),
        rights: Rights::Write,
        exp,
    });
    let mut alice = Mux::connect(&server, "alice", Some(&token)).await;
    assert_eq!(alice.open("board-42.cards").await, 0);
    alice.send("board-7.cards", ClientMessage::Open).await;
    match alice.recv().await {
        (
            Some(doc),
            ServerMessage::Closed {
                code: Some(ErrorCode::Forbidden),
                ..
            },
        ) => {
            assert_eq!(doc, "board-7.cards")
        }
        other => panic!("{other:?}"),
    }
    // The connection and the open document go on.
    alice
        .send(
            "board-42.cards",
            ClientMessage::Submit {
                edits: vec![create(1, json!({"cards": []}))],
            },
        )
        .await;
    loop {
        match alice.recv().await {
            (_, ServerMessage::Event { .. }) => {}
            (Some(doc), ServerMessage::Ack { edits }) => {
                assert_eq!((doc.as_str(), edits[0].sequence_num), ("board-42.cards", 1));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_documents_per_connection_flag_bounds_what_one_connection_opens() {
    let server = TestServer::start_with(|config| config.max_documents_per_connection = 2).await;
    let mut alice = Mux::connect(&server, "alice", None).await;
    assert_eq!(alice.open("first").await, 0);
    assert_eq!(alice.open("second").await, 0);
    alice.send("third", ClientMessage::Open).await;
    match alice.recv().await {
        (
            Some(doc),
            ServerMessage::Closed {
                code: Some(ErrorCode::TooLarge),
                ..
            },
        ) => assert_eq!(doc, "third"),
        other => panic!("expected the third open refused too_large, got {other:?}"),
    }
    // Closing one makes room; another connection has its own allowance.
    alice.send("first", ClientMessage::Close).await;
    match alice.recv().await {
        (Some(doc), ServerMessage::Closed { code: None, .. }) => assert_eq!(doc, "first"),
        other => panic!("expected first closed, got {other:?}"),
    }
    assert_eq!(alice.open("third").await, 0);
    let mut bob = Mux::connect(&server, "bob", None).await;
    assert_eq!(bob.open("first").await, 0);
    assert_eq!(bob.open("second").await, 0);
}
