//! Checks of catching up: `sync` over WebSocket and HTTP, paging through events, reading the
//! document, and snapshots (sections 6, 7 and 12).

use super::*;

pub(super) async fn sync_on(
    ctx: &Ctx,
    doc: &str,
    vector: VectorClock,
    after: Option<u64>,
) -> Result<crate::client::SyncAnswer, String> {
    let (mut conn, _) = ctx.session(doc, &ctx.client("reader")).await?;
    conn.send(&ClientMessage::Sync {
        vector_clock: vector,
        after,
    })
    .await?;
    conn.sync_answer().await
}

pub(super) async fn catchup_empty(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "empty", 3).await?;
    let a = sync_on(ctx, &doc, VectorClock::new(), None).await?;
    ensure!(a.head == 3, "headSeq {} after 3 events", a.head);
    check_catchup(&doc, &a.snapshot, &a.events, 0, 3)?;
    let a = sync_on(ctx, &doc, VectorClock::new(), Some(0)).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 0, 3).map_err(|e| format!("after 0: {e}"))?;
    Ok(Outcome::Pass)
}

pub(super) async fn catchup_partial(ctx: &Ctx) -> R {
    let (doc, events) = seeded(ctx, "partial", 4).await?;
    // A client that applied #1 and #2 holds #2's vector.
    let a = sync_on(ctx, &doc, vector_of(&events[..2]), None).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 2, 4).map_err(|e| format!("vector of #2: {e}"))?;
    let a = sync_on(ctx, &doc, vector_of(&events[..1]), Some(3)).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 3, 4)
        .map_err(|e| format!("after 3 (vector ignored): {e}"))?;
    Ok(Outcome::Pass)
}

pub(super) async fn catchup_current(ctx: &Ctx) -> R {
    let (doc, events) = seeded(ctx, "current", 3).await?;
    for (what, after) in [("the current vector", None), ("after 3", Some(3))] {
        let a = sync_on(ctx, &doc, vector_of(&events), after).await?;
        ensure!(
            a.frames == 1 && a.events.is_empty() && a.snapshot.is_none(),
            "{what}: expected one events frame with no events, got {} frames, {} events",
            a.frames,
            a.events.len()
        );
        ensure!(a.head == 3, "{what}: headSeq {}", a.head);
    }
    Ok(Outcome::Pass)
}

pub(super) async fn sync_ahead(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "ahead", 2).await?;
    let (mut conn, _) = ctx.session(&doc, &ctx.client("reader")).await?;
    let ahead: VectorClock = serde_json::from_value(json!({ "someone": 3 })).unwrap();
    for (what, vector, after) in [
        ("sync after 3 (head 2)", VectorClock::new(), Some(3)),
        ("sync with vector {someone: 3} (head 2)", ahead, None),
    ] {
        conn.send(&ClientMessage::Sync {
            vector_clock: vector,
            after,
        })
        .await?;
        conn.expect_error("invalid_sequence", what).await?;
        conn.ping_next(what).await?;
    }
    Ok(Outcome::Pass)
}

pub(super) async fn http_sync(ctx: &Ctx) -> R {
    let (doc, events) = seeded(ctx, "httpsync", 4).await?;
    let path = format!("/api/sync/{doc}");
    for (what, vector, after) in [
        ("an empty vector", VectorClock::new(), 0),
        ("the vector of #2", vector_of(&events[..2]), 2),
        ("the current vector", vector_of(&events), 4),
    ] {
        let page: EventsPage = ctx
            .post_ok(&path, &json!({ "vectorClock": vector }))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        ensure!(page.head_seq == 4, "{what}: headSeq {}", page.head_seq);
        ensure!(!page.has_more, "{what}: hasMore true for 4 events");
        check_catchup(&doc, &page.snapshot, &page.events, after, 4)
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let body = json!({ "documentId": doc, "vectorClock": {} });
    ctx.post_ok::<EventsPage>(&path, &body)
        .await
        .map_err(|e| format!("a body with the URL's documentId: {e}"))?;
    let bad = ctx
        .request(
            reqwest::Method::POST,
            &path,
            Some(&json!({ "vectorClock": { "someone": 5 } })),
            true,
        )
        .await?;
    expect_http_error("a vector value above headSeq", bad, 400, "invalid_sequence")?;
    let bad = ctx
        .request(
            reqwest::Method::POST,
            &path,
            Some(&json!({ "documentId": "another-doc", "vectorClock": {} })),
            true,
        )
        .await?;
    expect_http_error(
        "a body documentId unlike the URL's",
        bad,
        400,
        "malformed_frame",
    )?;
    Ok(Outcome::Pass)
}

pub(super) async fn events_paging(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "paging", 5).await?;
    let mut after = 0;
    let mut all = Vec::new();
    for _ in 0..10 {
        let page: EventsPage = ctx
            .get_ok(&format!("/api/events/{doc}?after={after}&limit=2"))
            .await?;
        ensure!(page.head_seq == 5, "headSeq {}", page.head_seq);
        ensure!(
            page.events.len() <= 2,
            "limit=2 gave {} events",
            page.events.len()
        );
        if let Some(s) = &page.snapshot {
            // Only a server that does not retain `after` starts a page with a snapshot.
            check_counter_snapshot(&doc, s, 5)?;
        }
        let last = page.events.last().map(|e| e.sequence_num);
        all.extend(page.events);
        if !page.has_more {
            break;
        }
        after = last.ok_or("hasMore true on a page without events")?;
    }
    ensure!(
        all.len() == 5 && all.last().map(|e| e.sequence_num) == Some(5),
        "paging with limit=2 gave sequenceNums {:?}",
        all.iter().map(|e| e.sequence_num).collect::<Vec<_>>()
    );
    check_run(&doc, &all, 0, 5)?;
    let page: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=1&limit=0"))
        .await?;
    ensure!(
        page.events.is_empty() && page.has_more && page.head_seq == 5,
        "limit=0 after 1: {} events, hasMore {}, headSeq {}",
        page.events.len(),
        page.has_more,
        page.head_seq
    );
    let page: EventsPage = ctx.get_ok(&format!("/api/events/{doc}?after=5")).await?;
    ensure!(
        page.events.is_empty() && !page.has_more,
        "after=headSeq: {} events, hasMore {}",
        page.events.len(),
        page.has_more
    );
    let page: EventsPage = ctx.get_ok(&format!("/api/events/{doc}")).await?;
    ensure!(
        page.events.len() == 5,
        "no after (default 0): {} events",
        page.events.len()
    );
    let path = format!("/api/events/{doc}?after=6");
    expect_http_error(
        &format!("GET {path}"),
        ctx.get(&path).await?,
        400,
        "invalid_sequence",
    )?;
    for bad in ["after=-1", "after=x", "after=1.5", "limit=-2"] {
        let path = format!("/api/events/{doc}?{bad}");
        expect_http_error(
            &format!("GET {path}"),
            ctx.get(&path).await?,
            400,
            "malformed_frame",
        )?;
    }
    Ok(Outcome::Pass)
}

