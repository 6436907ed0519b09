//! `bsonPatch`: the MongoDB update operators the seed's server (nodestorage) records, applied to a
//! JSON document.

use std::cell::Cell;

use serde_json::{Map, Number, Value};

use super::patch::json_equal;
use super::{check_depth, take_member, DiffError, MAX_DEPTH};
use crate::protocol::members::{
    deserialize_from_json, serialize_to_json, FromJson, Object, ToJson,
};

/// How many `null`s one patch may pad arrays with, in all, when it writes past their end (as
/// MongoDB does): a bound so that hostile indexes cannot allocate without limit.
pub const MAX_ARRAY_PADDING: usize = 10_000;

/// MongoDB update operators keyed by dotted paths (`players.p1.level`), as nodestorage records
/// them (without the `$`).
///
/// A numeric path segment indexes an array when the container is an array and is an object key
/// otherwise. Members this type does not know are kept in [`BsonPatch::other`] and refused when
/// the patch is applied, so an unknown operator is never silently ignored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BsonPatch {
    /// `$set`: path -> new value; missing intermediate objects are created.
    pub set: Option<Map<String, Value>>,
    /// `$unset`: path -> `""`; removes the field (an absent field is fine).
    pub unset: Option<Map<String, Value>>,
    /// `$inc`: path -> number to add; a missing field is set to the number.
    pub inc: Option<Map<String, Value>>,
    /// `$push`: path -> value to append, or `{"$each": [values]}`.
    pub push: Option<Map<String, Value>>,
    /// `$pull`: path -> value whose equal elements are removed, or `{"$in": [values]}`.
    pub pull: Option<Map<String, Value>>,
    /// `$addToSet`: path -> value appended unless present, or `{"$each": [values]}`.
    pub add_to_set: Option<Map<String, Value>>,
    /// `$pullAll`: path -> list of values whose equal elements are removed.
    pub pull_all: Option<Map<String, Value>>,
    /// MongoDB `arrayFilters`; not supported (a non-empty list is an error).
    pub array_filters: Option<Vec<Value>>,
    /// Any other member: an operator this crate does not support (an error when applied).
    pub other: Map<String, Value>,
}

/// Read like [`super::Diff`]: the members this crate does not know stay in
/// [`BsonPatch::other`].
impl FromJson for BsonPatch {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut other = Map::from_json(value)?;
        Ok(BsonPatch {
            set: take_member(&mut other, "set")?,
            unset: take_member(&mut other, "unset")?,
            inc: take_member(&mut other, "inc")?,
            push: take_member(&mut other, "push")?,
            pull: take_member(&mut other, "pull")?,
            add_to_set: take_member(&mut other, "addToSet")?,
            pull_all: take_member(&mut other, "pullAll")?,
            array_filters: take_member(&mut other, "arrayFilters")?,
            other,
        })
    }
}

/// Written with the operators it has, and [`BsonPatch::other`]'s beside them (`Serialize`
/// writes the same, through this).
impl ToJson for BsonPatch {
    fn to_json(&self) -> Value {
        Object::of(self.other.clone())
            .with_some("set", &self.set)
            .with_some("unset", &self.unset)
            .with_some("inc", &self.inc)
            .with_some("push", &self.push)
            .with_some("pull", &self.pull)
            .with_some("addToSet", &self.add_to_set)
            .with_some("pullAll", &self.pull_all)
            .with_some("arrayFilters", &self.array_filters)
            .done()
    }
}

deserialize_from_json!(BsonPatch);
serialize_to_json!(BsonPatch);

