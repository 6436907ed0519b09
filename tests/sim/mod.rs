//! What the seeded simulations share: a faulty network pipe and random patches.
#![allow(dead_code)]

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[derive(Clone, Copy)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub cut: f64,
    pub restart: f64,
}

pub const NO_FAULTS: Faults = Faults {
    drop: 0.0,
    duplicate: 0.0,
    reorder: 0.0,
    cut: 0.0,
    restart: 0.0,
};

/// One direction of one connection.
#[derive(Default)]
pub struct Pipe {
    pub frames: VecDeque<String>,
}

impl Pipe {
    pub fn take(&mut self, rng: &mut ChaCha8Rng, faults: Faults) -> Vec<String> {
        let mut out = Vec::new();
        while !self.frames.is_empty() {
            let index = if rng.random_bool(faults.reorder) {
                rng.random_range(0..self.frames.len())
            } else {
                0
            };
            let frame = self.frames.remove(index).expect("index in range");
            if rng.random_bool(faults.drop) {
                continue;
            }
            if rng.random_bool(faults.duplicate) {
                out.push(frame.clone());
            }
            out.push(frame);
            // Deliver a few at a time so that frames interleave with other work.
            if rng.random_bool(0.3) {
                break;
            }
        }
        out
    }
}

pub fn random_value(rng: &mut ChaCha8Rng, depth: usize) -> Value {
    match rng.random_range(0..if depth > 2 { 3 } else { 5 }) {
        0 => json!(rng.random_range(0..100)),
        1 => json!(format!("s{}", rng.random_range(0..10))),
        2 => json!(rng.random_bool(0.5)),
        3 => json!({"k": rng.random_range(0..10), "list": []}),
        _ => json!([rng.random_range(0..10)]),
    }
}

fn containers(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            out.push((path.clone(), value.clone()));
            for (k, v) in map {
                containers(v, format!("{path}/{k}"), out);
            }
        }
        Value::Array(items) => {
            out.push((path.clone(), value.clone()));
            for (i, v) in items.iter().enumerate() {
                containers(v, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A random patch that applies to `doc`: object set/remove, array insert/remove/move, replace,
/// at nested paths.
pub fn random_patch(rng: &mut ChaCha8Rng, doc: &Value) -> Value {
    let mut all = Vec::new();
    containers(doc, String::new(), &mut all);
    let (path, container) = all[rng.random_range(0..all.len())].clone();
    let depth = path.matches('/').count();
    let keys = ["a", "b", "c", "x", "y"];
    match container {
        Value::Object(map) => {
            if !map.is_empty() && rng.random_bool(0.3) {
                let key = map.keys().nth(rng.random_range(0..map.len())).unwrap();
                json!([{"op": "remove", "path": format!("{path}/{key}")}])
            } else {
                let key = keys[rng.random_range(0..keys.len())];
                json!([{"op": "add", "path": format!("{path}/{key}"), "value": random_value(rng, depth)}])
            }
        }
        Value::Array(items) => {
            let len = items.len();
            match rng.random_range(0..5) {
                0 if len > 0 => {
                    json!([{"op": "remove", "path": format!("{path}/{}", rng.random_range(0..len))}])
                }
                1 if len > 1 => json!([{
                    "op": "move",
                    "from": format!("{path}/{}", rng.random_range(0..len)),
                    "path": format!("{path}/{}", rng.random_range(0..len)),
                }]),
                2 if len > 0 => json!([{
                    "op": "replace",
                    "path": format!("{path}/{}", rng.random_range(0..len)),
                    "value": random_value(rng, depth),
                }]),
                3 => {
                    json!([{"op": "add", "path": format!("{path}/-"), "value": random_value(rng, depth)}])
                }
                _ => json!([{
                    "op": "add",
                    "path": format!("{path}/{}", rng.random_range(0..=len)),
                    "value": random_value(rng, depth),
                }]),
            }
        }
        _ => unreachable!("containers only"),
    }
}
