//! Checks of a server's own rules on documents (`docs/PROTOCOL.md` 11.1), for a server that
//! refuses every document with a given top-level member (`--refused-member`; the reference
//! server does with a `--schema` of `{"not": {"required": [NAME]}}`).

use serde_json::json;

use super::{skip, R};
use crate::client::{edit, expect_http_error, Ctx};
use crate::Outcome;

/// 11.1, 8.3, 10.2: an edit the rules refuse is a `reject` `invalid_document` (the later edits
/// of its submit not looked at), an HTTP write of it is 422 `invalid_document`, and nothing of
/// either is in the log.
pub(super) async fn refused_by_rules(ctx: &Ctx) -> R {
    let Some(member) = ctx.opts.refused_member.clone() else {
        return skip("needs --refused-member: a top-level member the server's rules refuse");
    };
    let doc = ctx.doc("rules");
    let client = ctx.client("writer");
    let (mut conn, head) = ctx.session(&doc, &client).await?;
    let pointer = format!("/{member}");
    let answer = conn
        .submit(vec![
            edit(
                1,
                head,
                "create",
                json!([{"op": "add", "path": "", "value": {"n": 1}}]),
            ),
            edit(
                2,
                head,
                "update",
                json!([{"op": "add", "path": pointer, "value": true}]),
            ),
            edit(
                3,
                head,
                "update",
                json!([{"op": "replace", "path": "/n", "value": 3}]),
            ),
        ])
        .await?;
    ensure!(
        answer.acks.len() == 1 && answer.acks[0].client_seq == 1,
        "only the create is ordered, got acks {:?} (8.3: a refusal stops the submit)",
        answer.acks
    );
    match &answer.reject {
        Some((2, code, _)) if code == "invalid_document" => {}
        other => {
            return Err(format!(
                "an edit adding {pointer}: expected reject of clientSeq 2 with invalid_document (11.1), got {other:?}"
            ))
        }
    }
    let path = format!("/api/documents/{doc}");
    let patch = json!([{"op": "add", "path": pointer, "value": 1}]);
    let answer = ctx
        .request(reqwest::Method::PATCH, &path, Some(&patch), true)
        .await?;
    expect_http_error(
        &format!("PATCH {path} adding {pointer}"),
        answer,
        422,
        "invalid_document",
    )?;
    let body = json!({ member.as_str(): 1 });
    let answer = ctx
        .request(reqwest::Method::PUT, &path, Some(&body), true)
        .await?;
    expect_http_error(
        &format!("PUT {path} with {pointer}"),
        answer,
        422,
        "invalid_document",
    )?;
    let log = ctx.read_log(&doc).await?;
    ensure!(
        log.head == 1 && log.events.len() == 1,
        "the log holds {} events up to #{}: only the create may be in it",
        log.events.len(),
        log.head
    );
    let (status, text) = ctx.get(&path).await?;
    let snapshot: serde_json::Value =
        crate::client::parse_ok(&format!("GET {path}"), status, &text)?;
    ensure!(
        snapshot["document"] == json!({"n": 1}),
        "the document is {}, expected {{\"n\":1}}",
        snapshot["document"]
    );
    Ok(Outcome::Pass)
}
