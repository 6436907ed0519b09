//! Checks of the Server-Sent Events stream (section 13).

use super::*;

pub(super) async fn open_sse(
    ctx: &Ctx,
    path: &str,
    authed: bool,
) -> Result<reqwest::Response, String> {
    let mut req = ctx.http.get(ctx.http_url(path)).timeout(ctx.timeout() * 3);
    if authed {
        if let Some(token) = &ctx.opts.token {
            req = req.bearer_auth(token);
        }
    }
    req.send().await.map_err(|e| format!("GET {path}: {e}"))
}

/// Reads an SSE stream's `connected`, then events until `until`; returns the snapshot and events.
pub(super) async fn read_sse(
    reader: &mut SseReader,
    doc: &str,
    until: u64,
) -> Result<(Option<Snapshot>, Vec<Event>, Vec<SseEvent>), String> {
    let first = reader.next().await?.ok_or("the stream ended at once")?;
    ensure!(
        first.event == "connected",
        "the first SSE event is {:?}, expected connected",
        first.event
    );
    let data: Value =
        serde_json::from_str(&first.data).map_err(|e| format!("connected data: {e}"))?;
    ensure!(
        data["documentId"] == doc,
        "connected data {}",
        short(&first.data)
    );
    ensure!(
        data["headSeq"].is_u64(),
        "connected data without headSeq: {}",
        short(&first.data)
    );
    let mut snapshot = None;
    let mut events: Vec<Event> = Vec::new();
    let mut raw = Vec::new();
    while events
        .last()
        .map(|e| e.sequence_num)
        .or(snapshot.as_ref().map(|s: &Snapshot| s.sequence_num))
        .unwrap_or(0)
        < until
    {
        let ev = reader.next().await?.ok_or("the stream ended early")?;
        match ev.event.as_str() {
            "snapshot" => {
                ensure!(
                    events.is_empty() && snapshot.is_none(),
                    "a snapshot event after the catch-up started"
                );
                snapshot = Some(
                    serde_json::from_str(&ev.data).map_err(|e| format!("snapshot data: {e}"))?,
                );
            }
            "events" => {
                let batch: Vec<Event> =
                    serde_json::from_str(&ev.data).map_err(|e| format!("events data: {e}"))?;
                events.extend(batch);
            }
            "event" => {
                let e: Event =
                    serde_json::from_str(&ev.data).map_err(|e| format!("event data: {e}"))?;
                ensure!(
                    ev.id.as_deref() == Some(e.sequence_num.to_string().as_str()),
                    "a live event #{} with id: {:?} (MUST be its sequenceNum)",
                    e.sequence_num,
                    ev.id
                );
                events.push(e);
            }
            "error" => return Err(format!("an error event: {}", short(&ev.data))),
            other => return Err(format!("an SSE event named {other:?}")),
        }
        raw.push(ev);
    }
    Ok((snapshot, events, raw))
}

pub(super) async fn sse(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "sse", 3).await?;
    let path = format!("/api/stream/{doc}?after=1");
    let resp = open_sse(ctx, &path, true).await?;
    ensure!(
        resp.status().as_u16() == 200,
        "GET {path}: status {}",
        resp.status()
    );
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure!(
        ctype.starts_with("text/event-stream"),
        "Content-Type {ctype:?}"
    );
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure!(cache.contains("no-cache"), "Cache-Control {cache:?}");
    let mut reader = SseReader::new(resp, ctx.timeout());
    let (snapshot, events, _) = read_sse(&mut reader, &doc, 3).await?;
    check_catchup(&doc, &snapshot, &events, 1, 3)
        .map_err(|e| format!("SSE catch-up after 1: {e}"))?;
    // A live event follows the catch-up.
    let seq = ctx.put_document(&doc, &json!({ "n": 4 })).await?;
    ensure!(seq == 4, "PUT answered sequenceNum {seq}");
    let ev = reader
        .next()
        .await?
        .ok_or("the stream ended before the live event")?;
    ensure!(
        ev.event == "event",
        "after the catch-up: an SSE event named {:?}",
        ev.event
    );
    let e: Event = serde_json::from_str(&ev.data).map_err(|e| format!("event data: {e}"))?;
    ensure!(
        e.sequence_num == 4 && ev.id.as_deref() == Some("4"),
        "live event #{} with id {:?}",
        e.sequence_num,
        ev.id
    );
    check_event(&doc, &e)?;
    drop(reader);
    // Last-Event-ID wins over after.
    let mut req = ctx
        .http
        .get(ctx.http_url(&format!("/api/stream/{doc}?after=0")))
        .header("Last-Event-ID", "3");
    if let Some(token) = &ctx.opts.token {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("SSE with Last-Event-ID: {e}"))?;
    let mut reader = SseReader::new(resp, ctx.timeout());
    let (snapshot, events, _) = read_sse(&mut reader, &doc, 4).await?;
    check_run(
        &doc,
        &events,
        snapshot.map(|s| s.sequence_num).unwrap_or(3).max(3),
        4,
    )
    .map_err(|e| format!("Last-Event-ID 3: {e}"))?;
    drop(reader);
    let path = format!("/api/stream/{doc}?after=9");
    expect_http_error(
        &format!("GET {path}"),
        ctx.get(&path).await?,
        400,
        "invalid_sequence",
    )?;
    let path = format!("/api/stream/{doc}?after=x");
    expect_http_error(
        &format!("GET {path}"),
        ctx.get(&path).await?,
        400,
        "malformed_frame",
    )?;
    Ok(Outcome::Pass)
}
