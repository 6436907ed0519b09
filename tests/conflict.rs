//! Seeded property tests of the conflict module: random documents, random concurrent edits.
//!
//! `EVENTSYNC_CONFLICT_SEEDS=N` changes the number of seeds (default 3000);
//! `EVENTSYNC_CONFLICT_SEED=S` runs seed `S` alone. A failure prints its seed.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use eventsync::conflict::{
    shape, to_patch, Conflict, ConflictKind, ConflictPolicy, ConflictResolver, Resolution, ShapedOp,
};
use json_patch::PatchOperation;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &["a", "b", "c", "0", "1", "x/y", "m~n", "-"];
const WORDS: &[&str] = &["p", "q", "r", "s"];

fn seeds() -> Vec<u64> {
    common::seeds("EVENTSYNC_CONFLICT", 3000)
}

// ---------------------------------------------------------------- generators

fn gen_value(rng: &mut ChaCha8Rng, depth: u32) -> Value {
    if depth == 0 || rng.random_bool(0.35) {
        return match rng.random_range(0..4) {
            0 => json!(rng.random_range(0..10)),
            1 => json!(WORDS.choose(rng).copied().unwrap_or("p")),
            2 => json!(rng.random_bool(0.5)),
            _ => Value::Null,
        };
    }
    let n = rng.random_range(0..4);
    if rng.random_bool(0.5) {
        let mut m = Map::new();
        for _ in 0..n {
            let k = KEYS.choose(rng).copied().unwrap_or("a");
            let v = gen_value(rng, depth - 1);
            m.insert(k.to_owned(), v);
        }
        Value::Object(m)
    } else {
        Value::Array((0..n).map(|_| gen_value(rng, depth - 1)).collect())
    }
}

fn gen_doc(rng: &mut ChaCha8Rng) -> Value {
    let mut m = Map::new();
    for k in ["a", "b", "0"] {
        if rng.random_bool(0.8) {
            m.insert(k.to_owned(), gen_value(rng, 3));
        }
    }
    m.insert(
        "list".to_owned(),
        Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| gen_value(rng, 2))
                .collect(),
        ),
    );
    Value::Object(m)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn ptr(tokens: &[String]) -> String {
    tokens.iter().map(|t| format!("/{}", escape(t))).collect()
}

