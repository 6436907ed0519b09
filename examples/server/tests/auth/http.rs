//! Tokens on the HTTP endpoints and over time: refusals, write and read tokens, expiry.

use super::*;

#[tokio::test]
async fn http_without_a_valid_token_is_unauthorized() {
    let server = auth_server().await;
    let mut bad = bad_tokens();
    bad.push(("empty", String::new()));
    for (method, path, body, _) in endpoints(DOC) {
        let what = format!("{method} {path} without a token");
        assert_error(
            &call(&server, method.clone(), &path, Auth::None, body.clone()).await,
            401,
            "unauthorized",
            &what,
        );
        for (name, token) in &bad {
            for auth in [Auth::Bearer(token), Auth::Query(token)] {
                let answer = call(&server, method.clone(), &path, auth, body.clone()).await;
                assert_error(
                    &answer,
                    401,
                    "unauthorized",
                    &format!("{method} {path} {name}"),
                );
            }
        }
    }
    // SSE too; /health needs nothing.
    assert_error(
        &call(&server, Method::GET, "/api/stream/board", Auth::None, None).await,
        401,
        "unauthorized",
        "GET /api/stream",
    );
    let health = call(&server, Method::GET, "/health", Auth::None, None).await;
    assert_eq!(health, (200, json!({"status": "ok"})));
    assert_eq!(stored(&server, DOC).await["sequenceNum"], 1);
}

#[tokio::test]
async fn http_tokens_for_another_document_or_read_only_are_forbidden() {
    let server = auth_server().await;
    let other = token("other-doc", "alice", Rights::Write);
    let reader = token(DOC, "reader", Rights::Read);
    for (method, path, body, write) in endpoints(DOC) {
        for auth in [Auth::Bearer(&other), Auth::Query(&other)] {
            let answer = call(&server, method.clone(), &path, auth, body.clone()).await;
            assert_error(
                &answer,
                403,
                "forbidden",
                &format!("{method} {path} other doc"),
            );
        }
        for auth in [Auth::Bearer(&reader), Auth::Query(&reader)] {
            let answer = call(&server, method.clone(), &path, auth, body.clone()).await;
            if write {
                assert_error(
                    &answer,
                    403,
                    "forbidden",
                    &format!("{method} {path} read-only"),
                );
            } else {
                assert_eq!(answer.0, 200, "{method} {path} read: {}", answer.1);
            }
        }
    }
    let doc = stored(&server, DOC).await;
    assert_eq!(doc["sequenceNum"], 1, "no write went through");
    assert_eq!(doc["document"], json!({"n": 0}));
}

