//! The ordering rules of [`super::order_submit`] and [`super::order_change`].

use super::*;
use crate::server::MemoryLog;
use serde_json::json;

fn stamp() -> impl FnMut(u64) -> (String, String) {
    |seq| (format!("ev{seq}"), "2026-01-01T00:00:00Z".to_string())
}

fn edit(client_seq: u64, base_seq: u64, operation: Operation, patch: Value) -> Edit {
    Edit {
        client_seq,
        base_seq,
        operation,
        patch: serde_json::from_value(patch).unwrap(),
        shape: None,
    }
}

fn create() -> Edit {
    edit(
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"n": 0}}]),
    )
}

fn set_n(client_seq: u64, base_seq: u64, n: i64) -> Edit {
    edit(
        client_seq,
        base_seq,
        Operation::Update,
        json!([{"op": "replace", "path": "/n", "value": n}]),
    )
}

#[test]
fn orders_acks_and_numbers_without_gaps() {
    let mut log = MemoryLog::new("doc");
    let out = log.submit("a", &[create(), set_n(2, 0, 5)], &mut stamp());
    assert_eq!(out.rejection, None);
    assert_eq!(
        out.acks.iter().map(|a| a.sequence_num).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(log.document(), Some(&json!({"n": 5})));
    assert!(log.events()[1].vector_clock.is_empty());
    assert_eq!(log.head_vector().get("a"), 2);
    assert_eq!(log.events()[1].client_seq, Some(2));
}

#[test]
fn resends_are_acked_with_the_original_sequence_and_not_applied() {
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    log.submit("b", &[set_n(1, 1, 7)], &mut stamp());
    let out = log.submit("a", &[create()], &mut stamp());
    assert_eq!(
        out.acks,
        vec![Ack {
            client_seq: 1,
            sequence_num: 1,
            duplicate: true
        }]
    );
    assert!(out.events.is_empty());
    assert_eq!(log.head_seq(), 2);
    assert_eq!(log.document(), Some(&json!({"n": 7})));
}

#[test]
fn stale_edits_are_refused_but_own_earlier_edits_of_the_submit_are_not_stale() {
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    // a's edit 2 was ordered on an earlier connection; the resend of [2, 3] is fine.
    log.submit("a", &[set_n(2, 1, 2)], &mut stamp());
    let out = log.submit("a", &[set_n(2, 1, 2), set_n(3, 1, 3)], &mut stamp());
    assert_eq!(out.rejection, None);
    assert_eq!(log.document(), Some(&json!({"n": 3})));
    // b edits against seq 1 while a's edits followed: stale.
    let out = log.submit("b", &[set_n(1, 1, 9)], &mut stamp());
    let rejection = out.rejection.unwrap();
    assert_eq!(rejection.code, ErrorCode::StaleBase);
    assert_eq!(rejection.head_seq, 3);
    assert_eq!(log.head_seq(), 3);
}

/// An edit of `n` insertions at the front of `/list`, with its shape, so that a server may
/// transform it.
fn inserts(client_seq: u64, base_seq: u64, n: usize) -> Edit {
    let ops: Vec<Value> = (0..n)
        .map(|i| json!({"op": "add", "path": "/list/0", "value": i}))
        .collect();
    Edit {
        shape: Some(vec![true; n]),
        ..edit(client_seq, base_seq, Operation::Update, Value::Array(ops))
    }
}

#[test]
fn stale_submits_too_costly_to_transform_are_refused_stale() {
    let mut log = MemoryLog::new("doc");
    let list = edit(
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"list": []}}]),
    );
    log.submit("a", &[list], &mut stamp());
    log.submit("b", &[inserts(1, 1, 1100)], &mut stamp());
    // 1000 x 1100 op pairs: over the bound, so refused, and nothing is applied.
    let out = log.submit("a", &[inserts(2, 1, 1000)], &mut stamp());
    const { assert!(1000 * 1100 > MAX_TRANSFORM_PAIRS) };
    assert_eq!(out.rejection.unwrap().code, ErrorCode::StaleBase);
    assert_eq!(log.head_seq(), 2);
    // A small stale edit over the same events is transformed and ordered.
    let out = log.submit("a", &[inserts(2, 1, 2)], &mut stamp());
    assert_eq!(out.rejection, None);
    assert_eq!(log.head_seq(), 3);
    assert_eq!(
        log.document().unwrap()["list"].as_array().unwrap().len(),
        1102
    );
}

#[test]
fn a_copy_bomb_is_refused_too_large_and_changes_nothing() {
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    let bomb: Vec<Value> = (0..64)
        .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
        .collect();
    let out = log.submit(
        "a",
        &[edit(2, 1, Operation::Update, Value::Array(bomb))],
        &mut stamp(),
    );
    let rejection = out.rejection.unwrap();
    assert_eq!(rejection.code, ErrorCode::TooLarge, "{}", rejection.message);
    assert_eq!(log.document(), Some(&json!({"n": 0})));
    assert_eq!(log.head_seq(), 1);
}

#[test]
fn edits_that_would_leave_a_null_document_are_refused() {
    // Every client refuses such an event: accepting it would stop the document for all.
    let mut log = MemoryLog::new("doc");
    for (client_seq, patch) in [
        (1, json!([])),
        (2, json!([{"op": "test", "path": "", "value": null}])),
    ] {
        let out = log.submit(
            "a",
            &[edit(client_seq, 0, Operation::Create, patch)],
            &mut stamp(),
        );
        assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidPatch);
        assert_eq!(log.head_seq(), 0);
    }
    let doc = json!([{"op": "add", "path": "", "value": {"x": null}}]);
    log.submit("a", &[edit(3, 0, Operation::Create, doc)], &mut stamp());
    for (client_seq, op) in [(4, "move"), (5, "copy")] {
        let patch = json!([{"op": op, "from": "/x", "path": ""}]);
        let out = log.submit(
            "a",
            &[edit(client_seq, 1, Operation::Update, patch)],
            &mut stamp(),
        );
        assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidPatch, "{op}");
    }
    assert_eq!(log.document(), Some(&json!({"x": null})));
    assert_eq!(log.head_seq(), 1);
}

