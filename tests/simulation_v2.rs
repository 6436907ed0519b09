//! Deterministic simulation of protocol version 2: 2-6 clients, each with one connection
//! carrying several of 2-4 documents, over a seeded faulty network to a server built from the
//! same core ([`MemoryServer`]).
//!
//! Each scenario runs random local edits on random documents while frames are dropped,
//! duplicated and reordered, connections are cut, clients restart from their stores, and
//! documents are closed and opened again on a live connection. Then the faults stop and the
//! network drains. Per document, every replica must then equal the server's document, the log
//! must be gapless, and every edit a client made must be in the log exactly once or have been
//! reported as rejected. Clients also publish presence all along (18.7); once the faults stop,
//! every connection is cut once (presence relies on the transport losing nothing inside a
//! connection) and each client publishes a last state (or clears it): every client must then see
//! exactly the others' last states on each of its documents.
//!
//! `EVENTSYNC_SIM2_SCENARIOS=N` runs N scenarios (default 300); `EVENTSYNC_SIM2_SEED=S` runs one.

use std::collections::{BTreeMap, BTreeSet};

use eventsync::multiplex::{MultiplexConfig, Multiplexer, MuxOutput};
use eventsync::protocol::{Edit, Operation};
use eventsync::queue::{MemoryStore, Store};
use eventsync::sequencer::LogView;
use eventsync::server::{Frame, MemoryServer};
use eventsync::session::{SessionConfig, SessionEvent, SyncSession};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::{random_patch, Faults, Pipe, NO_FAULTS};

mod sim;

const STEP_MS: u64 = 25;
const FAULT_STEPS: usize = 250;
const QUIET_STEPS: usize = 20_000;

struct Connection {
    to_server: Pipe,
    to_client: Pipe,
}

/// What one client did to one document.
#[derive(Default)]
struct Record {
    made: BTreeSet<u64>,
    rejected: BTreeSet<u64>,
    acked: BTreeMap<u64, u64>,
}

struct Client {
    id: String,
    /// Its documents, with their stores; `open` says which are on the connection now.
    stores: BTreeMap<String, MemoryStore>,
    open: BTreeSet<String>,
    mux: Multiplexer,
    connection: Option<usize>,
    records: BTreeMap<String, Record>,
}

impl Client {
    fn config(&self, document_id: &str) -> SessionConfig {
        let mut config = SessionConfig::new(document_id, self.id.clone());
        config.request_timeout_ms = 1_000;
        config.max_batch = 5;
        config
    }

    /// The document's session from its store (or new).
    fn session(&mut self, document_id: &str) -> SyncSession {
        let config = self.config(document_id);
        let store = self
            .stores
            .get_mut(document_id)
            .expect("one of its documents");
        match store.load().expect("the store loads") {
            Some(saved) => SyncSession::restore(config, saved).expect("restore"),
            None => SyncSession::new(config),
        }
    }
}

