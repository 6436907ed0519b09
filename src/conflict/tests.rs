//! Unit tests for shaping and for every transform rule.

use std::sync::{Arc, Mutex};

use json_patch::PatchOperation;
use serde_json::{json, Value};

use super::*;

fn ops(v: Value) -> Vec<PatchOperation> {
    serde_json::from_value(v).expect("valid RFC 6902 JSON")
}

fn sh(doc: &Value, v: Value) -> Vec<ShapedOp> {
    shape(doc, &ops(v)).expect("ops apply")
}

fn apply(doc: &Value, shaped: &[ShapedOp]) -> Value {
    let mut d = doc.clone();
    json_patch::patch(&mut d, &to_patch(shaped)).expect("shaped ops apply");
    d
}

fn op(kind: OpKind, path: &[&str], value: Option<Value>, in_array: bool) -> ShapedOp {
    ShapedOp::new(kind, path, value, in_array)
}

/// Outcome of transforming `a` over `b` on `s`, with both sides applied.
struct Run {
    t: Transformed,
    /// S + b + a'
    after_remote: Value,
    /// S + a + b'
    after_local: Value,
}

fn run(policy: ConflictPolicy, s: &Value, a: Value, b: Value) -> Run {
    let a = sh(s, a);
    let b = sh(s, b);
    let t = ConflictResolver::new(policy).transform(&a, &b);
    let after_remote = apply(&apply(s, &b), &t.local);
    let after_local = apply(&apply(s, &a), &t.remote);
    Run {
        t,
        after_remote,
        after_local,
    }
}

fn kinds(t: &Transformed) -> Vec<ConflictKind> {
    t.conflicts.iter().map(|c| c.kind).collect()
}

// ---------------------------------------------------------------- shape

#[test]
fn shape_records_array_and_object_parents() {
    let s = json!({"0": "zero", "arr": [10, 20], "obj": {"k": 1}});
    let shaped = sh(
        &s,
        json!([
            {"op": "replace", "path": "/0", "value": "z"},
            {"op": "replace", "path": "/arr/0", "value": 11},
            {"op": "remove", "path": "/arr/1"},
            {"op": "test", "path": "/arr/0", "value": 11},
            {"op": "add", "path": "/obj/n", "value": 2},
            {"op": "add", "path": "/arr/0", "value": 9},
        ]),
    );
    assert_eq!(
        shaped,
        vec![
            op(OpKind::Replace, &["0"], Some(json!("z")), false),
            op(OpKind::Replace, &["arr", "0"], Some(json!(11)), true),
            op(OpKind::Remove, &["arr", "1"], None, true),
            op(OpKind::Test, &["arr", "0"], Some(json!(11)), true),
            op(OpKind::Add, &["obj", "n"], Some(json!(2)), false),
            op(OpKind::Add, &["arr", "0"], Some(json!(9)), true),
        ]
    );
}

#[test]
fn shape_turns_append_dash_into_the_array_length() {
    let s = json!({"arr": [1, 2, 3], "o": {}});
    let shaped = sh(
        &s,
        json!([
            {"op": "add", "path": "/arr/-", "value": 4},
            {"op": "add", "path": "/arr/-", "value": 5},
            {"op": "add", "path": "/o/-", "value": "key named dash"},
        ]),
    );
    assert_eq!(shaped[0].path, vec!["arr", "3"]);
    assert_eq!(shaped[1].path, vec!["arr", "4"]);
    assert!(shaped[0].in_array && shaped[1].in_array);
    // In an object `-` is a plain key.
    assert_eq!(shaped[2].path, vec!["o", "-"]);
    assert!(!shaped[2].in_array);
    assert_eq!(
        apply(&s, &shaped),
        json!({"arr": [1, 2, 3, 4, 5], "o": {"-": "key named dash"}})
    );
}

#[test]
fn shape_decomposes_move_and_copy() {
    let s = json!({"arr": ["a", "b", "c"], "o": {"x": {"deep": 1}}});
    let raw = ops(json!([
        {"op": "move", "from": "/arr/0", "path": "/arr/-"},
        {"op": "move", "from": "/o/x", "path": "/o/y"},
        {"op": "copy", "from": "/o/y", "path": "/arr/1"},
    ]));
    let shaped = shape(&s, &raw).unwrap();
    assert_eq!(
        shaped,
        vec![
            op(OpKind::Remove, &["arr", "0"], None, true),
            // After the removal the array has two elements: append at 2.
            op(OpKind::Add, &["arr", "2"], Some(json!("a")), true),
            op(OpKind::Remove, &["o", "x"], None, false),
            op(OpKind::Add, &["o", "y"], Some(json!({"deep": 1})), false),
            op(OpKind::Add, &["arr", "1"], Some(json!({"deep": 1})), true),
        ]
    );
    let mut expected = s.clone();
    json_patch::patch(&mut expected, &raw).unwrap();
    assert_eq!(apply(&s, &shaped), expected);
}

