//! Checks of the edges where a stranger's server (and once the reference server) got the text of
//! `docs/PROTOCOL.md` wrong: close codes, UTF-8, the live stream's delivered position, history
//! read from the start, HTTP patch bodies, and the number rules of section 1.

use std::time::Duration;

use eventsync::protocol::{ClientMessage, EventsPage, ServerMessage, Snapshot};
use eventsync::VectorClock;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::Message;

use super::{check_run, no_token, seeded, skip, R};
use crate::client::{counter_edits, describe, edit, expect_http_error, short, Ctx, Frame};
use crate::Outcome;

/// 4.3: the close that follows a refused `hello` carries the code of its error.
pub(super) async fn close_codes(ctx: &Ctx) -> R {
    let doc = ctx.doc("close");
    let client = ctx.client("alice");
    let refusals: [(ClientMessage, &str, u16); 3] = [
        (
            ClientMessage::Hello {
                protocol_versions: vec![1_000_000],
                client_id: client.clone(),
                token: ctx.opts.token.clone(),
            },
            "unsupported_version",
            1002,
        ),
        (ctx.hello("not valid!"), "malformed_frame", 1002),
        (
            ctx.hello("server"),
            if no_token(ctx) {
                "forbidden"
            } else {
                "client_mismatch"
            },
            1008,
        ),
    ];
    for (hello, code, close) in refusals {
        let what = format!("a hello refused with {code}");
        let mut conn = ctx.open(&doc).await?;
        conn.send(&hello).await?;
        conn.expect_error(code, &what).await?;
        conn.expect_close_code(close, &what).await?;
    }
    // A documentId refused in a frame (4.1 prefers it to HTTP 404).
    if let Ok(mut conn) = ctx.open("a!b").await {
        conn.send(&ctx.hello(&client)).await?;
        conn.expect_error("unknown_document", "hello for documentId \"a!b\"")
            .await?;
        conn.expect_close_code(1002, "hello for documentId \"a!b\"")
            .await?;
    }
    Ok(Outcome::Pass)
}

/// 4.2: a text message that is not UTF-8 fails the WebSocket connection with 1007.
pub(super) async fn invalid_utf8(ctx: &Ctx) -> R {
    let doc = ctx.doc("utf8");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    let bytes: &[u8] = b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}";
    conn.send_raw(Message::Frame(WsFrame::message(
        bytes.to_vec(),
        OpCode::Data(Data::Text),
        true,
    )))
    .await?;
    let what = "a text message that is not UTF-8";
    match conn.recv().await.map_err(|e| format!("{what}: {e}"))? {
        Frame::Msg(ServerMessage::Error { .. }) => conn.expect_close_code(1007, what).await,
        Frame::Closed(Some(1007)) => Ok(()),
        Frame::Closed(code) => Err(format!(
            "{what}: closed with {code:?}, expected close code 1007 (RFC 6455 8.1)"
        )),
        Frame::Msg(other) => Err(format!(
            "{what}: {}, expected error malformed_frame and a close with 1007",
            describe(&other)
        )),
    }?;
    Ok(Outcome::Pass)
}

/// What one subscriber saw: every sequenceNum, and the first violation of 7.1.
async fn subscribe_while_written(ctx: &Ctx, doc: &str, name: String, last: u64) -> R {
    let mut conn = ctx.open(doc).await?;
    // hello and sync back to back, as the reference client does.
    conn.send(&ctx.hello(&name)).await?;
    conn.send(&ClientMessage::Sync {
        vector_clock: VectorClock::new(),
        after: None,
    })
    .await?;
    let mut delivered = conn.welcome(doc, &name).await?;
    let mut seen = vec![false; last as usize + 1];
    let mut answered = false;
    while !answered || delivered < last {
        match conn.next().await? {
            ServerMessage::Events {
                events,
                head_seq,
                has_more,
            } => {
                for e in &events {
                    seen[e.sequence_num as usize] = true;
                    delivered = delivered.max(e.sequence_num);
                }
                if !has_more {
                    answered = true;
                    delivered = delivered.max(head_seq.unwrap_or(0));
                }
            }
            ServerMessage::Snapshot { snapshot } => {
                for s in seen.iter_mut().take(snapshot.sequence_num as usize + 1) {
                    *s = true;
                }
                delivered = delivered.max(snapshot.sequence_num);
            }
            ServerMessage::Event { events } => {
                let first = events.first().map_or(0, |e| e.sequence_num);
                ensure!(
                    first == delivered + 1,
                    "{name}: a live event frame starting at #{first} after #{delivered} was delivered \
                     (7.1: live events continue the delivered position, without gaps or repeats)"
                );
                for e in &events {
                    seen[e.sequence_num as usize] = true;
                }
                delivered = events.last().map_or(delivered, |e| e.sequence_num);
            }
            other => return Err(format!("{name}: {}", describe(&other))),
        }
    }
    let missing: Vec<usize> = (1..seen.len()).filter(|&s| !seen[s]).collect();
    ensure!(missing.is_empty(), "{name}: never delivered {missing:?}");
    Ok(Outcome::Pass)
}

