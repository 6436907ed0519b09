//! The benchmark workload, shared by the native binary and the WebAssembly build that runs under
//! Node (`js/bench/`): a document of [`FIELDS`] small fields and a log of events that each set one
//! of them, and the two ways of applying it that the report compares.
//!
//! Every system of the side-by-side runs does the same work: the same document, the same
//! number of updates, each setting one field of a map to a number.

use eventsync::protocol::{Event, Operation};
use eventsync::{Diff, StateManager, VectorClock};
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{json, Value};

/// How many distinct fields the events cycle through (the document's size stays bounded).
pub const FIELDS: u64 = 1000;

/// The client id of the writer of every benchmark event.
pub const WRITER: &str = "writer";

/// The document every scenario starts from: `{"title": ..., "fields": {"k0": 0, ...}}`.
pub fn initial_document() -> Value {
    let fields: serde_json::Map<String, Value> =
        (0..FIELDS).map(|k| (format!("k{k}"), json!(0))).collect();
    json!({"title": "benchmark", "fields": fields})
}

/// The patch of update `n` (1-based): set field `k{n % FIELDS}` to `value`.
pub fn update_patch(n: u64, value: Value) -> Vec<PatchOperation> {
    let path = format!("/fields/k{}", n % FIELDS);
    vec![PatchOperation::Add(AddOperation {
        path: path.parse().expect("a valid JSON pointer"),
        value,
    })]
}

/// `count` events as the server would log them after the document's creation (sequence 1):
/// update `n` is event `n + 1` and sets its field to `n`.
pub fn update_events(document_id: &str, count: u64) -> Vec<Event> {
    (1..=count)
        .map(|n| {
            let sequence_num = n + 1;
            let mut vector_clock = VectorClock::new();
            vector_clock.observe(WRITER, sequence_num);
            Event {
                id: format!("{sequence_num:024x}"),
                document_id: document_id.to_owned(),
                timestamp: String::new(),
                sequence_num,
                operation: Operation::Update,
                diff: Some(Diff::from_patch(update_patch(n, json!(n)))),
                vector_clock,
                client_id: WRITER.to_owned(),
                client_seq: Some(sequence_num),
                server_seq: 0,
                metadata: Default::default(),
            }
        })
        .collect()
}

/// A replica that has applied the creation (event 1) of [`initial_document`].
pub fn created_replica(document_id: &str) -> StateManager {
    let mut vector = VectorClock::new();
    vector.observe(WRITER, 1);
    StateManager::restore(document_id, Some(initial_document()), 1, vector)
}

/// Applies `events` in order as a client does with events it decoded (receive, then apply each
/// ready event). Returns the last applied `sequenceNum`.
pub fn apply_with_eventsync(replica: &mut StateManager, events: Vec<Event>) -> u64 {
    for event in events {
        let received = replica.receive(event).expect("in order");
        for ready in &received.ready {
            replica.apply(ready).expect("the benchmark events apply");
        }
    }
    replica.applied_seq()
}

/// The same patches applied with nothing but the `json-patch` crate, in place: the floor. Like
/// [`apply_with_eventsync`] with its events, it takes the patches and frees each once applied.
pub fn apply_with_json_patch(document: &mut Value, patches: Vec<Patch>) -> usize {
    let count = patches.len();
    for patch in patches {
        json_patch::patch(document, &patch).expect("the benchmark patches apply");
    }
    count
}

/// The patches of `events`, for [`apply_with_json_patch`].
pub fn patches_of(events: &[Event]) -> Vec<Patch> {
    events
        .iter()
        .map(|event| {
            let diff = event.diff.as_ref().expect("benchmark events carry a diff");
            Patch(diff.patch.clone().expect("an RFC 6902 patch"))
        })
        .collect()
}

/// The apply workload for JavaScript: each method builds its input, then times only the
/// applying with the JavaScript clock (`performance.now()`) and returns milliseconds.
#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = performance)]
        fn now() -> f64;
    }

    /// Milliseconds to apply `count` update events to a fresh replica with eventsync.
    #[wasm_bindgen(js_name = applyWithEventsync)]
    pub fn apply_with_eventsync_ms(count: u32) -> f64 {
        let events = update_events("bench", count as u64);
        let mut replica = created_replica("bench");
        let started = now();
        let applied = apply_with_eventsync(&mut replica, events);
        let elapsed = now() - started;
        assert_eq!(applied, count as u64 + 1);
        elapsed
    }

    /// Milliseconds to apply the same `count` patches to a fresh document with `json-patch`.
    #[wasm_bindgen(js_name = applyWithJsonPatch)]
    pub fn apply_with_json_patch_ms(count: u32) -> f64 {
        let patches = patches_of(&update_events("bench", count as u64));
        let mut document = initial_document();
        let started = now();
        let applied = apply_with_json_patch(&mut document, patches);
        let elapsed = now() - started;
        assert_eq!(applied, count as usize);
        elapsed
    }
}