#[test]
fn shape_fails_with_clear_errors() {
    let s = json!({"a": {"b": 1}, "arr": [1]});
    let err = shape(
        &s,
        &ops(json!([{"op": "add", "path": "/c", "value": 1}, {"op": "remove", "path": "/nope"}])),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ShapeError::DoesNotApply { index: 1, op: "remove", path, .. } if path == "/nope"),
        "{err}"
    );
    assert!(err.to_string().contains("operation 1"));

    let err = shape(
        &s,
        &ops(json!([{"op": "move", "from": "/a", "path": "/a/b/c"}])),
    )
    .unwrap_err();
    assert!(matches!(err, ShapeError::MoveIntoItself { index: 0, .. }));

    for bad in [
        json!([{"op": "remove", "path": "/arr/-"}]),
        json!([{"op": "replace", "path": "/arr/1", "value": 0}]),
        json!([{"op": "add", "path": "/arr/01", "value": 0}]),
        json!([{"op": "test", "path": "/a/b", "value": 2}]),
        json!([{"op": "copy", "from": "/zz", "path": "/y"}]),
        json!([{"op": "remove", "path": ""}]),
    ] {
        let raw = ops(bad.clone());
        assert!(shape(&s, &raw).is_err(), "{bad}");
        assert!(json_patch::patch(&mut s.clone(), &raw).is_err(), "{bad}");
    }
}

#[test]
fn shape_and_to_patch_escape_tokens() {
    let s = json!({"a/b": {"m~n": 1}});
    let shaped = sh(
        &s,
        json!([{"op": "replace", "path": "/a~1b/m~0n", "value": 2}]),
    );
    assert_eq!(shaped[0].path, vec!["a/b", "m~n"]);
    assert_eq!(shaped[0].pointer(), "/a~1b/m~0n");
    let back = serde_json::to_value(to_patch(&shaped)).unwrap();
    assert_eq!(
        back,
        json!([{"op": "replace", "path": "/a~1b/m~0n", "value": 2}])
    );
}

#[test]
fn shape_root_operations() {
    let s = json!({"a": 1});
    let shaped = sh(
        &s,
        json!([{"op": "replace", "path": "", "value": [1]}, {"op": "add", "path": "", "value": {"b": 2}}]),
    );
    assert_eq!(shaped[0], op(OpKind::Replace, &[], Some(json!([1])), false));
    assert_eq!(
        shaped[1],
        op(OpKind::Add, &[], Some(json!({"b": 2})), false)
    );
    assert_eq!(apply(&s, &shaped), json!({"b": 2}));
}

#[test]
fn shaped_op_serializes_in_camel_case() {
    let o = op(OpKind::Add, &["list", "0"], Some(json!(1)), true);
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        json!({"kind": "add", "path": ["list", "0"], "value": 1, "inArray": true})
    );
    assert_eq!(serde_json::from_value::<ShapedOp>(v).unwrap(), o);
    let removed = op(OpKind::Remove, &["k"], None, false);
    let v = serde_json::to_value(&removed).unwrap();
    assert_eq!(
        v,
        json!({"kind": "remove", "path": ["k"], "inArray": false})
    );
    assert_eq!(serde_json::from_value::<ShapedOp>(v).unwrap(), removed);
}

// ---------------------------------------------------------------- independent edits