/// 7.1: with `hello` and `sync` sent back to back while another client writes, every event
/// arrives, and live `event` frames never skip or repeat what the connection was delivered.
pub(super) async fn live_stream(ctx: &Ctx) -> R {
    const WRITES: u64 = 40;
    const SUBSCRIBERS: usize = 12;
    let (doc, _) = seeded(ctx, "delivered", 1).await?;
    let writer = async {
        let (mut conn, head) = ctx.session(&doc, &ctx.client("writer")).await?;
        let mut base = head;
        for n in 0..WRITES {
            let answer = conn
                .submit(counter_edits(2 + n, base, std::iter::once(100 + n)))
                .await?;
            if let Some((seq, code, _)) = answer.reject {
                return Err(format!("the writer's edit {seq}: {code}"));
            }
            base = answer.events.last().map_or(base, |e| e.sequence_num);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        Ok(Outcome::Pass)
    };
    let subscribers = (0..SUBSCRIBERS).map(|i| {
        let doc = doc.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            subscribe_while_written(ctx, &doc, ctx.client(&format!("reader{i}")), 1 + WRITES).await
        }
    });
    let (written, read) = futures::join!(writer, futures::future::join_all(subscribers));
    written?;
    for result in read {
        result?;
    }
    Ok(Outcome::Pass)
}

/// 12.2: a page starts with a snapshot only when `after` is older than the retained history.
/// The reference server takes a snapshot every 1000 events: event 1 of a 1100-event document
/// must still be readable.
pub(super) async fn history_from_the_start(ctx: &Ctx) -> R {
    const COUNT: u64 = 1100;
    let (doc, _) = seeded(ctx, "history", COUNT).await?;
    let page: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=0&limit=1"))
        .await?;
    match (
        &page.snapshot,
        ctx.opts.retains_history,
        ctx.opts.expect_snapshots,
    ) {
        (Some(s), true, _) => {
            return Err(format!(
                "after=0 started with a snapshot at #{} although the server retains every event \
                 (12.2: only when event 1 is gone)",
                s.sequence_num
            ))
        }
        (None, _, true) => {
            return Err("after=0 gave no snapshot although --expect-snapshots was given".into())
        }
        (Some(_), false, _) if !ctx.opts.expect_snapshots => {
            return skip("the server compacts; --retains-history tells the kit it does not")
        }
        (Some(snapshot), _, _) => return history_after_snapshot(ctx, &doc, snapshot, COUNT).await,
        (None, _, _) => {}
    }
    ensure!(
        page.events.first().map(|e| e.sequence_num) == Some(1) && page.has_more,
        "after=0&limit=1: events {:?}, hasMore {}",
        page.events
            .iter()
            .map(|e| e.sequence_num)
            .collect::<Vec<_>>(),
        page.has_more
    );
    let zero: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=0&limit=0"))
        .await?;
    ensure!(
        zero.snapshot.is_none() && zero.has_more,
        "after=0&limit=0 on a retained log: snapshot {:?}, hasMore {}",
        zero.snapshot.map(|s| s.sequence_num),
        zero.has_more
    );
    let log = ctx.read_log(&doc).await?;
    ensure!(
        log.snapshot.is_none(),
        "reading the whole log met a snapshot"
    );
    check_run(&doc, &log.events, 0, COUNT)?;
    Ok(Outcome::Pass)
}

/// With the history compacted: the events after the snapshot are there, without a snapshot.
async fn history_after_snapshot(ctx: &Ctx, doc: &str, snapshot: &Snapshot, count: u64) -> R {
    let recent: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after={}&limit=1", count - 1))
        .await?;
    ensure!(
        recent.snapshot.is_none() && recent.events.first().map(|e| e.sequence_num) == Some(count),
        "after={}: snapshot {:?}, events {:?} (the newest event is retained)",
        count - 1,
        recent.snapshot.map(|s| s.sequence_num),
        recent
            .events
            .iter()
            .map(|e| e.sequence_num)
            .collect::<Vec<_>>()
    );
    ensure!(
        snapshot.sequence_num <= count,
        "a snapshot at #{} of a {count}-event log",
        snapshot.sequence_num
    );
    Ok(Outcome::Pass)
}

