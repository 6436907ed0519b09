//! The checks, each written from the section of `docs/PROTOCOL.md` it names.

use eventsync::protocol::{ClientMessage, Event, EventsPage, ServerMessage, Snapshot};
use eventsync::VectorClock;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{
    counter_edits, describe, edit, expect_http_error, short, vector_of, Ctx, Frame, SseEvent,
    SseReader,
};
use crate::{CheckFuture, Outcome};

/// One check of the list.
pub struct Check {
    /// Its number (stable: new checks get new numbers).
    pub number: u32,
    /// A short name.
    pub name: &'static str,
    /// The section of `docs/PROTOCOL.md` it tests.
    pub section: &'static str,
    /// The check itself.
    pub run: for<'a> fn(&'a Ctx) -> CheckFuture<'a>,
}

type R = Result<Outcome, String>;

macro_rules! check {
    ($number:expr, $name:expr, $section:expr, $f:ident) => {
        Check {
            number: $number,
            name: $name,
            section: $section,
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}

use edges::{
    big_counters, close_codes, document_numbers, history_from_the_start, invalid_utf8, live_stream,
    patch_bodies,
};
use history::{requests_over_v2, version_over_http};
use presence::{
    join, leave, never_in_the_log, per_document, read_only, silence_times_out, state_too_large,
    updates_in_order,
};
use rules::refused_by_rules;
use v2::{documents_side_by_side, handshake_v2, live_per_document, refusals_per_document};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

mod edges;
mod history;
mod presence;
mod rules;
mod v2;

/// Every check, in order.
pub fn checks() -> Vec<Check> {
    vec![
        check!(1, "health endpoint", "§12.3", health),
        check!(2, "handshake", "§5.1", handshake),
        check!(3, "version negotiation", "§5.1, §5.2, §14", versions),
        check!(4, "frames before hello", "§5.2 rule 1", before_hello),
        check!(5, "second hello", "§5.2 rule 5", second_hello),
        check!(6, "invalid or reserved clientId", "§1, §5.2", bad_client_id),
        check!(7, "invalid documentId", "§1, §4.1, §12.4", bad_document_id),
        check!(
            8,
            "pipelined hello, sync, ping",
            "§4.2, §5.2 rule 6",
            pipelining
        ),
        check!(9, "ping and pong", "§9", ping_pong),
        check!(
            10,
            "catch-up, empty vector (WebSocket)",
            "§6.1, §6.2",
            catchup_empty
        ),
        check!(
            11,
            "catch-up, partial vector and after (WebSocket)",
            "§2, §6.1, §6.2",
            catchup_partial
        ),
        check!(
            12,
            "catch-up, current state (WebSocket)",
            "§6.2",
            catchup_current
        ),
        check!(13, "sync ahead of the log", "§6.2", sync_ahead),
        check!(14, "catch-up over POST /api/sync", "§12.1", http_sync),
        check!(15, "GET /api/events paging", "§12.2", events_paging),
        check!(16, "GET /api/documents", "§12.4, §3.5", read_document),
        check!(
            17,
            "gapless sequenceNum and event fields",
            "§2, §3.1, §15.2",
            gapless
        ),
        check!(
            18,
            "submit, events before ack",
            "§8.1, §8.2, §8.3",
            submit_ack
        ),
        check!(
            19,
            "live fan-out to two connections",
            "§7.1, §8.3 step 7, §8.4",
            fan_out
        ),
        check!(20, "idempotent resend", "§8.3 step 2, §15.3", resend),
        check!(21, "stale edit", "§8.3 step 3, §8.2", stale),
        check!(22, "invalid_sequence rejects", "§8.3", invalid_sequence),
        check!(23, "document_state", "§8.3 step 5, §12.5", document_state),
        check!(24, "invalid_patch", "§8.3 step 5, §12.5", invalid_patch),
        check!(25, "malformed frames", "§4.2, Appendix B", malformed),
        check!(26, "too_large", "§4.2, §11", too_large),
        check!(27, "unknown fields ignored", "§1, §14", unknown_fields),
        check!(28, "server-sent events", "§13", sse),
        check!(
            29,
            "snapshots behind the retained history",
            "§6.3, §12.2, §13",
            snapshots
        ),
        check!(30, "auth: no token", "§5.2, §5.3, §12", auth_none),
        check!(31, "auth: forged token", "§5.2, §5.3, §12", auth_forged),
        check!(
            32,
            "auth: token for another clientId",
            "§5.3, §12.1",
            auth_mismatch
        ),
        check!(33, "auth: token in the URL", "§5.3, §12, §13", auth_url),
        check!(34, "still serving after bad input", "§4.2", still_serving),
        check!(35, "HTTP writes", "§12.5, §8.4", http_writes),
        check!(
            36,
            "close codes of refused hellos",
            "§4.3, §5.2",
            close_codes
        ),
        check!(
            37,
            "a text message that is not UTF-8",
            "§4.2, §4.3",
            invalid_utf8
        ),
        check!(
            38,
            "live events continue the delivered position",
            "§7.1, §6.2",
            live_stream
        ),
        check!(
            39,
            "event 1 stays readable until history is gone",
            "§12.2, §6.3",
            history_from_the_start
        ),
        check!(40, "HTTP PATCH body codes", "§12.5, §10.2", patch_bodies),
        check!(41, "counters above 2^53 - 1", "§1, §10.2", big_counters),
        check!(
            42,
            "numbers in documents",
            "§1, §8.3, §12.5",
            document_numbers
        ),
        check!(
            43,
            "version 2 handshake at /sync",
            "§18.1, §5.1",
            handshake_v2
        ),
        check!(
            44,
            "version 2: documents side by side",
            "§18.2, §18.3, §6",
            documents_side_by_side
        ),
        check!(
            45,
            "version 2: live events per open document",
            "§18.3, §7.1",
            live_per_document
        ),
        check!(
            46,
            "version 2: refusals per document",
            "§18.1, §18.2",
            refusals_per_document
        ),
        check!(47, "presence: joining a document", "§18.7", join),
        check!(
            48,
            "presence: updates in order, null clears",
            "§18.7",
            updates_in_order
        ),
        check!(
            49,
            "presence: leave on close and disconnect",
            "§18.7",
            leave
        ),
        check!(50, "presence: per document", "§18.7, §18.1", per_document),
        check!(
            51,
            "presence: never in the log",
            "§18.7, §6, §12",
            never_in_the_log
        ),
        check!(
            52,
            "presence: too_large keeps the previous state",
            "§18.7, §11",
            state_too_large
        ),
        check!(
            53,
            "presence: a read-only token may publish",
            "§18.7, §18.4",
            read_only
        ),
        check!(
            54,
            "presence: a silent connection times out",
            "§18.7, §9",
            silence_times_out
        ),
        check!(
            55,
            "history: the document as of a position (HTTP)",
            "§12.4, §3.9",
            version_over_http
        ),
        check!(
            56,
            "history: history and version requests",
            "§18.8, §3.9",
            requests_over_v2
        ),
        check!(
            57,
            "rules: an edit the server's rules refuse changes nothing",
            "§11.1, §8.3, §10.2",
            refused_by_rules
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Checks that `events` continue the log gaplessly from `from` + 1 to `head`, on `doc`, with the
/// event rules of 2 and 3.1.
fn check_run(doc: &str, events: &[Event], from: u64, head: u64) -> Result<(), String> {
    let mut expect = from + 1;
    for e in events {
        ensure!(
            e.sequence_num == expect,
            "sequenceNum {} where {expect} was due (gapless and in order, §2)",
            e.sequence_num
        );
        check_event(doc, e)?;
        expect += 1;
    }
    ensure!(
        expect == head + 1,
        "the events end at {} but headSeq is {head}",
        expect - 1
    );
    Ok(())
}

/// The rules every event obeys (2, 3.1).
fn check_event(doc: &str, e: &Event) -> Result<(), String> {
    let n = e.sequence_num;
    ensure!(!e.id.is_empty(), "event #{n} has an empty id");
    ensure!(
        e.document_id == doc,
        "event #{n} has documentId {:?}, expected {doc:?}",
        e.document_id
    );
    ensure!(
        !e.timestamp.is_empty(),
        "event #{n} has no timestamp (§3.1)"
    );
    ensure!(
        e.vector_clock.get(&e.client_id) == n,
        "event #{n}: vectorClock[{:?}] is {}, expected {n} (§2)",
        e.client_id,
        e.vector_clock.get(&e.client_id)
    );
    let max = e.vector_clock.max_seq();
    ensure!(
        max == n,
        "event #{n}: the vectorClock's largest value is {max} (§2)"
    );
    Ok(())
}

/// The document at each `sequenceNum` of a counter document is `{"n": k}`.
fn check_counter_snapshot(doc: &str, s: &Snapshot, head: u64) -> Result<(), String> {
    ensure!(
        s.document_id == doc,
        "snapshot documentId {:?}",
        s.document_id
    );
    ensure!(
        s.sequence_num <= head,
        "snapshot sequenceNum {} above headSeq {head}",
        s.sequence_num
    );
    let want = if s.sequence_num == 0 {
        Value::Null
    } else {
        json!({ "n": s.sequence_num })
    };
    let got = s.document.clone().unwrap_or(Value::Null);
    ensure!(
        got == want,
        "snapshot at #{} holds {}, expected {want}",
        s.sequence_num,
        short(&got.to_string())
    );
    let max = s.vector_clock.max_seq();
    ensure!(
        max == s.sequence_num,
        "snapshot at #{}: its vectorClock's largest value is {max} (§3.5)",
        s.sequence_num
    );
    Ok(())
}

/// Checks a catch-up answer for a client at `after` (a snapshot allowed, 6.3).
fn check_catchup(
    doc: &str,
    snapshot: &Option<Snapshot>,
    events: &[Event],
    after: u64,
    head: u64,
) -> Result<(), String> {
    let from = match snapshot {
        Some(s) if s.sequence_num > after => {
            check_counter_snapshot(doc, s, head)?;
            s.sequence_num
        }
        _ => after,
    };
    check_run(doc, events, from, head)
}

/// A connection with `count` counter events written on a fresh document.
async fn seeded(ctx: &Ctx, tag: &str, count: u64) -> Result<(String, Vec<Event>), String> {
    let doc = ctx.doc(tag);
    let (mut conn, head) = ctx.session(&doc, &ctx.client("writer")).await?;
    ensure!(
        head == 0,
        "welcome.headSeq {head} for a new document (§2: 0)"
    );
    let events = conn.write_counter(0, count).await?;
    check_run(&doc, &events, 0, count)
        .map_err(|e| format!("the events of the test data, live: {e}"))?;
    Ok((doc, events))
}

fn skip(reason: &str) -> R {
    Ok(Outcome::Skipped(reason.into()))
}

fn no_token(ctx: &Ctx) -> bool {
    ctx.opts.token.is_none()
}

const NO_TOKEN: &str = "no --token given (run with a write token for every document)";

// ---------------------------------------------------------------------------------------------
// Checks

async fn health(ctx: &Ctx) -> R {
    let (status, body) = ctx
        .request(reqwest::Method::GET, "/health", None, false)
        .await?;
    ensure!(status == 200, "GET /health: status {status}");
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("GET /health: {e}"))?;
    ensure!(v["status"] == "ok", "GET /health answered {}", short(&body));
    Ok(Outcome::Pass)
}

async fn handshake(ctx: &Ctx) -> R {
    let doc = ctx.doc("handshake");
    let client = ctx.client("alice");
    let (_conn, head) = ctx.session(&doc, &client).await?;
    ensure!(
        head == 0,
        "welcome.headSeq {head} for a new document (§2: 0)"
    );
    Ok(Outcome::Pass)
}

async fn versions(ctx: &Ctx) -> R {
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

async fn before_hello(ctx: &Ctx) -> R {
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

async fn second_hello(ctx: &Ctx) -> R {
    let doc = ctx.doc("hello2");
    let client = ctx.client("alice");
    let (mut conn, _) = ctx.session(&doc, &client).await?;
    conn.send(&ctx.hello(&client)).await?;
    conn.expect_error("unexpected_message", "a second hello")
        .await?;
    conn.ping_next("after the second hello's error").await?;
    Ok(Outcome::Pass)
}

async fn bad_client_id(ctx: &Ctx) -> R {
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

async fn bad_document_id(ctx: &Ctx) -> R {
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

async fn pipelining(ctx: &Ctx) -> R {
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

async fn ping_pong(ctx: &Ctx) -> R {
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

async fn sync_on(
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

async fn catchup_empty(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "empty", 3).await?;
    let a = sync_on(ctx, &doc, VectorClock::new(), None).await?;
    ensure!(a.head == 3, "headSeq {} after 3 events", a.head);
    check_catchup(&doc, &a.snapshot, &a.events, 0, 3)?;
    let a = sync_on(ctx, &doc, VectorClock::new(), Some(0)).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 0, 3).map_err(|e| format!("after 0: {e}"))?;
    Ok(Outcome::Pass)
}

async fn catchup_partial(ctx: &Ctx) -> R {
    let (doc, events) = seeded(ctx, "partial", 4).await?;
    // A client that applied #1 and #2 holds #2's vector.
    let a = sync_on(ctx, &doc, vector_of(&events[..2]), None).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 2, 4).map_err(|e| format!("vector of #2: {e}"))?;
    let a = sync_on(ctx, &doc, vector_of(&events[..1]), Some(3)).await?;
    check_catchup(&doc, &a.snapshot, &a.events, 3, 4)
        .map_err(|e| format!("after 3 (vector ignored): {e}"))?;
    Ok(Outcome::Pass)
}

async fn catchup_current(ctx: &Ctx) -> R {
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

async fn sync_ahead(ctx: &Ctx) -> R {
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

async fn http_sync(ctx: &Ctx) -> R {
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

async fn events_paging(ctx: &Ctx) -> R {
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

async fn read_document(ctx: &Ctx) -> R {
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

async fn gapless(ctx: &Ctx) -> R {
    let doc = ctx.doc("gapless");
    let client = ctx.client("alice");
    let (mut conn, _) = ctx.session(&doc, &client).await?;
    let mut written = conn.write_counter(0, 4).await?;
    for round in 0..2u64 {
        let base = 4 + round * 4;
        let edits = counter_edits(5 + round * 4, base, base + 1..=base + 4);
        let answer = conn.submit(edits).await?;
        if let Some((seq, code, _)) = answer.reject {
            return Err(format!("edit {seq} rejected with {code}"));
        }
        written.extend(answer.events);
    }
    check_run(&doc, &written, 0, 12).map_err(|e| format!("live events: {e}"))?;
    for (i, e) in written.iter().enumerate() {
        ensure!(
            e.client_id == client && e.client_seq == Some(i as u64 + 1),
            "event #{} has clientId {:?} clientSeq {:?}, expected {client:?} {}",
            e.sequence_num,
            e.client_id,
            e.client_seq,
            i + 1
        );
    }
    let log = ctx.read_log(&doc).await?;
    let from = log.snapshot.as_ref().map(|s| s.sequence_num).unwrap_or(0);
    check_run(&doc, &log.events, from, 12).map_err(|e| format!("GET /api/events: {e}"))?;
    let mut ids: Vec<_> = written.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ensure!(ids.len() == 12, "event ids repeat");
    for e in &log.events {
        let live = &written[e.sequence_num as usize - 1];
        ensure!(
            e.id == live.id,
            "event #{}: id {:?} in the log, {:?} live",
            e.sequence_num,
            e.id,
            live.id
        );
    }
    Ok(Outcome::Pass)
}

async fn submit_ack(ctx: &Ctx) -> R {
    let doc = ctx.doc("submit");
    let client = ctx.client("alice");
    let (mut conn, _) = ctx.session(&doc, &client).await?;
    let empty = conn.submit(vec![]).await?;
    ensure!(
        empty.acks.is_empty() && empty.ack_frames == 1,
        "an empty submit: expected one empty ack (§8.1)"
    );
    let answer = conn
        .submit(vec![
            edit(
                1,
                0,
                "create",
                json!([{ "op": "add", "path": "", "value": { "cards": [] } }]),
            ),
            edit(
                3,
                0,
                "update",
                json!([{ "op": "add", "path": "/cards/-", "value": "c1" }]),
            ),
        ])
        .await?;
    ensure!(answer.reject.is_none(), "rejected: {:?}", answer.reject);
    let pairs: Vec<_> = answer
        .acks
        .iter()
        .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
        .collect();
    ensure!(
        pairs == vec![(1, 1, false), (3, 2, false)],
        "ack entries (clientSeq, sequenceNum, duplicate) {pairs:?}, expected [(1, 1, false), (3, 2, false)]"
    );
    let ops: Vec<_> = answer
        .events
        .iter()
        .map(|e| (e.operation, e.client_seq))
        .collect();
    use eventsync::protocol::Operation;
    ensure!(
        ops == vec![(Operation::Create, Some(1)), (Operation::Update, Some(3))],
        "events (operation, clientSeq) {ops:?}"
    );
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{doc}")).await?;
    ensure!(
        s.document == Some(json!({ "cards": ["c1"] })),
        "the document after both edits is {:?}",
        s.document
    );
    // A delete: the event is a delete, the document absent.
    let answer = conn.submit(vec![edit(4, 2, "delete", json!([]))]).await?;
    ensure!(
        answer.reject.is_none(),
        "delete rejected: {:?}",
        answer.reject
    );
    ensure!(
        answer.events.len() == 1 && answer.events[0].operation == Operation::Delete,
        "a delete edit's event is not a delete"
    );
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{doc}")).await?;
    ensure!(
        s.document.is_none(),
        "the document after a delete is {:?}",
        s.document
    );
    Ok(Outcome::Pass)
}

async fn fan_out(ctx: &Ctx) -> R {
    let doc = ctx.doc("fanout");
    let (mut a, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    let (mut b, head_b) = ctx.session(&doc, &ctx.client("bob")).await?;
    ensure!(head_b == 0, "bob's welcome.headSeq {head_b}");
    let written = a.write_counter(0, 2).await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match b
            .next()
            .await
            .map_err(|e| format!("bob waiting for live events: {e}"))?
        {
            ServerMessage::Event { events } => seen.extend(events),
            other => return Err(format!("bob got {}", describe(&other))),
        }
    }
    check_run(&doc, &seen, 0, 2).map_err(|e| format!("bob's live stream: {e}"))?;
    ensure!(
        seen.iter().zip(&written).all(|(x, y)| x.id == y.id),
        "bob's events differ from alice's"
    );
    // An HTTP write reaches both, as a remote event without clientSeq (8.4, 12.5).
    let seq = ctx.put_document(&doc, &json!({ "n": 3 })).await?;
    ensure!(seq == 3, "PUT answered sequenceNum {seq}, expected 3");
    for (who, conn) in [("alice", &mut a), ("bob", &mut b)] {
        match conn
            .next()
            .await
            .map_err(|e| format!("{who} after PUT: {e}"))?
        {
            ServerMessage::Event { events } => {
                let e = events.first().ok_or("an empty event frame")?;
                ensure!(
                    e.sequence_num == 3,
                    "{who}: live event #{} after PUT",
                    e.sequence_num
                );
                ensure!(
                    e.client_seq.is_none(),
                    "{who}: the PUT's event has a clientSeq"
                );
                let origin = ctx.opts.token.as_ref().map(|_| ctx.opts.client_id.as_str());
                let want = origin.unwrap_or("server");
                ensure!(
                    e.client_id == want,
                    "{who}: the PUT's event has clientId {:?}, expected {want:?} (§12.5)",
                    e.client_id
                );
                check_event(&doc, e)?;
            }
            other => return Err(format!("{who} after PUT: {}", describe(&other))),
        }
    }
    Ok(Outcome::Pass)
}

async fn resend(ctx: &Ctx) -> R {
    let doc = ctx.doc("resend");
    let client = ctx.client("alice");
    let (mut conn, _) = ctx.session(&doc, &client).await?;
    let edits = counter_edits(1, 0, 1..=2);
    conn.submit(edits.clone()).await?;
    for round in ["on the same connection", "on a new connection"] {
        if round == "on a new connection" {
            conn = ctx.session(&doc, &client).await?.0;
        }
        let again = conn.submit(edits.clone()).await?;
        ensure!(
            again.reject.is_none(),
            "resend {round}: rejected {:?}",
            again.reject
        );
        ensure!(
            again.events.is_empty(),
            "resend {round}: new events were broadcast"
        );
        let pairs: Vec<_> = again
            .acks
            .iter()
            .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
            .collect();
        ensure!(
            pairs == vec![(1, 1, true), (2, 2, true)],
            "resend {round}: ack {pairs:?}, expected [(1, 1, true), (2, 2, true)]"
        );
    }
    // Duplicates first, then a fresh edit: exactly once, the fresh one ordered (16.2).
    let mut mixed = edits.clone();
    mixed.push(edit(
        3,
        0,
        "update",
        json!([{ "op": "replace", "path": "/n", "value": 3 }]),
    ));
    let answer = conn.submit(mixed).await?;
    let pairs: Vec<_> = answer
        .acks
        .iter()
        .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
        .collect();
    ensure!(
        answer.reject.is_none() && pairs == vec![(1, 1, true), (2, 2, true), (3, 3, false)],
        "resend of 1, 2 with a new edit 3 (baseSeq 0): ack {pairs:?}, reject {:?}",
        answer.reject
    );
    let log = ctx.read_log(&doc).await?;
    ensure!(log.head == 3, "headSeq {} after 3 distinct edits", log.head);
    Ok(Outcome::Pass)
}

async fn stale(ctx: &Ctx) -> R {
    let doc = ctx.doc("stale");
    let (mut a, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    a.write_counter(0, 1).await?;
    let (mut b, _) = ctx.session(&doc, &ctx.client("bob")).await?;
    // #2 comes from elsewhere; bob's edit, made against #1, has not seen it.
    let seq = ctx.put_document(&doc, &json!({ "n": 2, "x": 0 })).await?;
    ensure!(seq == 2, "PUT answered sequenceNum {seq}");
    let bob_seq = 10;
    let edit = edit(
        bob_seq,
        1,
        "update",
        json!([{ "op": "add", "path": "/y", "value": 1 }]),
    );
    let answer = b.submit(vec![edit]).await?;
    match answer.reject {
        Some((seq, code, head)) => {
            ensure!(
                code == "stale_base" || code == "conflict",
                "a stale edit rejected with {code}, expected stale_base (or conflict from a transforming server)"
            );
            ensure!(seq == bob_seq, "reject of clientSeq {seq}");
            ensure!(head == 2, "reject.headSeq {head}, expected 2");
            ensure!(
                answer.events.iter().any(|e| e.sequence_num == 2),
                "the reject (headSeq 2) came before live event #2 (8.2: every live event up to headSeq first)"
            );
            ensure!(
                answer.events.iter().all(|e| e.sequence_num <= 2),
                "an event was ordered for a rejected edit"
            );
            let log = ctx.read_log(&doc).await?;
            ensure!(log.head == 2, "headSeq {} after a rejected edit", log.head);
        }
        None => {
            // A transforming server ordered it (8.3 step 3): the event is #3, bob's.
            let ack = answer.acks.first().ok_or("no ack")?;
            ensure!(ack.sequence_num == 3 && !ack.duplicate, "ack {ack:?}");
            let e = answer
                .events
                .iter()
                .find(|e| e.sequence_num == 3)
                .ok_or("no event #3")?;
            ensure!(
                e.client_seq == Some(bob_seq),
                "event #3 has clientSeq {:?}",
                e.client_seq
            );
        }
    }
    Ok(Outcome::Pass)
}

async fn invalid_sequence(ctx: &Ctx) -> R {
    let doc = ctx.doc("invseq");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    conn.write_counter(0, 2).await?;
    let upd = |seq, base, n| {
        edit(
            seq,
            base,
            "update",
            json!([{ "op": "replace", "path": "/n", "value": n }]),
        )
    };
    let cases: Vec<(&str, Vec<_>, u64, u64)> = vec![
        ("baseSeq above headSeq", vec![upd(3, 3, 9)], 3, 2),
        ("mixed baseSeqs", vec![upd(3, 2, 9), upd(4, 1, 9)], 3, 2),
        ("clientSeq 0", vec![upd(0, 2, 9)], 0, 2),
        (
            "a resend of a never-ordered clientSeq",
            vec![upd(5, 2, 3)],
            0,
            0,
        ),
    ];
    for (what, edits, want_seq, want_head) in cases {
        if what.starts_with("a resend") {
            // Order 6 and 7 (H = 7), then 5: below H and never ordered.
            let answer = conn.submit(vec![upd(6, 2, 3), upd(7, 2, 4)]).await?;
            ensure!(
                answer.reject.is_none(),
                "edits 6, 7 rejected: {:?}",
                answer.reject
            );
            let answer = conn.submit(vec![upd(5, 4, 5)]).await?;
            match answer.reject {
                Some((5, code, 4)) if code == "invalid_sequence" => continue,
                other => {
                    return Err(format!(
                        "{what}: reject {other:?}, expected (5, invalid_sequence, headSeq 4)"
                    ))
                }
            }
        }
        let _ = edits.len();
        let answer = conn.submit(edits).await?;
        ensure!(answer.acks.is_empty(), "{what}: edits were acknowledged");
        match answer.reject {
            Some((seq, code, head)) if code == "invalid_sequence" && seq == want_seq && head == want_head => {}
            other => return Err(format!(
                "{what}: reject {other:?}, expected ({want_seq}, invalid_sequence, headSeq {want_head})"
            )),
        }
    }
    // Not increasing: the first is ordered, the second refused.
    let answer = conn.submit(vec![upd(9, 4, 10), upd(8, 4, 11)]).await?;
    let acked: Vec<_> = answer
        .acks
        .iter()
        .map(|a| (a.client_seq, a.sequence_num))
        .collect();
    ensure!(
        acked == vec![(9, 5)] && answer.reject == Some((8, "invalid_sequence".into(), 5)),
        "edits 9, 8: ack {acked:?}, reject {:?}; expected ack [(9, 5)] and reject (8, invalid_sequence, 5)",
        answer.reject
    );
    Ok(Outcome::Pass)
}

async fn document_state(ctx: &Ctx) -> R {
    let doc = ctx.doc("docstate");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    for (what, e) in [
        (
            "an update of an absent document",
            edit(
                1,
                0,
                "update",
                json!([{ "op": "add", "path": "/a", "value": 1 }]),
            ),
        ),
        (
            "a delete of an absent document",
            edit(2, 0, "delete", json!([])),
        ),
    ] {
        let answer = conn.submit(vec![e]).await?;
        ensure!(
            answer.reject.as_ref().map(|r| r.1.as_str()) == Some("document_state"),
            "{what}: reject {:?}, expected document_state",
            answer.reject
        );
    }
    let path = format!("/api/documents/{doc}");
    let patch = ctx
        .request(
            reqwest::Method::PATCH,
            &path,
            Some(&json!([{ "op": "add", "path": "/a", "value": 1 }])),
            true,
        )
        .await?;
    expect_http_error("PATCH of an absent document", patch, 409, "document_state")?;
    let delete = ctx
        .request(reqwest::Method::DELETE, &path, None, true)
        .await?;
    expect_http_error(
        "DELETE of an absent document",
        delete,
        409,
        "document_state",
    )?;
    conn.submit(counter_edits(3, 0, 1..=1)).await?;
    let create = edit(
        4,
        1,
        "create",
        json!([{ "op": "add", "path": "", "value": {} }]),
    );
    let answer = conn.submit(vec![create]).await?;
    ensure!(
        answer.reject.as_ref().map(|r| r.1.as_str()) == Some("document_state"),
        "a create of a present document: reject {:?}, expected document_state",
        answer.reject
    );
    Ok(Outcome::Pass)
}

async fn invalid_patch(ctx: &Ctx) -> R {
    let doc = ctx.doc("badpatch");
    let (mut conn, _) = ctx.session(&doc, &ctx.client("alice")).await?;
    conn.write_counter(0, 1).await?;
    for (i, (what, e)) in [
        ("a failing test", edit(2, 1, "update", json!([{ "op": "test", "path": "/n", "value": 99 }]))),
        ("a missing path", edit(3, 1, "update", json!([{ "op": "replace", "path": "/nope/x", "value": 1 }]))),
        ("a result of null", edit(4, 1, "update", json!([{ "op": "replace", "path": "", "value": null }]))),
        ("a delete with a patch", edit(5, 1, "delete", json!([{ "op": "remove", "path": "/n" }]))),
        ("half of a patch that fails", edit(6, 1, "update", json!([{ "op": "replace", "path": "/n", "value": 7 }, { "op": "remove", "path": "/zz" }]))),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = conn.submit(vec![e]).await?;
        ensure!(
            answer.reject == Some((i as u64 + 2, "invalid_patch".into(), 1)),
            "{what}: reject {:?}, expected invalid_patch with headSeq 1",
            answer.reject
        );
    }
    let s: Snapshot = ctx.get_ok(&format!("/api/documents/{doc}")).await?;
    ensure!(
        s.sequence_num == 1 && s.document == Some(json!({ "n": 1 })),
        "after refused edits the document is {:?} at #{} (atomicity, §15.5)",
        s.document,
        s.sequence_num
    );
    let path = format!("/api/documents/{doc}");
    let put = ctx
        .request(reqwest::Method::PUT, &path, Some(&Value::Null), true)
        .await?;
    expect_http_error("PUT null", put, 422, "invalid_patch")?;
    let patch = ctx
        .request(
            reqwest::Method::PATCH,
            &path,
            Some(&json!([{ "op": "test", "path": "/n", "value": 5 }])),
            true,
        )
        .await?;
    expect_http_error("PATCH with a failing test", patch, 422, "invalid_patch")?;
    Ok(Outcome::Pass)
}

/// The frames of Appendix B that must be refused with `malformed_frame`.
const MALFORMED: &[&str] = &[
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

async fn malformed(ctx: &Ctx) -> R {
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

async fn too_large(ctx: &Ctx) -> R {
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

async fn unknown_fields(ctx: &Ctx) -> R {
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

async fn open_sse(ctx: &Ctx, path: &str, authed: bool) -> Result<reqwest::Response, String> {
    let mut req = ctx.http.get(ctx.http_url(path)).timeout(ctx.timeout() * 3);
    if authed {
        if let Some(token) = &ctx.opts.token {
            req = req.bearer_auth(token);
        }
    }
    req.send().await.map_err(|e| format!("GET {path}: {e}"))
}

/// Reads an SSE stream's `connected`, then events until `until`; returns the snapshot and events.
async fn read_sse(
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

async fn sse(ctx: &Ctx) -> R {
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

async fn snapshots(ctx: &Ctx) -> R {
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

async fn auth_none(ctx: &Ctx) -> R {
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

async fn auth_forged(ctx: &Ctx) -> R {
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

async fn auth_mismatch(ctx: &Ctx) -> R {
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

async fn auth_url(ctx: &Ctx) -> R {
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

fn percent(text: &str) -> String {
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

async fn still_serving(ctx: &Ctx) -> R {
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

async fn http_writes(ctx: &Ctx) -> R {
    use eventsync::protocol::Operation;
    let doc = ctx.doc("httpwrite");
    let path = format!("/api/documents/{doc}");
    ensure!(
        ctx.put_document(&doc, &json!({ "n": 1 })).await? == 1,
        "PUT of a new document is not #1"
    );
    let mut req = ctx
        .http
        .patch(ctx.http_url(&path))
        .header("content-type", "application/json-patch+json")
        .body(json!([{ "op": "test", "path": "/n", "value": 1 }, { "op": "replace", "path": "/n", "value": 2 }]).to_string());
    if let Some(token) = &ctx.opts.token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| format!("PATCH {path}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let answer: Value = crate::client::parse_ok(&format!("PATCH {path}"), status, &body)?;
    ensure!(
        answer["sequenceNum"] == 2,
        "PATCH answered {}",
        short(&body)
    );
    let (status, body) = ctx
        .request(reqwest::Method::DELETE, &path, None, true)
        .await?;
    let answer: Value = crate::client::parse_ok(&format!("DELETE {path}"), status, &body)?;
    ensure!(
        answer["sequenceNum"] == 3,
        "DELETE answered {}",
        short(&body)
    );
    let s: Snapshot = ctx.get_ok(&path).await?;
    ensure!(
        s.sequence_num == 3 && s.document.is_none(),
        "after DELETE: #{} {:?}",
        s.sequence_num,
        s.document
    );
    ensure!(
        ctx.put_document(&doc, &json!({ "n": 4 })).await? == 4,
        "PUT after a delete is not #4"
    );
    let log = ctx.read_log(&doc).await?;
    let from = log.snapshot.as_ref().map(|s| s.sequence_num).unwrap_or(0);
    check_run(&doc, &log.events, from, 4)?;
    let ops: Vec<_> = log
        .events
        .iter()
        .map(|e| (e.sequence_num, e.operation))
        .collect();
    let want = [
        (1, Operation::Create),
        (2, Operation::Update),
        (3, Operation::Delete),
        (4, Operation::Create),
    ];
    ensure!(
        ops.iter().all(|op| want.contains(op)),
        "operations {ops:?}, expected create, update, delete, create"
    );
    ensure!(
        log.events.iter().all(|e| e.client_seq.is_none()),
        "an HTTP write's event has a clientSeq (12.5)"
    );
    for e in log
        .events
        .iter()
        .filter(|e| e.operation != Operation::Delete)
    {
        let patch = e.diff.as_ref().map(|d| d.patch.is_some());
        ensure!(
            patch == Some(true),
            "event #{} has no diff.patch (3.2 rule 3)",
            e.sequence_num
        );
    }
    Ok(Outcome::Pass)
}
