//! Grouping and stack rules of [`UndoHistory`].

use serde_json::{json, Value};

use super::*;
use crate::conflict::OpKind;

fn op(path: &str, value: i64) -> Vec<ShapedOp> {
    vec![ShapedOp::new(
        OpKind::Replace,
        &[path],
        Some(json!(value)),
        false,
    )]
}

fn config() -> UndoConfig {
    UndoConfig {
        capture_ms: 500,
        limit: 3,
    }
}

#[test]
fn edits_within_the_capture_time_form_one_step_newest_first() {
    let mut history = UndoHistory::default();
    history.record(0, op("a", 1), &config());
    history.record(400, op("b", 2), &config());
    history.record(800, op("c", 3), &config());
    history.record(1400, op("d", 4), &config());
    let top = history.take_undo().unwrap();
    assert_eq!(top.ops, op("d", 4));
    let first = history.take_undo().unwrap();
    let paths: Vec<&str> = first.ops.iter().map(|o| o.path[0].as_str()).collect();
    assert_eq!(paths, ["c", "b", "a"]);
    assert!(history.take_undo().is_none());
}

#[test]
fn stop_capturing_and_undo_end_a_step() {
    let mut history = UndoHistory::default();
    history.record(0, op("a", 1), &config());
    history.stop_capturing();
    history.record(1, op("b", 2), &config());
    assert_eq!(history.take_undo().unwrap().ops, op("b", 2));
    history.record(2, op("c", 3), &config());
    assert_eq!(history.take_undo().unwrap().ops, op("c", 3));
}

#[test]
fn a_group_is_one_step_whatever_the_time_and_groups_nest() {
    let mut history = UndoHistory::default();
    history.record(0, op("x", 0), &config());
    history.begin_group();
    history.record(10, op("a", 1), &config());
    history.begin_group();
    history.record(5_000, op("b", 2), &config());
    history.end_group();
    history.record(9_000, op("c", 3), &config());
    history.end_group();
    history.record(9_001, op("d", 4), &config());
    assert_eq!(history.take_undo().unwrap().ops, op("d", 4));
    assert_eq!(history.take_undo().unwrap().ops.len(), 3);
    assert_eq!(history.take_undo().unwrap().ops, op("x", 0));
}

#[test]
fn a_new_edit_clears_redo_but_a_redo_does_not() {
    let mut history = UndoHistory::default();
    history.record(0, op("a", 1), &config());
    let step = history.take_undo().unwrap();
    history.undone(step.ops, &config());
    assert!(history.can_redo() && !history.can_undo());
    let step = history.take_redo().unwrap();
    history.redone(step.ops, &config());
    assert!(history.can_undo() && !history.can_redo());
    let step = history.take_undo().unwrap();
    history.undone(step.ops, &config());
    history.record(10_000, op("b", 2), &config());
    assert!(!history.can_redo());
}

#[test]
fn the_oldest_steps_go_beyond_the_limit_and_zero_turns_undo_off() {
    let mut history = UndoHistory::default();
    for i in 0..5 {
        history.stop_capturing();
        history.record(i, op("a", i as i64), &config());
    }
    let kept: Vec<Value> = std::iter::from_fn(|| history.take_undo())
        .map(|s| s.ops[0].value.clone().unwrap())
        .collect();
    assert_eq!(kept, [json!(4), json!(3), json!(2)]);
    let off = UndoConfig {
        capture_ms: 500,
        limit: 0,
    };
    history.record(0, op("a", 1), &off);
    assert!(!history.can_undo());
}

#[test]
fn steps_move_with_remote_insertions_and_vanish_under_remote_removals() {
    let resolver = ConflictResolver::default();
    let mut history = UndoHistory::default();
    // Undo of inserting l/1 is removing l/1; of setting o/k, setting it back.
    history.record(
        0,
        vec![ShapedOp::new(OpKind::Remove, &["l", "1"], None, true)],
        &config(),
    );
    history.stop_capturing();
    history.record(
        1,
        vec![ShapedOp::new(
            OpKind::Replace,
            &["o", "k"],
            Some(json!(1)),
            false,
        )],
        &config(),
    );
    // Someone inserts at l/0, then removes o.
    let insert = [ShapedOp::new(
        OpKind::Add,
        &["l", "0"],
        Some(json!("z")),
        true,
    )];
    assert!(history.carry_over(&resolver, &insert).is_empty());
    let remove = [ShapedOp::new(OpKind::Remove, &["o"], None, false)];
    let conflicts = history.carry_over(&resolver, &remove);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0].1.kind,
        crate::conflict::ConflictKind::ParentRemoved
    );
    let only = history.take_undo().unwrap();
    assert_eq!(only.ops[0].path, ["l", "2"]);
    assert!(history.take_undo().is_none());
}

#[test]
fn a_remote_set_of_the_same_place_is_a_reported_conflict_the_policy_decides() {
    let step = || {
        vec![ShapedOp::new(
            OpKind::Replace,
            &["a"],
            Some(json!(0)),
            false,
        )]
    };
    let remote = [ShapedOp::new(
        OpKind::Replace,
        &["a"],
        Some(json!(9)),
        false,
    )];
    let mut history = UndoHistory::default();
    history.record(0, step(), &config());
    let conflicts = history.carry_over(&ConflictResolver::default(), &remote);
    assert_eq!(conflicts.len(), 1);
    assert!(!conflicts[0].0, "met on the undo stack");
    assert!(!history.can_undo(), "server wins: the remote value stays");
    let mut history = UndoHistory::default();
    history.record(0, step(), &config());
    let client_wins = ConflictResolver::new(crate::conflict::ConflictPolicy::ClientWins);
    assert_eq!(history.carry_over(&client_wins, &remote).len(), 1);
    assert_eq!(history.take_undo().unwrap().ops, step());
}
