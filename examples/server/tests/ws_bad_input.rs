//! Bad input over real WebSockets (docs/PROTOCOL.md 4.2, 5.2, 8.3, 10, 11 and Appendix B): every
//! bad frame gets a clear answer with the documented code, the connection stays usable, and
//! nothing already accepted changes.

mod support;

use std::time::Duration;

use eventsync::protocol::{ErrorBody, ErrorCode, Operation, ServerMessage};
use serde_json::{json, Value};
use support::{document, edit, TestServer, Ws};
use tokio_tungstenite::tungstenite::{self, Message};

const DOC: &str = "doc";

/// Creates `doc` as `{"n": 1, "list": [1, 2]}` (#1) and returns alice's connection.
async fn seeded(server: &TestServer) -> Ws {
    let (mut alice, head) = Ws::open(server, DOC, "alice").await;
    assert_eq!(head, 0);
    alice
        .submit(vec![edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"n": 1, "list": [1, 2]}}]),
        )])
        .await;
    let (_, answer) = alice.answer().await;
    assert!(matches!(answer, ServerMessage::Ack { .. }), "{answer:?}");
    alice
}

/// Proves the connection still works: a pong with the expected head (live events before it are
/// skipped), then an accepted edit.
async fn still_usable(ws: &mut Ws, client_seq: u64, head: u64) -> u64 {
    ws.send_text(&format!(r#"{{"type":"ping","nonce":{client_seq}}}"#))
        .await;
    match ws
        .recv_until(|m| !matches!(m, ServerMessage::Event { .. }))
        .await
    {
        ServerMessage::Pong {
            nonce, head_seq, ..
        } => {
            assert_eq!((nonce, head_seq), (Some(client_seq), Some(head)))
        }
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.submit(vec![edit(
        client_seq,
        head,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": client_seq}]),
    )])
    .await;
    let (_, answer) = ws.answer().await;
    match answer {
        ServerMessage::Ack { edits } => {
            assert_eq!(edits.len(), 1);
            assert_eq!(edits[0].sequence_num, head + 1);
            head + 1
        }
        other => panic!("the connection no longer accepts edits: {other:?}"),
    }
}

/// Sends each frame and expects an `error` with `code` for it, and no effect on the document.
async fn refuse_each(server: &TestServer, ws: &mut Ws, code: ErrorCode, frames: &[String]) {
    let before = document(server, DOC).await;
    let head = before["sequenceNum"].as_u64().unwrap();
    for (i, frame) in frames.iter().enumerate() {
        ws.send_text(frame).await;
        match ws.recv().await {
            ServerMessage::Error { code: got, message } => {
                assert_eq!(got, code, "frame {frame:.200} ({message})");
                assert!(!message.is_empty());
            }
            other => panic!("frame {frame:.200} was answered with {other:?}"),
        }
        // The connection is still there, and the bad frame had no effect.
        assert_eq!(ws.ping(i as u64).await, Some(head), "after {frame:.200}");
    }
    assert_eq!(document(server, DOC).await, before);
}

fn strings(frames: &[&str]) -> Vec<String> {
    frames.iter().map(|f| f.to_string()).collect()
}

/// A JSON array nested `depth` levels deep, as text.
fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A JSON object nested `depth` levels deep (`{"a":{"a":…{}}}`), as text.
fn nested_object(depth: usize) -> String {
    format!(
        "{}{{}}{}",
        r#"{"a":"#.repeat(depth - 1),
        "}".repeat(depth - 1)
    )
}

#[tokio::test]
async fn malformed_json_is_answered_with_malformed_frame() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let frames = strings(&[
        "not json",
        r#"{ "type": "ping", }"#,
        r#"{"type": "ping""#,
        r#"{"type": "submit", "edits": [{"clientSeq": 2, "baseSeq": 1, "patch": [}"#,
        "",
        " ",
        "\u{feff}{}",
        r#"["hello", 1]"#,
        "42",
        "null",
        r#""ping""#,
        r#"{"type":"ping"} {"type":"ping"}"#,
        r#"{"type":"ping","nonce":1}garbage"#,
    ]);
    refuse_each(&server, &mut alice, ErrorCode::MalformedFrame, &frames).await;
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_malformed() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let edit_with = |fields: &str| format!(r#"{{"type":"submit","edits":[{{{fields}}}]}}"#);
    let mut frames = strings(&[
        r#"{}"#,
        r#"{"edits": []}"#,
        r#"{"type": 5}"#,
        r#"{"type": null}"#,
        r#"{"type": ["ping"]}"#,
        r#"{"type": "submit"}"#,
        r#"{"type": "submit", "edits": {}}"#,
        r#"{"type": "submit", "edits": null}"#,
        r#"{"type": "submit", "edits": [1]}"#,
        r#"{"type": "hello", "clientId": "alice"}"#,
        r#"{"type": "hello", "protocolVersions": 1, "clientId": "alice"}"#,
        r#"{"type": "sync", "vectorClock": {"alice": "3"}}"#,
        r#"{"type": "sync", "vectorClock": {"alice": -1}}"#,
        r#"{"type": "sync", "vectorClock": {"alice": 1.5}}"#,
        r#"{"type": "sync", "vectorClock": []}"#,
        r#"{"type": "sync", "vectorClock": null}"#,
        r#"{"type": "sync", "after": -1}"#,
        r#"{"type": "sync", "after": 1e30}"#,
        r#"{"type": "sync", "after": "0"}"#,
        r#"{"type": "ping", "nonce": 1.5}"#,
        r#"{"type": "ping", "nonce": -1}"#,
        r#"{"type": "ping", "nonce": "1"}"#,
        r#"{"type": "ping", "nonce": 18446744073709551616}"#,
    ]);
    for fields in [
        // Counters: negative, huge, fractional, quoted, null, missing.
        r#""clientSeq": -1, "baseSeq": 1, "patch": []"#,
        r#""clientSeq": 1e30, "baseSeq": 1, "patch": []"#,
        r#""clientSeq": 18446744073709551616, "baseSeq": 1, "patch": []"#,
        r#""clientSeq": 2.5, "baseSeq": 1, "patch": []"#,
        r#""clientSeq": "2", "baseSeq": 1, "patch": []"#,
        r#""clientSeq": null, "baseSeq": 1, "patch": []"#,
        r#""baseSeq": 1, "patch": []"#,
        r#""clientSeq": 2, "patch": []"#,
        r#""clientSeq": 2, "baseSeq": -1, "patch": []"#,
        r#""clientSeq": 2, "baseSeq": 1e30, "patch": []"#,
        // Edits that are not well-formed (Appendix B).
        r#""clientSeq": 2, "baseSeq": 1, "operation": "upsert", "patch": []"#,
        r#""clientSeq": 2, "baseSeq": 1, "operation": "Update", "patch": []"#,
        r#""clientSeq": 2, "baseSeq": 1, "patch": [{"op": "increment", "path": "/n"}]"#,
        r#""clientSeq": 2, "baseSeq": 1, "patch": [{"op": "add", "path": "/n"}]"#,
        r#""clientSeq": 2, "baseSeq": 1, "patch": [{"path": "/n", "value": 1}]"#,
        r#""clientSeq": 2, "baseSeq": 1, "patch": {"op": "add", "path": "/n", "value": 1}"#,
        r#""clientSeq": 2, "baseSeq": 1, "patch": [{"op": "move", "path": "/m"}]"#,
    ] {
        frames.push(edit_with(fields));
    }
    refuse_each(&server, &mut alice, ErrorCode::MalformedFrame, &frames).await;
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn unknown_message_types_are_malformed() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let frames = strings(&[
        r#"{ "type": "Hello", "protocolVersions": [1], "clientId": "alice" }"#,
        r#"{ "type": "subscribe", "documentId": "doc" }"#,
        r#"{ "type": "PING" }"#,
        r#"{ "type": "presence", "clients": ["bob"] }"#,
        r#"{ "type": "" }"#,
        // Server message types are not client messages.
        r#"{ "type": "pong", "nonce": 1 }"#,
        r#"{ "type": "ack", "edits": [] }"#,
    ]);
    refuse_each(&server, &mut alice, ErrorCode::MalformedFrame, &frames).await;
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn a_binary_frame_is_malformed() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let before = document(&server, DOC).await;
    for payload in [
        br#"{"type":"ping","nonce":1}"#.to_vec(),
        vec![0, 159, 146, 150],
        vec![],
    ] {
        alice.send_raw(Message::Binary(payload.into())).await;
        alice.expect_error(ErrorCode::MalformedFrame).await;
        assert_eq!(alice.ping(9).await, Some(1));
    }
    assert_eq!(document(&server, DOC).await, before);
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_too_large() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let mut alice = seeded(&server).await;
    let pad = "x".repeat(5000);
    let frames = vec![
        format!(r#"{{"type":"ping","nonce":1,"pad":"{pad}"}}"#),
        format!(
            r#"{{"type":"submit","edits":[{{"clientSeq":2,"baseSeq":1,"patch":[{{"op":"add","path":"/big","value":"{pad}"}}]}}]}}"#
        ),
        // Over the limit and not even JSON: the size is checked first.
        format!("{{{pad}"),
    ];
    refuse_each(&server, &mut alice, ErrorCode::TooLarge, &frames).await;
    // Just under the limit is fine.
    let fits = format!(
        r#"{{"type":"ping","nonce":5,"pad":"{}"}}"#,
        "y".repeat(4000)
    );
    assert!(fits.len() < 4096);
    alice.send_text(&fits).await;
    assert_eq!(
        alice.recv().await,
        ServerMessage::Pong {
            nonce: Some(5),
            head_seq: Some(1),
            heads: None,
        }
    );
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn deep_nesting_is_too_large_and_does_not_crash_the_server() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    // The frame's own object is level 1: 200, 128 levels, and far more, in arrays and objects.
    let frames = vec![
        format!(r#"{{"type":"ping","x":{}}}"#, nested_array(199)),
        format!(r#"{{"type":"ping","x":{}}}"#, nested_array(127)),
        format!(r#"{{"type":"ping","x":{}}}"#, nested_object(199)),
        format!(r#"{{"type":"ping","x":{}}}"#, nested_array(300_000)),
        // Unbalanced: it is too deep before it is malformed.
        format!(r#"{{"type":"ping","x":{}"#, "[".repeat(1000)),
        format!(
            r#"{{"type":"submit","edits":[{{"clientSeq":2,"baseSeq":1,"patch":[{{"op":"add","path":"/deep","value":{}}}]}}]}}"#,
            nested_array(200)
        ),
    ];
    refuse_each(&server, &mut alice, ErrorCode::TooLarge, &frames).await;
    // 127 levels is the most a frame may nest (section 11).
    alice
        .send_text(&format!(
            r#"{{"type":"ping","nonce":3,"x":{}}}"#,
            nested_array(126)
        ))
        .await;
    assert!(matches!(
        alice.recv().await,
        ServerMessage::Pong { nonce: Some(3), .. }
    ));
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn a_document_deeper_than_120_levels_is_rejected_too_large() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let before = document(&server, DOC).await;
    let submit = |client_seq: u64, base: u64, op: &str, path: &str, value: &str| {
        format!(
            r#"{{"type":"submit","edits":[{{"clientSeq":{client_seq},"baseSeq":{base},"operation":"{op}","patch":[{{"op":"add","path":"{path}","value":{value}}}]}}]}}"#
        )
    };
    // An update that would make the document 121 levels deep (its root is level 1).
    alice
        .send_text(&submit(2, 1, "update", "/deep", &nested_object(120)))
        .await;
    match alice.answer().await.1 {
        ServerMessage::Reject {
            client_seq: 2,
            code: ErrorCode::TooLarge,
            head_seq: 1,
            ..
        } => {}
        other => panic!("expected reject too_large, got {other:?}"),
    }
    assert_eq!(document(&server, DOC).await, before, "nothing stored");
    // A create 121 levels deep, of another document.
    let (mut bob, _) = Ws::open(&server, "deep", "bob").await;
    bob.send_text(&submit(1, 0, "create", "", &nested_array(121)))
        .await;
    assert!(matches!(
        bob.answer().await.1,
        ServerMessage::Reject {
            client_seq: 1,
            code: ErrorCode::TooLarge,
            head_seq: 0,
            ..
        }
    ));
    assert_eq!(document(&server, "deep").await["document"], Value::Null);
    // 120 levels is allowed, and the connections go on.
    bob.send_text(&submit(2, 0, "create", "", &nested_array(120)))
        .await;
    assert!(matches!(bob.answer().await.1, ServerMessage::Ack { .. }));
    alice
        .send_text(&submit(3, 1, "update", "/deep", &nested_object(119)))
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { .. }));
    still_usable(&mut alice, 4, 2).await;
}

#[tokio::test]
async fn bad_pointers_are_malformed_and_patches_that_do_not_apply_are_invalid_patch() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    // A JSON Pointer that is not one makes the edit, and so the frame, malformed (Appendix B).
    let pointer = |path: &str| {
        format!(
            r#"{{"type":"submit","edits":[{{"clientSeq":2,"baseSeq":1,"patch":[{{"op":"add","path":"{path}","value":1}}]}}]}}"#
        )
    };
    let frames: Vec<String> = ["a/b", "n", "/~2", "/a~", "/list/~x"]
        .iter()
        .map(|p| pointer(p))
        .collect();
    refuse_each(&server, &mut alice, ErrorCode::MalformedFrame, &frames).await;

    // Well-formed patches that do not apply: reject invalid_patch, nothing stored.
    let before = document(&server, DOC).await;
    let failing = [
        json!([{"op": "remove", "path": "/missing"}]),
        json!([{"op": "replace", "path": "/missing", "value": 1}]),
        json!([{"op": "add", "path": "/a/b", "value": 1}]),
        json!([{"op": "add", "path": "/list/5", "value": 1}]),
        json!([{"op": "remove", "path": "/list/-"}]),
        json!([{"op": "move", "from": "/missing", "path": "/m"}]),
        json!([{"op": "copy", "from": "/missing", "path": "/m"}]),
        json!([{"op": "test", "path": "/n", "value": 2}]),
        json!([{"op": "add", "path": "/n/x", "value": 1}]),
        // Atomic: the first operation would apply, the second fails.
        json!([
            {"op": "replace", "path": "/n", "value": 99},
            {"op": "remove", "path": "/list/7"}
        ]),
        // The result may not be null.
        json!([{"op": "replace", "path": "", "value": null}]),
    ];
    for (i, patch) in failing.iter().enumerate() {
        alice
            .submit(vec![edit(2, 1, Operation::Update, patch.clone())])
            .await;
        match alice.answer().await {
            (
                events,
                ServerMessage::Reject {
                    client_seq,
                    code,
                    head_seq,
                    ..
                },
            ) => {
                assert!(events.is_empty());
                assert_eq!(
                    (client_seq, code, head_seq),
                    (2, ErrorCode::InvalidPatch, 1),
                    "patch {i}: {patch}"
                );
            }
            other => panic!("patch {i} {patch}: {other:?}"),
        }
    }
    // A delete with a patch.
    alice
        .submit(vec![edit(
            2,
            1,
            Operation::Delete,
            json!([{"op": "remove", "path": "/n"}]),
        )])
        .await;
    assert!(matches!(
        alice.answer().await.1,
        ServerMessage::Reject {
            code: ErrorCode::InvalidPatch,
            ..
        }
    ));
    assert_eq!(document(&server, DOC).await, before, "nothing stored");
    // The refused clientSeq was never ordered, so it can be used now (gaps are allowed anyway).
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn edits_of_absent_documents_are_refused_with_document_state() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "ghost", "alice").await;
    let set = json!([{"op": "add", "path": "/n", "value": 1}]);
    let expect_state = |answer: ServerMessage, client_seq: u64, head: u64| match answer {
        ServerMessage::Reject {
            client_seq: got,
            code: ErrorCode::DocumentState,
            head_seq,
            ..
        } => assert_eq!((got, head_seq), (client_seq, head)),
        other => panic!("expected document_state, got {other:?}"),
    };
    // Never created.
    alice
        .submit(vec![edit(1, 0, Operation::Update, set.clone())])
        .await;
    expect_state(alice.answer().await.1, 1, 0);
    alice
        .submit(vec![edit(2, 0, Operation::Delete, json!([]))])
        .await;
    expect_state(alice.answer().await.1, 2, 0);
    assert_eq!(document(&server, "ghost").await["sequenceNum"], 0);

    // Created, then deleted.
    alice
        .submit(vec![
            edit(
                3,
                0,
                Operation::Create,
                json!([{"op": "add", "path": "", "value": {}}]),
            ),
            edit(4, 0, Operation::Delete, json!([])),
        ])
        .await;
    assert!(matches!(alice.answer().await.1, ServerMessage::Ack { edits } if edits.len() == 2));
    let before = document(&server, "ghost").await;
    assert_eq!(before["document"], Value::Null);
    alice
        .submit(vec![edit(5, 2, Operation::Update, set.clone())])
        .await;
    expect_state(alice.answer().await.1, 5, 2);
    alice
        .submit(vec![edit(6, 2, Operation::Delete, json!([]))])
        .await;
    expect_state(alice.answer().await.1, 6, 2);
    assert_eq!(document(&server, "ghost").await, before);
    // A create of a present document is refused the same way.
    let mut other = seeded(&server).await;
    other
        .submit(vec![edit(
            2,
            1,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {}}]),
        )])
        .await;
    expect_state(other.answer().await.1, 2, 1);
    // The deleted document can be created again, on the same connection.
    alice
        .submit(vec![edit(
            7,
            2,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"again": true}}]),
        )])
        .await;
    assert!(
        matches!(alice.answer().await.1, ServerMessage::Ack { edits } if edits[0].sequence_num == 3)
    );
    assert_eq!(alice.ping(1).await, Some(3));
}

