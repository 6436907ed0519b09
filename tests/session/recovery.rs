//! Faults and edge cases: gaps, lost answers, silent connections, restarts, a server that lost
//! history, rate limits, oversized submits, snapshots that fold edits in.

use super::*;

#[test]
fn a_gap_in_live_events_asks_for_a_resync_by_cursor() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    for i in 0..2 {
        log.submit(
            "bob",
            &[Edit {
                client_seq: i + 1,
                base_seq: 1 + i,
                operation: Operation::Update,
                patch: patch(json!([{"op": "add", "path": "/items/-", "value": i}])),
                shape: None,
            }],
            &mut stamp,
        );
    }
    // Event 2 is lost; event 3 arrives.
    let third = log.events()[2].clone();
    session.handle_message(
        40,
        ServerMessage::Event {
            events: vec![third],
        },
    );
    let d = drain(&mut session, &mut store);
    assert!(matches!(
        d.sent.as_slice(),
        [ClientMessage::Sync { after: Some(1), .. }]
    ));
    pump(&mut session, &mut store, &mut log, 40, d);
    assert_eq!(session.document(), Some(&json!({"items": [0, 1]})));
}

#[test]
fn unanswered_requests_are_resent_and_silent_connections_closed() {
    let mut log = server();
    let mut config = SessionConfig::new("doc", "alice");
    config.request_timeout_ms = 100;
    config.ping_interval_ms = 1_000;
    config.idle_timeout_ms = 5_000;
    let mut session = SyncSession::new(config);
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session
        .edit(
            0,
            patch(json!([{"op": "add", "path": "/items/-", "value": 1}])),
        )
        .unwrap();
    drain(&mut session, &mut store); // the submit is lost
    assert_eq!(session.poll_timeout(), Some(100));
    session.handle_timeout(100);
    let d = drain(&mut session, &mut store);
    assert!(matches!(d.sent.as_slice(), [ClientMessage::Sync { .. }]));
    let events = pump(&mut session, &mut store, &mut log, 100, d);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Acked { .. })));
    assert_eq!(session.pending_count(), 0);
    // Nothing sent since the resend at 100: a ping is due a ping interval later.
    assert_eq!(session.poll_timeout(), Some(1_100));
    session.handle_timeout(1_100);
    assert!(matches!(
        drain(&mut session, &mut store).sent.as_slice(),
        [ClientMessage::Ping { .. }]
    ));
    session.handle_timeout(5_100);
    let d = drain(&mut session, &mut store);
    assert_eq!(d.closed, Some(true));
    assert_eq!(session.status(), ConnectionStatus::Offline);
}

#[test]
fn fatal_errors_close_without_reconnecting_and_bad_frames_are_reported() {
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    session.handle_connected(0);
    drain(&mut session, &mut store);
    session.handle_frame(1, "{not json");
    let d = drain(&mut session, &mut store);
    assert!(matches!(
        d.events.as_slice(),
        [SessionEvent::Error {
            code: Some(ErrorCode::MalformedFrame),
            ..
        }]
    ));
    session.handle_frame(
        2,
        r#"{"type":"error","code":"unauthorized","message":"no token"}"#,
    );
    let d = drain(&mut session, &mut store);
    assert_eq!(d.closed, Some(false));
}

#[test]
fn update_state_vector_is_sent_with_the_next_sync() {
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    session.update_state_vector("bob", 4);
    session.update_state_vector("bob", 2);
    session.handle_connected(0);
    let d = drain(&mut session, &mut store);
    let ClientMessage::Sync { vector_clock, .. } = &d.sent[1] else {
        panic!("expected sync")
    };
    assert_eq!(vector_clock.get("bob"), 4);
    assert_eq!(store.load().unwrap().unwrap().vector_clock.get("bob"), 4);
}

#[test]
fn restored_state_must_match_the_document_and_client() {
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    session.create(0, json!({})).unwrap();
    let saved = session.client_state();
    assert!(SyncSession::restore(SessionConfig::new("other", "alice"), saved.clone()).is_err());
    assert!(SyncSession::restore(SessionConfig::new("doc", "bob"), saved.clone()).is_err());
    let restored = SyncSession::restore(SessionConfig::new("doc", "alice"), saved).unwrap();
    assert_eq!(restored.document(), Some(&json!({})));
    assert_eq!(restored.pending_count(), 1);
}

