//! Checks of authentication: no token, a forged or mismatched one, a token in the URL (section 15).

use super::*;

pub(super) async fn auth_none(ctx: &Ctx) -> R {
    if no_token(ctx) {
        return skip(NO_TOKEN);
    }
    let doc = ctx.doc("noauth");
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: ctx.opts.client_id.clone(),
        token: None,
    })
    .await?;
    conn.expect_error("unauthorized", "hello without a token")
        .await?;
    conn.expect_closed("hello without a token").await?;
    for path in [
        format!("/api/events/{doc}"),
        format!("/api/documents/{doc}"),
        format!("/api/stream/{doc}"),
    ] {
        let answer = ctx
            .request(reqwest::Method::GET, &path, None, false)
            .await?;
        expect_http_error(
            &format!("GET {path} without a token"),
            answer,
            401,
            "unauthorized",
        )?;
    }
    let answer = ctx
        .request(
            reqwest::Method::POST,
            &format!("/api/sync/{doc}"),
            Some(&json!({})),
            false,
        )
        .await?;
    expect_http_error(
        "POST /api/sync without a token",
        answer,
        401,
        "unauthorized",
    )?;
    let answer = ctx
        .request(
            reqwest::Method::PUT,
            &format!("/api/documents/{doc}"),
            Some(&json!({})),
            false,
        )
        .await?;
    expect_http_error("PUT without a token", answer, 401, "unauthorized")?;
    Ok(Outcome::Pass)
}

pub(super) async fn auth_forged(ctx: &Ctx) -> R {
    let Some(token) = ctx.opts.token.clone() else {
        return skip(NO_TOKEN);
    };
    let doc = ctx.doc("forged");
    for forged in [format!("{token}forged"), "not-a-token".to_string()] {
        let mut conn = ctx.open(&doc).await?;
        conn.send(&ClientMessage::Hello {
            protocol_versions: vec![1],
            client_id: ctx.opts.client_id.clone(),
            token: Some(forged.clone()),
        })
        .await?;
        conn.expect_error("unauthorized", "hello with a forged token")
            .await?;
        conn.expect_closed("hello with a forged token").await?;
        let path = format!("/api/events/{doc}");
        let answer = ctx
            .http
            .get(ctx.http_url(&path))
            .bearer_auth(&forged)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap_or_default();
        expect_http_error(
            &format!("GET {path} with a forged token"),
            (status, body),
            401,
            "unauthorized",
        )?;
    }
    Ok(Outcome::Pass)
}

pub(super) async fn auth_mismatch(ctx: &Ctx) -> R {
    if no_token(ctx) {
        return skip(NO_TOKEN);
    }
    let doc = ctx.doc("mismatch");
    let other = format!("{}-other", ctx.opts.client_id);
    let mut conn = ctx.open(&doc).await?;
    conn.send(&ctx.hello(&other)).await?;
    conn.expect_error(
        "client_mismatch",
        "hello naming another clientId than the token",
    )
    .await?;
    conn.expect_closed("hello naming another clientId than the token")
        .await?;
    let answer = ctx
        .request(
            reqwest::Method::POST,
            &format!("/api/sync/{doc}"),
            Some(&json!({ "clientId": other, "vectorClock": {} })),
            true,
        )
        .await?;
    expect_http_error(
        "POST /api/sync with another body clientId",
        answer,
        403,
        "client_mismatch",
    )?;
    Ok(Outcome::Pass)
}

pub(super) async fn auth_url(ctx: &Ctx) -> R {
    let Some(token) = ctx.opts.token.clone() else {
        return skip(NO_TOKEN);
    };
    let (doc, _) = seeded(ctx, "urltoken", 1).await?;
    let client = ctx.opts.client_id.clone();
    let url = format!("{}?token={}", ctx.ws_url(&doc), percent(&token));
    let mut conn = crate::client::Conn::open(&url, ctx.timeout()).await?;
    conn.send(&ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: client.clone(),
        token: None,
    })
    .await?;
    conn.welcome(&doc, &client)
        .await
        .map_err(|e| format!("hello with ?token= in the URL: {e}"))?;
    let path = format!("/api/events/{doc}?token={}", percent(&token));
    let (status, body) = ctx
        .request(reqwest::Method::GET, &path, None, false)
        .await?;
    ensure!(
        status == 200,
        "GET /api/events with ?token=: status {status} ({})",
        short(&body)
    );
    let path = format!("/api/stream/{doc}?token={}", percent(&token));
    let resp = open_sse(ctx, &path, false).await?;
    ensure!(
        resp.status().as_u16() == 200,
        "SSE with ?token=: status {}",
        resp.status()
    );
    Ok(Outcome::Pass)
}

pub(super) fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