pub(super) async fn read_document(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "read", 3).await?;
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{doc}")).await?;
    ensure!(
        s.sequence_num == 3,
        "sequenceNum {}, expected 3",
        s.sequence_num
    );
    check_counter_snapshot(&doc, &s, 3)?;
    let fresh = ctx.doc("never");
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{fresh}")).await?;
    ensure!(
        s.sequence_num == 0 && s.document.is_none(),
        "a never-written document: sequenceNum {}, document {:?}",
        s.sequence_num,
        s.document
    );
    Ok(Outcome::Pass)
}

pub(super) async fn snapshots(ctx: &Ctx) -> R {
    let count = 60;
    let (doc, _) = seeded(ctx, "snapshots", count).await?;
    // 12.2: a page starts with a snapshot exactly when `after` is older than the retained
    // history. That is how a client (and this kit) sees that the server compacted.
    let page: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=0&limit=0"))
        .await?;
    let Some(snapshot) = page.snapshot.clone() else {
        let reason = format!("the server retains all {count} events of a document (no compaction)");
        return if ctx.opts.expect_snapshots {
            Err(format!("{reason}, and --expect-snapshots was given"))
        } else {
            skip(&reason)
        };
    };
    ensure!(snapshot.sequence_num >= 1, "a snapshot at #0 for after=0");
    check_counter_snapshot(&doc, &snapshot, count)?;
    ensure!(
        page.events.is_empty() && page.head_seq == count,
        "after=0&limit=0: {} events, headSeq {}",
        page.events.len(),
        page.head_seq
    );
    let log = ctx.read_log(&doc).await?;
    check_catchup(&doc, &log.snapshot, &log.events, 0, count)
        .map_err(|e| format!("reading the log: {e}"))?;
    // The same client over WebSocket, both forms, and over POST /api/sync: a snapshot first.
    for (what, after) in [
        ("sync with an empty vector", None),
        ("sync after 0", Some(0)),
    ] {
        let a = sync_on(ctx, &doc, VectorClock::new(), after).await?;
        ensure!(
            a.snapshot.is_some(),
            "{what}: no snapshot frame although #1 is compacted"
        );
        check_catchup(&doc, &a.snapshot, &a.events, 0, count)
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let page: EventsPage = ctx
        .post_ok(&format!("/api/sync/{doc}"), &json!({ "vectorClock": {} }))
        .await?;
    ensure!(
        page.snapshot.is_some(),
        "POST /api/sync with an empty vector: no snapshot"
    );
    let end = page
        .events
        .last()
        .map(|e| e.sequence_num)
        .unwrap_or(0)
        .max(page.snapshot.as_ref().map(|s| s.sequence_num).unwrap_or(0));
    ensure!(
        page.has_more || end == count,
        "POST /api/sync: the page ends at {end} without hasMore"
    );
    check_catchup(&doc, &page.snapshot, &page.events, 0, end)
        .map_err(|e| format!("POST /api/sync: {e}"))?;
    // The SSE stream too.
    let resp = open_sse(ctx, &format!("/api/stream/{doc}?after=0"), true).await?;
    let mut reader = SseReader::new(resp, ctx.timeout());
    let (sse_snapshot, events, _) = read_sse(&mut reader, &doc, count).await?;
    ensure!(sse_snapshot.is_some(), "SSE after 0: no snapshot event");
    check_catchup(&doc, &sse_snapshot, &events, 0, count)
        .map_err(|e| format!("SSE after 0: {e}"))?;
    // The exactly-once mapping survives compaction (8.3 step 2).
    let (mut conn, _) = ctx.session(&doc, &ctx.client("writer")).await?;
    let again = conn.submit(counter_edits(1, 0, 1..=1)).await?;
    ensure!(
        again.acks.len() == 1 && again.acks[0].duplicate && again.acks[0].sequence_num == 1,
        "a resend of the compacted edit 1: ack {:?}, reject {:?}",
        again.acks,
        again.reject
    );
    Ok(Outcome::Pass)
}