#[test]
fn a_restart_from_a_file_store_keeps_offline_edits_and_sends_them_once() {
    let dir = std::env::temp_dir().join(format!("eventsync-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("doc.json");
    let _ = std::fs::remove_file(&path);
    let mut log = server();
    {
        let mut store = MemoryStore::new();
        let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
        connect(&mut session, &mut store, &mut log);
        session.handle_disconnected(1);
        session
            .edit(
                2,
                patch(json!([{"op": "add", "path": "/items/-", "value": "offline"}])),
            )
            .unwrap();
        let mut file = eventsync::queue::FileStore::new(&path);
        while let Some(output) = session.poll_output() {
            if let Output::Persist = output {
                file.save(&session.client_state()).unwrap();
            }
        }
        // The process ends here, offline.
    }
    let saved = eventsync::queue::FileStore::new(&path)
        .load()
        .unwrap()
        .unwrap();
    let mut session = SyncSession::restore(SessionConfig::new("doc", "alice"), saved).unwrap();
    assert_eq!(session.document(), Some(&json!({"items": ["offline"]})));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    assert_eq!(log.document(), Some(&json!({"items": ["offline"]})));
    assert_eq!(log.head_seq(), 2);
    assert_eq!(session.pending_count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_server_that_lost_history_is_caught_up_from_scratch_without_dropping_pending_edits() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    for i in 0..2 {
        session
            .edit(
                1,
                patch(json!([{"op": "add", "path": "/items/-", "value": i}])),
            )
            .unwrap();
        let d = drain(&mut session, &mut store);
        pump(&mut session, &mut store, &mut log, 1, d);
    }
    assert_eq!(session.applied_seq(), 3);
    // The server comes back from an older backup: only the create survived.
    session.handle_disconnected(2);
    let mut restored = server();
    session
        .edit(
            3,
            patch(json!([{"op": "add", "path": "/offline", "value": true}])),
        )
        .unwrap();
    drain(&mut session, &mut store);
    let events = connect(&mut session, &mut store, &mut restored);
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::Error {
            code: Some(ErrorCode::InvalidSequence),
            ..
        }
    )));
    assert_eq!(session.pending_count(), 0, "the offline edit was sent");
    assert_eq!(
        restored.document(),
        Some(&json!({"items": [], "offline": true}))
    );
    assert_eq!(session.document(), restored.document());
}

#[test]
fn rate_limited_submits_back_off_before_resending() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session
        .edit(
            100,
            patch(json!([{"op": "add", "path": "/items/-", "value": 1}])),
        )
        .unwrap();
    let d = drain(&mut session, &mut store);
    let ClientMessage::Submit { edits } = &d.sent[0] else {
        panic!("expected a submit")
    };
    session.handle_message(
        110,
        ServerMessage::Reject {
            client_seq: edits[0].client_seq,
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            head_seq: 1,
        },
    );
    assert!(
        drain(&mut session, &mut store).sent.is_empty(),
        "no resend at once"
    );
    assert_eq!(session.poll_timeout(), Some(1_110));
    session.handle_timeout(1_110);
    let d = drain(&mut session, &mut store);
    assert!(matches!(d.sent.as_slice(), [ClientMessage::Submit { .. }]));
    pump(&mut session, &mut store, &mut log, 1_110, d);
    assert_eq!(session.pending_count(), 0);
}

#[test]
fn an_event_that_does_not_apply_is_not_fetched_again_in_a_tight_loop() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    let mut bad = log.events()[0].clone();
    bad.sequence_num = 2;
    bad.operation = Operation::Update;
    bad.diff = Some(eventsync::Diff::from_patch(patch(
        json!([{"op": "remove", "path": "/missing"}]),
    )));
    session.handle_message(200, ServerMessage::Event { events: vec![bad] });
    let d = drain(&mut session, &mut store);
    assert!(d.sent.is_empty(), "no immediate refetch");
    assert!(d
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Error { .. })));
    assert_eq!(session.document(), Some(&json!({"items": []})));
    assert_eq!(session.poll_timeout(), Some(200 + 10_000));
    session.handle_timeout(10_200);
    let d = drain(&mut session, &mut store);
    assert!(matches!(
        d.sent.as_slice(),
        [ClientMessage::Sync { after: Some(1), .. }, ..]
    ));
}

