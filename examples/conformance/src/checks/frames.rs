//! Checks of bad frames: malformed, too large, unknown fields, and a server that keeps serving
//! after them (section 4 and Appendix B).

use super::*;

/// The frames of Appendix B that must be refused with `malformed_frame`.
pub(super) const MALFORMED: &[&str] = &[
    r#"{ "type": "Hello", "protocolVersions": [1], "clientId": "alice" }"#,
    r#"{ "type": "subscribe", "documentId": "board-42" }"#,
    r#"{ "type": "hello", "clientId": "alice" }"#,
    r#"{ "type": "submit" }"#,
    r#"["hello", 1]"#,
    r#"{ "type": "ping", }"#,
    r#"{ "type": "submit", "edits": [{ "clientSeq": -1, "baseSeq": 0, "patch": [] }] }"#,
    r#"{ "type": "sync", "vectorClock": { "alice": "3" } }"#,
    r#"{ "type": "ping", "nonce": 1.5 }"#,
    r#"{ "type": "submit", "edits": [{ "clientSeq": 1, "baseSeq": 0, "operation": "upsert", "patch": [] }] }"#,
    r#"{ "type": "submit", "edits": [{ "clientSeq": 1, "baseSeq": 0, "patch": [{ "op": "increment", "path": "/n" }] }] }"#,
    r#"{ "type": "submit", "edits": [{ "clientSeq": 1, "baseSeq": 0, "patch": [{ "op": "add", "path": "title", "value": "x" }] }] }"#,
    r#"{ "type": "submit", "edits": [{ "clientSeq": 1, "baseSeq": 0, "patch": [{ "op": "add", "path": "/title" }] }] }"#,
    r#"not json"#,
    r#"{ "type": "ping", "nonce": "5" }"#,
];

pub(super) async fn malformed(ctx: &Ctx) -> R {
    let doc = ctx.doc("malformed");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    for frame in MALFORMED {
        let what = format!("frame {frame}");
        conn.send_text(frame.to_string()).await?;
        conn.expect_error("malformed_frame", &what).await?;
        conn.ping_next(&what).await?;
    }
    conn.send_raw(Message::Binary(b"{\"type\":\"ping\"}".to_vec().into()))
        .await?;
    conn.expect_error("malformed_frame", "a binary message")
        .await?;
    conn.ping_next("a binary message").await?;
    // The bad frames had no effect: the document was never written.
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{doc}")).await?;
    ensure!(
        s.sequence_num == 0,
        "the bad frames wrote events (headSeq {})",
        s.sequence_num
    );
    Ok(Outcome::Pass)
}

pub(super) async fn too_large(ctx: &Ctx) -> R {
    let doc = ctx.doc("large");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    // 11: every server refuses client frames nested 128 levels or more.
    let depth = 200;
    let frame = format!(
        "{{\"type\":\"ping\",\"x\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    conn.send_text(frame).await?;
    conn.expect_error("too_large", "a ping nested 201 levels")
        .await?;
    conn.ping_next("a ping nested 201 levels").await?;
    // A frame under 512 KiB nested 63 levels is accepted (11).
    let pad = "a".repeat((1 << 19) - 1024);
    let frame = format!(
        "{{\"type\":\"ping\",\"nonce\":7,\"pad\":\"{pad}\",\"x\":{}{}}}",
        "[".repeat(62),
        "]".repeat(62)
    );
    conn.send_text(frame).await?;
    match conn.next().await? {
        ServerMessage::Pong { nonce: Some(7), .. } => {}
        other => {
            return Err(format!(
                "a ping just under 512 KiB nested 63 levels: {}",
                describe(&other)
            ))
        }
    }
    Ok(Outcome::Pass)
}

pub(super) async fn unknown_fields(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "unknown", 2).await?;
    let client = ctx.client("bob");
    let mut conn = ctx.open(&doc).await?;
    let mut hello = serde_json::to_value(ctx.hello(&client)).unwrap();
    hello["futureField"] = json!({ "a": [1] });
    conn.send_text(hello.to_string()).await?;
    conn.welcome(&doc, &client)
        .await
        .map_err(|e| format!("hello with an unknown field: {e}"))?;
    conn.send_text(r#"{"type":"sync","vectorClock":{},"futureField":true}"#.into())
        .await?;
    let a = conn
        .sync_answer()
        .await
        .map_err(|e| format!("sync with an unknown field: {e}"))?;
    check_catchup(&doc, &a.snapshot, &a.events, 0, 2)?;
    let page: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=0&futureParam=1"))
        .await?;
    check_catchup(&doc, &page.snapshot, &page.events, 0, 2)
        .map_err(|e| format!("GET /api/events with an unknown parameter: {e}"))?;
    let page: EventsPage = ctx
        .post_ok(
            &format!("/api/sync/{doc}"),
            &json!({ "vectorClock": {}, "futureField": 1 }),
        )
        .await?;
    check_catchup(&doc, &page.snapshot, &page.events, 0, 2)
        .map_err(|e| format!("POST /api/sync with an unknown field: {e}"))?;
    Ok(Outcome::Pass)
}

pub(super) async fn still_serving(ctx: &Ctx) -> R {
    health(ctx).await?;
    let (doc, _) = seeded(ctx, "alive", 2).await?;
    let a = sync_on(ctx, &doc, VectorClock::new(), None).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 0, 2)?;
    // And a connection that only ever sent bad frames still answers.
    let mut conn = ctx.open(&doc).await?;
    for frame in MALFORMED.iter().take(4) {
        conn.send_text(frame.to_string()).await?;
    }
    for _ in 0..4 {
        match conn.recv().await? {
            Frame::Msg(ServerMessage::Error { .. }) => {}
            Frame::Msg(other) => {
                return Err(format!("a bad frame before hello: {}", describe(&other)))
            }
            Frame::Closed(_) => {
                return Err("the server closed the connection after bad frames before hello".into())
            }
        }
    }
    let client = ctx.client("late");
    conn.send(&ctx.hello(&client)).await?;
    conn.welcome(&doc, &client).await?;
    Ok(Outcome::Pass)
}
