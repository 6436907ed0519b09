//! The core on its own: three clients and an in-process server built from the same core.
//!
//! Alice and Bob go offline, both insert at the front of the same list and edit the same field;
//! Carol stays online. When they reconnect, every replica converges to the server's document.
//! Run it with `cargo run --example converge`.

use eventsync::protocol::{Edit, Operation, ServerMessage};
use eventsync::sequencer::LogView;
use eventsync::server::{ConnectionId, Delivery, MemoryLog};
use eventsync::session::{Output, SessionConfig, SessionEvent, SyncSession};
use serde_json::{json, Value};

fn stamp(seq: u64) -> (String, String) {
    (format!("{seq:024x}"), "2026-01-01T00:00:00Z".into())
}

struct Client {
    session: SyncSession,
    /// Its connection to the server, while online.
    connection: Option<ConnectionId>,
}

/// Delivers messages until nobody has anything left to say. Live events go to every online client.
fn run(log: &mut MemoryLog, clients: &mut [Client]) {
    for _ in 0..100 {
        let mut quiet = true;
        for i in 0..clients.len() {
            while let Some(output) = clients[i].session.poll_output() {
                match output {
                    Output::Transmit(message) => {
                        let Some(connection) = clients[i].connection else {
                            continue;
                        };
                        quiet = false;
                        for delivery in log.receive_message(connection, 0, &message) {
                            let Delivery::Message(to, message) = delivery else {
                                continue;
                            };
                            let Some(client) =
                                clients.iter_mut().find(|c| c.connection == Some(to))
                            else {
                                continue;
                            };
                            if let ServerMessage::Reject {
                                client_seq, code, ..
                            } = &message
                            {
                                let id = &client.session.config().client_id;
                                println!("  server refuses {id}'s edit {client_seq} ({code:?}): it will rebase and resend");
                            }
                            client.session.handle_message(0, message);
                        }
                    }
                    Output::Event(SessionEvent::Conflict {
                        client_seq,
                        conflict,
                    }) => {
                        println!(
                            "  {} rebases edit {client_seq}: {:?} at {}",
                            clients[i].session.config().client_id,
                            conflict.kind,
                            conflict.path
                        );
                    }
                    _ => {}
                }
            }
        }
        if quiet {
            return;
        }
    }
}

fn show(clients: &[Client], log: &MemoryLog) {
    for c in clients {
        println!(
            "  {:<6} {}",
            c.session.config().client_id,
            c.session.document().unwrap_or(&Value::Null)
        );
    }
    println!(
        "  server {} (sequenceNum {})",
        log.document().unwrap_or(&Value::Null),
        log.head_seq()
    );
}

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).expect("valid patch")
}

fn main() {
    let mut log = MemoryLog::new("list");
    let create = Edit {
        client_seq: 1,
        base_seq: 0,
        operation: Operation::Create,
        patch: patch(
            json!([{"op": "add", "path": "", "value": {"title": "groceries", "items": ["milk"]}}]),
        ),
        shape: None,
    };
    log.submit("server", &[create], &mut stamp);
    let mut clients: Vec<Client> = ["alice", "bob", "carol"]
        .iter()
        .map(|id| Client {
            session: SyncSession::new(SessionConfig::new("list", *id)),
            connection: None,
        })
        .collect();
    for c in &mut clients {
        c.connection = Some(log.connect(0));
        c.session.handle_connected(0);
    }
    run(&mut log, &mut clients);
    println!("everyone online and caught up:");
    show(&clients, &log);

    for c in &mut clients[..2] {
        if let Some(connection) = c.connection.take() {
            log.disconnect(connection);
        }
        c.session.handle_disconnected(0);
    }
    clients[0]
        .session
        .edit(
            0,
            patch(json!([{"op": "add", "path": "/items/0", "value": "eggs"}])),
        )
        .unwrap();
    clients[0]
        .session
        .edit(
            0,
            patch(json!([{"op": "replace", "path": "/title", "value": "alice's list"}])),
        )
        .unwrap();
    clients[1]
        .session
        .edit(
            0,
            patch(json!([{"op": "add", "path": "/items/0", "value": "bread"}])),
        )
        .unwrap();
    clients[1]
        .session
        .edit(
            0,
            patch(json!([{"op": "replace", "path": "/title", "value": "bob's list"}])),
        )
        .unwrap();
    clients[2]
        .session
        .edit(
            0,
            patch(json!([{"op": "add", "path": "/items/-", "value": "tea"}])),
        )
        .unwrap();
    run(&mut log, &mut clients);
    println!("\nalice and bob edited offline (both inserted at the front, both renamed):");
    show(&clients, &log);

    println!("\nthey reconnect:");
    for c in &mut clients[..2] {
        c.connection = Some(log.connect(0));
        c.session.handle_connected(0);
    }
    run(&mut log, &mut clients);
    show(&clients, &log);
    let converged = clients
        .iter()
        .all(|c| c.session.document() == log.document() && c.session.pending_count() == 0);
    println!("\nconverged: {converged}");
    assert!(converged, "replicas differ from the server");
}