#[test]
fn a_submit_too_large_for_the_server_is_split_and_a_lone_oversized_edit_dropped() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session.handle_disconnected(1);
    for i in 0..4 {
        session
            .edit(
                1,
                patch(json!([{"op": "add", "path": "/items/-", "value": i}])),
            )
            .unwrap();
    }
    session.handle_connected(2);
    let d = drain(&mut session, &mut store);
    let answers = serve(&mut log, "alice", &d.sent[..2]);
    for a in answers {
        session.handle_message(3, a);
    }
    let d = drain(&mut session, &mut store);
    assert!(matches!(&d.sent[..], [ClientMessage::Submit { edits }] if edits.len() == 4));
    let too_large = || ServerMessage::Error {
        code: ErrorCode::TooLarge,
        message: "frame too large".into(),
    };
    session.handle_message(4, too_large());
    let d = drain(&mut session, &mut store);
    assert!(matches!(&d.sent[..], [ClientMessage::Submit { edits }] if edits.len() == 2));
    session.handle_message(5, too_large());
    let d = drain(&mut session, &mut store);
    assert!(
        matches!(&d.sent[..], [ClientMessage::Submit { edits }] if edits.len() == 1),
        "{:?}",
        d.sent
    );
    session.handle_message(6, too_large());
    let d = drain(&mut session, &mut store);
    assert!(d.events.iter().any(|e| matches!(
        e,
        SessionEvent::EditRejected {
            code: ErrorCode::TooLarge,
            ..
        }
    )));
    // The later appends were rebased over the dropped one's undoing and still apply.
    assert_eq!(session.pending_count(), 3);
    assert_eq!(session.document(), Some(&json!({"items": [1, 2, 3]})));
}

#[test]
fn an_edit_folded_into_a_snapshot_leaves_the_queue_on_its_duplicate_ack() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session
        .edit(
            10,
            patch(json!([{"op": "add", "path": "/items/-", "value": "x"}])),
        )
        .unwrap();
    let d = drain(&mut session, &mut store);
    // Ordered as #2, but the answers are lost; then a server write #3.
    let _lost = serve(&mut log, "alice", &d.sent);
    session.handle_disconnected(11);
    drain(&mut session, &mut store);
    let edit = Edit {
        client_seq: 1,
        base_seq: 2,
        operation: Operation::Update,
        patch: patch(json!([{"op": "add", "path": "/items/-", "value": "y"}])),
        shape: None,
    };
    log.submit("bob", &[edit], &mut stamp);
    // The server has compacted #2: the catch-up is a snapshot of #3.
    session.handle_connected(12);
    let d = drain(&mut session, &mut store);
    assert_eq!(d.sent.len(), 2, "hello and sync");
    for message in [
        ServerMessage::Welcome {
            protocol_version: 1,
            document_id: "doc".into(),
            client_id: "alice".into(),
            head_seq: Some(3),
        },
        ServerMessage::Snapshot {
            snapshot: log.snapshot(),
        },
        ServerMessage::Events {
            events: vec![],
            head_seq: Some(3),
            has_more: false,
        },
    ] {
        session.handle_message(12, message);
    }
    assert_eq!(session.applied_seq(), 3);
    assert_eq!(session.pending_count(), 1, "the client cannot tell yet");
    // The resend is answered as a duplicate of #2, which the snapshot holds.
    let d = drain(&mut session, &mut store);
    let events = pump(&mut session, &mut store, &mut log, 12, d);
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::Acked {
            client_seq: 1,
            sequence_num: 2
        }
    )));
    assert_eq!(log.head_seq(), 3, "not ordered twice");
    assert_eq!(session.pending_count(), 0);
    assert!(session.is_settled());
    assert_eq!(session.document(), Some(&json!({"items": ["x", "y"]})));
    assert_eq!(store.load().unwrap().unwrap().pending.len(), 0);
}