#[tokio::test]
async fn a_second_hello_is_an_unexpected_message() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    for client in ["alice", "mallory"] {
        alice
            .send_text(&format!(
                r#"{{"type":"hello","protocolVersions":[1],"clientId":"{client}"}}"#
            ))
            .await;
        alice.expect_error(ErrorCode::UnexpectedMessage).await;
    }
    // Still bound to alice.
    still_usable(&mut alice, 2, 1).await;
    let log = alice
        .sync(eventsync::VectorClock::new(), Some(1))
        .await
        .events;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].client_id, "alice");
}

#[tokio::test]
async fn frames_before_hello_are_answered_and_the_server_still_waits_for_hello() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let before = document(&server, DOC).await;

    let mut early = Ws::connect(&server, DOC, None).await;
    // Valid messages other than hello: unexpected_message, and they have no effect (5.2 rule 1).
    for frame in [
        r#"{"type":"ping","nonce":1}"#,
        r#"{"type":"sync","vectorClock":{}}"#,
        r#"{"type":"submit","edits":[{"clientSeq":1,"baseSeq":1,"patch":[{"op":"replace","path":"/n","value":5}]}]}"#,
    ] {
        early.send_text(frame).await;
        early.expect_error(ErrorCode::UnexpectedMessage).await;
    }
    // Malformed frames: malformed_frame.
    early.send_text("not json").await;
    early.expect_error(ErrorCode::MalformedFrame).await;
    early.send_text(r#"{"type":"subscribe"}"#).await;
    early.expect_error(ErrorCode::MalformedFrame).await;
    early.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    early.expect_error(ErrorCode::MalformedFrame).await;
    // Not closed: the hello that follows is welcomed.
    assert_eq!(early.hello("early").await, 1);
    assert_eq!(early.ping(2).await, Some(1));
    assert_eq!(
        document(&server, DOC).await,
        before,
        "the early submit did nothing"
    );
    still_usable(&mut early, 1, 1).await;
    still_usable(&mut alice, 2, 2).await;
}

