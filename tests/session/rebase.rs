//! Edits that reach the server after others: rebased, transformed, refused and resolved.

use super::*;

/// Alice's submit is based on an old head; Bob's edit at `bob_path` was ordered in between.
/// Returns the server's answers to Alice's submit, after delivering Bob's event to her first
/// (as on a real connection) and running the exchange to its end.
fn stale_submit(
    alice_patch: Value,
    bob_patch: Value,
    strip_shape: bool,
) -> (Vec<ServerMessage>, SyncSession, MemoryLog) {
    let mut log = server();
    let mut alice = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut alice, &mut store, &mut log);
    alice.edit(20, patch(alice_patch)).unwrap();
    let mut d = drain(&mut alice, &mut store);
    if strip_shape {
        for message in &mut d.sent {
            if let ClientMessage::Submit { edits } = message {
                edits.iter_mut().for_each(|e| e.shape = None);
            }
        }
    }
    log.submit(
        "bob",
        &[Edit {
            client_seq: 1,
            base_seq: 1,
            operation: Operation::Update,
            patch: patch(bob_patch),
            shape: None,
        }],
        &mut stamp,
    );
    let bob_event = log.events()[1].clone();
    let answers = serve(&mut log, "alice", &d.sent);
    alice.handle_message(
        21,
        ServerMessage::Event {
            events: vec![bob_event],
        },
    );
    let mut first = drain(&mut alice, &mut store);
    for a in answers.clone() {
        alice.handle_message(21, a);
        let d = drain(&mut alice, &mut store);
        first.events.extend(d.events);
        first.sent.extend(d.sent);
    }
    pump(&mut alice, &mut store, &mut log, 21, first);
    (answers, alice, log)
}

#[test]
fn a_stale_submit_is_transformed_by_the_server_like_the_client_rebases_it() {
    let (answers, alice, log) = stale_submit(
        json!([{"op": "add", "path": "/items/0", "value": "alice"}]),
        json!([{"op": "add", "path": "/items/0", "value": "bob"}]),
        false,
    );
    assert!(
        answers
            .iter()
            .any(|a| matches!(a, ServerMessage::Ack { .. })),
        "accepted at once: {answers:?}"
    );
    assert_eq!(log.document(), Some(&json!({"items": ["bob", "alice"]})));
    assert_eq!(alice.document(), log.document());
    assert_eq!(alice.pending_count(), 0);
    assert_eq!(log.head_seq(), 3);
}

#[test]
fn a_stale_submit_without_shape_is_refused_then_rebased_and_resent() {
    let (answers, alice, log) = stale_submit(
        json!([{"op": "add", "path": "/items/0", "value": "alice"}]),
        json!([{"op": "add", "path": "/items/0", "value": "bob"}]),
        true,
    );
    // Bob's event came first: it precedes the reject (8.2).
    assert!(
        matches!(answers[0], ServerMessage::Event { .. }),
        "{answers:?}"
    );
    assert!(matches!(
        answers[1],
        ServerMessage::Reject {
            code: ErrorCode::StaleBase,
            ..
        }
    ));
    assert_eq!(log.document(), Some(&json!({"items": ["bob", "alice"]})));
    assert_eq!(alice.document(), log.document());
    assert_eq!(alice.pending_count(), 0);
}

#[test]
fn a_stale_submit_that_truly_conflicts_is_refused_and_resolved_by_the_client_policy() {
    let (answers, alice, log) = stale_submit(
        json!([{"op": "add", "path": "/title", "value": "alice"}]),
        json!([{"op": "add", "path": "/title", "value": "bob"}]),
        false,
    );
    // Bob's event came first: it precedes the reject (8.2).
    assert!(
        matches!(answers[0], ServerMessage::Event { .. }),
        "{answers:?}"
    );
    assert!(matches!(
        answers[1],
        ServerMessage::Reject {
            code: ErrorCode::Conflict,
            ..
        }
    ));
    // The default policy is server wins: Bob's title stands, Alice's edit became empty.
    assert_eq!(log.document(), Some(&json!({"items": [], "title": "bob"})));
    assert_eq!(alice.document(), log.document());
    assert_eq!(alice.pending_count(), 0);
}

#[test]
fn a_permanently_refused_edit_is_dropped_and_reported() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session.handle_message(
        30,
        ServerMessage::Reject {
            client_seq: 99,
            code: ErrorCode::InvalidPatch,
            message: "not ours".into(),
            head_seq: 1,
        },
    );
    session
        .edit(
            30,
            patch(json!([{"op": "add", "path": "/items/-", "value": 1}])),
        )
        .unwrap();
    let d = drain(&mut session, &mut store);
    let ClientMessage::Submit { edits } = &d.sent[0] else {
        panic!("expected a submit")
    };
    let client_seq = edits[0].client_seq;
    session.handle_message(
        31,
        ServerMessage::Reject {
            client_seq,
            code: ErrorCode::InvalidPatch,
            message: "no".into(),
            head_seq: 1,
        },
    );
    let d = drain(&mut session, &mut store);
    assert!(d.events.iter().any(|e| matches!(
        e,
        SessionEvent::EditRejected {
            code: ErrorCode::InvalidPatch,
            ..
        }
    )));
    assert_eq!(session.pending_count(), 0);
    assert_eq!(session.document(), Some(&json!({"items": []})));
}
