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

use auth::{auth_forged, auth_mismatch, auth_none, auth_url};
use catch_up::{
    catchup_current, catchup_empty, catchup_partial, events_paging, http_sync, read_document,
    snapshots, sync_ahead, sync_on,
};
use connection::{
    bad_client_id, bad_document_id, before_hello, handshake, health, ping_pong, pipelining,
    second_hello, versions,
};
use edges::{
    big_counters, close_codes, document_numbers, history_from_the_start, invalid_utf8, live_stream,
    patch_bodies,
};
use frames::{malformed, still_serving, too_large, unknown_fields};
use history::{requests_over_v2, version_over_http};
use presence::{
    join, leave, never_in_the_log, per_document, read_only, silence_times_out, state_too_large,
    updates_in_order,
};
use rules::refused_by_rules;
use sse::{open_sse, read_sse, sse};
use submit::{
    document_state, fan_out, gapless, http_writes, invalid_patch, invalid_sequence, resend, stale,
    submit_ack,
};
use v2::{documents_side_by_side, handshake_v2, live_per_document, refusals_per_document};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

mod auth;
mod catch_up;
mod connection;
mod edges;
mod frames;
mod history;
mod presence;
mod rules;
mod sse;
mod submit;
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
