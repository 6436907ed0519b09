//! Checks of presence (`docs/PROTOCOL.md` 18.7): what a peer of a document shows the others on a
//! version 2 connection, relayed and never stored.
//!
//! Presence is per clientId (a client never sees its own), so these checks need two: without a
//! token, two names; with `--token`, the token's and `--read-token`'s (without it they skip).
//! Their connections are [`peer::Peer`]s, which check every presence frame they read.

use std::time::Duration;

use eventsync::protocol::{ClientMessage, EventsPage, ServerMessage, Snapshot};
use eventsync::VectorClock;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{skip, NO_TOKEN, R};
use crate::client::{code_name, describe, short, Ctx};
use crate::Outcome;

mod peer;

use peer::{nobody, only, pair, show, sized, Peer, NO_PAIR, R0};

macro_rules! two {
    ($ctx:expr) => {
        match pair($ctx) {
            Some(pair) => pair,
            None => return skip(NO_PAIR),
        }
    };
}

/// 18.7: a client opening a document gets the others' presence (`full`), and they get its own.
pub(super) async fn join(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let doc = ctx.doc("pjoin");
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let (_, full) = a.open(&doc).await?;
    nobody(&full, "the first client opening a document")?;
    let sa = json!({ "name": "Alice", "cursor": { "line": 3, "column": 14 } });
    a.publish(&doc, &sa).await?;
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    let (_, full) = b.open(&doc).await?;
    only(full, &a.client, &sa, "a second client opening the document")?;
    let sb = json!({ "name": "Bob", "selection": [1, 5] });
    b.publish(&doc, &sb).await?;
    a.expect(&doc, &b.client, &sb, "after the second client published")
        .await?;
    b.quiet("the publisher, after publishing (never its own presence)")
        .await?;
    a.quiet("after the second client's presence").await?;
    Ok(Outcome::Pass)
}

/// 18.7: updates reach the others in order (a server may skip intermediate ones, never go
/// back), and `null` clears.
pub(super) async fn updates_in_order(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let doc = ctx.doc("porder");
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    a.open(&doc).await?;
    b.open(&doc).await?;
    for n in 1..=5u64 {
        a.send_presence(&doc, &json!({ "n": n })).await?;
    }
    a.quiet("after five updates").await?;
    let mut last = 0;
    let passing = |state: &Value| match state["n"].as_u64() {
        Some(n) if n > last && n < 5 => {
            last = n;
            true
        }
        _ => false,
    };
    let what = "five updates {n: 1} .. {n: 5} sent back to back";
    b.expect_by(
        b.deadline(),
        &doc,
        &a.client,
        &json!({ "n": 5 }),
        passing,
        what,
    )
    .await?;
    a.publish(&doc, &json!({ "n": 6 })).await?;
    b.expect(&doc, &a.client, &json!({ "n": 6 }), "a sixth update")
        .await?;
    a.publish(&doc, &Value::Null).await?;
    b.expect(&doc, &a.client, &Value::Null, "presence cleared with null")
        .await?;
    b.quiet("after the clear").await?;
    // Cleared: a client opening the document now finds nobody.
    let mut c = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    let (_, full) = c.open(&doc).await?;
    nobody(&full, "opening the document after the presence was cleared")?;
    Ok(Outcome::Pass)
}

/// 18.7: a peer leaves at once when it closes the document, closes its connection or drops it.
pub(super) async fn leave(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let doc = ctx.doc("pleave");
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    b.open(&doc).await?;
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let client = a.client.clone();
    a.open(&doc).await?;
    let first = json!({ "here": 1 });
    a.publish(&doc, &first).await?;
    b.expect(&doc, &client, &first, "before close").await?;
    a.close(&doc).await?;
    b.expect(
        &doc,
        &client,
        &Value::Null,
        "the peer sent close for the document",
    )
    .await?;
    // Open again: the leave was not the end of the connection.
    let (_, full) = a.open(&doc).await?;
    nobody(&full, "opening the document again")?;
    let second = json!({ "here": 2 });
    a.publish(&doc, &second).await?;
    b.expect(&doc, &client, &second, "after opening again")
        .await?;
    a.conn.send_raw(Message::Close(None)).await?;
    b.expect(
        &doc,
        &client,
        &Value::Null,
        "the peer closed its connection",
    )
    .await?;
    drop(a);
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    a.open(&doc).await?;
    let third = json!({ "here": 3 });
    a.publish(&doc, &third).await?;
    b.expect(&doc, &client, &third, "a new connection").await?;
    // Dropped without a close frame: the socket just ends.
    drop(a);
    b.expect(&doc, &client, &Value::Null, "the peer's connection dropped")
        .await?;
    b.quiet("after the peer left").await?;
    Ok(Outcome::Pass)
}

