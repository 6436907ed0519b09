//! Hostile input to the core, in the seeded style of `tests/conflict.rs`: the property-test
//! equivalents of the cargo-fuzz targets in `fuzz/` (which run longer, by `scripts/fuzz.sh`).
//!
//! - any bytes and mutated frames decode without a panic, to a documented code, and round-trip;
//! - random patches in every diff format apply atomically (on error the document is unchanged),
//!   and an RFC 6902 patch does exactly what applying its operations one by one does;
//! - nesting far past the limit is refused, never a stack overflow;
//! - copies cannot grow a document without bound;
//! - stale submits with any (even lying) `shape` flags never panic the sequencer, and the log
//!   replays to the document it holds.
//!
//! `EVENTSYNC_ROBUSTNESS_SEEDS=N` changes the number of seeds per property (default 2000);
//! `EVENTSYNC_ROBUSTNESS_SEED=S` runs seed `S` alone. A failure prints its seed.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use base64::Engine as _;
use eventsync::diff::{
    self, apply_diff, apply_event, apply_patch, BsonPatch, Diff, DiffError, MergePatch,
};
use eventsync::protocol::{self, Edit, ErrorCode, Event, Operation, ServerMessage};
use eventsync::sequencer::LogView;
use eventsync::server::MemoryLog;
use eventsync::StateManager;
use json_patch::PatchOperation;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "a", "b", "0", "1", "01", "-", "x/y", "m~n", "", "$set", "a.b",
];
const POINTER_TOKENS: &[&str] = &[
    "a",
    "b",
    "0",
    "1",
    "2",
    "01",
    "-",
    "~0",
    "~1",
    "x~1y",
    "99999999999999999999",
    "",
];

fn seeds() -> Vec<u64> {
    common::seeds("EVENTSYNC_ROBUSTNESS", 2000)
}