/// Every location in `v` (root first), in a deterministic order.
fn locations(v: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    at.push(k.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    at.push(i.to_string());
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// A location to add at: an array index (or `-`) or an object key, new or existing.
fn gen_target(rng: &mut ChaCha8Rng, doc: &Value) -> Option<String> {
    let containers: Vec<Vec<String>> = locations(doc)
        .into_iter()
        .filter(|p| {
            matches!(
                doc.pointer(&ptr(p)),
                Some(Value::Object(_) | Value::Array(_))
            )
        })
        .collect();
    let parent = containers.choose(rng)?.clone();
    let last = match doc.pointer(&ptr(&parent))? {
        Value::Array(items) => {
            if rng.random_bool(0.3) {
                "-".to_owned()
            } else {
                rng.random_range(0..=items.len()).to_string()
            }
        }
        _ => KEYS.choose(rng)?.to_string(),
    };
    Some(format!("{}/{}", ptr(&parent), escape(&last)))
}

fn pick_location(rng: &mut ChaCha8Rng, doc: &Value, allow_root: bool) -> Option<Vec<String>> {
    let all: Vec<Vec<String>> = locations(doc)
        .into_iter()
        .filter(|p| allow_root || !p.is_empty())
        .collect();
    all.choose(rng).cloned()
}

fn gen_op(rng: &mut ChaCha8Rng, doc: &Value, with_tests: bool) -> Option<PatchOperation> {
    let kinds: &[&str] = if with_tests {
        &["add", "add", "remove", "replace", "move", "copy", "test"]
    } else {
        &["add", "add", "remove", "replace", "move", "copy"]
    };
    let op = match *kinds.choose(rng)? {
        "add" => json!({"op": "add", "path": gen_target(rng, doc)?, "value": gen_value(rng, 2)}),
        "remove" => json!({"op": "remove", "path": ptr(&pick_location(rng, doc, false)?)}),
        "replace" => {
            // The root only now and then: it conflicts with everything.
            let root = rng.random_bool(0.03);
            let path = if root {
                Vec::new()
            } else {
                pick_location(rng, doc, false)?
            };
            json!({"op": "replace", "path": ptr(&path), "value": gen_value(rng, 2)})
        }
        "move" => {
            let from = pick_location(rng, doc, false)?;
            let mut after = doc.clone();
            let remove: PatchOperation =
                serde_json::from_value(json!({"op": "remove", "path": ptr(&from)})).ok()?;
            json_patch::patch(&mut after, &[remove]).ok()?;
            json!({"op": "move", "from": ptr(&from), "path": gen_target(rng, &after)?})
        }
        "copy" => {
            let from = pick_location(rng, doc, true)?;
            json!({"op": "copy", "from": ptr(&from), "path": gen_target(rng, doc)?})
        }
        _ => {
            let path = pick_location(rng, doc, true)?;
            let value = doc.pointer(&ptr(&path))?.clone();
            json!({"op": "test", "path": ptr(&path), "value": value})
        }
    };
    serde_json::from_value(op).ok()
}

/// 1 to 3 ops, each valid against the document left by the ones before it.
fn gen_edit(rng: &mut ChaCha8Rng, doc: &Value, with_tests: bool) -> (Vec<PatchOperation>, Value) {
    let mut doc = doc.clone();
    let mut ops = Vec::new();
    let n = rng.random_range(1..=3);
    let mut attempts = 0;
    while ops.len() < n && attempts < 50 {
        attempts += 1;
        let Some(op) = gen_op(rng, &doc, with_tests) else {
            continue;
        };
        let mut next = doc.clone();
        if json_patch::patch(&mut next, std::slice::from_ref(&op)).is_ok() {
            ops.push(op);
            doc = next;
        }
    }
    (ops, doc)
}

// ---------------------------------------------------------------- checks

fn apply(doc: &Value, ops: &[ShapedOp], what: &str) -> Result<Value, String> {
    let mut d = doc.clone();
    json_patch::patch(&mut d, &to_patch(ops))
        .map_err(|e| format!("{what} does not apply: {e}\n  doc: {doc}\n  ops: {ops:?}"))?;
    Ok(d)
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn policies() -> Vec<(&'static str, ConflictPolicy)> {
    let custom = |c: &Conflict| match c.kind {
        ConflictKind::SamePath => Resolution::Value(json!(["merged", c.path])),
        _ => Resolution::KeepLocal,
    };
    vec![
        ("ServerWins", ConflictPolicy::ServerWins),
        ("ClientWins", ConflictPolicy::ClientWins),
        ("Custom", ConflictPolicy::Custom(Arc::new(custom))),
    ]
}

/// Whether the policy guarantees `S + b + a' == S + a + b'` for these conflicts. The one class
/// where it cannot: a local overwrite/removal of an ancestor of a remote change, resolved
/// `KeepRemote` (ServerWins): `b'` must restore the ancestor's old value, which only the
/// document holds.
fn must_converge(policy: &str, conflicts: &[Conflict]) -> bool {
    conflicts.is_empty()
        || policy != "ServerWins"
        || conflicts
            .iter()
            .all(|c| c.kind != ConflictKind::AncestorOverwrite)
}

/// `b_side == a_side` where a `null` in `b_side` matches anything: the placeholder `b'` restores
/// an ancestor with under [`ConflictPolicy::ServerWins`] (see [`must_converge`]).
fn equal_but_placeholders(b_side: &Value, a_side: &Value) -> bool {
    match (b_side, a_side) {
        (Value::Null, _) => true,
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equal_but_placeholders(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal_but_placeholders(v, w))
        }
        (x, y) => x == y,
    }
}

#[derive(Default)]
struct Stats {
    kinds: BTreeMap<String, usize>,
    conflict_free_pairs: usize,
    converged_with_conflicts: usize,
    placeholder_pairs: usize,
    invalidated: usize,
}

fn check(seed: u64, stats: &mut Stats) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let with_tests = rng.random_bool(0.3);
    let s = gen_doc(&mut rng);
    let (a_raw, sa) = gen_edit(&mut rng, &s, with_tests);
    let (b_raw, sb) = gen_edit(&mut rng, &s, with_tests);
    let (e2_raw, sa2) = gen_edit(&mut rng, &sa, with_tests);

    let a = shape(&s, &a_raw).map_err(|e| format!("shape a: {e}"))?;
    let b = shape(&s, &b_raw).map_err(|e| format!("shape b: {e}"))?;
    let e2 = shape(&sa, &e2_raw).map_err(|e| format!("shape e2: {e}"))?;
    ensure!(apply(&s, &a, "shaped a")? == sa, "shaped a differs from a");
    ensure!(apply(&s, &b, "shaped b")? == sb, "shaped b differs from b");
    ensure!(apply(&sa, &e2, "shaped e2")? == sa2, "shaped e2 differs");

    let ctx = || format!("\n  S: {s}\n  a: {a:?}\n  b: {b:?}\n  e2: {e2:?}");
    for (name, policy) in policies() {
        let resolver = ConflictResolver::new(policy);

        // (1) determinism
        let t = resolver.transform(&a, &b);
        ensure!(
            t == resolver.transform(&a, &b),
            "{name}: transform not deterministic{}",
            ctx()
        );

        // (2) a' and b' apply
        let sba = apply(&sb, &t.local, &format!("{name}: a'"))?;
        let sab = apply(&sa, &t.remote, &format!("{name}: b'"))?;

        // (3) and (4) convergence
        for c in &t.conflicts {
            *stats
                .kinds
                .entry(format!("{name} {:?}", c.kind))
                .or_default() += 1;
        }
        if t.invalidated {
            stats.invalidated += 1;
        }
        if t.conflicts.is_empty() {
            stats.conflict_free_pairs += 1;
        }
        if must_converge(name, &t.conflicts) {
            ensure!(
                sba == sab,
                "{name}: no convergence\n  S+b+a': {sba}\n  S+a+b': {sab}\n  a': {:?}\n  b': {:?}\n  conflicts: {:?}{}",
                t.local,
                t.remote,
                t.conflicts,
                ctx()
            );
            if !t.conflicts.is_empty() {
                stats.converged_with_conflicts += 1;
            }
        } else {
            stats.placeholder_pairs += 1;
            ensure!(
                equal_but_placeholders(&sab, &sba),
                "{name}: differs beyond the restored placeholders\n  S+b+a': {sba}\n  S+a+b': {sab}{}",
                ctx()
            );
        }

        // (5) multi-edit rebase = step-by-step transform over the continued remote. A rebase of
        // one edit is its transform; the remote it continues over that edit is the transform's,
        // or only what differs where a created object or array lost to a remote one of the same
        // kind (`ConflictResolver::rebase`): the second edit is transformed over that.
        let rebased = resolver.rebase(&[a.clone(), e2.clone()], &b);
        ensure!(
            rebased == resolver.rebase(&[a.clone(), e2.clone()], &b),
            "{name}: rebase not deterministic{}",
            ctx()
        );
        let first = resolver.rebase(std::slice::from_ref(&a), &b);
        ensure!(
            first.edits == vec![t.local.clone()]
                && first.conflicts
                    == t.conflicts
                        .iter()
                        .map(|c| (0, c.clone()))
                        .collect::<Vec<_>>()
                && first.invalidated == if t.invalidated { vec![0] } else { vec![] },
            "{name}: a rebase of one edit differs from its transform{}",
            ctx()
        );
        ensure!(
            apply(&sa, &first.remote, &format!("{name}: continued remote"))?
                == apply(&sa, &t.remote, &format!("{name}: b'"))?,
            "{name}: the continued remote and the transform's differ in effect{}",
            ctx()
        );
        let t2 = resolver.transform(&e2, &first.remote);
        ensure!(
            rebased.edits == vec![t.local.clone(), t2.local.clone()],
            "{name}: rebase differs from step-by-step{}",
            ctx()
        );
        let expected_conflicts: Vec<(usize, Conflict)> = t
            .conflicts
            .iter()
            .map(|c| (0, c.clone()))
            .chain(t2.conflicts.iter().map(|c| (1, c.clone())))
            .collect();
        ensure!(
            rebased.conflicts == expected_conflicts,
            "{name}: rebase conflicts differ\n  rebase: {:?}\n  step by step: {:?}{}",
            rebased.conflicts,
            expected_conflicts,
            ctx()
        );
        let expected_invalidated: Vec<usize> = [t.invalidated, t2.invalidated]
            .iter()
            .enumerate()
            .filter(|(_, i)| **i)
            .map(|(k, _)| k)
            .collect();
        ensure!(
            rebased.invalidated == expected_invalidated,
            "{name}: rebase invalidated differs"
        );
        let view = apply(&sba, &rebased.edits[1], &format!("{name}: e2'"))?;
        let other = apply(&sa2, &t2.remote, &format!("{name}: b''"))?;
        let all: Vec<Conflict> = t.conflicts.iter().chain(&t2.conflicts).cloned().collect();
        if !must_converge(name, &all) {
            ensure!(
                equal_but_placeholders(&other, &view),
                "{name}: rebased chain differs beyond the placeholders\n  S+b+a'+e2': {view}\n  S+a+e2+b'': {other}{}",
                ctx()
            );
        } else {
            ensure!(
                view == other,
                "{name}: rebased chain does not converge\n  S+b+a'+e2': {view}\n  S+a+e2+b'': {other}{}",
                ctx()
            );
        }
    }
    Ok(())
}

fn run_seeds(name: &str, mut f: impl FnMut(u64) -> Result<(), String>) {
    let mut failures = Vec::new();
    let seeds = seeds();
    for &seed in &seeds {
        match catch_unwind(AssertUnwindSafe(|| f(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => failures.push(format!("seed {seed}: {msg}")),
            Err(_) => failures.push(format!("seed {seed}: panicked")),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{name}: {} of {} seeds failed (rerun one with EVENTSYNC_CONFLICT_SEED=<seed>); first:\n{}",
            failures.len(),
            seeds.len(),
            failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n\n")
        );
    }
}

#[test]
fn random_concurrent_edits_transform_soundly() {
    let mut stats = Stats::default();
    run_seeds("transform", |seed| check(seed, &mut stats));
    eprintln!(
        "conflict-free pairs: {}, converged with conflicts: {}, placeholder pairs: {}, \
         invalidated: {}, conflicts: {:?}",
        stats.conflict_free_pairs,
        stats.converged_with_conflicts,
        stats.placeholder_pairs,
        stats.invalidated,
        stats.kinds
    );
    // The run is only meaningful if it exercised every rule.
    if seeds().len() >= 1000 {
        assert!(
            stats.conflict_free_pairs > 500,
            "too few conflict-free pairs"
        );
        assert!(stats.converged_with_conflicts > 100);
        assert!(stats.invalidated > 10);
        for kind in [
            "SamePath",
            "AncestorOverwrite",
            "ParentRemoved",
            "ParentReplaced",
            "TestInvalidated",
        ] {
            for policy in ["ServerWins", "ClientWins", "Custom"] {
                let n = stats
                    .kinds
                    .get(&format!("{policy} {kind}"))
                    .copied()
                    .unwrap_or(0);
                assert!(n >= 10, "{policy} {kind}: only {n} conflicts generated");
            }
        }
    }
}

/// A random op on a random path (often invalid): `shape` succeeds exactly when
/// `json_patch::patch` does, and its result applies to the same document.
#[test]
fn shape_agrees_with_json_patch() {
    run_seeds("shape", |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let s = gen_doc(&mut rng);
        let mut ops = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let mut random_path = || -> String {
                let n = rng.random_range(0..4);
                (0..n)
                    .map(|_| {
                        let t = match rng.random_range(0..3) {
                            0 => rng.random_range(0..4).to_string(),
                            1 => "-".to_owned(),
                            _ => KEYS.choose(&mut rng).copied().unwrap_or("a").to_owned(),
                        };
                        format!("/{}", escape(&t))
                    })
                    .collect()
            };
            let (path, from) = (random_path(), random_path());
            let op = match rng.random_range(0..6) {
                0 => json!({"op": "add", "path": path, "value": 1}),
                1 => json!({"op": "remove", "path": path}),
                2 => json!({"op": "replace", "path": path, "value": 2}),
                3 => json!({"op": "move", "from": from, "path": path}),
                4 => json!({"op": "copy", "from": from, "path": path}),
                _ => json!({"op": "test", "path": path, "value": null}),
            };
            ops.push(serde_json::from_value::<PatchOperation>(op).map_err(|e| e.to_string())?);
        }
        // One op at a time: json_patch 5.0.0 panics when undoing some moves of a failing
        // multi-op patch (a move of a child onto its parent); single ops undo nothing.
        let mut expected = s.clone();
        let by_json_patch = ops
            .iter()
            .try_for_each(|op| json_patch::patch(&mut expected, std::slice::from_ref(op)));
        match (shape(&s, &ops), by_json_patch) {
            (Ok(shaped), Ok(())) => {
                let got = apply(&s, &shaped, "shaped")?;
                ensure!(
                    got == expected,
                    "shaped result differs: {got} vs {expected}"
                );
            }
            (Err(_), Err(_)) => {}
            (shaped, patched) => {
                return Err(format!(
                    "disagree on {ops:?} over {s}: shape {shaped:?}, json_patch {patched:?}"
                ))
            }
        }
        Ok(())
    });
}