struct World {
    rng: ChaCha8Rng,
    now: u64,
    server: MemoryServer,
    documents: Vec<String>,
    connections: Vec<Option<Connection>>,
    clients: Vec<Client>,
    trace: Vec<String>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut server = MemoryServer::new();
        let documents: Vec<String> = (0..rng.random_range(2..=4))
            .map(|d| format!("doc{d}"))
            .collect();
        for doc in &documents {
            let create = Edit {
                client_seq: 1,
                base_seq: 0,
                operation: Operation::Create,
                patch: serde_json::from_value(
                    json!([{"op": "add", "path": "", "value": {"items": [], "meta": {}}}]),
                )
                .unwrap(),
                shape: None,
            };
            server.log_mut(doc).submit("server", &[create], &mut |seq| {
                (format!("{seq:024x}"), "2026-01-01T00:00:00Z".into())
            });
        }
        let clients = (0..rng.random_range(2..=6))
            .map(|i| {
                let id = format!("c{i}");
                let mut mine: BTreeSet<String> = documents
                    .iter()
                    .filter(|_| rng.random_bool(0.7))
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    mine.insert(documents[i % documents.len()].clone());
                }
                let mut client = Client {
                    id: id.clone(),
                    stores: mine
                        .iter()
                        .map(|d| (d.clone(), MemoryStore::new()))
                        .collect(),
                    open: mine.clone(),
                    mux: Multiplexer::new(MultiplexConfig::new(id)),
                    connection: None,
                    records: mine
                        .iter()
                        .map(|d| (d.clone(), Record::default()))
                        .collect(),
                };
                for doc in &mine {
                    let session = client.session(doc);
                    client.mux.add(0, session);
                }
                client
            })
            .collect();
        World {
            rng,
            now: 0,
            server,
            documents,
            connections: Vec::new(),
            clients,
            trace: Vec::new(),
        }
    }

    fn connect(&mut self, c: usize) {
        if self.clients[c].connection.is_some() {
            return;
        }
        let id = self.server.connect(self.now);
        assert_eq!(id, self.connections.len());
        self.connections.push(Some(Connection {
            to_server: Pipe::default(),
            to_client: Pipe::default(),
        }));
        self.clients[c].connection = Some(id);
        self.clients[c].mux.handle_connected(self.now);
        self.drain(c);
    }

    fn disconnect(&mut self, c: usize) {
        if let Some(conn) = self.clients[c].connection.take() {
            self.connections[conn] = None;
            let frames = self.server.disconnect(conn, self.now);
            self.clients[c].mux.handle_disconnected(self.now);
            self.drain(c);
            self.route(frames);
        }
    }

    /// The client's process restarts: every document from its store, a new connection later.
    fn restart(&mut self, c: usize) {
        self.disconnect(c);
        let client = &mut self.clients[c];
        let mut mux = Multiplexer::new(MultiplexConfig::new(client.id.clone()));
        for doc in client.open.clone() {
            mux.add(self.now, client.session(&doc));
        }
        client.mux = mux;
        self.trace.push(format!("{} restarts", client.id));
    }

    /// The app closes one of its documents (keeping it in its store) or opens one again.
    fn toggle(&mut self, c: usize) {
        let now = self.now;
        let client = &mut self.clients[c];
        let docs: Vec<String> = client.stores.keys().cloned().collect();
        let doc = docs[self.rng.random_range(0..docs.len())].clone();
        if client.open.remove(&doc) {
            let session = client.mux.remove(now, &doc).expect("it was open");
            let state = session.client_state();
            client
                .stores
                .get_mut(&doc)
                .unwrap()
                .save(&state)
                .expect("saves");
            self.trace.push(format!("{} closes {doc}", client.id));
        } else {
            let session = client.session(&doc);
            client.mux.add(now, session);
            client.open.insert(doc.clone());
            self.trace.push(format!("{} opens {doc}", client.id));
        }
        self.drain(c);
    }

    /// Runs the client's outputs: persist, transmit, record app events.
    fn drain(&mut self, c: usize) {
        let mut gone = Vec::new();
        while let Some(output) = self.clients[c].mux.poll_output() {
            let client = &mut self.clients[c];
            match output {
                MuxOutput::Persist(doc) => {
                    let state = client.mux.session(&doc).expect("open").client_state();
                    client
                        .stores
                        .get_mut(&doc)
                        .unwrap()
                        .save(&state)
                        .expect("saves");
                }
                MuxOutput::Transmit(frame) => {
                    if let Some(conn) = client.connection.and_then(|i| self.connections[i].as_mut())
                    {
                        conn.to_server.frames.push_back(frame);
                    }
                }
                MuxOutput::Event(Some(doc), SessionEvent::EditRejected { client_seq, .. }) => {
                    client
                        .records
                        .get_mut(&doc)
                        .unwrap()
                        .rejected
                        .insert(client_seq);
                }
                MuxOutput::Event(
                    Some(doc),
                    SessionEvent::Acked {
                        client_seq,
                        sequence_num,
                    },
                ) => {
                    client
                        .records
                        .get_mut(&doc)
                        .unwrap()
                        .acked
                        .insert(client_seq, sequence_num);
                }
                MuxOutput::Event(doc, SessionEvent::Error { code, message }) => self
                    .trace
                    .push(format!("{} {doc:?}: error {code:?} {message}", client.id)),
                MuxOutput::Event(..) => {}
                MuxOutput::Close { .. } => {
                    if let Some(conn) = client.connection.take() {
                        self.connections[conn] = None;
                        gone.push(conn);
                    }
                }
            }
        }
        for conn in gone {
            let frames = self.server.disconnect(conn, self.now);
            self.route(frames);
        }
        // Changes that can wait are saved now and then, so restarts see older states too.
        if self.rng.random_bool(0.3) {
            let client = &mut self.clients[c];
            for doc in client.open.clone() {
                let Some(session) = client.mux.session(&doc) else {
                    continue;
                };
                if session.needs_save() {
                    let state = session.client_state();
                    client
                        .stores
                        .get_mut(&doc)
                        .unwrap()
                        .save(&state)
                        .expect("saves");
                    client.mux.with_session(&doc, SyncSession::mark_saved);
                }
            }
        }
    }

    fn server_receive(&mut self, conn: usize, frame: &str) {
        let now = self.now;
        let frames = self.server.receive(conn, now, frame);
        self.route(frames);
    }

    /// Frames the server sent, onto their connections' pipes.
    fn route(&mut self, frames: Vec<Frame>) {
        for delivered in frames {
            match delivered {
                Frame::Text(to, text) => {
                    if let Some(connection) = self.connections[to].as_mut() {
                        connection.to_client.frames.push_back(text);
                    }
                }
                Frame::Closed(to, code) => {
                    self.trace
                        .push(format!("server closed connection {to} ({code})"));
                    if let Some(c) = self.clients.iter().position(|c| c.connection == Some(to)) {
                        self.disconnect(c);
                    }
                }
            }
        }
    }

    /// A random presence state (or none) on a random open document.
    fn random_presence(&mut self, c: usize) {
        let now = self.now;
        let open: Vec<String> = self.clients[c].open.iter().cloned().collect();
        if open.is_empty() {
            return;
        }
        let doc = &open[self.rng.random_range(0..open.len())];
        let state = match self.rng.random_bool(0.2) {
            true => Value::Null,
            false => json!({"cursor": self.rng.random_range(0..100)}),
        };
        self.clients[c]
            .mux
            .set_presence(now, doc, state)
            .expect("a small state on an open document");
        self.drain(c);
    }

    /// What each client shows on each document in the end: nothing for some.
    fn final_presence(c: usize, doc_index: usize) -> Value {
        match (c + doc_index) % 4 {
            0 => Value::Null,
            _ => json!({"final": c}),
        }
    }

    fn publish_final_presence(&mut self) {
        let now = self.now;
        for c in 0..self.clients.len() {
            for (i, doc) in self.documents.clone().iter().enumerate() {
                if self.clients[c].open.contains(doc) {
                    let state = Self::final_presence(c, i);
                    self.clients[c].mux.set_presence(now, doc, state).unwrap();
                }
            }
            self.drain(c);
        }
    }

    /// Whether every client sees exactly the others' final presence (`Err`: the first that does
    /// not).
    fn presence_settled(&self) -> Result<(), String> {
        for (c, client) in self.clients.iter().enumerate() {
            for (i, doc) in self.documents.iter().enumerate() {
                if !client.open.contains(doc) {
                    continue;
                }
                let expected: Vec<(String, Value)> = self
                    .clients
                    .iter()
                    .enumerate()
                    .filter(|(o, other)| *o != c && other.open.contains(doc))
                    .map(|(o, other)| (other.id.clone(), Self::final_presence(o, i)))
                    .filter(|(_, state)| !state.is_null())
                    .collect();
                let seen: Vec<(String, Value)> = client
                    .mux
                    .others(doc)
                    .into_iter()
                    .map(|peer| (peer.client_id, peer.state))
                    .collect();
                if seen != expected {
                    let table = self.server.presence().peers(doc);
                    return Err(format!(
                        "{} on {doc} sees {seen:?}, not {expected:?}; the server has {table:?}",
                        client.id
                    ));
                }
            }
        }
        Ok(())
    }

    fn random_edit(&mut self, c: usize) {
        let now = self.now;
        let open: Vec<String> = self.clients[c].open.iter().cloned().collect();
        if open.is_empty() {
            return;
        }
        let doc = open[self.rng.random_range(0..open.len())].clone();
        let Some(current) = self.clients[c]
            .mux
            .session(&doc)
            .and_then(|s| s.document().cloned())
        else {
            return;
        };
        let patch = random_patch(&mut self.rng, &current);
        let ops = serde_json::from_value(patch.clone()).expect("generated patch parses");
        let made = self.clients[c]
            .mux
            .with_session(&doc, |s| s.edit(now, ops))
            .expect("open");
        match made {
            Ok(client_seq) => {
                self.clients[c]
                    .records
                    .get_mut(&doc)
                    .unwrap()
                    .made
                    .insert(client_seq);
            }
            Err(err) => panic!("generated edit {patch} failed on {current}: {err}"),
        }
        self.drain(c);
    }

    fn step(&mut self, faults: Faults, act: bool) {
        self.now += STEP_MS;
        for conn in 0..self.connections.len() {
            let frames = match self.connections[conn].as_mut() {
                Some(connection) => connection.to_server.take(&mut self.rng, faults),
                None => continue,
            };
            for frame in frames {
                self.server_receive(conn, &frame);
            }
        }
        for c in 0..self.clients.len() {
            let now = self.now;
            if let Some(conn) = self.clients[c].connection {
                let frames = match self.connections[conn].as_mut() {
                    Some(connection) => connection.to_client.take(&mut self.rng, faults),
                    None => Vec::new(),
                };
                for frame in frames {
                    self.clients[c].mux.handle_frame(now, &frame);
                    self.drain(c);
                }
            }
            if self.clients[c]
                .mux
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.clients[c].mux.handle_timeout(now);
                self.drain(c);
            }
            if self.clients[c].connection.is_none() && (!act || self.rng.random_bool(0.2)) {
                self.connect(c);
            }
        }
        if act {
            for c in 0..self.clients.len() {
                if self.rng.random_bool(0.15) {
                    self.random_edit(c);
                }
                if self.rng.random_bool(0.1) {
                    self.random_presence(c);
                }
                if self.rng.random_bool(faults.cut) {
                    self.disconnect(c);
                }
                if self.rng.random_bool(faults.restart) {
                    self.restart(c);
                }
                if self.rng.random_bool(0.01) {
                    self.toggle(c);
                }
            }
        }
    }

    /// After the faults: every client opens all of its documents again (so that what they
    /// queued while closed goes out).
    fn reopen_all(&mut self) {
        for c in 0..self.clients.len() {
            let closed: Vec<String> = {
                let client = &self.clients[c];
                client
                    .stores
                    .keys()
                    .filter(|d| !client.open.contains(*d))
                    .cloned()
                    .collect()
            };
            for doc in closed {
                let session = self.clients[c].session(&doc);
                self.clients[c].mux.add(self.now, session);
                self.clients[c].open.insert(doc);
            }
            self.drain(c);
        }
    }

    fn head(&self, doc: &str) -> u64 {
        self.server.log(doc).map_or(0, |log| log.head_seq())
    }

    fn quiet(&self) -> bool {
        self.clients.iter().all(|c| {
            c.connection.is_some()
                && c.open.iter().all(|doc| {
                    let session = c.mux.session(doc).expect("open");
                    session.is_settled() && session.applied_seq() == self.head(doc)
                })
        }) && self
            .connections
            .iter()
            .flatten()
            .all(|c| c.to_server.frames.is_empty() && c.to_client.frames.is_empty())
    }

    /// Where every client's documents stand, for a failure's message.
    fn state(&self) -> String {
        let mut out = Vec::new();
        for c in &self.clients {
            for doc in &c.open {
                let s = c.mux.session(doc).expect("open");
                out.push(format!(
                    "{} {doc}: connected {} status {:?} applied {} head {} pending {} settled {}",
                    c.id,
                    c.connection.is_some(),
                    s.status(),
                    s.applied_seq(),
                    self.head(doc),
                    s.pending_count(),
                    s.is_settled()
                ));
            }
        }
        out.join("\n")
    }

    fn check(&self, seed: u64) {
        for doc in &self.documents {
            let log = self.server.log(doc).expect("created");
            let mut in_log: BTreeMap<(String, u64), u64> = BTreeMap::new();
            for (i, event) in log.events().iter().enumerate() {
                assert_eq!(
                    event.sequence_num,
                    i as u64 + 1,
                    "seed {seed}: {doc} gapless"
                );
                if let Some(client_seq) = event.client_seq {
                    let key = (event.client_id.clone(), client_seq);
                    assert!(
                        in_log.insert(key.clone(), event.sequence_num).is_none(),
                        "seed {seed}: {doc} edit {key:?} ordered twice"
                    );
                }
            }
            for client in self.clients.iter().filter(|c| c.stores.contains_key(doc)) {
                let session = client.mux.session(doc).expect("open again");
                assert_eq!(
                    session.document(),
                    log.document(),
                    "seed {seed}: {} differs from the server on {doc}",
                    client.id
                );
                assert_eq!(session.pending_count(), 0);
                let record = &client.records[doc];
                for client_seq in &record.made {
                    let ordered = in_log.contains_key(&(client.id.clone(), *client_seq));
                    let rejected = record.rejected.contains(client_seq);
                    assert!(
                        ordered ^ rejected,
                        "seed {seed}: {} {doc} edit {client_seq}: in log {ordered}, rejected {rejected}",
                        client.id
                    );
                }
                for (client_seq, sequence_num) in &record.acked {
                    assert_eq!(
                        in_log.get(&(client.id.clone(), *client_seq)),
                        Some(sequence_num),
                        "seed {seed}: acked {} {doc} edit {client_seq} is not where the ack said",
                        client.id
                    );
                }
            }
        }
    }
}

