//! Unit tests for shaping and for every transform rule: the helpers, then by area.

use std::sync::{Arc, Mutex};

use json_patch::PatchOperation;
use serde_json::{json, Value};

use super::*;

fn ops(v: Value) -> Vec<PatchOperation> {
    serde_json::from_value(v).expect("valid RFC 6902 JSON")
}

fn sh(doc: &Value, v: Value) -> Vec<ShapedOp> {
    shape(doc, &ops(v)).expect("ops apply")
}

fn apply(doc: &Value, shaped: &[ShapedOp]) -> Value {
    let mut d = doc.clone();
    json_patch::patch(&mut d, &to_patch(shaped)).expect("shaped ops apply");
    d
}

fn op(kind: OpKind, path: &[&str], value: Option<Value>, in_array: bool) -> ShapedOp {
    ShapedOp::new(kind, path, value, in_array)
}

/// Outcome of transforming `a` over `b` on `s`, with both sides applied.
struct Run {
    t: Transformed,
    /// S + b + a'
    after_remote: Value,
    /// S + a + b'
    after_local: Value,
}

fn run(policy: ConflictPolicy, s: &Value, a: Value, b: Value) -> Run {
    let a = sh(s, a);
    let b = sh(s, b);
    let t = ConflictResolver::new(policy).transform(&a, &b);
    let after_remote = apply(&apply(s, &b), &t.local);
    let after_local = apply(&apply(s, &a), &t.remote);
    Run {
        t,
        after_remote,
        after_local,
    }
}

fn kinds(t: &Transformed) -> Vec<ConflictKind> {
    t.conflicts.iter().map(|c| c.kind).collect()
}

mod lost_sets;
mod rebase;
mod rules;
mod shape;