#[tokio::test]
async fn an_unsupported_protocol_version_is_refused_and_closed() {
    let server = TestServer::start().await;
    let _alice = seeded(&server).await;
    for versions in [vec![2], vec![], vec![0, 99]] {
        let mut ws = Ws::connect(&server, DOC, None).await;
        match ws.hello_with(&versions, "bob", None).await {
            ServerMessage::Error {
                code: ErrorCode::UnsupportedVersion,
                message,
            } => assert!(!message.is_empty()),
            other => panic!("versions {versions:?}: {other:?}"),
        }
        assert!(
            ws.closed_within(support::WAIT).await,
            "closed after refusal"
        );
    }
    // The version is checked before the clientId (5.2 rule 2).
    let mut ws = Ws::connect(&server, DOC, None).await;
    assert!(matches!(
        ws.hello_with(&[], "", None).await,
        ServerMessage::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        }
    ));
    // Versions the server does not speak next to 1 are fine: it picks 1.
    let mut ws = Ws::connect(&server, DOC, None).await;
    match ws.hello_with(&[3, 1, 2], "bob", None).await {
        ServerMessage::Welcome {
            protocol_version,
            head_seq,
            client_id,
            document_id,
        } => {
            assert_eq!(protocol_version, 1);
            assert_eq!(head_seq, Some(1));
            assert_eq!(client_id, "bob");
            assert_eq!(document_id, DOC);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn invalid_client_ids_are_refused_in_hello() {
    let server = TestServer::start().await;
    let mut alice = seeded(&server).await;
    let long = "c".repeat(129);
    let cases = [
        ("", ErrorCode::MalformedFrame),
        (long.as_str(), ErrorCode::MalformedFrame),
        ("a b", ErrorCode::MalformedFrame),
        ("a/b", ErrorCode::MalformedFrame),
        ("..", ErrorCode::MalformedFrame),
        ("caf\u{e9}", ErrorCode::MalformedFrame),
        // Well-formed, but reserved for the server's own changes.
        ("server", ErrorCode::Forbidden),
    ];
    for (client, code) in cases {
        let mut ws = Ws::connect(&server, DOC, None).await;
        match ws.hello_with(&[1], client, None).await {
            ServerMessage::Error { code: got, .. } => assert_eq!(got, code, "clientId {client:?}"),
            other => panic!("clientId {client:?}: {other:?}"),
        }
        assert!(ws.closed_within(support::WAIT).await, "{client:?}");
    }
    // The longest valid id, and ids that only look odd, are fine.
    for client in [
        "c".repeat(128),
        "Server".into(),
        "...".into(),
        "a.b_c~d-e".into(),
    ] {
        let (mut ws, head) = Ws::open(&server, DOC, &client).await;
        assert_eq!(head, 1);
        assert_eq!(ws.ping(1).await, Some(1));
    }
    still_usable(&mut alice, 2, 1).await;
}

#[tokio::test]
async fn invalid_document_ids_are_refused_in_a_frame_or_before_the_upgrade() {
    let server = TestServer::start().await;
    let long = "d".repeat(129);
    for document in [long.as_str(), "a%20b", "caf%C3%A9", "a%2Fb", "%2E%2E"] {
        match Ws::try_connect(&server, document, None).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{document}");
                let body: ErrorBody =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("an ErrorBody");
                assert_eq!(body.code, ErrorCode::UnknownDocument, "{document}");
            }
            Err(other) => panic!("{document}: {other}"),
            Ok(mut ws) => {
                // A server may also refuse in a frame (4.1).
                assert!(matches!(
                    ws.hello_with(&[1], "alice", None).await,
                    ServerMessage::Error {
                        code: ErrorCode::UnknownDocument,
                        ..
                    }
                ));
            }
        }
    }
    // The longest valid id works.
    let (mut ws, _) = Ws::open(&server, &"d".repeat(128), "alice").await;
    assert_eq!(ws.ping(1).await, Some(0));
}

