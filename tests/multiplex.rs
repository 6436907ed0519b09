//! Protocol version 2 end to end in memory: a [`Multiplexer`] with several documents against a
//! [`MemoryServer`], step by step.

use eventsync::multiplex::{MultiplexConfig, Multiplexer, MuxOutput};
use eventsync::sequencer::LogView;
use eventsync::server::{Frame, MemoryServer};
use eventsync::session::{SessionConfig, SessionEvent, SyncSession};
use serde_json::{json, Value};

/// A client with its connection to the server.
struct Client {
    mux: Multiplexer,
    connection: Option<usize>,
    events: Vec<(Option<String>, SessionEvent)>,
    persisted: Vec<String>,
}

impl Client {
    fn new(id: &str, documents: &[&str]) -> Self {
        let mut mux = Multiplexer::new(MultiplexConfig::new(id));
        for doc in documents {
            mux.add(0, SyncSession::new(SessionConfig::new(*doc, id)));
        }
        Client {
            mux,
            connection: None,
            events: Vec::new(),
            persisted: Vec::new(),
        }
    }

    fn connect(&mut self, server: &mut MemoryServer) {
        self.connection = Some(server.connect(0));
        self.mux.handle_connected(0);
    }

    fn document(&self, doc: &str) -> Option<&Value> {
        self.mux.session(doc).and_then(SyncSession::document)
    }

    fn edit(&mut self, doc: &str, patch: Value) -> u64 {
        let patch = serde_json::from_value(patch).unwrap();
        self.mux
            .with_session(doc, |s| s.edit(0, patch))
            .expect("the document is on the connection")
            .expect("the edit applies")
    }
}

/// Delivers frames both ways until nobody has anything to say.
fn run(server: &mut MemoryServer, clients: &mut [&mut Client]) {
    for _ in 0..200 {
        let mut quiet = true;
        for i in 0..clients.len() {
            while let Some(output) = clients[i].mux.poll_output() {
                match output {
                    MuxOutput::Transmit(frame) => {
                        let Some(connection) = clients[i].connection else {
                            continue;
                        };
                        quiet = false;
                        for delivered in server.receive(connection, 0, &frame) {
                            let Frame::Text(to, text) = delivered else {
                                panic!("a connection was closed: {delivered:?}");
                            };
                            let client = clients
                                .iter_mut()
                                .find(|c| c.connection == Some(to))
                                .expect("a client of that connection");
                            client.mux.handle_frame(0, &text);
                        }
                    }
                    MuxOutput::Persist(doc) => clients[i].persisted.push(doc),
                    MuxOutput::Event(doc, event) => clients[i].events.push((doc, event)),
                    MuxOutput::Close { reason, .. } => panic!("closed: {reason}"),
                }
            }
        }
        if quiet {
            return;
        }
    }
    panic!("the exchange did not settle");
}

#[test]
fn several_documents_sync_over_one_connection() {
    let mut server = MemoryServer::new();
    let mut alice = Client::new("alice", &["todo", "notes"]);
    // Offline edits of both documents, persisted before anything is sent.
    alice
        .mux
        .with_session("todo", |s| s.create(0, json!({"items": []})))
        .unwrap()
        .unwrap();
    alice
        .mux
        .with_session("notes", |s| s.create(0, json!({"text": "hi"})))
        .unwrap()
        .unwrap();
    alice.edit(
        "todo",
        json!([{"op": "add", "path": "/items/-", "value": "milk"}]),
    );
    run(&mut server, &mut [&mut alice]);
    assert_eq!(alice.persisted, vec!["todo", "notes", "todo"]);
    alice.connect(&mut server);
    run(&mut server, &mut [&mut alice]);
    assert_eq!(server.log("todo").unwrap().head_seq(), 2);
    assert_eq!(server.log("notes").unwrap().head_seq(), 1);
    for doc in ["todo", "notes"] {
        let session = alice.mux.session(doc).unwrap();
        assert_eq!(session.pending_count(), 0, "{doc}");
        assert!(session.is_settled(), "{doc}");
    }

    // Bob opens one of them: he gets it, and then only its live events.
    let mut bob = Client::new("bob", &["todo"]);
    bob.connect(&mut server);
    run(&mut server, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.document("todo"), Some(&json!({"items": ["milk"]})));
    alice.edit(
        "notes",
        json!([{"op": "replace", "path": "/text", "value": "bye"}]),
    );
    bob.edit(
        "todo",
        json!([{"op": "add", "path": "/items/-", "value": "eggs"}]),
    );
    run(&mut server, &mut [&mut alice, &mut bob]);
    assert_eq!(alice.document("todo"), bob.document("todo"));
    assert_eq!(alice.document("notes"), Some(&json!({"text": "bye"})));
    assert!(bob
        .events
        .iter()
        .all(|(doc, _)| doc.as_deref() == Some("todo")));

    // A document added while online is opened at once; one removed is closed.
    bob.mux
        .add(0, SyncSession::new(SessionConfig::new("notes", "bob")));
    let removed = bob.mux.remove(0, "todo").expect("todo was there");
    assert_eq!(removed.document(), alice.document("todo"));
    run(&mut server, &mut [&mut alice, &mut bob]);
    assert_eq!(bob.document("notes"), Some(&json!({"text": "bye"})));
    let before = bob.events.len();
    alice.edit(
        "todo",
        json!([{"op": "add", "path": "/items/-", "value": "tea"}]),
    );
    run(&mut server, &mut [&mut alice, &mut bob]);
    assert_eq!(
        bob.events.len(),
        before,
        "todo's events no longer reach bob"
    );
}
