//! Deterministic simulation: a seeded, faulty network between 2-8 clients and a server built from
//! the same core.
//!
//! Each scenario runs random local edits while frames are dropped, duplicated and reordered,
//! connections are cut and clients are restarted from their stores. Then the faults stop and the
//! network drains. Every replica must then equal the server's document, and every edit a client
//! made must be in the log exactly once or have been reported to the app as rejected.
//!
//! `EVENTSYNC_SIM_SCENARIOS=N` runs N scenarios (default 1000); `EVENTSYNC_SIM_SEED=S` runs one.
//! A failure prints its seed.

use std::collections::{BTreeMap, BTreeSet};

use eventsync::conflict::{ConflictPolicy, Resolution};
use eventsync::protocol::{self, Edit, ErrorCode, Operation, ServerMessage};
use eventsync::queue::{MemoryStore, Store};
use eventsync::sequencer::LogView;
use eventsync::server::{Delivery, MemoryLog};
use eventsync::session::{Output, SessionConfig, SessionEvent, SyncSession};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::{random_patch, Faults, Pipe, NO_FAULTS};

mod sim;

const DOC: &str = "doc";
const STEP_MS: u64 = 25;
/// Steps with faults, then at most this many quiet steps to converge.
const FAULT_STEPS: usize = 300;
const QUIET_STEPS: usize = 20_000;

/// A connection's two directions; its index is its id in the [`MemoryLog`].
struct Connection {
    to_server: Pipe,
    to_client: Pipe,
}

struct Client {
    id: String,
    store: MemoryStore,
    session: SyncSession,
    connection: Option<usize>,
    made: BTreeSet<u64>,
    rejected: BTreeSet<u64>,
    acked: BTreeMap<u64, u64>,
}

struct World {
    rng: ChaCha8Rng,
    now: u64,
    log: MemoryLog,
    connections: Vec<Option<Connection>>,
    clients: Vec<Client>,
    policy_seed: u64,
    trace: Vec<String>,
}

fn policy_for(seed: u64) -> ConflictPolicy {
    match seed % 3 {
        0 => ConflictPolicy::ServerWins,
        1 => ConflictPolicy::ClientWins,
        _ => ConflictPolicy::Custom(std::sync::Arc::new(|conflict| {
            // Deterministic on every replica: keep the larger of the two JSON texts.
            let local = serde_json::to_string(&conflict.local.value).unwrap_or_default();
            let remote = serde_json::to_string(&conflict.remote.value).unwrap_or_default();
            if local >= remote {
                Resolution::KeepLocal
            } else {
                Resolution::KeepRemote
            }
        })),
    }
}

