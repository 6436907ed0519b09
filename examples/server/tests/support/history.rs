//! Document history against a real server (`docs/PROTOCOL.md` 3.9, 12.4, 18.8), written once for
//! both stores: [`check`] runs the whole scenario on a server that stores a snapshot every 10
//! events and keeps 5 events behind it ([`configure`]).

use eventsync::protocol::{
    self, ClientMessage, ErrorCode, HistoryRequest, Scoped, ServerMessage, VersionRequest,
};
use eventsync_server::app::Config;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::api::{self, assert_error, written};
use super::{http, TestServer, WAIT};

/// The history settings [`check`] expects.
pub fn configure(config: &mut Config) {
    config.snapshot_every = 10;
    config.retain_events = Some(5);
}

/// `GET /api/documents/{document}?at={at}`.
pub async fn at(server: &TestServer, document: &str, at: &str) -> (u16, Value) {
    api::send(http().get(server.url(&format!("/api/documents/{document}?at={at}")))).await
}

async fn write_n(server: &TestServer, document: &str, n: u64) -> u64 {
    if n == 1 {
        return written(api::put(server, document, &json!({"n": 1})).await);
    }
    let patch = json!([{"op": "replace", "path": "/n", "value": n}]);
    written(api::patch(server, document, &patch).await)
}

/// A raw version 2 connection with `document` open.
struct Mux(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Mux {
    async fn open(server: &TestServer, document: &str) -> Self {
        let url = format!("{}/sync", server.ws);
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("the upgrade");
        let mut mux = Mux(stream);
        let hello = ClientMessage::Hello {
            protocol_versions: vec![2],
            client_id: "historian".into(),
            token: None,
        };
        mux.send(None, hello).await;
        mux.until(|m| matches!(m, ServerMessage::Welcome { .. }))
            .await;
        mux.send(Some(document), ClientMessage::Open).await;
        mux.until(|m| matches!(m, ServerMessage::Opened { .. }))
            .await;
        mux
    }

    async fn send(&mut self, document: Option<&str>, message: ClientMessage) {
        let frame = Scoped {
            document_id: document.map(str::to_owned),
            message,
        };
        let text = protocol::encode(&frame);
        self.0.send(Message::Text(text.into())).await.expect("send");
    }

    async fn until(&mut self, wanted: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            let next = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a frame in time")
                .expect("the connection is open")
                .expect("a frame");
            if let Message::Text(text) = next {
                let scoped = protocol::decode_server_scoped(&text).expect("frames parse");
                if wanted(&scoped.message) {
                    return scoped.message;
                }
            }
        }
    }
}

/// The whole scenario on a server started with [`configure`].
pub async fn check(server: &TestServer, document: &str) {
    for n in 1..=4 {
        assert_eq!(write_n(server, document, n).await, n);
    }
    // Before any compaction every position answers, with who and when.
    let (status, zero) = at(server, document, "0").await;
    assert_eq!((status, &zero["document"]), (200, &Value::Null), "{zero}");
    assert!(zero.get("clientId").is_none(), "{zero}");
    let (status, one) = at(server, document, "1").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["document"], json!({"n": 1}));
    assert_eq!(one["documentId"], document);
    assert_eq!(one["sequenceNum"], 1);
    assert_eq!(one["clientId"], "server");
    assert_eq!(one["operation"], "create");
    assert!(
        one["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
        "{one}"
    );
    let (_, three) = at(server, document, "3").await;
    assert_eq!(
        (&three["document"], &three["operation"]),
        (&json!({"n": 3}), &json!("update"))
    );
    assert_error(&at(server, document, "5").await, 400, "invalid_sequence");
    assert_error(&at(server, document, "x").await, 400, "malformed_frame");
    assert_error(&at(server, document, "-1").await, 400, "malformed_frame");
    // A snapshot at 10 and the events up to 5 compacted: 10 is the oldest position now.
    for n in 5..=12 {
        write_n(server, document, n).await;
    }
    let (_, page) = api::events(server, document, "?after=0&limit=0").await;
    assert_eq!(page["snapshot"]["sequenceNum"], 10, "{page}");
    for gone in ["0", "3", "6", "9"] {
        let answer = at(server, document, gone).await;
        assert_error(&answer, 410, "history_compacted");
    }
    for n in 10..=12 {
        let (status, version) = at(server, document, &n.to_string()).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(version["document"], json!({"n": n}));
        assert_eq!(version["clientId"], "server");
    }
    // The same over a version 2 connection, answers matched by requestId.
    let mut mux = Mux::open(server, document).await;
    let history = HistoryRequest {
        request_id: 7,
        after: 0,
        limit: Some(100),
    };
    mux.send(Some(document), ClientMessage::History(history))
        .await;
    let ServerMessage::History(page) = mux.until(|m| matches!(m, ServerMessage::History(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        (page.request_id, page.oldest_seq, page.code),
        (7, Some(10), None)
    );
    let seqs: Vec<u64> = page.events.iter().map(|e| e.sequence_num).collect();
    assert_eq!(seqs, [11, 12]);
    assert!(page.events.iter().all(|e| e.document_id == document));
    for (request_id, at) in [(8, 3), (9, 11), (10, 13)] {
        let request = VersionRequest { request_id, at };
        mux.send(Some(document), ClientMessage::Version(request))
            .await;
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        match mux.until(|m| matches!(m, ServerMessage::Version(_))).await {
            ServerMessage::Version(answer) => answers.push(answer),
            _ => unreachable!(),
        }
    }
    assert_eq!(answers[0].request_id, 8);
    assert_eq!(answers[0].code, Some(ErrorCode::HistoryCompacted));
    let eleven = answers[1].version.as_ref().expect("version 11");
    assert_eq!(eleven.document, Some(json!({"n": 11})));
    assert_eq!(eleven.client_id.as_deref(), Some("server"));
    assert_eq!(answers[2].code, Some(ErrorCode::InvalidSequence));
}