/// 18.7, 18.1: presence stays on its document: never sent to a connection without it open,
/// never in another document's `full` frame; and only for a document open on the connection.
pub(super) async fn per_document(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let (d1, d2, d3) = (ctx.doc("pdoc1"), ctx.doc("pdoc2"), ctx.doc("pdoc3"));
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    a.open(&d1).await?;
    a.open(&d2).await?;
    b.open(&d2).await?;
    let s1 = json!({ "on": "d1" });
    let s2 = json!({ "on": "d2" });
    a.publish(&d1, &s1).await?;
    b.quiet("presence on another document").await?;
    a.publish(&d2, &s2).await?;
    b.expect(&d2, &a.client, &s2, "presence on the open document")
        .await?;
    let mut c = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    let (_, full) = c.open(&d3).await?;
    nobody(&full, "opening a document where nobody is")?;
    let (_, full) = c.open(&d1).await?;
    only(full, &a.client, &s1, "opening the first document")?;
    a.close(&d1).await?;
    c.expect(
        &d1,
        &a.client,
        &Value::Null,
        "the peer closed the first document",
    )
    .await?;
    b.quiet("the peer left another document").await?;
    c.quiet("after the peer left").await?;
    // A document not open on the connection: refused, and nothing published.
    let never = ctx.doc("pnever");
    a.send_presence(&never, &json!({ "on": "never" })).await?;
    match a
        .frame(a.deadline(), "presence about a document not open")
        .await?
    {
        (Some(doc), ServerMessage::Error { code, .. })
            if doc == never && code_name(&code) == "unexpected_message" => {}
        (doc, other) => {
            return Err(format!(
                "presence about a document not open: {} about {doc:?}, expected error \
                 unexpected_message about {never} (18.7)",
                describe(&other)
            ))
        }
    }
    let (_, full) = c.open(&never).await?;
    nobody(&full, "opening the document of a refused presence")?;
    Ok(Outcome::Pass)
}

/// Reads a version 2 catch-up of `doc` (a snapshot, then `events` up to `hasMore` false):
/// the `sequenceNum`s it covers and its head.
async fn catch_up(peer: &mut Peer, doc: &str) -> Result<(Vec<u64>, u64), String> {
    let vector_clock = VectorClock::new();
    let sync = ClientMessage::Sync {
        vector_clock,
        after: None,
    };
    peer.conn.send_about(doc, sync).await?;
    let mut seqs = Vec::new();
    let deadline = peer.deadline();
    loop {
        match peer.frame(deadline, "a catch-up").await? {
            (Some(d), ServerMessage::Snapshot { snapshot }) if d == doc => {
                seqs.push(snapshot.sequence_num)
            }
            (
                Some(d),
                ServerMessage::Events {
                    events,
                    head_seq,
                    has_more,
                },
            ) if d == doc => {
                seqs.extend(events.iter().map(|e| e.sequence_num));
                if !has_more {
                    return Ok((seqs, head_seq.unwrap_or(0)));
                }
            }
            (d, other) => {
                return Err(format!(
                    "a catch-up of {doc}: {} about {d:?} (presence is never in a catch-up)",
                    describe(&other)
                ))
            }
        }
    }
}

