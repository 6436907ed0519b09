//! [`ConflictResolver::rebase`] over chains of pending edits.

use super::*;

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
