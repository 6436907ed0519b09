//! Every transform rule: independent edits, remote removals and sets, the root, `test` ops,
//! and the policies.

use super::*;

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
