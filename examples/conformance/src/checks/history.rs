//! Checks of document history (`docs/PROTOCOL.md` 3.9, 12.4 and 18.8): the document as of any
//! position the server can still rebuild, over HTTP and version 2, and the code for a position
//! compaction removed. The test data is a counter document: at `sequenceNum` k it is `{"n": k}`.

use eventsync::protocol::{
    ClientMessage, EventsPage, HistoryRequest, ServerMessage, Version, VersionRequest,
};
use serde_json::{json, Value};

use super::{seeded, R};
use crate::client::{code_name, describe, expect_http_error, parse_ok, Conn, Ctx};
use crate::Outcome;

/// Events written: with the compaction `scripts/conformance.sh` configures (a snapshot every 10
/// events, 5 kept), a snapshot at 30 and the events up to 25 gone.
const COUNT: u64 = 34;

/// The oldest position the server rebuilds (3.9): the snapshot `GET /api/events?after=0` starts
/// with, or 0.
async fn oldest(ctx: &Ctx, doc: &str) -> Result<u64, String> {
    let page: EventsPage = ctx
        .get_ok(&format!("/api/events/{doc}?after=0&limit=0"))
        .await?;
    Ok(page.snapshot.map_or(0, |s| s.sequence_num))
}

fn check_version(v: &Version, at: u64, writer: &str, what: &str) -> Result<(), String> {
    let want = if at == 0 {
        Value::Null
    } else {
        json!({ "n": at })
    };
    let got = v.document.clone().unwrap_or(Value::Null);
    if v.sequence_num != at || got != want {
        return Err(format!(
            "{what}: sequenceNum {} holding {got}, expected {at} holding {want} (3.9)",
            v.sequence_num
        ));
    }
    if at > 0 && v.client_id.as_deref().is_some_and(|c| c != writer) {
        return Err(format!(
            "{what}: clientId {:?}, expected {writer:?}, who wrote event {at}",
            v.client_id
        ));
    }
    Ok(())
}

/// 12.4, 3.9: `GET /api/documents/{id}?at=` for every position from the oldest to the head, with
/// who wrote it; ahead of the log `invalid_sequence`, before the oldest `history_compacted`.
pub(super) async fn version_over_http(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "version", COUNT).await?;
    let writer = ctx.client("writer");
    let oldest = oldest(ctx, &doc).await?;
    for at in oldest..=COUNT {
        let path = format!("/api/documents/{doc}?at={at}");
        let (status, body) = ctx.get(&path).await?;
        let version: Version = parse_ok(&format!("GET {path}"), status, &body)?;
        check_version(&version, at, &writer, &format!("GET {path}"))?;
        if at > oldest && version.client_id.is_none() {
            return Err(format!(
                "GET {path}: no clientId although event {at} is retained (3.9)"
            ));
        }
    }
    let path = format!("/api/documents/{doc}?at={}", COUNT + 1);
    expect_http_error(
        &format!("GET {path}"),
        ctx.get(&path).await?,
        400,
        "invalid_sequence",
    )?;
    let path = format!("/api/documents/{doc}?at=x");
    expect_http_error(
        &format!("GET {path}"),
        ctx.get(&path).await?,
        400,
        "malformed_frame",
    )?;
    if oldest > 0 {
        for at in [0, oldest - 1] {
            let path = format!("/api/documents/{doc}?at={at}");
            let what = format!("GET {path} (compacted: the oldest position is {oldest})");
            expect_http_error(&what, ctx.get(&path).await?, 410, "history_compacted")?;
        }
    } else if ctx.opts.expect_snapshots {
        return Err("no snapshot although --expect-snapshots was given".into());
    }
    Ok(Outcome::Pass)
}

/// The next `history` or `version` answer about `doc` (other frames about it, presence say,
/// are skipped).
async fn answer(conn: &mut Conn, doc: &str, what: &str) -> Result<ServerMessage, String> {
    loop {
        match conn
            .next_scoped()
            .await
            .map_err(|e| format!("{what}: {e}"))?
        {
            (Some(d), m @ (ServerMessage::History(_) | ServerMessage::Version(_))) if d == doc => {
                return Ok(m)
            }
            (_, ServerMessage::Presence(_)) => {}
            (d, other) => {
                return Err(format!(
                    "{what}: {} about {d:?}, expected its answer (18.8)",
                    describe(&other)
                ))
            }
        }
    }
}

