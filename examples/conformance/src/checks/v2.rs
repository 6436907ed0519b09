//! Checks of protocol version 2 (`docs/PROTOCOL.md` section 18): many documents on one
//! connection at `ws://HOST/sync`.

use eventsync::protocol::{ClientMessage, Event, ServerMessage};
use eventsync::VectorClock;

use super::R;
use crate::client::{code_name, counter_edits, describe, Conn, Ctx};
use crate::Outcome;

/// Section 2's checks of a gapless run, for compact events: each gets the entry a reader derives
/// (its `clientId` -> its `sequenceNum`) first.
fn check_run(doc: &str, events: &[Event], from: u64, head: u64) -> Result<(), String> {
    let derived: Vec<Event> = events
        .iter()
        .cloned()
        .map(|mut e| {
            e.vector_clock.observe(&e.client_id, e.sequence_num);
            e
        })
        .collect();
    super::check_run(doc, &derived, from, head)
}

/// Reads frames until one about `document_id` matches `wanted`, keeping the live events of every
/// document seen on the way (by document, in order).
async fn until(
    conn: &mut Conn,
    document_id: &str,
    live: &mut Vec<(String, Event)>,
    wanted: impl Fn(&ServerMessage) -> bool,
    what: &str,
) -> Result<ServerMessage, String> {
    loop {
        match conn
            .next_scoped()
            .await
            .map_err(|e| format!("{what}: {e}"))?
        {
            (Some(doc), ServerMessage::Event { events }) => {
                for e in &events {
                    if !e.vector_clock.is_empty() {
                        return Err(format!(
                            "{what}: a version 2 event with a vectorClock (18.3: compact)"
                        ));
                    }
                }
                live.extend(events.into_iter().map(|e| (doc.clone(), e)));
            }
            (Some(doc), message) if doc == document_id && wanted(&message) => return Ok(message),
            (doc, other) => {
                return Err(format!(
                    "{what}: {} about {doc:?}, expected a frame about {document_id:?}",
                    describe(&other)
                ))
            }
        }
    }
}

/// Opens `document_id`; returns `opened.headSeq`.
async fn open(conn: &mut Conn, document_id: &str) -> Result<u64, String> {
    conn.send_about(document_id, ClientMessage::Open).await?;
    let what = format!("open {document_id}");
    match until(conn, document_id, &mut Vec::new(), |_| true, &what).await? {
        ServerMessage::Opened { head_seq } => Ok(head_seq),
        other => Err(format!(
            "{what}: {}, expected opened (18.2)",
            describe(&other)
        )),
    }
}

/// Writes `count` counter events to `document_id` (open on `conn`) from `base`.
async fn write(
    conn: &mut Conn,
    document_id: &str,
    first_seq: u64,
    base: u64,
    count: u64,
) -> Result<(), String> {
    let edits = counter_edits(first_seq, base, base + 1..=base + count);
    conn.send_about(document_id, ClientMessage::Submit { edits })
        .await?;
    let what = format!("submit to {document_id}");
    match until(
        conn,
        document_id,
        &mut Vec::new(),
        |m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }),
        &what,
    )
    .await?
    {
        ServerMessage::Ack { edits } if edits.len() as u64 == count => Ok(()),
        other => Err(format!(
            "{what}: {}, expected an ack of {count} edits",
            describe(&other)
        )),
    }
}

/// 18.1: version 2 is served at `/sync`; a `hello` there without version 2 is refused.
pub(super) async fn handshake_v2(ctx: &Ctx) -> R {
    ctx.session_v2(&ctx.client("alice")).await?;
    let mut conn = Conn::open(&ctx.ws_connection_url(), ctx.timeout()).await?;
    conn.send(&ctx.hello(&ctx.client("alice"))).await?;
    let what = "hello [1] at /sync";
    conn.expect_error("unsupported_version", what).await?;
    conn.expect_close_code(1002, what).await?;
    Ok(Outcome::Pass)
}