#[test]
fn sync_state_during_the_handshake_waits_for_an_answer_given_after_the_call() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    session.handle_connected(0);
    let handshake = drain(&mut session, &mut store);
    // The server answers the handshake's sync at once (head 1)...
    let early_answers = serve(&mut log, "alice", &handshake.sent);
    // ...then bob's edit lands, and only then does the app ask to be in sync.
    log.submit(
        "bob",
        &[Edit {
            client_seq: 1,
            base_seq: 1,
            operation: Operation::Update,
            patch: patch(json!([{"op": "add", "path": "/items/-", "value": "bob"}])),
            shape: None,
        }],
        &mut stamp,
    );
    session.sync_state(0);
    assert!(
        drain(&mut session, &mut store).sent.is_empty(),
        "a sync is in flight already"
    );
    let mut events = Vec::new();
    let mut sent = Vec::new();
    for answer in early_answers {
        session.handle_message(0, answer);
        let d = drain(&mut session, &mut store);
        events.extend(d.events);
        sent.extend(d.sent);
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SessionEvent::Synced { .. })),
        "the early answer predates the call: {events:?}"
    );
    assert!(
        matches!(sent.as_slice(), [ClientMessage::Sync { .. }]),
        "{sent:?}"
    );
    let events = pump(
        &mut session,
        &mut store,
        &mut log,
        0,
        Drained {
            sent,
            ..Drained::default()
        },
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Synced { sequence_num: 2 })),
        "{events:?}"
    );
    assert_eq!(session.document(), Some(&json!({"items": ["bob"]})));
}

#[test]
fn a_local_edit_placing_an_integer_javascript_cannot_hold_fails_at_once() {
    // docs/PROTOCOL.md section 1: the server would refuse it too_large; the client says so now.
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    let before = session.document().cloned();
    let err = session
        .edit(
            1,
            patch(json!([{"op": "add", "path": "/id", "value": 9007199254740993u64}])),
        )
        .unwrap_err();
    assert!(err.to_string().contains("2^53"), "{err}");
    assert_eq!(session.document().cloned(), before);
    assert_eq!(session.pending_count(), 0);
    session
        .edit(
            2,
            patch(json!([{"op": "add", "path": "/id", "value": 9007199254740991u64}])),
        )
        .unwrap();
}

/// Two clients create a new document at once (the demo's first visitors of a new list); bob
/// adds an item before he hears of alice's create. His create loses (reported), and his item
/// is added to her document: it was lost before (its op was under the replaced root).
#[test]
fn an_edit_made_on_a_create_that_lost_goes_into_the_winners_document() {
    let mut log = MemoryLog::new("doc");
    let mut session = SyncSession::new(SessionConfig::new("doc", "bob"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    assert_eq!(session.document(), None);
    session
        .create(1, json!({"items": [], "title": "bob's"}))
        .unwrap();
    let mut made = drain(&mut session, &mut store);
    session
        .edit(
            2,
            patch(json!([
                {"op": "add", "path": "/items/-", "value": "second"},
                {"op": "replace", "path": "/title", "value": "bob's list"}
            ])),
        )
        .unwrap();
    let second = drain(&mut session, &mut store);
    made.sent.extend(second.sent);
    create_as(
        &mut log,
        "alice",
        json!({"items": ["first"], "owner": "alice"}),
    );
    let events = pump(&mut session, &mut store, &mut log, 3, made);

    let expected = json!({"items": ["first", "second"], "owner": "alice"});
    assert_eq!(log.document(), Some(&expected));
    assert_eq!(session.document(), Some(&expected));
    assert_eq!(session.pending_count(), 0);
    // The create lost to alice's, and the title bob set is one alice's document does not have.
    let conflicts: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Conflict {
                client_seq,
                conflict,
            } => Some((*client_seq, conflict.path.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(conflicts, [(1, String::new()), (2, "/title".to_owned())]);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Acked { client_seq: 2, .. })));
}