/// Runs `check` for every seed, catching panics; fails with the first few failing seeds.
fn for_each_seed(
    name: &str,
    salt: u64,
    mut check: impl FnMut(&mut ChaCha8Rng) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    for seed in seeds() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt);
        match catch_unwind(AssertUnwindSafe(|| check(&mut rng))) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => failures.push(format!("seed {seed}: {msg}")),
            Err(_) => failures.push(format!("seed {seed}: panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} seeds failed (rerun one with EVENTSYNC_ROBUSTNESS_SEED=<seed>); first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------- generators

fn gen_number(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..6) {
        0 => json!(rng.random_range(-3..10)),
        1 => json!(u64::MAX),
        2 => json!(i64::MIN),
        3 => json!(1.5),
        4 => json!(f64::MAX),
        _ => json!(0),
    }
}

fn gen_value(rng: &mut ChaCha8Rng, depth: u32) -> Value {
    if depth == 0 || rng.random_bool(0.4) {
        return match rng.random_range(0..4) {
            0 => gen_number(rng),
            1 => json!(*KEYS.choose(rng).unwrap()),
            2 => json!(rng.random_bool(0.5)),
            _ => Value::Null,
        };
    }
    let n = rng.random_range(0..4);
    if rng.random_bool(0.5) {
        let mut m = Map::new();
        for _ in 0..n {
            m.insert(
                KEYS.choose(rng).unwrap().to_string(),
                gen_value(rng, depth - 1),
            );
        }
        Value::Object(m)
    } else {
        Value::Array((0..n).map(|_| gen_value(rng, depth - 1)).collect())
    }
}

/// A JSON Pointer, valid or not (tokens may not exist, may be `-`, leading zeros, huge).
fn gen_pointer(rng: &mut ChaCha8Rng) -> String {
    (0..rng.random_range(0..4))
        .map(|_| format!("/{}", POINTER_TOKENS.choose(rng).unwrap()))
        .collect()
}

fn gen_op(rng: &mut ChaCha8Rng) -> Value {
    let (path, from) = (gen_pointer(rng), gen_pointer(rng));
    match rng.random_range(0..6) {
        0 => json!({"op": "add", "path": path, "value": gen_value(rng, 2)}),
        1 => json!({"op": "remove", "path": path}),
        2 => json!({"op": "replace", "path": path, "value": gen_value(rng, 2)}),
        3 => json!({"op": "move", "from": from, "path": path}),
        4 => json!({"op": "copy", "from": from, "path": path}),
        _ => json!({"op": "test", "path": path, "value": gen_value(rng, 1)}),
    }
}

fn gen_patch(rng: &mut ChaCha8Rng) -> Vec<PatchOperation> {
    let ops: Vec<Value> = (0..rng.random_range(0..5)).map(|_| gen_op(rng)).collect();
    serde_json::from_value(Value::Array(ops)).expect("generated operations are well-formed")
}

fn gen_doc(rng: &mut ChaCha8Rng) -> Value {
    let mut m = Map::new();
    for k in ["a", "b", "0"] {
        if rng.random_bool(0.7) {
            m.insert(k.to_owned(), gen_value(rng, 3));
        }
    }
    Value::Object(m)
}

fn gen_bson(rng: &mut ChaCha8Rng) -> Value {
    let operators = [
        "set", "unset", "inc", "push", "pull", "addToSet", "pullAll", "rename",
    ];
    let mut patch = Map::new();
    for _ in 0..rng.random_range(0..4) {
        let mut fields = Map::new();
        for _ in 0..rng.random_range(1..3) {
            let path: Vec<&str> = (0..rng.random_range(1..4))
                .map(|_| {
                    *["a", "b", "0", "3", "20000", "$", "$[]", "", "01"]
                        .choose(rng)
                        .unwrap()
                })
                .collect();
            let value = match rng.random_range(0..4) {
                0 => json!({"$each": [gen_value(rng, 1), gen_value(rng, 1)]}),
                1 => json!({"$in": [gen_value(rng, 1)]}),
                _ => gen_value(rng, 2),
            };
            fields.insert(path.join("."), value);
        }
        patch.insert(
            operators.choose(rng).unwrap().to_string(),
            Value::Object(fields),
        );
    }
    if rng.random_bool(0.1) {
        patch.insert("arrayFilters".into(), json!([{"x": 1}]));
    }
    Value::Object(patch)
}

/// A diff in one format, or several, or none known.
fn gen_diff(rng: &mut ChaCha8Rng) -> Value {
    let merge = gen_value(rng, 3);
    let mut diff = Map::new();
    match rng.random_range(0..7) {
        0 => {
            diff.insert(
                "patch".into(),
                serde_json::to_value(gen_patch(rng)).unwrap(),
            );
        }
        1 => {
            diff.insert(
                "jsonPatch".into(),
                serde_json::to_value(gen_patch(rng)).unwrap(),
            );
        }
        2 => {
            diff.insert("mergePatch".into(), merge);
        }
        3 => {
            let text = serde_json::to_vec(&merge).unwrap();
            let encoded = match rng.random_range(0..3) {
                0 => base64::engine::general_purpose::STANDARD.encode(text),
                1 => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text),
                _ => "not base64!".into(),
            };
            diff.insert("mergePatch".into(), json!(encoded));
        }
        4 => {
            diff.insert("bsonPatch".into(), gen_bson(rng));
            if rng.random_bool(0.5) {
                diff.insert("version".into(), json!(3));
            }
        }
        5 => {
            diff.insert("hasChanges".into(), json!(rng.random_bool(0.5)));
        }
        _ => {
            diff.insert("somethingNew".into(), json!(1));
        }
    }
    Value::Object(diff)
}

// ---------------------------------------------------------------- frames

/// Valid frames of every kind, to mutate.
const FRAMES: &[&str] = &[
    r#"{"type":"hello","protocolVersions":[1],"clientId":"alice","token":"t"}"#,
    r#"{"type":"sync","vectorClock":{"alice":3,"server":1},"after":2}"#,
    r#"{"type":"submit","edits":[{"clientSeq":1,"baseSeq":0,"operation":"create","patch":[{"op":"add","path":"","value":{"a":[1]}}],"shape":[false]}]}"#,
    r#"{"type":"ping","nonce":7}"#,
    r#"{"type":"welcome","protocolVersion":1,"documentId":"d","clientId":"a","headSeq":3}"#,
    r#"{"type":"event","events":[{"id":"e","documentId":"d","sequenceNum":1,"operation":"update","diff":{"mergePatch":"eyJhIjoxfQ==","bsonPatch":{"set":{"a":1}}},"vectorClock":{"a":1},"clientId":"a","clientSeq":1,"metadata":{"data":"{}"}}]}"#,
    r#"{"type":"snapshot","snapshot":{"documentId":"d","sequenceNum":4,"document":{"x":null},"vectorClock":{}}}"#,
    r#"{"type":"reject","clientSeq":2,"code":"stale_base","message":"m","headSeq":4}"#,
    r#"{"type":"error","error":"boom"}"#,
];

