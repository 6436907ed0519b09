//! The client state machine step by step, against a server built from the same core.

use eventsync::protocol::{ClientMessage, Edit, ErrorCode, Operation, ServerMessage};
use eventsync::queue::{MemoryStore, Store};
use eventsync::sequencer::LogView;
use eventsync::server::{Delivery, MemoryLog};
use eventsync::session::{ConnectionStatus, Output, SessionConfig, SessionEvent, SyncSession};
use serde_json::{json, Value};

fn stamp(seq: u64) -> (String, String) {
    (format!("e{seq}"), "2026-01-01T00:00:00Z".into())
}

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).unwrap()
}

/// A server log with a created document `{"items": []}` at sequenceNum 1.
fn server() -> MemoryLog {
    let mut log = MemoryLog::new("doc");
    create_as(&mut log, "server", json!({"items": []}));
    log
}

/// `client`'s create of `document` (its first edit) ordered in `log`.
fn create_as(log: &mut MemoryLog, client: &str, document: Value) {
    log.submit(
        client,
        &[Edit {
            client_seq: 1,
            base_seq: 0,
            operation: Operation::Create,
            patch: patch(json!([{"op": "add", "path": "", "value": document}])),
            shape: None,
        }],
        &mut stamp,
    );
}

#[derive(Default)]
struct Drained {
    sent: Vec<ClientMessage>,
    events: Vec<SessionEvent>,
    persisted_before_send: bool,
    closed: Option<bool>,
}

fn drain(session: &mut SyncSession, store: &mut MemoryStore) -> Drained {
    let mut d = Drained::default();
    let mut persisted = false;
    while let Some(output) = session.poll_output() {
        match output {
            Output::Persist => {
                store.save(&session.client_state()).unwrap();
                persisted = true;
            }
            Output::Transmit(m) => {
                if matches!(m, ClientMessage::Submit { .. }) {
                    d.persisted_before_send = persisted;
                }
                d.sent.push(m)
            }
            Output::Event(e) => d.events.push(e),
            Output::Close { reconnect, .. } => d.closed = Some(reconnect),
        }
    }
    // A driver saves what could wait when it suits it; these tests do it at once.
    if session.needs_save() {
        store.save(&session.client_state()).unwrap();
        session.mark_saved();
    }
    d
}

/// Answers what the client sent like a server would: a `hello` opens a new connection, anything
/// else goes to the client's latest one (opened with a `hello` when it has none).
fn serve(log: &mut MemoryLog, client: &str, sent: &[ClientMessage]) -> Vec<ServerMessage> {
    let mut out = Vec::new();
    for message in sent {
        let latest = log
            .connections()
            .filter(|c| log.client_of(*c) == Some(client))
            .last();
        let connection = match (message, latest) {
            (ClientMessage::Hello { .. }, _) | (_, None) => {
                let connection = log.connect(0);
                if !matches!(message, ClientMessage::Hello { .. }) {
                    let hello = ClientMessage::Hello {
                        protocol_versions: vec![1],
                        client_id: client.into(),
                        token: None,
                    };
                    log.receive_message(connection, 0, &hello);
                }
                connection
            }
            (_, Some(connection)) => connection,
        };
        out.extend(
            log.receive_message(connection, 0, message)
                .into_iter()
                .filter_map(|delivery| match delivery {
                    Delivery::Message(to, message) if to == connection => Some(message),
                    _ => None,
                }),
        );
    }
    out
}

/// Runs the client against the log until nothing more is sent.
fn pump(
    session: &mut SyncSession,
    store: &mut MemoryStore,
    log: &mut MemoryLog,
    now: u64,
    first: Drained,
) -> Vec<SessionEvent> {
    let mut events = first.events;
    let mut sent = first.sent;
    for _ in 0..100 {
        if sent.is_empty() {
            return events;
        }
        let answers = serve(log, &session.config().client_id.clone(), &sent);
        sent.clear();
        for answer in answers {
            session.handle_message(now, answer);
            let d = drain(session, store);
            events.extend(d.events);
            sent.extend(d.sent);
        }
    }
    panic!("the exchange did not settle");
}

fn connect(
    session: &mut SyncSession,
    store: &mut MemoryStore,
    log: &mut MemoryLog,
) -> Vec<SessionEvent> {
    session.handle_connected(0);
    let first = drain(session, store);
    pump(session, store, log, 0, first)
}

