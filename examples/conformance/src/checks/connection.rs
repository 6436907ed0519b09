//! Checks of the connection itself: health, the handshake and version negotiation, what comes
//! before and after `hello`, ids, pipelining and `ping` (sections 4, 5 and 12.3).

use super::*;

pub(super) async fn health(ctx: &Ctx) -> R {
    let (status, body) = ctx
        .request(reqwest::Method::GET, "/health", None, false)
        .await?;
    ensure!(status == 200, "GET /health: status {status}");
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("GET /health: {e}"))?;
    ensure!(v["status"] == "ok", "GET /health answered {}", short(&body));
    Ok(Outcome::Pass)
}

pub(super) async fn handshake(ctx: &Ctx) -> R {
    let doc = ctx.doc("handshake");
    let client = ctx.client("alice");
    let (_conn, head) = ctx.session(&doc, &client).await?;
    ensure!(
        head == 0,
        "welcome.headSeq {head} for a new document (§2: 0)"
    );
    Ok(Outcome::Pass)
}

pub(super) async fn versions(ctx: &Ctx) -> R {
    let doc = ctx.doc("versions");
    let client = ctx.client("alice");
    // The highest common version: this kit offers 1 and a version no server speaks.
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ClientMessage::Hello {
        protocol_versions: vec![1_000_000, 1],
        client_id: client.clone(),
        token: ctx.opts.token.clone(),
    })
    .await?;
    conn.welcome(&doc, &client)
        .await
        .map_err(|e| format!("hello [1000000, 1]: {e}"))?;
    for versions in [vec![1_000_000], vec![]] {
        let what = format!("hello {versions:?}");
        let mut conn = ctx.open(&doc).await?;
        conn.send(&ClientMessage::Hello {
            protocol_versions: versions,
            client_id: client.clone(),
            token: ctx.opts.token.clone(),
        })
        .await?;
        conn.expect_error("unsupported_version", &what).await?;
        conn.expect_closed(&what).await?;
    }
    Ok(Outcome::Pass)
}

pub(super) async fn before_hello(ctx: &Ctx) -> R {
    let doc = ctx.doc("early");
    let client = ctx.client("alice");
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ClientMessage::Sync {
        vector_clock: VectorClock::new(),
        after: None,
    })
    .await?;
    conn.expect_error("unexpected_message", "sync before hello")
        .await?;
    conn.send(&ClientMessage::Ping { nonce: Some(1) }).await?;
    conn.expect_error("unexpected_message", "ping before hello")
        .await?;
    conn.send_text("{\"type\":\"ping\",".into()).await?;
    conn.expect_error("malformed_frame", "a malformed frame before hello")
        .await?;
    conn.send(&ctx.hello(&client)).await?;
    conn.welcome(&doc, &client)
        .await
        .map_err(|e| format!("hello after refused frames: {e}"))?;
    Ok(Outcome::Pass)
}

pub(super) async fn second_hello(ctx: &Ctx) -> R {
    let doc = ctx.doc("hello2");
    let client = ctx.client("alice");
    let (mut conn, _) = ctx.session(&doc, &client).await?;
    conn.send(&ctx.hello(&client)).await?;
    conn.expect_error("unexpected_message", "a second hello")
        .await?;
    conn.ping_next("after the second hello's error").await?;
    Ok(Outcome::Pass)
}

pub(super) async fn bad_client_id(ctx: &Ctx) -> R {
    let doc = ctx.doc("badclient");
    for bad in ["", "has space", "a/b", &"x".repeat(129)] {
        let what = format!("hello with clientId {:?}", short(bad));
        let mut conn = ctx.open(&doc).await?;
        conn.send(&ctx.hello(bad)).await?;
        conn.expect_error("malformed_frame", &what).await?;
        conn.expect_closed(&what).await?;
    }
    // "server" is reserved. With a token, the token's clientId check comes first (5.2 rule 2).
    let want = if no_token(ctx) {
        "forbidden"
    } else {
        "client_mismatch"
    };
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ctx.hello("server")).await?;
    conn.expect_error(want, "hello with clientId \"server\"")
        .await?;
    conn.expect_closed("hello with clientId \"server\"").await?;
    Ok(Outcome::Pass)
}

pub(super) async fn bad_document_id(ctx: &Ctx) -> R {
    let client = ctx.client("alice");
    for bad in ["x".repeat(129), "a!b".to_string()] {
        let what = format!("connecting to document {:?}", short(&bad));
        match ctx.open(&bad).await {
            Err(e) if e.contains("404") => {}
            Err(e) => return Err(format!("{what}: {e} (expected HTTP 404 or an error frame)")),
            Ok(mut conn) => {
                conn.send(&ctx.hello(&client)).await?;
                conn.expect_error("unknown_document", &what).await?;
                conn.expect_closed(&what).await?;
            }
        }
        let path = format!("/api/documents/{bad}");
        expect_http_error(
            &format!("GET {path}"),
            ctx.get(&path).await?,
            404,
            "unknown_document",
        )?;
    }
    Ok(Outcome::Pass)
}

pub(super) async fn pipelining(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "pipeline", 2).await?;
    let client = ctx.client("bob");
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ctx.hello(&client)).await?;
    conn.send(&ClientMessage::Sync {
        vector_clock: VectorClock::new(),
        after: None,
    })
    .await?;
    let head = conn.welcome(&doc, &client).await?;
    ensure!(head == 2, "welcome.headSeq {head}, expected 2");
    let answer = conn.sync_answer().await?;
    check_catchup(&doc, &answer.snapshot, &answer.events, 0, 2)?;
    conn.ping_next("after the pipelined sync").await?;
    Ok(Outcome::Pass)
}

pub(super) async fn ping_pong(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "ping", 3).await?;
    let (mut conn, _) = ctx.session(&doc, &ctx.client("bob")).await?;
    let head = conn.ping_next("ping with a nonce").await?;
    if let Some(head) = head {
        ensure!(head == 3, "pong.headSeq {head}, expected 3");
    }
    conn.send(&ClientMessage::Ping { nonce: None }).await?;
    match conn.next().await? {
        ServerMessage::Pong { nonce: None, .. } => {}
        other => return Err(format!("ping without nonce: {}", describe(&other))),
    }
    Ok(Outcome::Pass)
}
