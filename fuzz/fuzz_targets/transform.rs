//! Two concurrent patches against one document, transformed over each other with every policy:
//! no panic, both transformed sides apply, and where `ConflictResolver::transform` documents
//! convergence (`S + remote + local' == S + local + remote'`: no conflicts, `ClientWins`, or
//! `ServerWins` without an ancestor overwrite) the two orders converge.
//!
//! The fuzzer's bytes drive a generator of documents and of operations on their locations
//! (often invalid ones: those are dropped when `shape` refuses them).
#![no_main]

use eventsync::conflict::{shape, to_patch, ConflictKind, ConflictPolicy, ConflictResolver};
use json_patch::PatchOperation;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &["a", "b", "0", "1", "-", "x/y", "m~n"];

fn value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    Ok(match u.int_in_range(0..=5)? {
        0 => Value::Null,
        1 => json!(u.int_in_range(0..=9)?),
        2 => json!(*u.choose(KEYS)?),
        3 if depth > 0 => {
            let n = u.int_in_range(0..=3)?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        4 if depth > 0 => {
            let mut members = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                members.insert(u.choose(KEYS)?.to_string(), value(u, depth - 1)?);
            }
            Value::Object(members)
        }
        _ => json!(u.arbitrary::<bool>()?),
    })
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every location of `v` as a JSON Pointer, root first.
fn locations(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                locations(child, format!("{at}/{}", escape(k)), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                locations(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A location to write: an existing one, or a new key or index (or `-`) under one.
fn target(u: &mut Unstructured, all: &[String]) -> Result<String> {
    let at = u.choose(all)?.clone();
    Ok(match u.int_in_range(0..=3)? {
        0 => at,
        1 => format!("{at}/{}", escape(u.choose(KEYS)?)),
        2 => format!("{at}/-"),
        _ => format!("{at}/{}", u.int_in_range(0..=4)?),
    })
}

fn patch(u: &mut Unstructured, doc: &Value) -> Result<Vec<PatchOperation>> {
    let mut all = Vec::new();
    locations(doc, String::new(), &mut all);
    let mut ops = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let op = match u.int_in_range(0..=5)? {
            0 => json!({"op": "add", "path": target(u, &all)?, "value": value(u, 2)?}),
            1 => json!({"op": "remove", "path": u.choose(&all)?}),
            2 => json!({"op": "replace", "path": u.choose(&all)?, "value": value(u, 2)?}),
            3 => json!({"op": "move", "from": u.choose(&all)?, "path": target(u, &all)?}),
            4 => json!({"op": "copy", "from": u.choose(&all)?, "path": target(u, &all)?}),
            _ => {
                let path = u.choose(&all)?;
                let tested = doc.pointer(path).cloned().unwrap_or(Value::Null);
                json!({"op": "test", "path": path, "value": tested})
            }
        };
        if let Ok(op) = serde_json::from_value(op) {
            ops.push(op);
        }
    }
    Ok(ops)
}

fn applied(doc: &Value, ops: &[PatchOperation]) -> Option<Value> {
    let mut out = doc.clone();
    json_patch::patch(&mut out, ops).ok()?;
    Some(out)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let doc = value(u, 3)?;
    let (a_raw, b_raw) = (patch(u, &doc)?, patch(u, &doc)?);
    let (Ok(a), Ok(b)) = (shape(&doc, &a_raw), shape(&doc, &b_raw)) else {
        return Ok(());
    };
    let sa = applied(&doc, &to_patch(&a)).expect("a shaped patch applies");
    let sb = applied(&doc, &to_patch(&b)).expect("a shaped patch applies");
    for (name, policy) in [
        ("ServerWins", ConflictPolicy::ServerWins),
        ("ClientWins", ConflictPolicy::ClientWins),
    ] {
        let t = ConflictResolver::new(policy).transform(&a, &b);
        let sba = applied(&sb, &to_patch(&t.local))
            .unwrap_or_else(|| panic!("{name}: a' does not apply: {doc} {a:?} {b:?} {t:?}"));
        let sab = applied(&sa, &to_patch(&t.remote))
            .unwrap_or_else(|| panic!("{name}: b' does not apply: {doc} {a:?} {b:?} {t:?}"));
        let placeholders = name == "ServerWins"
            && t.conflicts
                .iter()
                .any(|c| c.kind == ConflictKind::AncestorOverwrite);
        if !placeholders {
            assert_eq!(sba, sab, "{name}: no convergence: {doc} {a:?} {b:?} {t:?}");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