#[test]
fn handshake_sends_hello_and_sync_then_catches_up() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    session.handle_connected(0);
    let d = drain(&mut session, &mut store);
    assert!(
        matches!(&d.sent[0], ClientMessage::Hello { client_id, protocol_versions, .. } if client_id == "alice" && protocol_versions == &vec![1])
    );
    assert!(
        matches!(&d.sent[1], ClientMessage::Sync { vector_clock, .. } if vector_clock.is_empty())
    );
    assert_eq!(session.status(), ConnectionStatus::Connecting);
    let events = pump(&mut session, &mut store, &mut log, 0, d);
    assert_eq!(session.status(), ConnectionStatus::Online);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Synced { sequence_num: 1 })));
    assert_eq!(session.document(), Some(&json!({"items": []})));
    assert_eq!(session.state_vector().get("server"), 1);
}

#[test]
fn offline_edits_are_persisted_then_sent_and_leave_the_queue_when_their_event_applies() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session.handle_disconnected(1);
    drain(&mut session, &mut store);
    for i in 0..3 {
        session
            .edit(
                2,
                patch(json!([{"op": "add", "path": "/items/-", "value": i}])),
            )
            .unwrap();
    }
    let d = drain(&mut session, &mut store);
    assert!(d.sent.is_empty(), "offline: nothing is sent");
    assert_eq!(store.load().unwrap().unwrap().pending.len(), 3);
    assert_eq!(session.document(), Some(&json!({"items": [0, 1, 2]})));
    session.handle_connected(3);
    let d = drain(&mut session, &mut store);
    let events = pump(&mut session, &mut store, &mut log, 3, d);
    assert_eq!(session.pending_count(), 0);
    assert_eq!(log.document(), Some(&json!({"items": [0, 1, 2]})));
    assert_eq!(session.confirmed(), log.document());
    let acked = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Acked { .. }))
        .count();
    assert_eq!(acked, 3);
    assert!(store.load().unwrap().unwrap().pending.is_empty());
}

#[test]
fn an_edit_is_persisted_before_it_is_transmitted() {
    let mut log = server();
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    let mut store = MemoryStore::new();
    connect(&mut session, &mut store, &mut log);
    session
        .edit(
            5,
            patch(json!([{"op": "add", "path": "/items/-", "value": 1}])),
        )
        .unwrap();
    let d = drain(&mut session, &mut store);
    assert!(matches!(d.sent[0], ClientMessage::Submit { .. }));
    assert!(d.persisted_before_send);
}

#[test]
fn a_failing_local_edit_changes_nothing() {
    let mut session = SyncSession::new(SessionConfig::new("doc", "alice"));
    assert!(session
        .edit(0, patch(json!([{"op": "add", "path": "/a", "value": 1}])))
        .is_err());
    session.create(0, json!({"a": [1]})).unwrap();
    let before = session.document().cloned();
    let err = session
        .edit(
            0,
            patch(json!([
                {"op": "add", "path": "/a/-", "value": 2},
                {"op": "remove", "path": "/nope"}
            ])),
        )
        .unwrap_err();
    assert!(err.to_string().contains("does not apply"), "{err}");
    assert_eq!(session.document().cloned(), before);
    assert_eq!(session.pending_count(), 1);
    assert!(session.create(0, json!({})).is_err());
}

#[test]
fn resending_after_a_lost_ack_never_applies_twice() {
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
    // The server orders the submit but every answer is lost with the connection.
    let _lost = serve(&mut log, "alice", &d.sent);
    assert_eq!(log.head_seq(), 2);
    session.handle_disconnected(11);
    drain(&mut session, &mut store);
    // A restart from the store, then a reconnect.
    let saved = store.load().unwrap().unwrap();
    assert_eq!(saved.pending.len(), 1);
    let mut session = SyncSession::restore(SessionConfig::new("doc", "alice"), saved).unwrap();
    connect(&mut session, &mut store, &mut log);
    assert_eq!(log.head_seq(), 2, "not ordered twice");
    assert_eq!(session.pending_count(), 0);
    assert_eq!(session.document(), Some(&json!({"items": ["x"]})));
}

mod rebase;
mod recovery;