#[test]
fn a_rejection_stops_the_rest_of_the_submit() {
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    let bad = edit(
        3,
        1,
        Operation::Update,
        json!([{"op": "remove", "path": "/nope"}]),
    );
    let out = log.submit("a", &[set_n(2, 1, 1), bad, set_n(4, 1, 4)], &mut stamp());
    assert_eq!(out.acks.len(), 1);
    let rejection = out.rejection.unwrap();
    assert_eq!(
        (rejection.client_seq, rejection.code),
        (3, ErrorCode::InvalidPatch)
    );
    assert_eq!(log.document(), Some(&json!({"n": 1})));
    assert_eq!(log.head_seq(), 2);
}

#[test]
fn document_state_and_sequence_errors() {
    let mut log = MemoryLog::new("doc");
    let out = log.submit("a", &[set_n(1, 0, 1)], &mut stamp());
    assert_eq!(out.rejection.unwrap().code, ErrorCode::DocumentState);
    let out = log.submit("a", &[set_n(1, 5, 1)], &mut stamp());
    assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidSequence);
    log.submit("a", &[create()], &mut stamp());
    let out = log.submit(
        "b",
        &[edit(1, 1, Operation::Create, json!([]))],
        &mut stamp(),
    );
    assert_eq!(out.rejection.unwrap().code, ErrorCode::DocumentState);
    let out = log.submit(
        "a",
        &[edit(2, 1, Operation::Delete, json!([]))],
        &mut stamp(),
    );
    assert!(out.rejection.is_none());
    assert_eq!(log.document(), None);
    assert_eq!(log.events()[1].operation, Operation::Delete);
}

#[test]
fn server_changes_are_ordered_without_client_seq() {
    let mut log = MemoryLog::new("doc");
    let (op, patch) = change_between(None, Some(&json!({"a": 1})));
    let OrderedChange {
        event,
        document: doc,
        ..
    } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
    assert_eq!(event.operation, Operation::Create);
    assert_eq!((event.sequence_num, event.client_seq), (1, None));
    log.append(&[event], doc);
    let (op, patch) = change_between(log.document(), Some(&json!({"a": 2, "b": [1]})));
    let OrderedChange {
        event,
        document: doc,
        ..
    } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
    assert!(event.vector_clock.is_empty());
    assert_eq!(doc, Some(json!({"a": 2, "b": [1]})));
    log.append(&[event], doc);
    let (op, patch) = change_between(log.document(), None);
    let OrderedChange {
        event,
        document: doc,
        ..
    } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
    assert_eq!((event.operation, doc), (Operation::Delete, None));
    log.append(&[event], None);
    let bad: Vec<json_patch::PatchOperation> =
        serde_json::from_value(json!([{"op": "remove", "path": "/x"}])).unwrap();
    let err = order_change(&log, "server", Operation::Update, bad, &mut stamp()).unwrap_err();
    assert_eq!(err.0, ErrorCode::DocumentState);
}

#[test]
fn without_write_rights_resends_are_acked_and_new_edits_forbidden() {
    // 8.3: the exactly-once and staleness checks come before the permission (step 4).
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    log.submit("a", &[set_n(2, 1, 2)], &mut stamp());
    let out = order_submit(
        &log,
        "a",
        &[set_n(2, 1, 2), set_n(3, 1, 3)],
        false,
        &mut stamp(),
    );
    assert_eq!(out.acks.len(), 1);
    assert!(out.acks[0].duplicate);
    let rejection = out.rejection.unwrap();
    assert_eq!(
        (rejection.client_seq, rejection.code),
        (3, ErrorCode::Forbidden)
    );
    // A stale edit is refused stale first: the client catches up, then learns it may not write.
    let out = order_submit(&log, "b", &[set_n(1, 1, 9)], false, &mut stamp());
    assert_eq!(out.rejection.unwrap().code, ErrorCode::StaleBase);
    assert!(out.events.is_empty());
}

#[test]
fn integers_javascript_cannot_hold_are_refused_too_large() {
    let mut log = MemoryLog::new("doc");
    log.submit("a", &[create()], &mut stamp());
    for (client_seq, value) in [
        (2, json!(9007199254740992u64)),
        (3, json!({"deep": [-9007199254740992i64]})),
        (4, json!(u64::MAX)),
    ] {
        let patch = json!([{"op": "add", "path": "/big", "value": value}]);
        let out = log.submit(
            "a",
            &[edit(client_seq, 1, Operation::Update, patch)],
            &mut stamp(),
        );
        let rejection = out.rejection.unwrap();
        assert_eq!(rejection.code, ErrorCode::TooLarge, "{value}");
        assert!(
            rejection.message.contains("string"),
            "{}",
            rejection.message
        );
    }
    // The largest safe integers, and doubles of any size, are fine.
    let patch = json!([{"op": "add", "path": "/ok", "value": [9007199254740991u64, -9007199254740991i64, 1e300, 0.5]}]);
    let out = log.submit("a", &[edit(5, 1, Operation::Update, patch)], &mut stamp());
    assert_eq!(out.rejection, None);
}
