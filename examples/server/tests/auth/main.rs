//! Authentication (docs/PROTOCOL.md 5.2, 5.3, 8.3 step 4, 12 and 12.7) against a real server
//! started with `auth_secret`, over real WebSockets and HTTP.

#[path = "../support/mod.rs"]
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use eventsync::protocol::{ErrorCode, Operation, ServerMessage};
use eventsync::VectorClock;
use eventsync_server::auth::{Authority, Claims, Rights};
use reqwest::Method;
use serde_json::{json, Value};
use support::{edit, http, TestServer, Ws, WAIT};

const SECRET: &str = "integration-test-secret";
const DOC: &str = "board";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_until(document: &str, client: &str, rights: Rights, exp: u64) -> String {
    Authority::new(SECRET).issue(&Claims {
        document_id: document.into(),
        client_id: client.into(),
        rights,
        exp,
    })
}

/// A token valid for an hour.
fn token(document: &str, client: &str, rights: Rights) -> String {
    token_until(document, client, rights, now() + 3600)
}

/// Tokens that must be refused with `unauthorized`, by name.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let good = token(DOC, "alice", Rights::Read);
    let (_, signature) = good.split_once('.').unwrap();
    let upgraded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({
            "documentId": DOC, "clientId": "alice", "rights": "write", "exp": now() + 3600
        }))
        .unwrap(),
    );
    vec![
        (
            "expired",
            token_until(DOC, "alice", Rights::Write, now() - 1),
        ),
        (
            "wrong secret",
            Authority::new("another-secret").issue(&Claims {
                document_id: DOC.into(),
                client_id: "alice".into(),
                rights: Rights::Write,
                exp: now() + 3600,
            }),
        ),
        ("forged claims", format!("{upgraded}.{signature}")),
        ("garbage", "not-a-token".into()),
        ("truncated", good[..good.len() - 4].to_string()),
    ]
}

async fn auth_server() -> TestServer {
    let server = TestServer::start_with(|c| c.auth_secret = Some(SECRET.into())).await;
    // The document exists: #1, written over HTTP by "writer".
    let (status, body) = call(
        &server,
        Method::PUT,
        &format!("/api/documents/{DOC}"),
        Auth::Bearer(&token(DOC, "writer", Rights::Write)),
        Some(json!({"n": 0})),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({"sequenceNum": 1})));
    server
}

/// Connects (with `?token=` when given), sends hello and returns the first answer.
async fn hello(
    server: &TestServer,
    document: &str,
    url_token: Option<&str>,
    hello_token: Option<&str>,
    client: &str,
) -> (Ws, ServerMessage) {
    let query = url_token.map(|t| format!("token={t}"));
    let mut ws = Ws::connect(server, document, query.as_deref()).await;
    let answer = ws.hello_with(&[1], client, hello_token).await;
    (ws, answer)
}