#[test]
fn different_object_keys_both_apply() {
    let s = json!({"a": 1, "b": 2, "n": {"x": 1}});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "/a", "value": 10}, {"op": "add", "path": "/n/y", "value": 2}]),
        json!([{"op": "remove", "path": "/b"}, {"op": "replace", "path": "/n/x", "value": 5}]),
    );
    assert!(r.t.conflicts.is_empty());
    assert_eq!(r.after_remote, json!({"a": 10, "n": {"x": 5, "y": 2}}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn same_index_inserts_both_survive_remote_first() {
    let s = json!({"arr": ["x"]});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "add", "path": "/arr/0", "value": "local"}]),
        json!([{"op": "add", "path": "/arr/0", "value": "remote"}]),
    );
    assert!(r.t.conflicts.is_empty());
    assert_eq!(r.t.local[0].path, vec!["arr", "1"]);
    assert_eq!(r.t.remote[0].path, vec!["arr", "0"]);
    assert_eq!(r.after_remote, json!({"arr": ["remote", "local", "x"]}));
    assert_eq!(r.after_local, r.after_remote);

    // Appends at the same end too.
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "add", "path": "/arr/-", "value": "local"}]),
        json!([{"op": "add", "path": "/arr/-", "value": "remote"}]),
    );
    assert_eq!(r.after_remote, json!({"arr": ["x", "remote", "local"]}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn remote_insert_shifts_local_indexes_at_or_after_it() {
    let s = json!({"arr": [0, 1, 2, 3]});
    let remote = json!([{"op": "add", "path": "/arr/1", "value": "r"}]);
    for (local, expected_path, expected_doc) in [
        (
            json!([{"op": "replace", "path": "/arr/2", "value": "L"}]),
            vec!["arr", "3"],
            json!({"arr": [0, "r", 1, "L", 3]}),
        ),
        (
            json!([{"op": "replace", "path": "/arr/1", "value": "L"}]),
            vec!["arr", "2"],
            json!({"arr": [0, "r", "L", 2, 3]}),
        ),
        (
            json!([{"op": "add", "path": "/arr/0", "value": "L"}]),
            vec!["arr", "0"],
            json!({"arr": ["L", 0, "r", 1, 2, 3]}),
        ),
        (
            json!([{"op": "remove", "path": "/arr/1"}]),
            vec!["arr", "2"],
            json!({"arr": [0, "r", 2, 3]}),
        ),
        (
            json!([{"op": "remove", "path": "/arr/0"}]),
            vec!["arr", "0"],
            json!({"arr": ["r", 1, 2, 3]}),
        ),
    ] {
        let r = run(
            ConflictPolicy::ServerWins,
            &s,
            local.clone(),
            remote.clone(),
        );
        assert!(r.t.conflicts.is_empty(), "{local}");
        assert_eq!(r.t.local[0].path, expected_path, "{local}");
        assert_eq!(r.after_remote, expected_doc, "{local}");
        assert_eq!(r.after_local, expected_doc, "{local}");
    }
}

#[test]
fn nested_paths_through_arrays_are_shifted() {
    let s = json!({"list": [{"name": "a", "tags": []}, {"name": "b", "tags": ["t"]}]});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([
            {"op": "replace", "path": "/list/1/name", "value": "B"},
            {"op": "add", "path": "/list/1/tags/0", "value": "u"},
        ]),
        json!([{"op": "add", "path": "/list/0", "value": {"name": "new", "tags": []}}]),
    );
    assert!(r.t.conflicts.is_empty());
    assert_eq!(r.t.local[0].path, vec!["list", "2", "name"]);
    assert_eq!(r.t.local[1].path, vec!["list", "2", "tags", "0"]);
    assert_eq!(
        r.after_remote,
        json!({"list": [
            {"name": "new", "tags": []},
            {"name": "a", "tags": []},
            {"name": "B", "tags": ["u", "t"]},
        ]})
    );
    assert_eq!(r.after_local, r.after_remote);

    // And the remote is shifted over a local removal.
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "remove", "path": "/list/0"}]),
        json!([{"op": "replace", "path": "/list/1/name", "value": "R"}]),
    );
    assert_eq!(r.t.remote[0].path, vec!["list", "0", "name"]);
    assert_eq!(
        r.after_local,
        json!({"list": [{"name": "R", "tags": ["t"]}]})
    );
    assert_eq!(r.after_remote, r.after_local);
}

// ---------------------------------------------------------------- remote array removal