async fn version(
    conn: &mut Conn,
    doc: &str,
    request_id: u64,
    at: u64,
) -> Result<ServerMessage, String> {
    let request = ClientMessage::Version(VersionRequest { request_id, at });
    conn.send_about(doc, request).await?;
    answer(conn, doc, &format!("version at {at}")).await
}

fn expect_code(
    message: &ServerMessage,
    request_id: u64,
    code: &str,
    what: &str,
) -> Result<(), String> {
    let got = match message {
        ServerMessage::Version(a) if a.request_id == request_id => a.code.as_ref().map(code_name),
        ServerMessage::History(a) if a.request_id == request_id => a.code.as_ref().map(code_name),
        other => {
            return Err(format!(
                "{what}: {other:?}, expected requestId {request_id}"
            ))
        }
    };
    if got.as_deref() != Some(code) {
        return Err(format!("{what}: code {got:?}, expected {code} (18.8)"));
    }
    Ok(())
}

/// 18.8: `history` and `version` on a version 2 connection, answered once each with their
/// `requestId`: a page of events (`oldestSeq` when compacted), the document as of a position,
/// and the codes.
pub(super) async fn requests_over_v2(ctx: &Ctx) -> R {
    let (doc, _) = seeded(ctx, "vhistory", COUNT).await?;
    let writer = ctx.client("writer");
    let oldest = oldest(ctx, &doc).await?;
    let mut conn = ctx.session_v2(&ctx.client("historian")).await?;
    // Not open yet: answered with the request's id, unexpected_message.
    let early = version(&mut conn, &doc, 1, 1).await?;
    expect_code(
        &early,
        1,
        "unexpected_message",
        "version about a document not open",
    )?;
    conn.send_about(&doc, ClientMessage::Open).await?;
    loop {
        match conn.next_scoped().await? {
            (_, ServerMessage::Opened { .. }) => break,
            (_, ServerMessage::Presence(_)) => {}
            (d, other) => return Err(format!("open: {} about {d:?}", describe(&other))),
        }
    }
    let request = HistoryRequest {
        request_id: 2,
        after: 0,
        limit: Some(1000),
    };
    conn.send_about(&doc, ClientMessage::History(request))
        .await?;
    let ServerMessage::History(page) = answer(&mut conn, &doc, "history after 0").await? else {
        return Err("history after 0: answered with a version frame".into());
    };
    if page.request_id != 2 || page.code.is_some() {
        return Err(format!("history after 0: {page:?}"));
    }
    let seqs: Vec<u64> = page.events.iter().map(|e| e.sequence_num).collect();
    let want: Vec<u64> = (oldest + 1..=COUNT).collect();
    if seqs != want || page.head_seq != Some(COUNT) || page.has_more {
        return Err(format!(
            "history after 0: events {seqs:?}, headSeq {:?}, hasMore {}; expected {}..={COUNT} \
             (the page of GET /api/events without its snapshot, 18.8)",
            page.head_seq,
            page.has_more,
            oldest + 1
        ));
    }
    if page.oldest_seq != Some(oldest).filter(|o| *o > 0) {
        return Err(format!(
            "history after 0: oldestSeq {:?}, expected {oldest} (the snapshot's, 18.8)",
            page.oldest_seq
        ));
    }
    if page
        .events
        .iter()
        .any(|e| e.client_id != writer || e.document_id != doc)
    {
        return Err("history after 0: an event of another client or document".into());
    }
    for (request_id, at) in [(3, COUNT), (4, oldest.max(COUNT - 2))] {
        match version(&mut conn, &doc, request_id, at).await? {
            ServerMessage::Version(a) if a.request_id == request_id && a.code.is_none() => {
                let v = a.version.ok_or(format!("version at {at}: no version"))?;
                check_version(&v, at, &writer, &format!("version at {at}"))?;
            }
            other => return Err(format!("version at {at}: {other:?}")),
        }
    }
    let ahead = version(&mut conn, &doc, 5, COUNT + 1).await?;
    expect_code(&ahead, 5, "invalid_sequence", "version ahead of the log")?;
    if oldest > 0 {
        let gone = version(&mut conn, &doc, 6, oldest - 1).await?;
        expect_code(
            &gone,
            6,
            "history_compacted",
            "version before the oldest position",
        )?;
    }
    Ok(Outcome::Pass)
}
