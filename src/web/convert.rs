//! JSON between JavaScript and Rust: every value the bindings take or give crosses here, as a
//! `serde_json::Value` (the option objects too, read field by field).
//!
//! The rules are serde-wasm-bindgen's (its JSON-compatible serializer one way, its deserializer
//! into a `Value` the other), written out for `Value` alone: serde-wasm-bindgen compiles its
//! serializer and deserializer for every type that crosses, a large share of the WebAssembly
//! build. `tests/web.rs` (which converts its own values with serde-wasm-bindgen) and the
//! package's tests in Node drive the bindings through it.

use js_sys::{Array, ArrayBuffer, Number, Object, Reflect, Uint8Array};
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::protocol::{write_json, Quoted};

/// JSON as a plain JavaScript value: objects (not `Map`s), arrays, numbers, strings, booleans and
/// `null`. An integer beyond 2^53 - 1 (which a JavaScript number cannot hold exactly) is an error.
///
/// Handed over as JSON text, which `JSON.parse` turns into the value in one call: building it
/// from Rust crossed into JavaScript for every member, key and string (a document of a
/// thousand fields, 13 KB: 0.26 ms instead of 0.41-0.49 in Node 20). Numbers read back as the
/// same `f64`: serde_json writes the shortest text that reads back to it. A key `__proto__` is
/// an own property, as `JSON.parse` makes it (setting it made it the object's prototype).
pub(crate) fn to_js(value: &Value) -> Result<JsValue, String> {
    // The rule the session keeps for edits (`diff::check_placed_numbers`), for everything else.
    if let Some(n) = crate::diff::unsafe_integer(value) {
        return Err(format!("{n} can't be represented as a JavaScript number"));
    }
    let text = write_json(value);
    js_sys::JSON::parse(&text).map_err(|_| "invalid JSON".to_owned())
}

/// A JavaScript value as JSON: `null` and `undefined` are `null`; numbers (a safe integer is an
/// integer, `NaN` and infinities `null`), `BigInt`s in the 64-bit range, strings, booleans,
/// arrays, plain objects (their own enumerable properties) and `Map`s with string keys convert;
/// anything else (a function, a symbol, bytes, a `Set`) is an error that says what it was.
pub(crate) fn from_js(value: &JsValue) -> Result<Value, String> {
    if value.is_null() || value.is_undefined() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if value.is_bigint() {
        return match i64::try_from(value.clone()) {
            Ok(n) => Ok(n.into()),
            Err(value) => u64::try_from(value).map(Value::from).map_err(|_| {
                "Couldn't deserialize i64 or u64 from a BigInt outside i64::MIN..u64::MAX bounds"
                    .to_owned()
            }),
        };
    }
    if let Some(n) = value.as_f64() {
        return Ok(if Number::is_safe_integer(value) {
            (n as i64).into()
        } else {
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
        });
    }
    if let Some(s) = value.as_string() {
        return Ok(Value::String(s));
    }
    if let Some(array) = value.dyn_ref::<Array>() {
        return array.iter().map(|item| from_js(&item)).collect();
    }
    if value.is_instance_of::<Uint8Array>() || value.is_instance_of::<ArrayBuffer>() {
        return Err(invalid("byte array"));
    }
    if let Some(map) = value.dyn_ref::<js_sys::Map>() {
        let mut members = Map::new();
        let mut failed = None;
        map.for_each(&mut |member, key| {
            if failed.is_some() {
                return;
            }
            match (key.as_string(), from_js(&member)) {
                (Some(key), Ok(member)) => {
                    members.insert(key, member);
                }
                (None, _) => failed = Some(invalid_key(&key)),
                (_, Err(err)) => failed = Some(err),
            }
        });
        return failed.map_or(Ok(Value::Object(members)), Err);
    }
    let iterable = Reflect::has(value, &js_sys::Symbol::iterator()).unwrap_or(false);
    if value.is_object() && !iterable && !value.is_function() {
        let mut members = Map::new();
        for entry in Object::entries(value.unchecked_ref()).iter() {
            let entry: Array = entry.unchecked_into();
            let key = entry.get(0).as_string().unwrap_or_default();
            members.insert(key, from_js(&entry.get(1))?);
        }
        return Ok(Value::Object(members));
    }
    Err(invalid(&format!("{value:?}")))
}

/// The fields `fields` of the object `value` as a JSON object, the way serde-wasm-bindgen reads
/// a struct: every field the object has (its own or inherited, `in`), and no other; anything
/// but an object is an error.
pub(crate) fn fields_from_js(value: &JsValue, fields: &[&str]) -> Result<Value, String> {
    if !value.is_object() {
        let what = match from_js(value) {
            Ok(Value::Bool(b)) => format!("boolean `{b}`"),
            Ok(Value::Number(n)) => format!("number `{n}`"),
            Ok(Value::String(s)) => format!("string {}", Quoted(&s)),
            _ => format!("{value:?}"),
        };
        return Err(format!("invalid type: {what}, expected an object"));
    }
    let mut members = Map::new();
    for field in fields {
        let key = JsValue::from_str(field);
        let member = Reflect::get(value, &key).unwrap_or(JsValue::UNDEFINED);
        if member.is_undefined() && !Reflect::has(value, &key).unwrap_or(false) {
            continue;
        }
        members.insert((*field).to_owned(), from_js(&member)?);
    }
    Ok(Value::Object(members))
}

fn invalid(what: &str) -> String {
    format!("invalid type: {what}, expected any valid JSON value")
}

fn invalid_key(key: &JsValue) -> String {
    format!("invalid type: {key:?}, expected a string key")
}