#[test]
fn remote_array_removal_shifts_later_indexes() {
    let s = json!({"arr": [0, 1, 2, 3]});
    let remote = json!([{"op": "remove", "path": "/arr/1"}]);
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "/arr/3", "value": "L"}]),
        remote.clone(),
    );
    assert_eq!(r.t.local[0].path, vec!["arr", "2"]);
    assert_eq!(r.after_remote, json!({"arr": [0, 2, "L"]}));
    assert_eq!(r.after_local, r.after_remote);

    // An insertion at exactly the removed index stays there.
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "add", "path": "/arr/1", "value": "L"}]),
        remote.clone(),
    );
    assert!(r.t.conflicts.is_empty());
    assert_eq!(r.t.local[0].path, vec!["arr", "1"]);
    assert_eq!(r.t.remote[0].path, vec!["arr", "2"]);
    assert_eq!(r.after_remote, json!({"arr": [0, "L", 2, 3]}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn both_remove_the_same_element_or_member() {
    let s = json!({"arr": [0, 1, 2], "o": {"k": 1, "j": 2}});
    let both = json!([{"op": "remove", "path": "/arr/1"}, {"op": "remove", "path": "/o/k"}]);
    let r = run(ConflictPolicy::ServerWins, &s, both.clone(), both);
    assert!(r.t.conflicts.is_empty());
    assert!(r.t.local.is_empty() && r.t.remote.is_empty());
    assert_eq!(r.after_remote, json!({"arr": [0, 2], "o": {"j": 2}}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn replace_of_remotely_removed_element_is_a_conflict() {
    let s = json!({"arr": [0, 1, 2]});
    let local = json!([{"op": "replace", "path": "/arr/1", "value": "L"}]);
    let remote = json!([{"op": "remove", "path": "/arr/1"}]);

    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        local.clone(),
        remote.clone(),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    assert_eq!(r.t.conflicts[0].path, "/arr/1");
    assert!(r.t.local.is_empty());
    assert_eq!(r.after_remote, json!({"arr": [0, 2]}));
    assert_eq!(r.after_local, r.after_remote);

    // ClientWins: the replace becomes an insert of the local value at the same index.
    let r = run(ConflictPolicy::ClientWins, &s, local, remote);
    assert_eq!(
        r.t.local,
        vec![op(OpKind::Add, &["arr", "1"], Some(json!("L")), true)]
    );
    assert!(r.t.remote.is_empty());
    assert_eq!(r.after_remote, json!({"arr": [0, "L", 2]}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn edit_under_removed_element_is_dropped_whatever_the_policy() {
    let s = json!({"arr": [{"n": 1}, {"n": 2}]});
    for policy in [
        ConflictPolicy::ServerWins,
        ConflictPolicy::ClientWins,
        ConflictPolicy::Custom(Arc::new(|_| Resolution::KeepLocal)),
    ] {
        let r = run(
            policy,
            &s,
            json!([{"op": "replace", "path": "/arr/0/n", "value": 9}, {"op": "add", "path": "/arr/1/m", "value": 3}]),
            json!([{"op": "remove", "path": "/arr/0"}]),
        );
        assert_eq!(kinds(&r.t), vec![ConflictKind::ParentRemoved]);
        assert_eq!(r.t.conflicts[0].path, "/arr/0/n");
        assert_eq!(
            r.t.local,
            vec![op(OpKind::Add, &["arr", "0", "m"], Some(json!(3)), false)]
        );
        assert_eq!(r.after_remote, json!({"arr": [{"n": 2, "m": 3}]}));
        assert_eq!(r.after_local, r.after_remote);
    }
}

// ---------------------------------------------------------------- remote set

#[test]
fn remote_set_same_path_is_a_conflict() {
    let s = json!({"title": "old", "arr": [1, 2]});
    for (local, remote) in [
        (
            json!([{"op": "replace", "path": "/title", "value": "local"}]),
            json!([{"op": "replace", "path": "/title", "value": "remote"}]),
        ),
        (
            json!([{"op": "add", "path": "/title", "value": "local"}]),
            json!([{"op": "add", "path": "/title", "value": "remote"}]),
        ),
    ] {
        let r = run(
            ConflictPolicy::ServerWins,
            &s,
            local.clone(),
            remote.clone(),
        );
        assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
        assert!(r.t.local.is_empty());
        assert_eq!(r.after_remote["title"], json!("remote"));
        assert_eq!(r.after_local, r.after_remote);

        let r = run(ConflictPolicy::ClientWins, &s, local, remote);
        assert!(r.t.remote.is_empty());
        assert_eq!(r.after_remote["title"], json!("local"));
        assert_eq!(r.after_local, r.after_remote);
    }

    // Both create the same new member.
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "add", "path": "/new", "value": "local"}]),
        json!([{"op": "add", "path": "/new", "value": "remote"}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    assert_eq!(r.after_remote["new"], json!("remote"));
    assert_eq!(r.after_local, r.after_remote);

    // Array element replaced on both sides.
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "replace", "path": "/arr/1", "value": "L"}]),
        json!([{"op": "replace", "path": "/arr/1", "value": "R"}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    assert_eq!(r.after_remote["arr"], json!([1, "L"]));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn local_remove_of_remotely_set_member() {
    let s = json!({"k": 1});
    let local = json!([{"op": "remove", "path": "/k"}]);
    let remote = json!([{"op": "replace", "path": "/k", "value": 2}]);

    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        local.clone(),
        remote.clone(),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    // b' re-creates the member the local edit removed.
    assert_eq!(
        r.t.remote,
        vec![op(OpKind::Add, &["k"], Some(json!(2)), false)]
    );
    assert_eq!(r.after_remote, json!({"k": 2}));
    assert_eq!(r.after_local, r.after_remote);

    // ClientWins: the remove stays a remove.
    let r = run(ConflictPolicy::ClientWins, &s, local, remote);
    assert_eq!(r.t.local, vec![op(OpKind::Remove, &["k"], None, false)]);
    assert_eq!(r.after_remote, json!({}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn edit_under_remotely_set_value_is_dropped() {
    let s = json!({"profile": {"name": "a", "age": 1}, "other": 0});
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "replace", "path": "/profile/name", "value": "b"}, {"op": "replace", "path": "/other", "value": 1}]),
        json!([{"op": "replace", "path": "/profile", "value": {"name": "z"}}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::ParentReplaced]);
    assert_eq!(r.t.conflicts[0].path, "/profile/name");
    assert_eq!(
        r.after_remote,
        json!({"profile": {"name": "z"}, "other": 1})
    );
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn local_overwrite_of_an_ancestor_is_a_conflict() {
    let s = json!({"profile": {"name": "a"}, "list": [1]});
    let local = json!([{"op": "replace", "path": "/profile", "value": {"nick": "L"}}]);
    let remote = json!([{"op": "replace", "path": "/profile/name", "value": "R"}]);

    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        local.clone(),
        remote.clone(),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert_eq!(
        r.after_remote,
        json!({"profile": {"nick": "L"}, "list": [1]})
    );
    assert_eq!(r.after_local, r.after_remote);

    // ServerWins: the local overwrite is dropped; b' restores the ancestor structurally (its
    // value is only known to the document: a null placeholder).
    let r = run(ConflictPolicy::ServerWins, &s, local, remote);
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert!(r.t.local.is_empty());
    assert_eq!(
        r.after_remote,
        json!({"profile": {"name": "R"}, "list": [1]})
    );
    assert_eq!(
        r.t.remote,
        vec![op(OpKind::Replace, &["profile"], Some(Value::Null), false)]
    );

    // Removing an array the remote inserted into is an ancestor overwrite too.
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "remove", "path": "/list"}]),
        json!([{"op": "add", "path": "/list/-", "value": 2}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert_eq!(r.after_remote, json!({"profile": {"name": "a"}}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn restored_ancestor_absorbs_later_remote_ops_under_it() {
    let s = json!({"p": {"x": 0}, "q": 0});
    let local = json!([{"op": "remove", "path": "/p"}]);
    let remote = json!([
        {"op": "replace", "path": "/p/x", "value": 1},
        {"op": "add", "path": "/p/y", "value": 2},
        {"op": "replace", "path": "/q", "value": 3},
    ]);
    let r = run(ConflictPolicy::ServerWins, &s, local.clone(), remote);
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert!(r.t.local.is_empty());
    assert_eq!(r.after_remote, json!({"p": {"x": 1, "y": 2}, "q": 3}));
    // b' re-creates /p (placeholder) and skips the remote ops under it.
    assert_eq!(
        r.t.remote,
        vec![
            op(OpKind::Add, &["p"], Some(Value::Null), false),
            op(OpKind::Replace, &["q"], Some(json!(3)), false),
        ]
    );
    assert_eq!(r.after_local, json!({"p": null, "q": 3}));

    // A later remote op that sets /p itself ends the placeholder: what follows applies.
    let remote = json!([
        {"op": "add", "path": "/p/y", "value": 2},
        {"op": "replace", "path": "/p", "value": {"z": 1}},
        {"op": "add", "path": "/p/w", "value": 4},
    ]);
    let r = run(ConflictPolicy::ServerWins, &s, local, remote);
    assert_eq!(r.after_remote, json!({"p": {"z": 1, "w": 4}, "q": 0}));
    assert_eq!(r.after_local, r.after_remote);
}

// ---------------------------------------------------------------- remote object removal

#[test]
fn remote_object_member_removal() {
    let s = json!({"o": {"k": {"x": 1}, "j": 2}});
    let remote = json!([{"op": "remove", "path": "/o/k"}]);

    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "/o/k", "value": 5}]),
        remote.clone(),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    assert_eq!(r.after_remote, json!({"o": {"j": 2}}));
    assert_eq!(r.after_local, r.after_remote);

    // ClientWins: the replace of a removed member becomes an add.
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "replace", "path": "/o/k", "value": 5}]),
        remote.clone(),
    );
    assert_eq!(
        r.t.local,
        vec![op(OpKind::Add, &["o", "k"], Some(json!(5)), false)]
    );
    assert_eq!(r.after_remote, json!({"o": {"k": 5, "j": 2}}));
    assert_eq!(r.after_local, r.after_remote);

    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "add", "path": "/o/k/y", "value": 2}]),
        remote.clone(),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::ParentRemoved]);
    assert!(r.t.local.is_empty());
    assert_eq!(r.after_local, r.after_remote);

    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "replace", "path": "/o", "value": {"fresh": true}}]),
        remote,
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert_eq!(r.after_remote, json!({"o": {"fresh": true}}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn numeric_looking_object_keys_are_not_shifted() {
    let s = json!({"o": {"0": "a", "1": "b", "2": "c"}, "arr": ["a", "b", "c"]});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "/o/1", "value": "L"}, {"op": "replace", "path": "/arr/1", "value": "L"}]),
        json!([{"op": "remove", "path": "/o/0"}, {"op": "remove", "path": "/arr/0"}]),
    );
    assert!(r.t.conflicts.is_empty());
    assert_eq!(r.t.local[0].path, vec!["o", "1"]);
    assert_eq!(r.t.local[1].path, vec!["arr", "0"]);
    assert_eq!(
        r.after_remote,
        json!({"o": {"1": "L", "2": "c"}, "arr": ["L", "c"]})
    );
    assert_eq!(r.after_local, r.after_remote);
}