fn config(id: &str, policy_seed: u64) -> SessionConfig {
    let mut config = SessionConfig::new(DOC, id);
    config.policy = policy_for(policy_seed);
    config.request_timeout_ms = 1_000;
    config.idle_timeout_ms = 5_000;
    config.ping_interval_ms = 1_500;
    config.max_batch = 5;
    config
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(2..=8);
        let mut log = MemoryLog::new(DOC);
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
        log.submit("server", &[create], &mut stamp);
        let policy_seed = rng.random();
        let clients = (0..n)
            .map(|i| {
                let id = format!("c{i}");
                Client {
                    session: SyncSession::new(config(&id, policy_seed)),
                    id,
                    store: MemoryStore::new(),
                    connection: None,
                    made: BTreeSet::new(),
                    rejected: BTreeSet::new(),
                    acked: BTreeMap::new(),
                }
            })
            .collect();
        World {
            rng,
            now: 0,
            log,
            connections: Vec::new(),
            clients,
            policy_seed,
            trace: Vec::new(),
        }
    }

    fn connect(&mut self, c: usize) {
        if self.clients[c].connection.is_some() {
            return;
        }
        let now = self.now;
        let id = self.log.connect(now);
        assert_eq!(
            id,
            self.connections.len(),
            "one log connection per connection"
        );
        self.connections.push(Some(Connection {
            to_server: Pipe::default(),
            to_client: Pipe::default(),
        }));
        self.clients[c].connection = Some(id);
        self.clients[c].session.handle_connected(now);
        self.drain_client(c);
    }

    fn disconnect(&mut self, c: usize) {
        if let Some(conn) = self.clients[c].connection.take() {
            self.connections[conn] = None;
            self.log.disconnect(conn);
            let now = self.now;
            self.clients[c].session.handle_disconnected(now);
            self.drain_client(c);
        }
    }

    fn restart(&mut self, c: usize) {
        self.disconnect(c);
        let client = &mut self.clients[c];
        let saved = client.store.load().expect("store loads");
        let config = config(&client.id, self.policy_seed);
        client.session = match saved {
            Some(saved) => SyncSession::restore(config, saved).expect("restore"),
            None => SyncSession::new(config),
        };
        self.trace.push(format!("restart {}", client.id));
    }

    /// Runs the client's outputs: persist, transmit, record app events.
    fn drain_client(&mut self, c: usize) {
        while let Some(output) = self.clients[c].session.poll_output() {
            let client = &mut self.clients[c];
            match output {
                Output::Persist => {
                    let state = client.session.client_state();
                    client.store.save(&state).expect("store saves");
                }
                Output::Transmit(message) => {
                    if let Some(conn) = client.connection.and_then(|i| self.connections[i].as_mut())
                    {
                        conn.to_server.frames.push_back(protocol::encode(&message));
                    }
                }
                Output::Event(SessionEvent::EditRejected { client_seq, .. }) => {
                    client.rejected.insert(client_seq);
                }
                Output::Event(SessionEvent::Acked {
                    client_seq,
                    sequence_num,
                }) => {
                    client.acked.insert(client_seq, sequence_num);
                }
                Output::Event(_) => {}
                Output::Close { .. } => {
                    // The session already considers itself offline; drop the transport.
                    if let Some(conn) = client.connection.take() {
                        self.connections[conn] = None;
                        self.log.disconnect(conn);
                    }
                }
            }
        }
        // Changes that can wait are saved now and then, so restarts see older saved states too.
        if self.clients[c].session.needs_save() && self.rng.random_bool(0.3) {
            let client = &mut self.clients[c];
            let state = client.session.client_state();
            client.store.save(&state).expect("store saves");
            client.session.mark_saved();
        }
    }

    fn server_send(&mut self, conn: usize, message: &ServerMessage) {
        if let Some(connection) = self.connections[conn].as_mut() {
            connection
                .to_client
                .frames
                .push_back(protocol::encode(message));
        }
    }

    fn server_receive(&mut self, conn: usize, frame: &str) {
        let now = self.now;
        for delivery in self.log.receive(conn, now, frame) {
            match delivery {
                Delivery::Message(
                    _,
                    ServerMessage::Error {
                        code: code @ (ErrorCode::MalformedFrame | ErrorCode::TooLarge),
                        message,
                    },
                ) => panic!("the server could not read a frame ({code:?}: {message}): {frame}"),
                Delivery::Message(to, message) => self.server_send(to, &message),
                Delivery::Closed(to, code) => {
                    self.trace
                        .push(format!("server closed connection {to} ({code})"));
                    if let Some(c) = self.clients.iter().position(|c| c.connection == Some(to)) {
                        self.disconnect(c);
                    }
                }
            }
        }
    }

    fn random_edit(&mut self, c: usize) {
        let now = self.now;
        let Some(doc) = self.clients[c].session.document().cloned() else {
            return;
        };
        // Some of a client's actions undo or redo its own edits (new edits, carried over
        // everything applied since).
        match self.rng.random_range(0..10) {
            0 => return self.undo_or_redo(c, false),
            1 => return self.undo_or_redo(c, true),
            2 => self.clients[c].session.stop_capturing(),
            _ => {}
        }
        let patch = random_patch(&mut self.rng, &doc);
        let ops = serde_json::from_value(patch.clone()).expect("generated patch parses");
        match self.clients[c].session.edit(now, ops) {
            Ok(client_seq) => {
                self.clients[c].made.insert(client_seq);
            }
            Err(err) => panic!("generated edit {patch} failed on {doc}: {err}"),
        }
        self.drain_client(c);
    }

    fn undo_or_redo(&mut self, c: usize, redo: bool) {
        let now = self.now;
        let session = &mut self.clients[c].session;
        let done = if redo {
            session.redo(now)
        } else {
            session.undo(now)
        };
        match done {
            Ok(Some(client_seq)) => {
                self.clients[c].made.insert(client_seq);
            }
            Ok(None) => {}
            Err(err) => panic!("undo/redo failed: {err}"),
        }
        self.drain_client(c);
    }

    /// An edit of `prefix`'s subtree only (`prefix` is a JSON Pointer to a container).
    fn edit_under(&mut self, c: usize, prefix: &str) -> u64 {
        let now = self.now;
        let doc = self.clients[c].session.document().cloned().unwrap();
        let mut patch = random_patch(&mut self.rng, &doc.pointer(prefix).cloned().unwrap());
        for op in patch.as_array_mut().unwrap() {
            for key in ["path", "from"] {
                if let Some(path) = op.get(key).and_then(|p| p.as_str()) {
                    op[key] = json!(format!("{prefix}{path}"));
                }
            }
        }
        let ops = serde_json::from_value(patch.clone()).unwrap();
        let client_seq = self.clients[c].session.edit(now, ops).unwrap();
        self.clients[c].made.insert(client_seq);
        self.drain_client(c);
        client_seq
    }

    /// Steps without faults until every replica has the server's head.
    fn settle(&mut self, seed: u64) {
        let mut steps = 0;
        while !self.quiet() {
            self.step(NO_FAULTS, false);
            steps += 1;
            assert!(steps < QUIET_STEPS, "seed {seed}: no convergence");
        }
    }

    /// One tick: deliver some frames both ways, fire timers, maybe act.
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
            if let Some(conn) = self.clients[c].connection {
                let frames = match self.connections[conn].as_mut() {
                    Some(connection) => connection.to_client.take(&mut self.rng, faults),
                    None => Vec::new(),
                };
                let now = self.now;
                for frame in frames {
                    self.clients[c].session.handle_frame(now, &frame);
                    self.drain_client(c);
                }
            }
            let now = self.now;
            if self.clients[c]
                .session
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.clients[c].session.handle_timeout(now);
                self.drain_client(c);
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
                if self.rng.random_bool(faults.cut) {
                    self.disconnect(c);
                }
                if self.rng.random_bool(faults.restart) {
                    self.restart(c);
                }
            }
        }
    }

    fn quiet(&self) -> bool {
        let head = self.log.head_seq();
        self.clients.iter().all(|c| {
            c.session.is_settled() && c.session.applied_seq() == head && c.connection.is_some()
        }) && self
            .connections
            .iter()
            .flatten()
            .all(|c| c.to_server.frames.is_empty() && c.to_client.frames.is_empty())
    }

    fn check(&self, seed: u64) {
        let server_doc = self.log.document();
        let mut in_log: BTreeMap<(String, u64), u64> = BTreeMap::new();
        for (i, event) in self.log.events().iter().enumerate() {
            assert_eq!(event.sequence_num, i as u64 + 1, "gapless log");
            if let Some(client_seq) = event.client_seq {
                let key = (event.client_id.clone(), client_seq);
                assert!(
                    in_log.insert(key.clone(), event.sequence_num).is_none(),
                    "seed {seed}: edit {key:?} ordered twice"
                );
            }
        }
        for client in &self.clients {
            assert_eq!(
                client.session.document(),
                server_doc,
                "seed {seed}: {} differs from the server",
                client.id
            );
            assert_eq!(client.session.confirmed(), server_doc);
            assert_eq!(client.session.pending_count(), 0);
            for client_seq in &client.made {
                let ordered = in_log.contains_key(&(client.id.clone(), *client_seq));
                let rejected = client.rejected.contains(client_seq);
                assert!(
                    ordered ^ rejected,
                    "seed {seed}: {} edit {client_seq}: in log {ordered}, reported rejected {rejected}",
                    client.id
                );
            }
            for (client_seq, sequence_num) in &client.acked {
                assert_eq!(
                    in_log.get(&(client.id.clone(), *client_seq)),
                    Some(sequence_num),
                    "seed {seed}: acked edit {} {client_seq} is not where the ack said",
                    client.id
                );
            }
        }
    }
}

