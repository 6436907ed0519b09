//! [`ConflictResolver::rebase`] after a local edit that set a location lost to a remote one that
//! set it too: the later edits meet the differences between the two values.

use super::*;

/// `local` sets `/list` on `{"other": 1}` and `later` edits inside it; `remote` set `/list`
/// first. Returns the document the rebased edits make on the remote's, the conflicts' paths,
/// and the rebase.
fn rebase_after_losing_set(
    policy: ConflictPolicy,
    local: Value,
    later: Value,
    remote: Value,
) -> (Value, Vec<String>, Rebased) {
    let base = json!({"other": 1});
    let set = |value: &Value| json!([{"op": "add", "path": "/list", "value": value}]);
    let edit = sh(&base, set(&local));
    let after_local = apply(&base, &edit);
    let edit2 = sh(&after_local, later);
    let after_both = apply(&after_local, &edit2);
    let remote_ops = sh(&base, set(&remote));
    let rebased = ConflictResolver::new(policy).rebase(&[edit, edit2], &remote_ops);
    let after_remote = apply(&base, &remote_ops);
    let doc = apply(&apply(&after_remote, &rebased.edits[0]), &rebased.edits[1]);
    // The remote continued over both edits takes the local document to the same one.
    assert_eq!(apply(&after_both, &rebased.remote), doc);
    let paths = rebased
        .conflicts
        .iter()
        .map(|(_, c)| c.path.clone())
        .collect();
    (doc, paths, rebased)
}

#[test]
fn later_edits_inside_a_lost_object_keep_what_the_winner_also_has() {
    let (doc, conflicts, _) = rebase_after_losing_set(
        ConflictPolicy::ServerWins,
        json!({"items": [], "title": "mine"}),
        json!([
            {"op": "add", "path": "/list/items/-", "value": "second"},
            {"op": "replace", "path": "/list/title", "value": "mine, renamed"}
        ]),
        json!({"items": ["first"], "owner": "them"}),
    );
    assert_eq!(
        doc,
        json!({"other": 1, "list": {"items": ["first", "second"], "owner": "them"}})
    );
    // The set itself, and the title the winner does not have.
    assert_eq!(conflicts, ["/list", "/list/title"]);
}

#[test]
fn later_edits_inside_a_lost_array_are_rebased_over_its_differences() {
    let (doc, conflicts, _) = rebase_after_losing_set(
        ConflictPolicy::ServerWins,
        json!(["a"]),
        json!([{"op": "add", "path": "/list/1", "value": "mine"}]),
        json!(["x", "y"]),
    );
    assert_eq!(conflicts, ["/list"]);
    assert_eq!(doc["list"].as_array().unwrap().len(), 3, "{doc}");
    assert!(
        doc["list"].as_array().unwrap().contains(&json!("mine")),
        "{doc}"
    );
}

#[test]
fn values_of_different_kinds_still_replace_everything_under_them() {
    let (doc, conflicts, _) = rebase_after_losing_set(
        ConflictPolicy::ServerWins,
        json!({"items": []}),
        json!([{"op": "add", "path": "/list/items/-", "value": "second"}]),
        json!(["not", "an", "object"]),
    );
    assert_eq!(doc, json!({"other": 1, "list": ["not", "an", "object"]}));
    assert_eq!(conflicts, ["/list", "/list/items/0"]);
}

#[test]
fn a_set_that_wins_leaves_the_later_edits_alone() {
    let (doc, conflicts, rebased) = rebase_after_losing_set(
        ConflictPolicy::ClientWins,
        json!({"items": []}),
        json!([{"op": "add", "path": "/list/items/-", "value": "second"}]),
        json!({"items": ["first"]}),
    );
    assert_eq!(doc, json!({"other": 1, "list": {"items": ["second"]}}));
    assert_eq!(conflicts, ["/list"]);
    assert!(rebased.remote.is_empty());
}