fn mutate(rng: &mut ChaCha8Rng, frame: &str) -> Vec<u8> {
    let mut bytes = frame.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..5) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..5) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, *b"{}[]\",:-0e9\\ \x00\xff".choose(rng).unwrap()),
            2 if at < bytes.len() => bytes[at] = rng.random(),
            3 => {
                let token = *[
                    "null",
                    "-1",
                    "1e999",
                    "18446744073709551616",
                    "\"x\"",
                    "[[[[",
                ]
                .choose(rng)
                .unwrap();
                bytes.splice(at..at, token.bytes());
            }
            _ => {
                let end = rng.random_range(at..=bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

/// A server message as it reads after being written: an event without a `vectorClock` is written
/// with its own entry (section 2).
fn with_own_entries(mut message: ServerMessage) -> ServerMessage {
    if let ServerMessage::Events { events, .. } | ServerMessage::Event { events } = &mut message {
        for event in events.iter_mut().filter(|e| e.vector_clock.is_empty()) {
            event
                .vector_clock
                .observe(&event.client_id, event.sequence_num);
        }
    }
    message
}

#[test]
fn any_bytes_decode_without_panic_to_a_documented_code_and_round_trip() {
    for_each_seed("decode", 0xdec0de, |rng| {
        let bytes = if rng.random_bool(0.2) {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            let frame = *FRAMES.choose(rng).unwrap();
            mutate(rng, frame)
        };
        let text = String::from_utf8_lossy(&bytes);
        match protocol::decode_client(&text, 1 << 20) {
            Ok(message) => {
                let again = protocol::encode(&message);
                let back = protocol::decode_client(&again, usize::MAX).ok();
                ensure!(
                    back == Some(message),
                    "client frame does not round-trip: {text}"
                );
            }
            Err(err) => ensure!(
                matches!(err.code(), ErrorCode::MalformedFrame | ErrorCode::TooLarge),
                "undocumented code {:?} for {text}",
                err.code()
            ),
        }
        if let Ok(message) = protocol::decode_server(&text) {
            let again = protocol::encode(&message);
            let back = protocol::decode_server(&again).ok();
            ensure!(
                back == Some(with_own_entries(message)),
                "server frame does not round-trip: {text}"
            );
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- diffs

/// Applies `ops` one at a time with json_patch (single operations undo nothing, so it cannot
/// hit json_patch's panics while undoing a failed multi-operation patch).
fn one_by_one(doc: &Value, ops: &[PatchOperation]) -> Option<Value> {
    let mut out = doc.clone();
    for op in ops {
        json_patch::patch(&mut out, std::slice::from_ref(op)).ok()?;
    }
    Some(out)
}

#[test]
fn random_rfc6902_patches_apply_atomically_and_as_their_operations_do() {
    for_each_seed("rfc6902", 0x6902, |rng| {
        let doc = gen_doc(rng);
        let ops = gen_patch(rng);
        let mut applied = doc.clone();
        let result = apply_patch(&mut applied, &ops);
        match (&result, one_by_one(&doc, &ops)) {
            (Ok(()), Some(expected)) => {
                ensure!(
                    applied == expected,
                    "{doc} {ops:?}: {applied} != {expected}"
                )
            }
            (Err(_), None) => ensure!(applied == doc, "a failed patch changed {doc}: {applied}"),
            (result, expected) => {
                return Err(format!(
                    "{doc} {ops:?}: apply_patch {result:?}, one by one {expected:?}"
                ))
            }
        }
        Ok(())
    });
}

#[test]
fn random_diffs_and_events_of_every_format_never_half_apply() {
    let mut formats_ok = [0usize; 7];
    for_each_seed("formats", 0xd1ff, |rng| {
        let doc = gen_doc(rng);
        let raw = gen_diff(rng);
        let diff: Diff = match serde_json::from_value(raw.clone()) {
            Ok(diff) => diff,
            // A bsonPatch whose operator is not an object does not parse: that is an answer too.
            Err(_) => return Ok(()),
        };
        let before = doc.clone();
        if let Ok(after) = apply_diff(&doc, &diff) {
            ensure!(
                diff::check_depth(&after, diff::MAX_DEPTH).is_ok(),
                "too deep: {raw}"
            );
            let kind = raw
                .as_object()
                .unwrap()
                .keys()
                .next()
                .cloned()
                .unwrap_or_default();
            let slot = [
                "patch",
                "jsonPatch",
                "mergePatch",
                "bsonPatch",
                "hasChanges",
                "version",
            ]
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(6);
            formats_ok[slot] += 1;
        }
        ensure!(doc == before, "apply_diff changed its input");
        // The same diff in an event, an update and a create, and with a snapshot instead.
        for operation in ["update", "create", "delete"] {
            let event: Event = serde_json::from_value(json!({
                "id": "e", "documentId": "d", "sequenceNum": 2, "operation": operation,
                "diff": raw, "clientId": "server"
            }))
            .map_err(|e| e.to_string())?;
            let _ = apply_event(Some(&doc), &event);
            let _ = apply_event(None, &event);
            let snapshot = json!({
                "id": "e", "documentId": "d", "sequenceNum": 2, "operation": operation,
                "diff": null, "clientId": "server",
                "metadata": {"data": serde_json::to_string(&gen_value(rng, 3)).unwrap()}
            });
            let event: Event = serde_json::from_value(snapshot).map_err(|e| e.to_string())?;
            if let Ok(change) = apply_event(Some(&doc), &event) {
                ensure!(
                    operation == "delete" || change.document.is_some(),
                    "{event:?}"
                );
            }
        }
        Ok(())
    });
    // Every format was exercised with successes, not only with errors.
    if seeds().len() >= 1000 {
        for (slot, n) in formats_ok.iter().take(5).enumerate() {
            assert!(*n >= 20, "format {slot} applied only {n} times");
        }
    }
}

#[test]
fn bson_patches_that_fail_change_nothing_and_padding_is_bounded() {
    for_each_seed("bson", 0xb50, |rng| {
        let doc = json!({"a": [1, {"b": 2}], "b": {"0": "x"}, "0": 5});
        let raw = gen_bson(rng);
        let Ok(patch) = serde_json::from_value::<BsonPatch>(raw.clone()) else {
            return Ok(());
        };
        let before = doc.clone();
        if let Ok(after) = patch.apply(&doc, rng.random_bool(0.5)) {
            let size = serde_json::to_string(&after).unwrap().len();
            ensure!(size < 200_000, "{raw} grew the document to {size} bytes");
        }
        ensure!(doc == before, "BsonPatch::apply changed its input");
        Ok(())
    });
}

// ---------------------------------------------------------------- nesting and growth

/// `[[[…]]]` as text, `depth` levels.
fn nested_text(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A value nested `depth` levels deep, built without recursion.
fn nested_value(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

#[test]
fn nesting_far_past_the_limit_is_refused_without_overflowing_the_stack() {
    for depth in [128, 129, 1_000, 100_000, 1_000_000] {
        let frame = format!(r#"{{"type":"ping","x":{}}}"#, nested_text(depth));
        let err = protocol::decode_client(&frame, usize::MAX).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge, "depth {depth}");
        let err = protocol::decode_server(&frame).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge, "depth {depth}");
        let unbalanced = format!(r#"{{"type":"submit","edits":{}"#, "[{\"a\":".repeat(depth));
        assert!(protocol::decode_client(&unbalanced, usize::MAX).is_err());
    }
    // Values built in memory (not parsed) deeper than the limit, in every format. 1000 levels
    // is far past the limit and still small enough for the recursive drop of serde_json.
    let deep = nested_value(1_000);
    assert!(matches!(
        diff::check_depth(&deep, diff::MAX_DEPTH),
        Err(DiffError::TooDeep { .. })
    ));
    assert!(apply_diff(&deep, &Diff::from_patch(vec![])).is_err());
    let add: Vec<PatchOperation> =
        serde_json::from_value(json!([{"op": "add", "path": "/x", "value": deep}])).unwrap();
    let mut doc = json!({});
    assert!(apply_patch(&mut doc, &add).is_err());
    assert_eq!(doc, json!({}));
    assert!(MergePatch::Json(deep.clone()).apply(&json!({})).is_err());
    let bson: BsonPatch = serde_json::from_value(json!({"set": {"x": deep}})).unwrap();
    assert!(bson.apply(&json!({}), false).is_err());
    let test: Vec<PatchOperation> =
        serde_json::from_value(json!([{"op": "test", "path": "", "value": deep}])).unwrap();
    assert!(apply_patch(&mut doc, &test).is_err());
    // Copying the root into itself deepens the document by one level per operation.
    let deepen: Vec<PatchOperation> = serde_json::from_value(Value::Array(
        (0..200)
            .map(|_| json!({"op": "copy", "from": "", "path": "/x"}))
            .collect(),
    ))
    .unwrap();
    let mut doc = json!({});
    assert!(apply_patch(&mut doc, &deepen).is_err());
    assert_eq!(doc, json!({}));
}

#[test]
fn copies_cannot_grow_a_document_without_bound() {
    for_each_seed("copies", 0xc0b1, |rng| {
        // Random copies of random (existing) locations, many of them of the root.
        let mut doc = json!({"s": "x".repeat(rng.random_range(0..5000))});
        let n = rng.random_range(1..80);
        let ops: Vec<PatchOperation> = serde_json::from_value(Value::Array(
            (0..n)
                .map(|i| {
                    let from = if rng.random_bool(0.7) { "" } else { "/s" };
                    json!({"op": "copy", "from": from, "path": format!("/c{i}")})
                })
                .collect(),
        ))
        .unwrap();
        let before = doc.clone();
        match apply_patch(&mut doc, &ops) {
            Ok(()) => ensure!(
                diff::weight(&doc, usize::MAX) <= diff::MAX_COPY_WEIGHT,
                "a patch that copies produced a document over the limit"
            ),
            Err(err) => {
                ensure!(doc == before, "a failed patch changed the document");
                ensure!(
                    matches!(err.code(), ErrorCode::TooLarge | ErrorCode::InvalidPatch),
                    "{err}"
                );
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- the sequencer

fn stamp() -> impl FnMut(u64) -> (String, String) {
    |seq| (format!("ev{seq}"), "2026-01-01T00:00:00Z".to_string())
}

/// The document the log's events replay to, from scratch.
fn replay(log: &MemoryLog) -> Result<Option<Value>, String> {
    let mut state = StateManager::new("doc");
    for event in log.events() {
        state.apply(event).map_err(|e| {
            format!(
                "event {}: {e}: {}",
                event.sequence_num,
                protocol::encode(event)
            )
        })?;
    }
    Ok(state.document().cloned())
}

#[test]
fn random_submits_with_any_shape_flags_never_corrupt_the_log() {
    for_each_seed("sequencer", 0x5e9, |rng| {
        let mut log = MemoryLog::new("doc");
        let create = Edit {
            client_seq: 1,
            base_seq: 0,
            operation: Operation::Create,
            patch: serde_json::from_value(
                json!([{"op": "add", "path": "", "value": gen_doc(rng)}]),
            )
            .unwrap(),
            shape: None,
        };
        log.submit("a", &[create], &mut stamp());
        let mut next_seq = [2u64, 1, 1];
        for _ in 0..rng.random_range(1..12) {
            let who = rng.random_range(0..3);
            let client = ["a", "b", "c"][who];
            let edits: Vec<Edit> = (0..rng.random_range(1..3))
                .map(|i| {
                    let patch = gen_patch(rng);
                    // Flags of any length and any truth: a client may send anything.
                    let shape = rng.random_bool(0.7).then(|| {
                        (0..patch.len() + rng.random_range(0..2))
                            .map(|_| rng.random_bool(0.5))
                            .collect()
                    });
                    Edit {
                        client_seq: next_seq[who] + i,
                        // Stale, current, or (rarely) ahead.
                        base_seq: rng.random_range(0..=log.head_seq() + 1),
                        operation: *[
                            Operation::Update,
                            Operation::Update,
                            Operation::Delete,
                            Operation::Create,
                        ]
                        .choose(rng)
                        .unwrap(),
                        patch,
                        shape,
                    }
                })
                .collect();
            let head = log.head_seq();
            let document = log.document().cloned();
            let out = log.submit(client, &edits, &mut stamp());
            next_seq[who] += edits.len() as u64;
            ensure!(
                log.head_seq() == head + out.events.len() as u64,
                "the head moved by more than the new events"
            );
            if out.events.is_empty() {
                ensure!(
                    log.document() == document.as_ref(),
                    "a refused submit changed the document"
                );
            }
        }
        let replayed = replay(&log)?;
        ensure!(
            replayed.as_ref() == log.document(),
            "the log replays to {replayed:?}, the server holds {:?}",
            log.document()
        );
        Ok(())
    });
}

/// Found by the `decode_frame` fuzz target: without serde_json's `float_roundtrip`, a number
/// read inside a flattened member (the diff's unknown members, buffered by serde) and written
/// again came back one unit in the last place off, so a document could drift at every hop.
#[test]
fn numbers_survive_every_hop_exactly() {
    let frame = r#"{"type":"events","events":[{"id":"e","documentId":"d","sequenceNum":3,
        "diff":{"bob":26666666866666666666666666666666666666666666666666666,"x":0.1,"y":1e-300},
        "clientId":"bob"}],"headSeq":3}"#;
    let first = protocol::decode_server(frame).unwrap();
    let again = protocol::encode(&first);
    assert_eq!(
        protocol::decode_server(&again).unwrap(),
        with_own_entries(first),
        "{again}"
    );
    for text in [
        "2.6666666866666656e52",
        "0.30000000000000004",
        "5e-324",
        "1.7976931348623157e308",
    ] {
        let value: Value = serde_json::from_str(text).unwrap();
        let back: Value = serde_json::from_str(&value.to_string()).unwrap();
        assert_eq!(back, value, "{text}");
    }
}