// ---------------------------------------------------------------- root

#[test]
fn root_is_an_ancestor_of_everything() {
    let s = json!({"a": 1});
    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "replace", "path": "", "value": {"whole": "local"}}]),
        json!([{"op": "add", "path": "/b", "value": 2}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::AncestorOverwrite]);
    assert_eq!(r.after_remote, json!({"whole": "local"}));
    assert_eq!(r.after_local, r.after_remote);

    let r = run(
        ConflictPolicy::ClientWins,
        &s,
        json!([{"op": "add", "path": "/b", "value": 2}]),
        json!([{"op": "replace", "path": "", "value": {"whole": "remote"}}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::ParentReplaced]);
    assert_eq!(r.after_remote, json!({"whole": "remote"}));
    assert_eq!(r.after_local, r.after_remote);

    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "", "value": "local"}]),
        json!([{"op": "add", "path": "", "value": "remote"}]),
    );
    assert_eq!(kinds(&r.t), vec![ConflictKind::SamePath]);
    assert_eq!(r.after_remote, json!("remote"));
    assert_eq!(r.after_local, r.after_remote);
}

// ---------------------------------------------------------------- test ops

#[test]
fn tests_touched_by_the_remote_invalidate_the_edit() {
    let s = json!({"o": {"k": {"x": 1}}, "arr": [1, 2, 3]});
    for (test_path, remote) in [
        // at the tested location
        (
            "/o/k",
            json!([{"op": "replace", "path": "/o/k", "value": 0}]),
        ),
        // under it
        ("/o/k", json!([{"op": "add", "path": "/o/k/y", "value": 0}])),
        // above it
        ("/o/k/x", json!([{"op": "remove", "path": "/o"}])),
        // an insertion into the tested array
        ("/arr", json!([{"op": "add", "path": "/arr/0", "value": 0}])),
        // the tested element is removed
        ("/arr/1", json!([{"op": "remove", "path": "/arr/1"}])),
        // the root
        (
            "/o/k/x",
            json!([{"op": "replace", "path": "", "value": {}}]),
        ),
    ] {
        let tested = s.pointer(test_path).unwrap().clone();
        let local = json!([
            {"op": "test", "path": test_path, "value": tested},
            {"op": "add", "path": "/new", "value": 1},
        ]);
        let r = run(ConflictPolicy::ClientWins, &s, local, remote.clone());
        assert!(r.t.invalidated, "{test_path} {remote}");
        assert_eq!(kinds(&r.t)[0], ConflictKind::TestInvalidated);
        assert!(r.t.local.iter().all(|o| o.kind != OpKind::Test));
    }
}