fn run_scenario(seed: u64) {
    let mut world = World::new(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let faults = Faults {
        drop: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        reorder: rng.random_range(0.0..0.2),
        cut: rng.random_range(0.0..0.02),
        restart: rng.random_range(0.0..0.01),
    };
    for _ in 0..FAULT_STEPS {
        world.step(faults, true);
    }
    world.reopen_all();
    // Presence rides on the transport's order (a WebSocket loses or reorders nothing without
    // failing): what the faults above did to it inside a connection is healed by reconnecting,
    // which starts every document's presence over on both sides.
    for c in 0..world.clients.len() {
        world.disconnect(c);
    }
    world.publish_final_presence();
    let mut steps = 0;
    while !(world.quiet() && world.presence_settled().is_ok()) {
        world.step(NO_FAULTS, false);
        steps += 1;
        assert!(
            steps < QUIET_STEPS,
            "seed {seed}: no convergence after the faults stopped\n{}\n{}\n{:?}",
            world.trace.join("\n"),
            world.state(),
            world.presence_settled()
        );
    }
    world.check(seed);
}

#[test]
fn seeded_scenarios_of_many_documents_per_connection_converge_exactly_once() {
    let var = |name: &str| {
        std::env::var(format!("EVENTSYNC_SIM2_{name}"))
            .ok()
            .map(|v| v.parse::<u64>().expect("a number"))
    };
    let seeds: Vec<u64> = match var("SEED") {
        Some(seed) => vec![seed],
        None => (0..var("SCENARIOS").unwrap_or(300)).collect(),
    };
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(|| run_scenario(seed)) {
            eprintln!("simulation failed: reproduce with EVENTSYNC_SIM2_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