/// 18.7, 12, 6: presence is never stored: the log, the document, a catch-up and `headSeq` show
/// nothing of it.
pub(super) async fn never_in_the_log(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let doc = ctx.doc("plog");
    let seq = ctx.put_document(&doc, &json!({ "n": 1 })).await?;
    if seq != 1 {
        return Err(format!(
            "PUT of a new document: sequenceNum {seq}, expected 1"
        ));
    }
    let before = ctx.read_log(&doc).await?;
    let path = format!("/api/documents/{doc}");
    let document: Snapshot = ctx.get_ok(&path).await?;
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    let (head, _) = a.open(&doc).await?;
    b.open(&doc).await?;
    let last = json!({ "n": 100, "note": "presence, not an edit" });
    a.publish(&doc, &json!({ "n": 99 })).await?;
    a.publish(&doc, &last).await?;
    let passing = |state: &Value| state["n"] == 99;
    b.expect_by(b.deadline(), &doc, &a.client, &last, passing, "two updates")
        .await?;
    // Its presence still on, the log is what it was.
    let after = ctx.read_log(&doc).await?;
    let ids = |log: &crate::client::Log| -> Vec<(u64, String)> {
        log.events
            .iter()
            .map(|e| (e.sequence_num, e.id.clone()))
            .collect()
    };
    if after.head != before.head || ids(&after) != ids(&before) || head != before.head {
        return Err(format!(
            "GET /api/events after presence: headSeq {} and events {:?}; before: headSeq {} \
             (opened: {head}) and events {:?}",
            after.head,
            ids(&after),
            before.head,
            ids(&before)
        ));
    }
    let now: Snapshot = ctx.get_ok(&path).await?;
    if now.sequence_num != document.sequence_num || now.document != document.document {
        return Err(format!(
            "GET {path} after presence: #{} {}, before: #{} {}",
            now.sequence_num,
            short(&serde_json::to_string(&now.document).unwrap_or_default()),
            document.sequence_num,
            short(&serde_json::to_string(&document.document).unwrap_or_default())
        ));
    }
    let (seqs, head) = catch_up(&mut b, &doc).await?;
    if seqs.last().copied() != Some(before.head) || head != before.head {
        return Err(format!(
            "a catch-up after presence covers {seqs:?} with headSeq {head}, expected up to {}",
            before.head
        ));
    }
    // The heads of a pong.
    b.conn
        .send_text(r#"{"type":"ping","nonce":424242}"#.into())
        .await?;
    match b.frame(b.deadline(), "ping after presence").await? {
        (None, ServerMessage::Pong { heads: Some(h), .. }) if h.get(&doc) == Some(&before.head) => {
        }
        (about, other) => {
            return Err(format!(
                "ping after presence: {} about {about:?}, expected a pong with heads \
                 {{{doc}: {}}} (18.3)",
                describe(&other),
                before.head
            ))
        }
    }
    // A document that only ever had presence has no events at all.
    let fresh = ctx.doc("pfresh");
    a.open(&fresh).await?;
    a.publish(&fresh, &last).await?;
    let page: EventsPage = ctx.get_ok(&format!("/api/events/{fresh}?after=0")).await?;
    let fresh_doc: Snapshot = ctx.get_ok(&format!("/api/documents/{fresh}")).await?;
    if page.head_seq != 0
        || !page.events.is_empty()
        || page.snapshot.is_some()
        || fresh_doc.sequence_num != 0
        || fresh_doc.document.is_some()
    {
        return Err(format!(
            "a document with presence and no edit: GET /api/events headSeq {} with {} events, \
             GET /api/documents #{}",
            page.head_seq,
            page.events.len(),
            fresh_doc.sequence_num
        ));
    }
    Ok(Outcome::Pass)
}

/// 18.7, 11, 1: a state over the server's limit, or holding an integer beyond +/-(2^53 - 1), is
/// refused with `too_large`; the previous state stays (a client opening the document sees it) and
/// the others see nothing of it.
pub(super) async fn state_too_large(ctx: &Ctx) -> R {
    let (wa, wb) = two!(ctx);
    let max = ctx.opts.max_presence_bytes;
    if max < 16 {
        return skip("--max-presence-bytes is below 16");
    }
    let doc = ctx.doc("plarge");
    let mut a = Peer::connect(ctx, &wa, ctx.timeout()).await?;
    let mut b = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    a.open(&doc).await?;
    b.open(&doc).await?;
    // Exactly at the limit: taken.
    let kept = sized(max);
    a.publish(&doc, &kept)
        .await
        .map_err(|e| format!("a state of exactly {max} bytes (the limit): {e}"))?;
    b.expect(&doc, &a.client, &kept, "a state at the limit")
        .await?;
    let refused = [
        (
            sized(max + 1),
            format!("a state of {} bytes (limit {max})", max + 1),
        ),
        (
            json!({ "id": 9_007_199_254_740_993u64 }),
            "a state holding the integer 2^53 + 1".to_owned(),
        ),
    ];
    for (state, what) in &refused {
        a.send_presence(&doc, state).await?;
        refused_too_large(&mut a, &doc, what).await?;
    }
    a.quiet("after the refused states").await?;
    // The previous state stays.
    let mut c = Peer::connect(ctx, &wb, ctx.timeout()).await?;
    let (_, full) = c.open(&doc).await?;
    only(
        full,
        &a.client,
        &kept,
        "opening the document after a refused update",
    )?;
    // The others saw nothing of it: the next thing they get is the next update.
    let next = json!({ "after": "the refusal" });
    a.publish(&doc, &next).await?;
    b.expect(&doc, &a.client, &next, "the update after a refused one")
        .await?;
    c.expect(&doc, &a.client, &next, "the update after a refused one")
        .await?;
    Ok(Outcome::Pass)
}

/// The answer to a refused `presence` is a `presence` about `doc` with code `too_large` and no
/// peers, before the pong of a later ping.
async fn refused_too_large(a: &mut Peer, doc: &str, what: &str) -> R0 {
    a.barrier(what).await?;
    match a.inbox.pop_front() {
        Some((d, update)) if d == doc => match &update.code {
            Some(code) if code_name(code) == "too_large" && update.peers.is_empty() => Ok(()),
            _ => Err(format!(
                "{what}: {}, expected presence with code too_large and no peers (18.7)",
                show(&update)
            )),
        },
        Some((d, update)) => Err(format!("{what}: presence about {d}: {}", show(&update))),
        None => Err(format!(
            "{what}: taken (no presence with code too_large before the pong of a later ping)"
        )),
    }
}

/// 18.7, 18.4: a token that may only read a document may publish presence on it.
pub(super) async fn read_only(ctx: &Ctx) -> R {
    if ctx.opts.token.is_none() {
        return skip(NO_TOKEN);
    }
    if ctx.opts.read_token.is_none() {
        return skip("no --read-token given (a token that may only read every document)");
    }
    let (writer, reader) = two!(ctx);
    let doc = ctx.doc("pread");
    let mut w = Peer::connect(ctx, &writer, ctx.timeout()).await?;
    w.open(&doc).await?;
    let mut r = Peer::connect(ctx, &reader, ctx.timeout()).await?;
    r.open(&doc)
        .await
        .map_err(|e| format!("the read-only token: {e}"))?;
    let state = json!({ "viewing": true, "cursor": 7 });
    r.publish(&doc, &state)
        .await
        .map_err(|e| format!("the read-only token: {e}"))?;
    w.expect(&doc, &r.client, &state, "a read-only client's presence")
        .await?;
    r.publish(&doc, &Value::Null).await?;
    w.expect(&doc, &r.client, &Value::Null, "a read-only client's clear")
        .await?;
    Ok(Outcome::Pass)
}

/// 18.7, 9: a connection silent for the presence timeout loses its presence (the others get
/// its `null` within the timeout and 3 s, not before the timeout); the connection stays open.
pub(super) async fn silence_times_out(ctx: &Ctx) -> R {
    let Some(timeout) = ctx.opts.presence_timeout else {
        return skip("no --presence-timeout-ms given (the server's presence timeout)");
    };
    let (wa, wb) = two!(ctx);
    let margin = Duration::from_secs(3);
    let wait = ctx.timeout() + timeout + margin;
    let doc = ctx.doc("ptimeout");
    let mut b = Peer::connect(ctx, &wb, wait).await?;
    b.open(&doc).await?;
    let mut a = Peer::connect(ctx, &wa, wait).await?;
    a.open(&doc).await?;
    let state = json!({ "idle": "soon" });
    a.send_presence(&doc, &state).await?;
    // The ping is the last frame the server hears from this connection: it was heard
    // between `silent_from` and the pong.
    let silent_from = Instant::now();
    a.quiet("publishing before going silent").await?;
    let heard_by = Instant::now();
    b.expect(&doc, &a.client, &state, "before the silence")
        .await?;
    let what = format!("a peer silent for the presence timeout ({timeout:?})");
    b.expect_by(
        heard_by + timeout + margin,
        &doc,
        &a.client,
        &Value::Null,
        |_| false,
        &what,
    )
    .await?;
    let after = silent_from.elapsed();
    if after + Duration::from_millis(250) < timeout {
        return Err(format!(
            "{what}: the peer left after {after:?} of silence, before the timeout"
        ));
    }
    a.quiet("the silent peer, after its presence timed out (its connection stays open)")
        .await?;
    Ok(Outcome::Pass)
}