#[test]
fn tests_elsewhere_are_carried_and_shifted() {
    let s = json!({"o": {"k": 1, "j": 2}, "arr": [1, 2, 3]});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([
            {"op": "test", "path": "/o/k", "value": 1},
            {"op": "test", "path": "/arr/2", "value": 3},
            {"op": "replace", "path": "/o/k", "value": 10},
        ]),
        json!([
            {"op": "replace", "path": "/o/j", "value": 20},
            {"op": "add", "path": "/arr/1", "value": "r"},
        ]),
    );
    assert!(!r.t.invalidated);
    assert!(r.t.conflicts.is_empty());
    assert_eq!(
        r.t.local[1],
        op(OpKind::Test, &["arr", "3"], Some(json!(3)), true)
    );
    assert_eq!(
        r.after_remote,
        json!({"o": {"k": 10, "j": 20}, "arr": [1, "r", 2, 3]})
    );
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn remote_tests_change_nothing() {
    let s = json!({"a": 1});
    let r = run(
        ConflictPolicy::ServerWins,
        &s,
        json!([{"op": "replace", "path": "/a", "value": 2}]),
        json!([{"op": "test", "path": "/a", "value": 1}]),
    );
    assert!(r.t.conflicts.is_empty());
    assert!(r.t.remote.is_empty());
    assert_eq!(r.after_remote, json!({"a": 2}));
}