/// 18.2, 18.3: two documents on one connection, each opened, caught up and written, with every
/// answer naming its document and events compact.
pub(super) async fn documents_side_by_side(ctx: &Ctx) -> R {
    let (a, b) = (ctx.doc("v2a"), ctx.doc("v2b"));
    let mut conn = ctx.session_v2(&ctx.client("writer")).await?;
    for doc in [&a, &b] {
        if open(&mut conn, doc).await? != 0 {
            return Err(format!("opened {doc}: headSeq is not 0 for a new document"));
        }
    }
    write(&mut conn, &a, 1, 0, 3).await?;
    write(&mut conn, &b, 1, 0, 2).await?;
    // A fresh connection: open and sync pipelined, for both documents.
    let mut reader = ctx.session_v2(&ctx.client("reader")).await?;
    for doc in [&a, &b] {
        reader.send_about(doc, ClientMessage::Open).await?;
        reader
            .send_about(
                doc,
                ClientMessage::Sync {
                    vector_clock: VectorClock::new(),
                    after: None,
                },
            )
            .await?;
    }
    for (doc, head) in [(&a, 3), (&b, 2)] {
        let what = format!("open and sync {doc}");
        match until(&mut reader, doc, &mut Vec::new(), |_| true, &what).await? {
            ServerMessage::Opened { head_seq } if head_seq == head => {}
            other => {
                return Err(format!(
                    "{what}: {}, expected opened #{head}",
                    describe(&other)
                ))
            }
        }
        let mut events = Vec::new();
        loop {
            match until(&mut reader, doc, &mut Vec::new(), |_| true, &what).await? {
                ServerMessage::Snapshot { .. } => {}
                ServerMessage::Events {
                    events: more,
                    has_more,
                    ..
                } => {
                    events.extend(more);
                    if !has_more {
                        break;
                    }
                }
                other => return Err(format!("{what}: {}", describe(&other))),
            }
        }
        if events.iter().any(|e| &e.document_id != doc) {
            return Err(format!("{what}: events of another document"));
        }
        check_run(doc, &events, 0, head).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(Outcome::Pass)
}

/// 18.3, 7.1: a connection gets the live events of the documents it has open, each gapless,
/// and none of the others'; after `close`, none of that document's.
pub(super) async fn live_per_document(ctx: &Ctx) -> R {
    let (a, b) = (ctx.doc("v2live-a"), ctx.doc("v2live-b"));
    let mut writer = ctx.session_v2(&ctx.client("writer")).await?;
    open(&mut writer, &a).await?;
    open(&mut writer, &b).await?;
    let mut reader = ctx.session_v2(&ctx.client("reader")).await?;
    open(&mut reader, &a).await?;
    write(&mut writer, &a, 1, 0, 2).await?;
    write(&mut writer, &b, 1, 0, 2).await?;
    write(&mut writer, &a, 3, 2, 1).await?;
    // A ping marks the end of what the reader was sent so far (frames are answered in order).
    let mut live = Vec::new();
    reader
        .send_text(r#"{"type":"ping","nonce":1}"#.into())
        .await?;
    loop {
        match reader.next_scoped().await? {
            (Some(doc), ServerMessage::Event { events }) => {
                live.extend(events.into_iter().map(|e| (doc.clone(), e)))
            }
            (None, ServerMessage::Pong { heads, .. }) => {
                if live.len() < 3 {
                    // The events may still be on their way: ask again.
                    if heads.as_ref().and_then(|h| h.get(&a)).copied() != Some(3) {
                        reader
                            .send_text(r#"{"type":"ping","nonce":2}"#.into())
                            .await?;
                        continue;
                    }
                    if live.len() < 3 {
                        reader
                            .send_text(r#"{"type":"ping","nonce":3}"#.into())
                            .await?;
                        continue;
                    }
                }
                let heads = heads.ok_or("a version 2 pong without heads (18.3)")?;
                if heads.len() != 1 || heads.get(&a) != Some(&3) {
                    return Err(format!("pong.heads {heads:?}, expected {{{a}: 3}} (18.3)"));
                }
                break;
            }
            (doc, other) => return Err(format!("{} about {doc:?}", describe(&other))),
        }
    }
    if live.iter().any(|(doc, _)| doc != &a) {
        return Err(format!(
            "live events of a document the reader did not open: {live:?}"
        ));
    }
    let events: Vec<Event> = live.into_iter().map(|(_, e)| e).collect();
    check_run(&a, &events, 0, 3).map_err(|e| format!("live events of {a}: {e}"))?;
    // After close, nothing more about it.
    reader.send_about(&a, ClientMessage::Close).await?;
    match until(&mut reader, &a, &mut Vec::new(), |_| true, "close").await? {
        ServerMessage::Closed { code: None, .. } => {}
        other => {
            return Err(format!(
                "close: {}, expected closed without a code",
                describe(&other)
            ))
        }
    }
    write(&mut writer, &a, 4, 3, 1).await?;
    reader
        .send_text(r#"{"type":"ping","nonce":4}"#.into())
        .await?;
    match reader.next_scoped().await? {
        (None, ServerMessage::Pong { .. }) => Ok(Outcome::Pass),
        (doc, other) => Err(format!(
            "after close: {} about {doc:?}, expected nothing but the pong",
            describe(&other)
        )),
    }
}

/// 18.1, 18.2: a refused document, a message about a document not open, a message without its
/// documentId: each answered alone; the connection goes on.
pub(super) async fn refusals_per_document(ctx: &Ctx) -> R {
    let mut conn = ctx.session_v2(&ctx.client("alice")).await?;
    conn.send_about("a!b", ClientMessage::Open).await?;
    match conn.next_scoped().await? {
        (
            Some(doc),
            ServerMessage::Closed {
                code: Some(code), ..
            },
        ) if doc == "a!b" => {
            if code_name(&code) != "unknown_document" {
                return Err(format!(
                    "open a!b: closed with {}, expected unknown_document",
                    code_name(&code)
                ));
            }
        }
        (doc, other) => {
            return Err(format!(
                "open a!b: {} about {doc:?}, expected closed (18.2)",
                describe(&other)
            ))
        }
    }
    let never = ctx.doc("v2never");
    conn.send_about(
        &never,
        ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: None,
        },
    )
    .await?;
    match conn.next_scoped().await? {
        (Some(doc), ServerMessage::Error { code, .. })
            if doc == never && code_name(&code) == "unexpected_message" => {}
        (doc, other) => return Err(format!("sync of a document not open: {} about {doc:?}, expected error unexpected_message about it (18.1)", describe(&other))),
    }
    conn.send_text(r#"{"type":"sync","vectorClock":{}}"#.into())
        .await?;
    match conn.next_scoped().await? {
        (None, ServerMessage::Error { code, .. }) if code_name(&code) == "malformed_frame" => {}
        (doc, other) => {
            return Err(format!(
            "a sync without documentId: {} about {doc:?}, expected error malformed_frame (18.1)",
            describe(&other)
        ))
        }
    }
    let doc = ctx.doc("v2alive");
    open(&mut conn, &doc).await?;
    write(&mut conn, &doc, 1, 0, 1).await?;
    Ok(Outcome::Pass)
}