#[tokio::test]
async fn rate_limited_connections_survive_and_others_are_unaffected() {
    let server = TestServer::start_with(|c| {
        c.rate_limit = 5;
        c.rate_burst = 5;
    })
    .await;
    let mut alice = seeded(&server).await;
    let (mut bob, _) = Ws::open(&server, DOC, "bob").await;
    // The seeding submit took a token; wait for the bucket to fill again.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for nonce in 0..50u64 {
        alice
            .send_text(&format!(r#"{{"type":"ping","nonce":{nonce}}}"#))
            .await;
    }
    let (mut pongs, mut limited) = (Vec::new(), 0);
    for _ in 0..50 {
        match alice.recv().await {
            ServerMessage::Pong { nonce, .. } => pongs.push(nonce.unwrap()),
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(pongs.len() >= 5, "the burst passes: {pongs:?}");
    assert!(limited >= 30, "most of the flood is refused: {limited}");
    assert_eq!(pongs.len() + limited, 50, "every frame is answered once");
    assert!(pongs.windows(2).all(|w| w[0] < w[1]), "answers in order");
    assert_eq!(&pongs[..5], &[0, 1, 2, 3, 4]);

    // Bob has his own budget.
    for nonce in 0..5 {
        assert_eq!(bob.ping(nonce).await, Some(1));
    }
    // A submit that hits the limit is answered with a reject of its edit, and nothing is stored
    // (8.3: rate limits that hit an edit are reported as a reject).
    for nonce in 0..10u64 {
        bob.send_text(&format!(r#"{{"type":"ping","nonce":{nonce}}}"#))
            .await;
    }
    bob.submit(vec![edit(
        1,
        1,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": 7}]),
    )])
    .await;
    let answer = bob
        .recv_until(|m| matches!(m, ServerMessage::Reject { .. } | ServerMessage::Ack { .. }))
        .await;
    match answer {
        ServerMessage::Reject {
            client_seq: 1,
            code: ErrorCode::RateLimited,
            head_seq: 1,
            ..
        } => {}
        other => panic!("expected reject rate_limited, got {other:?}"),
    }
    assert_eq!(document(&server, DOC).await["sequenceNum"], 1);

    // After a pause both connections work again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let head = still_usable(&mut alice, 2, 1).await;
    bob.recv_until(|m| matches!(m, ServerMessage::Event { .. }))
        .await;
    assert_eq!(bob.ping(100).await, Some(head));
    // A new client is unaffected by all of this.
    let (mut carol, welcome_head) = Ws::open(&server, DOC, "carol").await;
    assert_eq!(welcome_head, head);
    still_usable(&mut carol, 1, head).await;
}

#[tokio::test]
async fn the_server_keeps_serving_everyone_after_bad_input() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let mut alice = seeded(&server).await;
    let (mut bob, _) = Ws::open(&server, DOC, "bob").await;
    // A bit of everything, on several connections at once.
    let pad = "z".repeat(6000);
    let bad = vec![
        "not json".to_string(),
        r#"{"type":"nope"}"#.to_string(),
        format!(r#"{{"type":"ping","x":{}}}"#, nested_array(5000)),
        format!(r#"{{"type":"ping","pad":"{pad}"}}"#),
        r#"{"type":"submit","edits":[{"clientSeq":-1,"baseSeq":0}]}"#.to_string(),
        r#"{"type":"hello","protocolVersions":[1],"clientId":"x"}"#.to_string(),
    ];
    for frame in &bad {
        alice.send_text(frame).await;
        bob.send_text(frame).await;
        let mut refused = Ws::connect(&server, DOC, None).await;
        refused.send_text(frame).await;
        refused.send_raw(Message::Binary(vec![0].into())).await;
        // Half-finished handshakes and abrupt disconnects.
        drop(refused);
    }
    for ws in [&mut alice, &mut bob] {
        for _ in &bad {
            assert!(matches!(ws.recv().await, ServerMessage::Error { .. }));
        }
    }
    for client in ["", "server"] {
        let mut ws = Ws::connect(&server, DOC, None).await;
        assert!(matches!(
            ws.hello_with(&[1], client, None).await,
            ServerMessage::Error { .. }
        ));
    }
    // An invalid document id is refused in a frame after hello (4.1).
    let mut invalid = Ws::connect(&server, "a%20b", None).await;
    assert!(matches!(
        invalid.hello_with(&[1], "erin", None).await,
        ServerMessage::Error {
            code: ErrorCode::UnknownDocument,
            ..
        }
    ));

    let head = still_usable(&mut alice, 2, 1).await;
    let (mut dave, welcome) = Ws::open(&server, DOC, "dave").await;
    assert_eq!(welcome, head);
    let head = still_usable(&mut dave, 1, head).await;
    let caught_up = bob.sync(eventsync::VectorClock::new(), None).await;
    assert_eq!(caught_up.seqs(), (1..=head).collect::<Vec<_>>());
    assert_eq!(document(&server, DOC).await["document"]["n"], 1);
}