/// 12.5: a PATCH body that is not an RFC 6902 patch is 400 `malformed_frame`; a patch that does
/// not apply is 422 `invalid_patch`; neither changes the document.
pub(super) async fn patch_bodies(ctx: &Ctx) -> R {
    let doc = ctx.doc("patchbody");
    let path = format!("/api/documents/{doc}");
    ensure!(
        ctx.put_document(&doc, &json!({"n": 1})).await? == 1,
        "PUT of a new document is not #1"
    );
    let cases: [(Value, u16, &str); 7] = [
        (json!({"op": "add"}), 400, "malformed_frame"),
        (json!([{"op": "add"}]), 400, "malformed_frame"),
        (
            json!([{"op": "increment", "path": "/n"}]),
            400,
            "malformed_frame",
        ),
        (
            json!([{"op": "add", "path": "n", "value": 2}]),
            400,
            "malformed_frame",
        ),
        (json!([{"op": "add", "path": "/n"}]), 400, "malformed_frame"),
        (
            json!([{"op": "test", "path": "/n", "value": 99}]),
            422,
            "invalid_patch",
        ),
        (
            json!([{"op": "remove", "path": "/missing"}]),
            422,
            "invalid_patch",
        ),
    ];
    for (body, status, code) in cases {
        let what = format!("PATCH {path} with {}", short(&body.to_string()));
        let answer = ctx
            .request(reqwest::Method::PATCH, &path, Some(&body), true)
            .await?;
        expect_http_error(&what, answer, status, code)?;
    }
    let s: Snapshot = ctx.get_ok(&path).await?;
    ensure!(
        s.sequence_num == 1 && s.document == Some(json!({"n": 1})),
        "refused PATCHes changed the document: #{} {:?}",
        s.sequence_num,
        s.document
    );
    Ok(Outcome::Pass)
}

/// 1: a counter above 2^53 - 1 makes a frame or an HTTP parameter malformed.
pub(super) async fn big_counters(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "counters", 2).await?;
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    for frame in [
        r#"{"type":"ping","nonce":9007199254740992}"#,
        r#"{"type":"sync","after":9007199254740992}"#,
        r#"{"type":"sync","vectorClock":{"x":9007199254740992}}"#,
        r#"{"type":"submit","edits":[{"clientSeq":9007199254740992,"baseSeq":2,"patch":[]}]}"#,
    ] {
        conn.send_text(frame.into()).await?;
        conn.expect_error("malformed_frame", frame).await?;
    }
    conn.ping_next("after frames with counters above 2^53 - 1")
        .await?;
    for (after, status, code) in [
        ("9007199254740992", 400, "malformed_frame"),
        ("18446744073709551616", 400, "malformed_frame"),
        ("+1", 400, "malformed_frame"),
        ("9007199254740991", 400, "invalid_sequence"),
    ] {
        let path = format!("/api/events/{doc}?after={after}");
        expect_http_error(&format!("GET {path}"), ctx.get(&path).await?, status, code)?;
    }
    Ok(Outcome::Pass)
}

/// 1: integers beyond +/-(2^53 - 1) are refused `too_large` in edits and HTTP writes; a number
/// beyond the double range is malformed.
pub(super) async fn document_numbers(ctx: &Ctx) -> R {
    let doc = ctx.doc("numbers");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    let answer = conn
        .submit(vec![edit(
            1,
            0,
            "create",
            json!([{"op": "add", "path": "", "value": {"id": 9007199254740993u64}}]),
        )])
        .await?;
    match &answer.reject {
        Some((1, code, _)) if code == "too_large" => {}
        other => {
            return Err(format!(
                "a create placing 9007199254740993: {other:?}, expected reject too_large"
            ))
        }
    }
    let answer = conn
        .submit(vec![edit(
            2,
            0,
            "create",
            json!([{"op": "add", "path": "", "value": {"id": 9007199254740991u64, "x": 0.1}}]),
        )])
        .await?;
    ensure!(
        answer.reject.is_none() && answer.acks.len() == 1,
        "a create placing 9007199254740991 and 0.1 was not ordered: {:?}",
        answer.reject
    );
    let path = format!("/api/documents/{doc}");
    let body = json!({"id": -9007199254740993i64});
    let put = ctx
        .request(reqwest::Method::PUT, &path, Some(&body), true)
        .await?;
    expect_http_error(
        &format!("PUT {path} with -9007199254740993"),
        put,
        413,
        "too_large",
    )?;
    let mut req = ctx
        .http
        .put(ctx.http_url(&path))
        .header("content-type", "application/json")
        .body(r#"{"id": 1e400}"#);
    if let Some(token) = &ctx.opts.token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| format!("PUT {path}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    expect_http_error(
        &format!("PUT {path} with 1e400"),
        (status, text),
        400,
        "malformed_frame",
    )?;
    let s: Snapshot = ctx.get_ok(&path).await?;
    ensure!(
        s.sequence_num == 1,
        "refused writes changed the document: #{}",
        s.sequence_num
    );
    Ok(Outcome::Pass)
}