// ---------------------------------------------------------------- policies

#[test]
fn custom_policy_is_asked_for_resolvable_conflicts_only() {
    let seen: Arc<Mutex<Vec<(ConflictKind, String)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let policy = ConflictPolicy::Custom(Arc::new(move |c: &Conflict| {
        log.lock().unwrap().push((c.kind, c.path.clone()));
        match c.local.value.as_ref().zip(c.remote.value.as_ref()) {
            Some((Value::Number(l), Value::Number(r))) => {
                Resolution::Value(json!(l.as_i64().unwrap_or(0) + r.as_i64().unwrap_or(0)))
            }
            _ => Resolution::KeepLocal,
        }
    }));
    let s = json!({"count": 1, "o": {"x": {"y": 1}}, "p": {"q": 1}});
    let r = run(
        policy,
        &s,
        json!([
            {"op": "replace", "path": "/count", "value": 5},
            {"op": "replace", "path": "/o/x/y", "value": 2},
            {"op": "replace", "path": "/p", "value": "local"},
        ]),
        json!([
            {"op": "replace", "path": "/count", "value": 7},
            {"op": "remove", "path": "/o/x"},
            {"op": "add", "path": "/p/r", "value": 1},
        ]),
    );
    assert_eq!(
        kinds(&r.t),
        vec![
            ConflictKind::SamePath,
            ConflictKind::ParentRemoved,
            ConflictKind::AncestorOverwrite
        ]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (ConflictKind::SamePath, "/count".to_owned()),
            (ConflictKind::AncestorOverwrite, "/p".to_owned()),
        ]
    );
    assert_eq!(r.after_remote, json!({"count": 12, "o": {}, "p": "local"}));
    assert_eq!(r.after_local, r.after_remote);
}

#[test]
fn resolution_value_sets_both_sides() {
    let s = json!({"k": 1, "arr": [1, 2]});
    let policy = ConflictPolicy::Custom(Arc::new(|_| Resolution::Value(json!("merged"))));
    for (local, remote) in [
        (
            json!([{"op": "remove", "path": "/k"}]),
            json!([{"op": "replace", "path": "/k", "value": 3}]),
        ),
        (
            json!([{"op": "replace", "path": "/k", "value": 3}]),
            json!([{"op": "remove", "path": "/k"}]),
        ),
        (
            json!([{"op": "replace", "path": "/arr/0", "value": 3}]),
            json!([{"op": "remove", "path": "/arr/0"}]),
        ),
        (
            json!([{"op": "remove", "path": "/arr"}]),
            json!([{"op": "add", "path": "/arr/0", "value": 0}]),
        ),
    ] {
        let r = run(policy.clone(), &s, local.clone(), remote);
        assert_eq!(r.t.conflicts.len(), 1, "{local}");
        assert_eq!(r.after_local, r.after_remote, "{local}");
        let loc = r.t.conflicts[0].path.clone();
        assert_eq!(r.after_remote.pointer(&loc), Some(&json!("merged")));
    }
}

#[test]
fn policy_debug_and_default() {
    assert_eq!(format!("{:?}", ConflictPolicy::default()), "ServerWins");
    assert_eq!(format!("{:?}", ConflictPolicy::ClientWins), "ClientWins");
    let custom = ConflictPolicy::Custom(Arc::new(|_| Resolution::KeepRemote));
    assert_eq!(format!("{custom:?}"), "Custom(<closure>)");
    assert!(format!("{:?}", ConflictResolver::new(custom)).contains("Custom"));
}

// ---------------------------------------------------------------- rebase chains