fn stamp(seq: u64) -> (String, String) {
    (format!("{seq:024x}"), "2026-01-01T00:00:00Z".into())
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
    let mut steps = 0;
    while !world.quiet() {
        world.step(NO_FAULTS, false);
        steps += 1;
        if steps + 1 == QUIET_STEPS {
            for c in &world.clients {
                if c.session.pending_count() > 0 {
                    let dbg = format!("{:?}", c.session);
                    eprintln!("{}: {}", c.id, &dbg[dbg.find("phase").unwrap_or(0)..]);
                }
            }
        }
        assert!(
            steps < QUIET_STEPS,
            "seed {seed}: no convergence after the faults stopped ({} pending, heads {:?} vs {})\n{}",
            world
                .clients
                .iter()
                .map(|c| c.session.pending_count())
                .sum::<usize>(),
            world
                .clients
                .iter()
                .map(|c| c.session.applied_seq())
                .collect::<Vec<_>>(),
            world.log.head_seq(),
            world.trace.join("\n")
        );
    }
    world.check(seed);
}

fn run_seed(seed: u64) {
    let result = std::panic::catch_unwind(|| run_scenario(seed));
    if let Err(panic) = result {
        eprintln!("simulation failed: reproduce with EVENTSYNC_SIM_SEED={seed}");
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn seeded_scenarios_converge_without_losing_or_duplicating_edits() {
    if let Ok(seed) = std::env::var("EVENTSYNC_SIM_SEED") {
        run_seed(seed.parse().expect("EVENTSYNC_SIM_SEED is a number"));
        return;
    }
    let count: u64 = std::env::var("EVENTSYNC_SIM_SCENARIOS")
        .ok()
        .map(|n| n.parse().expect("EVENTSYNC_SIM_SCENARIOS is a number"))
        .unwrap_or(1000);
    for seed in 0..count {
        run_seed(seed);
    }
}

/// Client 0 edits its own subtree once while the others edit theirs through faults and
/// restarts; its undo gives back exactly the subtree before the edit on every replica, and the
/// redo exactly the subtree after it.
fn run_undo_scenario(seed: u64) {
    let mut world = World::new(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0dd0);
    let n = world.clients.len();
    for c in 0..n {
        world.connect(c);
    }
    world.settle(seed);
    for c in 0..n {
        let now = world.now;
        let patch = json!([{"op": "add", "path": format!("/meta/c{c}"), "value": {"k": 0, "list": [1, 2]}}]);
        let seq = world.clients[c]
            .session
            .edit(now, serde_json::from_value(patch).unwrap())
            .unwrap();
        world.clients[c].made.insert(seq);
        world.drain_client(c);
    }
    world.settle(seed);
    let faults = Faults {
        drop: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        reorder: rng.random_range(0.0..0.2),
        cut: rng.random_range(0.0..0.02),
        restart: rng.random_range(0.0..0.01),
    };
    let mine = "/meta/c0";
    let value_at = |world: &World, c: usize| {
        world.clients[c]
            .session
            .document()
            .and_then(|d| d.pointer(mine))
            .cloned()
    };
    let mut before = None;
    let mut after = None;
    for step in 0..FAULT_STEPS {
        world.step(faults, false);
        for c in 1..n {
            if world.rng.random_bool(0.15) {
                world.edit_under(c, &format!("/meta/c{c}"));
            }
        }
        if step == 50 {
            world.clients[0].session.stop_capturing();
            before = value_at(&world, 0);
            // An edit that changes nothing (a move in place) is skipped by undo: make a change.
            while value_at(&world, 0) == before {
                world.edit_under(0, mine);
            }
            after = value_at(&world, 0);
            world.clients[0].session.stop_capturing();
        }
        if step == 200 {
            world.undo_or_redo(0, false);
            assert_eq!(value_at(&world, 0), before, "seed {seed}: undone locally");
        }
    }
    world.settle(seed);
    world.check(seed);
    for c in 0..n {
        assert_eq!(value_at(&world, c), before, "seed {seed}: undone on c{c}");
    }
    world.undo_or_redo(0, true);
    world.settle(seed);
    world.check(seed);
    for c in 0..n {
        assert_eq!(value_at(&world, c), after, "seed {seed}: redone on c{c}");
    }
}

#[test]
fn seeded_undo_of_paths_nobody_else_touched_is_exact_and_redo_is_the_original() {
    let count: u64 = std::env::var("EVENTSYNC_SIM_SCENARIOS")
        .ok()
        .map(|n| {
            n.parse::<u64>()
                .expect("EVENTSYNC_SIM_SCENARIOS is a number")
                / 10
        })
        .unwrap_or(100)
        .max(20);
    for seed in 0..count {
        let result = std::panic::catch_unwind(|| run_undo_scenario(seed));
        if let Err(panic) = result {
            eprintln!("undo simulation failed at seed {seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