impl BsonPatch {
    /// Apply the operators to a copy of `start`, in the order set, unset, inc, push, addToSet,
    /// pull, pullAll, and return the result; `start` is never changed.
    ///
    /// `skip_version_inc` skips an `inc` of the top-level key `version`: the seed's server bumps
    /// its database's own version counter, which is not part of the JSON document, in the same
    /// patch (see [`super::Diff::version`]).
    pub fn apply(&self, start: &Value, skip_version_inc: bool) -> Result<Value, DiffError> {
        if let Some(name) = self.other.keys().next() {
            return Err(DiffError::UnsupportedBsonOperator(name.clone()));
        }
        if self.array_filters.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(DiffError::UnsupportedBsonOperator("arrayFilters".into()));
        }
        let ops: [(&str, &Option<Map<String, Value>>); 7] = [
            ("set", &self.set),
            ("unset", &self.unset),
            ("inc", &self.inc),
            ("push", &self.push),
            ("addToSet", &self.add_to_set),
            ("pull", &self.pull),
            ("pullAll", &self.pull_all),
        ];
        // Validate every path and bound every value before touching anything.
        for (operator, map) in ops {
            for (path, value) in map.iter().flatten() {
                parse_path(operator, path)?;
                check_depth(value, MAX_DEPTH)?;
            }
        }
        let mut doc = start.clone();
        let padding_left = Cell::new(MAX_ARRAY_PADDING);
        for (operator, map) in ops {
            for (path, value) in map.iter().flatten() {
                if operator == "inc" && skip_version_inc && path == "version" {
                    continue;
                }
                let segs = parse_path(operator, path)?;
                let at = At {
                    operator,
                    path,
                    segs: &segs,
                    padding_left: &padding_left,
                };
                match operator {
                    "set" => at.set(&mut doc, value.clone())?,
                    "unset" => at.unset(&mut doc),
                    "inc" => at.inc(&mut doc, value)?,
                    "push" => at.push(&mut doc, value, false)?,
                    "addToSet" => at.push(&mut doc, value, true)?,
                    "pull" => at.pull(&mut doc, value)?,
                    "pullAll" => at.pull_all(&mut doc, value)?,
                    _ => unreachable!("operators are listed above"),
                }
            }
        }
        Ok(doc)
    }
}

fn parse_path<'p>(operator: &str, path: &'p str) -> Result<Vec<&'p str>, DiffError> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.len() > MAX_DEPTH {
        return Err(DiffError::InvalidBsonPatch {
            operator: operator.into(),
            path: path.into(),
            reason: format!("path has more than {MAX_DEPTH} segments"),
        });
    }
    for seg in &segs {
        if seg.is_empty() {
            return Err(DiffError::InvalidBsonPatch {
                operator: operator.into(),
                path: path.into(),
                reason: "empty path segment".into(),
            });
        }
        if seg.starts_with('$') {
            return Err(DiffError::UnsupportedBsonOperator(format!(
                "positional `{seg}` in {operator} path `{path}`"
            )));
        }
    }
    Ok(segs)
}

/// A canonical array index: digits without a leading zero.
fn array_index(seg: &str) -> Option<usize> {
    let canonical =
        seg.bytes().all(|b| b.is_ascii_digit()) && (seg == "0" || !seg.starts_with('0'));
    if canonical {
        seg.parse().ok()
    } else {
        None
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One operator at one path.
struct At<'a> {
    operator: &'a str,
    path: &'a str,
    segs: &'a [&'a str],
    /// The `null`s the whole patch may still pad arrays with.
    padding_left: &'a Cell<usize>,
}