#[test]
fn rebase_chains_remote_over_each_edit() {
    let s = json!({"arr": ["a", "b"], "title": "t"});
    let e1 = sh(&s, json!([{"op": "add", "path": "/arr/0", "value": "L1"}]));
    let s1 = apply(&s, &e1);
    let e2 = sh(
        &s1,
        json!([{"op": "replace", "path": "/arr/2", "value": "B"}]),
    );
    let s2 = apply(&s1, &e2);
    let remote = sh(
        &s,
        json!([{"op": "add", "path": "/arr/0", "value": "R"}, {"op": "remove", "path": "/arr/2"}]),
    );
    let resolver = ConflictResolver::default();
    let rebased = resolver.rebase(&[e1.clone(), e2.clone()], &remote);
    assert_eq!(rebased.edits.len(), 2);
    // The remote removed "b", which e2 replaced: a conflict in edit 1, ServerWins drops it.
    assert_eq!(rebased.conflicts.len(), 1);
    assert_eq!(rebased.conflicts[0].0, 1);
    assert_eq!(rebased.conflicts[0].1.kind, ConflictKind::SamePath);
    let view = apply(
        &apply(&apply(&s, &remote), &rebased.edits[0]),
        &rebased.edits[1],
    );
    assert_eq!(view, json!({"arr": ["R", "L1", "a"], "title": "t"}));

    // Same as transforming step by step.
    let t1 = resolver.transform(&e1, &remote);
    let t2 = resolver.transform(&e2, &t1.remote);
    assert_eq!(rebased.edits, vec![t1.local, t2.local]);
    // And the remote continued over both edits converges.
    assert_eq!(apply(&s2, &t2.remote), view);
}

#[test]
fn rebase_remote_continuation_follows_the_resolution() {
    let s = json!({"x": 0});
    let e1 = sh(&s, json!([{"op": "replace", "path": "/x", "value": 1}]));
    let e2 = sh(
        &apply(&s, &e1),
        json!([{"op": "add", "path": "/y", "value": 2}]),
    );
    let remote = sh(&s, json!([{"op": "replace", "path": "/x", "value": 9}]));

    // ServerWins: b' still sets /x, so e2 (elsewhere) is untouched and the view has /x = 9.
    let rebased = ConflictResolver::default().rebase(&[e1.clone(), e2.clone()], &remote);
    assert!(rebased.edits[0].is_empty());
    let base = apply(&s, &remote);
    let view = apply(&apply(&base, &rebased.edits[0]), &rebased.edits[1]);
    assert_eq!(view, json!({"x": 9, "y": 2}));

    // ClientWins: b' drops the remote /x, later edits see no remote change at all.
    let t = ConflictResolver::new(ConflictPolicy::ClientWins).transform(&e1, &remote);
    assert!(t.remote.is_empty());
    let rebased = ConflictResolver::new(ConflictPolicy::ClientWins).rebase(&[e1, e2], &remote);
    let view = apply(&apply(&base, &rebased.edits[0]), &rebased.edits[1]);
    assert_eq!(view, json!({"x": 1, "y": 2}));
}

#[test]
fn rebase_reports_invalidated_edits() {
    let s = json!({"v": 1, "w": 1});
    let e0 = sh(&s, json!([{"op": "replace", "path": "/w", "value": 2}]));
    let e1 = sh(
        &apply(&s, &e0),
        json!([{"op": "test", "path": "/v", "value": 1}, {"op": "replace", "path": "/v", "value": 2}]),
    );
    let remote = sh(&s, json!([{"op": "replace", "path": "/v", "value": 5}]));
    let rebased = ConflictResolver::new(ConflictPolicy::ClientWins).rebase(&[e0, e1], &remote);
    assert_eq!(rebased.invalidated, vec![1]);
    assert_eq!(
        rebased
            .conflicts
            .iter()
            .map(|(k, c)| (*k, c.kind))
            .collect::<Vec<_>>(),
        vec![
            (1, ConflictKind::TestInvalidated),
            (1, ConflictKind::SamePath)
        ]
    );
    assert!(rebased.edits[1].iter().all(|o| o.kind != OpKind::Test));
}

#[test]
fn garbage_shaped_ops_do_not_panic() {
    let weird = vec![
        op(OpKind::Add, &[], Some(json!(1)), true),
        op(OpKind::Remove, &["a", "not-a-number"], None, true),
        op(OpKind::Add, &["a", "18446744073709551615"], None, true),
        op(OpKind::Replace, &["a", "01"], None, true),
        op(OpKind::Test, &[], None, false),
    ];
    for policy in [ConflictPolicy::ServerWins, ConflictPolicy::ClientWins] {
        let resolver = ConflictResolver::new(policy);
        for a in &weird {
            for b in &weird {
                let _ = resolver.transform(std::slice::from_ref(a), std::slice::from_ref(b));
            }
        }
        let _ = resolver.rebase(&[weird.clone(), weird.clone()], &weird);
    }
}
