//! Checks of writing: submits and their acks, the gapless live stream, fan-out, resends, stale
//! and invalid edits, and writes over HTTP (sections 3, 8, 9 and 12).

use super::*;

pub(super) async fn gapless(ctx: &Ctx) -> R {
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

pub(super) async fn submit_ack(ctx: &Ctx) -> R {
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

pub(super) async fn fan_out(ctx: &Ctx) -> R {
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

pub(super) async fn resend(ctx: &Ctx) -> R {
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

pub(super) async fn stale(ctx: &Ctx) -> R {
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

pub(super) async fn invalid_sequence(ctx: &Ctx) -> R {
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

pub(super) async fn document_state(ctx: &Ctx) -> R {
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

pub(super) async fn invalid_patch(ctx: &Ctx) -> R {
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

pub(super) async fn http_writes(ctx: &Ctx) -> R {
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