#[tokio::test]
async fn http_write_tokens_work_by_header_and_by_query() {
    let server = auth_server().await;
    let alice = token(DOC, "alice", Rights::Write);
    let mut head = 1;
    for auth in [Auth::Bearer(&alice), Auth::Query(&alice)] {
        for (method, path, body, write) in endpoints(DOC) {
            let answer = call(&server, method.clone(), &path, auth, body).await;
            assert_eq!(answer.0, 200, "{method} {path}: {}", answer.1);
            if write {
                head += 1;
                assert_eq!(answer.1, json!({"sequenceNum": head}), "{method} {path}");
            }
        }
        // The DELETE left the document absent: PUT creates it again for the next round.
        assert_eq!(stored(&server, DOC).await["document"], Value::Null);
        let answer = call(
            &server,
            Method::PUT,
            &format!("/api/documents/{DOC}"),
            auth,
            Some(json!({"n": 0})),
        )
        .await;
        head += 1;
        assert_eq!(answer, (200, json!({"sequenceNum": head})));
    }
    // HTTP writes carry the token's clientId and no clientSeq (12.5).
    let page = call(
        &server,
        Method::GET,
        "/api/events/board?after=1",
        Auth::Bearer(&alice),
        None,
    )
    .await;
    let events = page.1["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, head - 1);
    for event in events {
        assert_eq!(event["clientId"], "alice");
        assert!(event.get("clientSeq").is_none(), "{event}");
    }
    // The header wins over the query (12).
    let both = Auth::Both {
        header: &alice,
        query: "garbage",
    };
    let path = format!("/api/documents/{DOC}");
    assert_eq!(call(&server, Method::GET, &path, both, None).await.0, 200);
    let both = Auth::Both {
        header: "garbage",
        query: &alice,
    };
    assert_error(
        &call(&server, Method::GET, &path, both, None).await,
        401,
        "unauthorized",
        "bad header, good query",
    );
    // SSE with a token.
    let response = http()
        .get(server.url(&format!("/api/stream/{DOC}?token={alice}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
}

#[tokio::test]
async fn http_sync_checks_the_bodys_client_id() {
    let server = auth_server().await;
    let alice = token(DOC, "alice", Rights::Read);
    let path = format!("/api/sync/{DOC}");
    let answer = call(
        &server,
        Method::POST,
        &path,
        Auth::Bearer(&alice),
        Some(json!({"clientId": "mallory", "vectorClock": {}})),
    )
    .await;
    assert_error(&answer, 403, "client_mismatch", "body clientId mallory");
    for body in [
        json!({"clientId": "alice", "vectorClock": {}}),
        json!({"vectorClock": {}}),
        json!({"clientId": "", "documentId": DOC}),
    ] {
        let answer = call(
            &server,
            Method::POST,
            &path,
            Auth::Bearer(&alice),
            Some(body),
        )
        .await;
        assert_eq!(answer.0, 200, "{}", answer.1);
        assert_eq!(answer.1["headSeq"], 1);
        assert_eq!(answer.1["events"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn refused_credentials_leave_everyone_else_served_and_sse_checks_tokens_too() {
    let server = auth_server().await;
    // An authorized client follows the document while others are refused.
    let alice = token(DOC, "alice", Rights::Write);
    let (mut writer, _) = welcomed(&server, DOC, None, Some(&alice), "alice").await;
    let reader_token = token(DOC, "reader", Rights::Read);
    let (mut reader, _) = welcomed(&server, DOC, Some(&reader_token), None, "reader").await;

    let stream = format!("/api/stream/{DOC}");
    let mut head = 1;
    for (name, bad) in bad_tokens() {
        refused(&server, None, Some(&bad), "alice", ErrorCode::Unauthorized).await;
        for auth in [Auth::Bearer(&bad), Auth::Query(&bad)] {
            let answer = call(&server, Method::GET, &stream, auth, None).await;
            assert_error(&answer, 401, "unauthorized", &format!("SSE {name}"));
        }
        // The read-only client's edits stay refused, the writer's go through, and both follow.
        reader
            .submit(vec![edit(
                head,
                head,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": -1}]),
            )])
            .await;
        let (_, answer) = reader.answer().await;
        assert!(
            matches!(
                answer,
                ServerMessage::Reject {
                    code: ErrorCode::Forbidden,
                    ..
                }
            ),
            "{answer:?}"
        );
        writer
            .submit(vec![edit(
                head,
                head,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": head}]),
            )])
            .await;
        assert!(matches!(writer.answer().await.1, ServerMessage::Ack { .. }));
        head += 1;
        match reader.recv().await {
            ServerMessage::Event { events } => assert_eq!(events[0].sequence_num, head),
            other => panic!("the reader expected event {head}, got {other:?}"),
        }
    }
    // A token for another document does not open this document's stream.
    let other = token("other-doc", "alice", Rights::Read);
    let answer = call(&server, Method::GET, &stream, Auth::Bearer(&other), None).await;
    assert_error(&answer, 403, "forbidden", "SSE other document");
    let doc = stored(&server, DOC).await;
    assert_eq!(doc["sequenceNum"], head);
    assert_eq!(doc["document"], json!({"n": head - 1}));
    assert_eq!(reader.ping(1).await, Some(head));
}

#[tokio::test]
async fn connections_and_streams_end_when_their_token_expires() {
    let server = auth_server().await;
    // Valid for one or two more seconds (expiry is counted in whole seconds).
    let short = token_until(DOC, "alice", Rights::Write, now() + 2);
    let (mut expiring, _) = welcomed(&server, DOC, None, Some(&short), "alice").await;
    let mut stream = support::sse::open(&server, &format!("/api/stream/{DOC}?token={short}"), None)
        .await
        .expect("the stream opens while the token is valid");
    assert_eq!(stream.next().await.event, "connected");
    let long = token(DOC, "bob", Rights::Write);
    let (mut lasting, _) = welcomed(&server, DOC, None, Some(&long), "bob").await;

    let message = expiring.expect_error(ErrorCode::Unauthorized).await;
    assert!(message.contains("expired"), "{message}");
    assert!(expiring.closed_within(WAIT).await, "closed at expiry");
    let mut ended = None;
    while let Some(event) = stream.try_next(WAIT).await {
        if event.event == "error" {
            ended = Some(event.json());
            break;
        }
    }
    let ended = ended.expect("the stream reports the expiry");
    assert_eq!(ended["code"], "unauthorized", "{ended}");
    assert!(stream.ended_within(WAIT).await, "the stream ends at expiry");

    // A connection whose token is still valid keeps being served.
    lasting
        .submit(vec![edit(
            2,
            1,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": 2}]),
        )])
        .await;
    let (_, answer) = lasting.answer().await;
    assert!(matches!(answer, ServerMessage::Ack { .. }), "{answer:?}");
}

#[tokio::test]
async fn a_read_only_token_gets_its_ordered_edits_acked_as_duplicates_and_new_ones_forbidden() {
    // 8.3: the exactly-once check (step 2) comes before the permission (step 4). A client whose
    // write token was replaced by a read token still learns that its earlier edit was ordered.
    let server = TestServer::start_with(|c| c.auth_secret = Some(SECRET.into())).await;
    let document = "readonly-resend";
    let mut writer = Ws::connect(&server, document, None).await;
    let write = token(document, "alice", Rights::Write);
    assert!(matches!(
        writer.hello_with(&[1], "alice", Some(&write)).await,
        ServerMessage::Welcome { .. }
    ));
    let create = edit(
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"n": 1}}]),
    );
    writer.submit(vec![create.clone()]).await;
    assert!(matches!(writer.answer().await.1, ServerMessage::Ack { .. }));
    let mut reader = Ws::connect(&server, document, None).await;
    let read = token(document, "alice", Rights::Read);
    assert!(matches!(
        reader.hello_with(&[1], "alice", Some(&read)).await,
        ServerMessage::Welcome {
            head_seq: Some(1),
            ..
        }
    ));
    let again = edit(
        2,
        0,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": 2}]),
    );
    reader.submit(vec![create, again]).await;
    match reader.answer().await.1 {
        ServerMessage::Ack { edits } => {
            assert_eq!(
                (
                    edits[0].client_seq,
                    edits[0].sequence_num,
                    edits[0].duplicate
                ),
                (1, 1, true)
            )
        }
        other => panic!("expected the duplicate's ack first, got {other:?}"),
    }
    match reader.recv().await {
        ServerMessage::Reject {
            client_seq: 2,
            code: ErrorCode::Forbidden,
            head_seq: 1,
            ..
        } => {}
        other => panic!("expected reject 2 forbidden, got {other:?}"),
    }
}