/// Expects the hello to be refused with `code`, then the connection to close.
async fn refused(
    server: &TestServer,
    url_token: Option<&str>,
    hello_token: Option<&str>,
    client: &str,
    code: ErrorCode,
) {
    let (mut ws, answer) = hello(server, DOC, url_token, hello_token, client).await;
    match answer {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
    assert!(ws.closed_within(WAIT).await, "closed after the refusal");
}

/// Expects a welcome bound to `client`.
async fn welcomed(
    server: &TestServer,
    document: &str,
    url_token: Option<&str>,
    hello_token: Option<&str>,
    client: &str,
) -> (Ws, u64) {
    let (ws, answer) = hello(server, document, url_token, hello_token, client).await;
    match answer {
        ServerMessage::Welcome {
            client_id,
            head_seq,
            ..
        } => {
            assert_eq!(client_id, client);
            (ws, head_seq.expect("headSeq"))
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Query(&'a str),
    Both { header: &'a str, query: &'a str },
}

/// One HTTP request; returns the status and the JSON body (`null` when there is none).
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    let with_query = |token: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}token={token}")
    };
    let (url, header) = match auth {
        Auth::None => (path.to_string(), None),
        Auth::Bearer(token) => (path.to_string(), Some(token)),
        Auth::Query(token) => (with_query(token), None),
        Auth::Both { header, query } => (with_query(query), Some(header)),
    };
    let mut request = http().request(method, server.url(&url));
    if let Some(token) = header {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("HTTP answer");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, body)
}

/// Expects an ErrorBody with `status` and `code`.
fn assert_error(answer: &(u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["code"], code, "{what}: {}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: an ErrorBody has a message: {}",
        answer.1
    );
}

/// Every endpoint of section 12 for `document`: (method, path, body, needs write).
fn endpoints(document: &str) -> Vec<(Method, String, Option<Value>, bool)> {
    vec![
        (
            Method::GET,
            format!("/api/documents/{document}"),
            None,
            false,
        ),
        (
            Method::GET,
            format!("/api/events/{document}?after=0"),
            None,
            false,
        ),
        (
            Method::POST,
            format!("/api/sync/{document}"),
            Some(json!({"vectorClock": {}})),
            false,
        ),
        (
            Method::PUT,
            format!("/api/documents/{document}"),
            Some(json!({"n": 100})),
            true,
        ),
        (
            Method::PATCH,
            format!("/api/documents/{document}"),
            Some(json!([{"op": "replace", "path": "/n", "value": 200}])),
            true,
        ),
        (
            Method::DELETE,
            format!("/api/documents/{document}"),
            None,
            true,
        ),
    ]
}

/// The stored document, read with a token.
async fn stored(server: &TestServer, document: &str) -> Value {
    let reader = token(document, "auditor", Rights::Read);
    let answer = call(
        server,
        Method::GET,
        &format!("/api/documents/{document}"),
        Auth::Bearer(&reader),
        None,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1
}

#[tokio::test]
async fn websocket_without_a_token_is_unauthorized() {
    let server = auth_server().await;
    refused(&server, None, None, "alice", ErrorCode::Unauthorized).await;
    // An empty token is no token.
    refused(&server, Some(""), None, "alice", ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn websocket_refuses_bad_tokens_from_the_url_and_from_hello() {
    let server = auth_server().await;
    for (name, bad) in bad_tokens() {
        eprintln!("token: {name}");
        refused(&server, Some(&bad), None, "alice", ErrorCode::Unauthorized).await;
        refused(&server, None, Some(&bad), "alice", ErrorCode::Unauthorized).await;
    }
    // A token for another document is valid but does not grant this one.
    let other = token("other-doc", "alice", Rights::Write);
    refused(&server, Some(&other), None, "alice", ErrorCode::Forbidden).await;
    refused(&server, None, Some(&other), "alice", ErrorCode::Forbidden).await;
    // A token for another client.
    let bob = token(DOC, "bob", Rights::Write);
    refused(
        &server,
        Some(&bob),
        None,
        "alice",
        ErrorCode::ClientMismatch,
    )
    .await;
    refused(
        &server,
        None,
        Some(&bob),
        "alice",
        ErrorCode::ClientMismatch,
    )
    .await;
    // Nothing of that wrote anything.
    assert_eq!(stored(&server, DOC).await["sequenceNum"], 1);
}

#[tokio::test]
async fn websocket_hello_checks_run_in_the_order_of_5_2() {
    let server = auth_server().await;
    // Version first, then the clientId's syntax, then the token.
    let mut ws = Ws::connect(&server, DOC, None).await;
    assert!(matches!(
        ws.hello_with(&[99], "alice", None).await,
        ServerMessage::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        }
    ));
    refused(&server, None, None, "", ErrorCode::MalformedFrame).await;
    // client_mismatch before forbidden: a token for bob on another document, hello as alice.
    let bob_elsewhere = token("other-doc", "bob", Rights::Write);
    refused(
        &server,
        None,
        Some(&bob_elsewhere),
        "alice",
        ErrorCode::ClientMismatch,
    )
    .await;
    // Nobody may be `server`: a token cannot name it, and a hello as server with alice's token
    // is a mismatch.
    let alice = token(DOC, "alice", Rights::Write);
    refused(
        &server,
        None,
        Some(&alice),
        "server",
        ErrorCode::ClientMismatch,
    )
    .await;
}

#[tokio::test]
async fn tokens_come_from_the_url_or_from_hello_and_hello_wins() {
    let server = auth_server().await;
    let alice = token(DOC, "alice", Rights::Write);
    let bob = token(DOC, "bob", Rights::Write);
    welcomed(&server, DOC, Some(&alice), None, "alice").await;
    welcomed(&server, DOC, None, Some(&alice), "alice").await;
    // Both present: hello.token wins (5.3).
    welcomed(&server, DOC, Some("garbage"), Some(&alice), "alice").await;
    welcomed(&server, DOC, Some(&bob), Some(&alice), "alice").await;
    refused(
        &server,
        Some(&alice),
        Some("garbage"),
        "alice",
        ErrorCode::Unauthorized,
    )
    .await;
    refused(
        &server,
        Some(&alice),
        Some(&bob),
        "alice",
        ErrorCode::ClientMismatch,
    )
    .await;
}

#[tokio::test]
async fn a_write_token_edits_as_its_client() {
    let server = auth_server().await;
    let alice = token(DOC, "alice", Rights::Write);
    let (mut ws, head) = welcomed(&server, DOC, None, Some(&alice), "alice").await;
    assert_eq!(head, 1);
    ws.submit(vec![edit(
        1,
        1,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": 1}]),
    )])
    .await;
    let (events, answer) = ws.answer().await;
    assert!(matches!(answer, ServerMessage::Ack { edits } if edits[0].sequence_num == 2));
    assert_eq!(events[0].client_id, "alice");
    assert_eq!(events[0].client_seq, Some(1));
    let doc = stored(&server, DOC).await;
    assert_eq!(doc["document"], json!({"n": 1}));
    assert_eq!(doc["vectorClock"], json!({"writer": 1, "alice": 2}));
}

#[tokio::test]
async fn a_read_token_catches_up_and_follows_but_cannot_write() {
    let server = auth_server().await;
    let reader_token = token(DOC, "reader", Rights::Read);
    let (mut reader, head) = welcomed(&server, DOC, Some(&reader_token), None, "reader").await;
    assert_eq!(head, 1);
    let caught_up = reader.sync(VectorClock::new(), None).await;
    assert_eq!(caught_up.seqs(), vec![1]);
    assert_eq!(caught_up.events[0].client_id, "writer");

    // Live events reach it.
    let alice = token(DOC, "alice", Rights::Write);
    let (mut writer, _) = welcomed(&server, DOC, None, Some(&alice), "alice").await;
    writer
        .submit(vec![edit(
            1,
            1,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": 1}]),
        )])
        .await;
    assert!(matches!(writer.answer().await.1, ServerMessage::Ack { .. }));
    match reader.recv().await {
        ServerMessage::Event { events } => {
            assert_eq!(events[0].sequence_num, 2);
            assert_eq!(events[0].client_id, "alice");
        }
        other => panic!("expected the live event, got {other:?}"),
    }

    // Its edits are refused with forbidden, and nothing is stored.
    let before = stored(&server, DOC).await;
    reader
        .submit(vec![
            edit(
                1,
                2,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": 666}]),
            ),
            edit(2, 2, Operation::Delete, json!([])),
        ])
        .await;
    match reader.answer().await {
        (
            events,
            ServerMessage::Reject {
                client_seq,
                code,
                head_seq,
                message,
            },
        ) => {
            assert!(events.is_empty());
            assert_eq!(
                (client_seq, code, head_seq),
                (1, ErrorCode::Forbidden, 2),
                "{message}"
            );
        }
        other => panic!("expected reject forbidden, got {other:?}"),
    }
    assert_eq!(stored(&server, DOC).await, before);
    // The connection goes on.
    assert_eq!(reader.ping(5).await, Some(2));
}

#[tokio::test]
async fn a_star_token_works_on_every_document() {
    let server = auth_server().await;
    let any = token("*", "alice", Rights::Write);
    for document in ["first", "second", DOC] {
        let (mut ws, head) = welcomed(&server, document, Some(&any), None, "alice").await;
        let (operation, patch) = if head == 0 {
            (
                Operation::Create,
                json!([{"op": "add", "path": "", "value": {"by": "alice"}}]),
            )
        } else {
            (
                Operation::Update,
                json!([{"op": "add", "path": "/by", "value": "alice"}]),
            )
        };
        ws.submit(vec![edit(1, head, operation, patch)]).await;
        let (events, answer) = ws.answer().await;
        assert!(matches!(answer, ServerMessage::Ack { .. }), "{answer:?}");
        assert_eq!(events[0].document_id, document);
        assert_eq!(events[0].client_id, "alice");
        assert_eq!(stored(&server, document).await["document"]["by"], "alice");
    }
    // And over HTTP.
    let answer = call(
        &server,
        Method::GET,
        "/api/documents/third",
        Auth::Query(&any),
        None,
    )
    .await;
    assert_eq!(answer.0, 200);
    assert_eq!(answer.1["document"], Value::Null);
}

mod http;