impl At<'_> {
    fn error(&self, reason: impl Into<String>) -> DiffError {
        DiffError::InvalidBsonPatch {
            operator: self.operator.into(),
            path: self.path.into(),
            reason: reason.into(),
        }
    }

    /// The value at the path, without creating anything.
    fn lookup_mut<'d>(&self, doc: &'d mut Value) -> Option<&'d mut Value> {
        let mut cur = doc;
        for seg in self.segs {
            cur = match cur {
                Value::Object(map) => map.get_mut(*seg)?,
                Value::Array(arr) => arr.get_mut(array_index(seg)?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Put `value` at the path, creating missing intermediate objects (and padding arrays with
    /// `null` up to an index past their end, as MongoDB does).
    fn set(&self, doc: &mut Value, value: Value) -> Result<(), DiffError> {
        if doc.is_null() {
            *doc = Value::Object(Map::new());
        }
        let mut cur = doc;
        let (last, parents) = self.segs.split_last().expect("paths have a segment");
        for seg in parents {
            cur = match cur {
                Value::Object(map) => map
                    .entry(seg.to_string())
                    .or_insert_with(|| Value::Object(Map::new())),
                Value::Array(arr) => {
                    let idx = self.pad(arr, seg)?;
                    if idx == arr.len() {
                        arr.push(Value::Object(Map::new()));
                    }
                    &mut arr[idx]
                }
                other => {
                    return Err(self.error(format!(
                        "cannot create field `{seg}` inside {}",
                        type_name(other)
                    )))
                }
            };
        }
        match cur {
            Value::Object(map) => {
                map.insert(last.to_string(), value);
            }
            Value::Array(arr) => {
                let idx = self.pad(arr, last)?;
                if idx == arr.len() {
                    arr.push(value);
                } else {
                    arr[idx] = value;
                }
            }
            other => {
                return Err(self.error(format!(
                    "cannot create field `{last}` inside {}",
                    type_name(other)
                )))
            }
        }
        Ok(())
    }

    /// The index `seg` names in `arr`, after padding `arr` with `null`s up to it.
    fn pad(&self, arr: &mut Vec<Value>, seg: &str) -> Result<usize, DiffError> {
        let idx = array_index(seg)
            .ok_or_else(|| self.error(format!("`{seg}` is not an index of the array")))?;
        let nulls = idx.saturating_sub(arr.len());
        if nulls > self.padding_left.get() {
            return Err(self.error(format!(
                "index {idx} would pad arrays with more than {MAX_ARRAY_PADDING} nulls in all"
            )));
        }
        self.padding_left.set(self.padding_left.get() - nulls);
        arr.resize(arr.len().max(idx), Value::Null);
        Ok(idx)
    }

    /// Remove the field; an array element is set to `null` (MongoDB keeps positions).
    fn unset(&self, doc: &mut Value) {
        let (last, parents) = self.segs.split_last().expect("paths have a segment");
        let parent_at = At {
            segs: parents,
            ..*self
        };
        match parent_at.lookup_mut(doc) {
            Some(Value::Object(map)) => {
                map.remove(*last);
            }
            Some(Value::Array(arr)) => {
                if let Some(slot) = array_index(last).and_then(|i| arr.get_mut(i)) {
                    *slot = Value::Null;
                }
            }
            _ => {}
        }
    }

    fn inc(&self, doc: &mut Value, by: &Value) -> Result<(), DiffError> {
        let Value::Number(by) = by else {
            return Err(self.error(format!("increment is {}, not a number", type_name(by))));
        };
        match self.lookup_mut(doc) {
            None => self.set(doc, Value::Number(by.clone())),
            Some(Value::Number(n)) => {
                *n = self.add(n, by)?;
                Ok(())
            }
            Some(other) => Err(self.error(format!(
                "cannot increment {}, only a number",
                type_name(other)
            ))),
        }
    }

    fn add(&self, a: &Number, b: &Number) -> Result<Number, DiffError> {
        if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
            return x
                .checked_add(y)
                .map(Number::from)
                .ok_or_else(|| self.error(format!("integer overflow adding {y} to {x}")));
        }
        let big = |n: &Number| n.as_u64().map(i128::from);
        let int = |n: &Number| n.as_i64().map(i128::from).or_else(|| big(n));
        if let (Some(x), Some(y)) = (int(a), int(b)) {
            let sum = x + y;
            return i64::try_from(sum)
                .map(Number::from)
                .or_else(|_| u64::try_from(sum).map(Number::from))
                .map_err(|_| self.error(format!("integer overflow adding {b} to {a}")));
        }
        let (x, y) = (
            a.as_f64().unwrap_or(f64::NAN),
            b.as_f64().unwrap_or(f64::NAN),
        );
        // The numbers as JSON writes them (Rust's float formatting stays out of the wasm).
        Number::from_f64(x + y).ok_or_else(|| self.error(format!("{a} + {b} is not finite")))
    }

    /// `push` (or `addToSet` when `unique`): append one value, or each of `{"$each": [...]}`.
    fn push(&self, doc: &mut Value, value: &Value, unique: bool) -> Result<(), DiffError> {
        let items = self.modifier(value, "$each")?;
        let items: Vec<Value> = match items {
            Some(each) => each.to_vec(),
            None => vec![value.clone()],
        };
        let append = |arr: &mut Vec<Value>| {
            for item in items {
                if !unique || !arr.iter().any(|e| json_equal(e, &item)) {
                    arr.push(item);
                }
            }
        };
        match self.lookup_mut(doc) {
            Some(Value::Array(arr)) => {
                append(arr);
                Ok(())
            }
            Some(other) => Err(self.error(format!("cannot append to {}", type_name(other)))),
            None => {
                let mut fresh = Vec::new();
                append(&mut fresh);
                self.set(doc, Value::Array(fresh))
            }
        }
    }

    /// When `value` is an object with `$` members, it must be exactly `{name: [..]}`: returns the
    /// list. Otherwise returns `None` (the value is a plain value).
    fn modifier<'v>(&self, value: &'v Value, name: &str) -> Result<Option<&'v [Value]>, DiffError> {
        let Value::Object(map) = value else {
            return Ok(None);
        };
        if !map.keys().any(|k| k.starts_with('$')) {
            return Ok(None);
        }
        if let Some(other) = map.keys().find(|k| k.as_str() != name) {
            return Err(DiffError::UnsupportedBsonOperator(format!(
                "`{other}` in {} of `{}`",
                self.operator, self.path
            )));
        }
        match &map[name] {
            Value::Array(list) => Ok(Some(list)),
            other => Err(self.error(format!("`{name}` is {}, not an array", type_name(other)))),
        }
    }

    /// The array at the path, `None` when the path does not exist.
    fn array_mut<'d>(&self, doc: &'d mut Value) -> Result<Option<&'d mut Vec<Value>>, DiffError> {
        match self.lookup_mut(doc) {
            None => Ok(None),
            Some(Value::Array(arr)) => Ok(Some(arr)),
            Some(other) => Err(self.error(format!(
                "cannot remove elements from {}, only from an array",
                type_name(other)
            ))),
        }
    }

    fn pull(&self, doc: &mut Value, value: &Value) -> Result<(), DiffError> {
        let condition = self.modifier(value, "$in")?;
        if let Some(arr) = self.array_mut(doc)? {
            match condition {
                Some(any_of) => arr.retain(|e| !any_of.iter().any(|v| json_equal(e, v))),
                None => arr.retain(|e| !json_equal(e, value)),
            }
        }
        Ok(())
    }

    fn pull_all(&self, doc: &mut Value, value: &Value) -> Result<(), DiffError> {
        let Value::Array(any_of) = value else {
            return Err(self.error(format!("expects an array, got {}", type_name(value))));
        };
        if let Some(arr) = self.array_mut(doc)? {
            arr.retain(|e| !any_of.iter().any(|v| json_equal(e, v)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: Value) -> BsonPatch {
        serde_json::from_value(v).unwrap()
    }

    fn apply(start: Value, p: Value) -> Result<Value, DiffError> {
        patch(p).apply(&start, false)
    }

    fn bad(start: Value, p: Value) -> DiffError {
        let err = apply(start, p.clone()).unwrap_err();
        assert!(
            matches!(err, DiffError::InvalidBsonPatch { .. }),
            "{p}: {err:?}"
        );
        err
    }

    fn unsupported(start: Value, p: Value) -> DiffError {
        let err = apply(start, p.clone()).unwrap_err();
        assert!(
            matches!(err, DiffError::UnsupportedBsonOperator(_)),
            "{p}: {err:?}"
        );
        err
    }

    #[test]
    fn field_names_are_the_seeds() {
        let p = patch(json!({
            "set": {"a": 1}, "unset": {"b": ""}, "inc": {"c": 1}, "push": {"d": 1},
            "pull": {"e": 1}, "addToSet": {"f": 1}, "pullAll": {"g": [1]}, "arrayFilters": []
        }));
        assert!(p.other.is_empty(), "{:?}", p.other);
        assert!(p.add_to_set.is_some() && p.pull_all.is_some() && p.array_filters.is_some());
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["addToSet"], json!({"f": 1}));
        assert_eq!(back["pullAll"], json!({"g": [1]}));
        // Go's nil maps arrive as null.
        let p = patch(json!({"set": null, "arrayFilters": null}));
        assert_eq!(p, BsonPatch::default());
    }

    #[test]
    fn set_creates_intermediate_objects_along_dotted_paths() {
        let out = apply(
            json!({"players": {"p2": {"level": 1}}}),
            json!({"set": {"players.p1.level": 3, "players.p2.level": 2, "top": "x"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"players": {"p1": {"level": 3}, "p2": {"level": 2}}, "top": "x"})
        );
        // A missing document (create) becomes an object.
        assert_eq!(
            apply(Value::Null, json!({"set": {"a.b": 1}})).unwrap(),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn numeric_segments_index_arrays_and_are_keys_of_objects() {
        let start = json!({"list": [1, {"x": 0}, 3], "map": {}});
        let out = apply(
            start.clone(),
            json!({"set": {"list.0": 10, "list.1.x": 5, "map.0": "zero", "missing.1": true}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"list": [10, {"x": 5}, 3], "map": {"0": "zero"}, "missing": {"1": true}})
        );
        // Past the end: appended, or padded with nulls as MongoDB does.
        let out = apply(start.clone(), json!({"set": {"list.3": 4, "list.5.y": 6}})).unwrap();
        assert_eq!(out["list"], json!([1, {"x": 0}, 3, 4, null, {"y": 6}]));
        bad(start.clone(), json!({"set": {"list.x": 1}}));
        bad(start.clone(), json!({"set": {"list.01": 1}}));
        bad(start, json!({"set": {"list.99999999999": 1}}));
    }

    #[test]
    fn padding_is_bounded_over_the_whole_patch() {
        let half = MAX_ARRAY_PADDING / 2 + 1;
        let one = json!({"set": {format!("a.{half}"): 1}});
        assert_eq!(
            apply(json!({"a": []}), one).unwrap()["a"]
                .as_array()
                .unwrap()
                .len(),
            half + 1
        );
        // Two such writes (to two arrays, or twice to one) go over the bound together.
        let two = json!({"set": {format!("a.{half}"): 1, format!("b.{half}"): 1}});
        bad(json!({"a": [], "b": []}), two);
        let twice = json!({"set": {format!("a.{half}"): 1}, "push": {"a": 2}, "inc": {format!("a.{}", 2 * half + 1): 1}});
        bad(json!({"a": []}), twice);
    }

    #[test]
    fn set_through_a_scalar_is_an_error() {
        let err = bad(json!({"a": 1}), json!({"set": {"a.b": 2}}));
        assert!(err.to_string().contains("`a.b`"), "{err}");
        bad(json!({"a": null}), json!({"set": {"a.b": 2}}));
        bad(json!("text"), json!({"set": {"a": 2}}));
    }

    #[test]
    fn unset_removes_fields_and_tolerates_absent_ones() {
        let out = apply(
            json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2, 3], "s": 5}),
            json!({"unset": {"a": "", "b.c": "", "nope": "", "nope.deeper": "", "s.x": "", "l.1": "", "l.9": ""}}),
        )
        .unwrap();
        // An array element is set to null, keeping positions, as MongoDB does.
        assert_eq!(out, json!({"b": {"d": 3}, "l": [1, null, 3], "s": 5}));
    }

    #[test]
    fn inc_adds_numbers() {
        let out = apply(
            json!({"i": 1, "f": 1.5, "n": {"c": 10}, "l": [1, 2]}),
            json!({"inc": {"i": 2, "f": 1, "n.c": -3, "n.new": 4, "fresh": 2.5, "l.1": 1}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"i": 3, "f": 2.5, "n": {"c": 7, "new": 4}, "fresh": 2.5, "l": [1, 3]})
        );
        assert!(out["i"].is_i64(), "integer + integer stays an integer");
        let mixed = apply(json!({"i": 1}), json!({"inc": {"i": 0.5}})).unwrap();
        assert_eq!(mixed, json!({"i": 1.5}));
        let big = apply(json!({"u": u64::MAX - 1}), json!({"inc": {"u": 1}})).unwrap();
        assert_eq!(big, json!({"u": u64::MAX}));
    }

    #[test]
    fn inc_overflow_and_type_errors() {
        let err = bad(json!({"i": i64::MAX}), json!({"inc": {"i": 1}}));
        assert!(err.to_string().contains("overflow"), "{err}");
        bad(json!({"i": i64::MIN}), json!({"inc": {"i": -1}}));
        bad(json!({"u": u64::MAX}), json!({"inc": {"u": 1}}));
        bad(json!({"f": f64::MAX}), json!({"inc": {"f": f64::MAX}}));
        bad(json!({"s": "1"}), json!({"inc": {"s": 1}}));
        bad(json!({"n": null}), json!({"inc": {"n": 1}}));
        bad(json!({"i": 1}), json!({"inc": {"i": "1"}}));
    }

    #[test]
    fn inc_of_version_is_skipped_only_when_asked() {
        let p = patch(json!({"set": {"a": 1}, "inc": {"version": 1, "meta.version": 1}}));
        let start = json!({"meta": {"version": 1}});
        assert_eq!(
            p.apply(&start, true).unwrap(),
            json!({"a": 1, "meta": {"version": 2}})
        );
        assert_eq!(
            p.apply(&start, false).unwrap(),
            json!({"a": 1, "version": 1, "meta": {"version": 2}})
        );
    }

    #[test]
    fn push_appends_one_or_each() {
        let out = apply(
            json!({"l": [1], "m": []}),
            json!({"push": {"l": [2], "m": {"$each": [1, 1, {"k": 2}]}, "new.list": {"k": 1}}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"l": [1, [2]], "m": [1, 1, {"k": 2}], "new": {"list": [{"k": 1}]}})
        );
        bad(json!({"l": 1}), json!({"push": {"l": 2}}));
        bad(json!({"l": []}), json!({"push": {"l": {"$each": 2}}}));
        unsupported(
            json!({"l": []}),
            json!({"push": {"l": {"$each": [1], "$position": 0}}}),
        );
        unsupported(json!({"l": []}), json!({"push": {"l": {"$slice": 2}}}));
    }

    #[test]
    fn add_to_set_appends_only_missing_values() {
        let out = apply(
            json!({"tags": ["a", 1], "objs": [{"x": 1}]}),
            json!({"addToSet": {
                "tags": {"$each": ["a", "b", "b", 1.0, 2]},
                "objs": {"x": 1},
                "new": "v"
            }}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"tags": ["a", 1, "b", 2], "objs": [{"x": 1}], "new": ["v"]})
        );
        bad(json!({"tags": "a"}), json!({"addToSet": {"tags": "b"}}));
    }

    #[test]
    fn pull_removes_equal_elements_or_those_in_a_list() {
        let out = apply(
            json!({"l": [1, 2, 1, 3.0, {"a": 1}], "m": ["x", "y", "z"], "keep": [1]}),
            json!({"pull": {"l": 1, "m": {"$in": ["x", "z", "q"]}, "missing": 1}}),
        )
        .unwrap();
        assert_eq!(out["l"], json!([2, 3.0, {"a": 1}]));
        assert_eq!(out["m"], json!(["y"]));
        assert!(out.get("missing").is_none());
        let out = apply(
            json!({"l": [{"a": 1}, {"a": 1, "b": 2}, 3]}),
            json!({"pull": {"l": {"a": 1}}}),
        )
        .unwrap();
        assert_eq!(
            out["l"],
            json!([{"a": 1, "b": 2}, 3]),
            "equality, not a query"
        );
        unsupported(json!({"l": [1]}), json!({"pull": {"l": {"$gt": 0}}}));
        bad(json!({"l": [1]}), json!({"pull": {"l": {"$in": 1}}}));
        bad(json!({"l": 1}), json!({"pull": {"l": 1}}));
    }

    #[test]
    fn pull_all_removes_every_listed_value() {
        let out = apply(
            json!({"l": [1, 2, 3, 2, 1, "1"]}),
            json!({"pullAll": {"l": [1, 2], "missing": [1]}}),
        )
        .unwrap();
        assert_eq!(out, json!({"l": [3, "1"]}));
        bad(json!({"l": [1]}), json!({"pullAll": {"l": 1}}));
        bad(json!({"l": {}}), json!({"pullAll": {"l": [1]}}));
    }

    #[test]
    fn operators_apply_in_a_fixed_order() {
        // set, unset, inc, push, addToSet, pull, pullAll, whatever the member order.
        let out = apply(
            json!({}),
            json!({
                "pullAll": {"l": [3]}, "pull": {"l": 2}, "addToSet": {"l": 3},
                "push": {"l": 2}, "inc": {"n": 1}, "unset": {"gone": ""},
                "set": {"l": [1], "n": 1, "gone": true}
            }),
        )
        .unwrap();
        assert_eq!(out, json!({"l": [1], "n": 2}));
    }

    #[test]
    fn unsupported_features_are_errors() {
        unsupported(
            json!({}),
            json!({"arrayFilters": [{"x.a": 1}], "set": {"l.$[x]": 1}}),
        );
        unsupported(json!({"l": [1]}), json!({"set": {"l.$": 1}}));
        unsupported(json!({"l": [1]}), json!({"inc": {"l.$[].n": 1}}));
        let err = unsupported(json!({}), json!({"rename": {"a": "b"}}));
        assert!(err.to_string().contains("rename"), "{err}");
        unsupported(json!({}), json!({"$set": {"a": 1}}));
        bad(json!({}), json!({"set": {"a..b": 1}}));
        bad(json!({}), json!({"set": {"": 1}}));
        // An empty arrayFilters list is harmless.
        assert_eq!(
            apply(json!({}), json!({"arrayFilters": [], "set": {"a": 1}})).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn an_error_in_a_later_operator_changes_nothing() {
        let start = json!({"a": 1, "s": "text", "l": [1]});
        let before = serde_json::to_string(&start).unwrap();
        let p = patch(json!({"set": {"a": 2, "b.c": 3}, "push": {"l": 2}, "inc": {"s": 1}}));
        assert!(p.apply(&start, false).is_err());
        assert_eq!(serde_json::to_string(&start).unwrap(), before);
    }
}
