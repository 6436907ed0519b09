//! RFC 6902 (JSON Patch), applied atomically.
//!
//! The operations themselves come from the `json-patch` crate, applied one at a time, with three
//! corrections found while testing it:
//!
//! - `json_patch::patch` is not atomic when a `move` fails half-way (its source is removed, then
//!   adding at the target fails and the value is lost), and it panics while undoing a `move` to
//!   the root (`"path": ""`) when a later operation fails. So a patch is applied to a copy, except
//!   a single operation that cannot fail after it has started changing the document.
//! - `test` compares with `==` on `serde_json::Value`, for which `1` and `1.0` differ; RFC 6902
//!   section 4.6 says numbers are equal when their values are numerically equal.
//! - Nothing limits how deep a patch may nest the document; see [`super::MAX_DEPTH`].
//! - Nothing limits how much `copy` operations may grow it; see [`super::MAX_COPY_WEIGHT`].

use json_patch::{
    AddOperation, CopyOperation, MoveOperation, PatchOperation, RemoveOperation, ReplaceOperation,
    TestOperation,
};
use serde::de::Error as _;
use serde::Deserialize;
use serde_json::Value;

use json_patch::jsonptr::PointerBuf;

use crate::protocol::members::{object, FromJson, Object, ToJson};

use super::{depth_of, weight, DiffError, MAX_COPY_WEIGHT, MAX_DEPTH};

/// Reads RFC 6902 operations from JSON, as their `Deserialize` impl does (the same fields, the
/// same errors), without serde's buffering for internally tagged enums (`op` picks the
/// operation), which compiles every operation's parser twice: a share of the WebAssembly build.
pub fn read_patch(value: Value) -> Result<Vec<PatchOperation>, crate::protocol::JsonError> {
    Vec::from_json(value)
}

/// RFC 6902 operations read member by member as they come (see [`read_patch`]): from a frame's
/// text, each operation costs its `path` and its `value`, not a JSON object of its members first
/// (three keys, the `op` string, a map node), read again into the operation.
pub(crate) struct Operations(pub(crate) Vec<PatchOperation>);

impl<'de> Deserialize<'de> for Operations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = Operations;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Operations, A::Error> {
                let mut ops = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(Operation(op)) = seq.next_element()? {
                    ops.push(op);
                }
                Ok(Operations(ops))
            }
        }
        deserializer.deserialize_seq(Items)
    }
}

/// One operation of [`Operations`].
struct Operation(PatchOperation);

/// The members of an operation; any other is skipped.
enum Member {
    Op,
    Path,
    From,
    Value,
    Other,
}

/// The operations `op` names.
#[derive(Clone, Copy)]
enum Kind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

const KINDS: &[&str] = &["add", "remove", "replace", "move", "copy", "test"];

impl Kind {
    fn of<E: serde::de::Error>(name: &str) -> Result<Kind, E> {
        Ok(match name {
            "add" => Kind::Add,
            "remove" => Kind::Remove,
            "replace" => Kind::Replace,
            "move" => Kind::Move,
            "copy" => Kind::Copy,
            "test" => Kind::Test,
            other => return Err(E::unknown_variant(other, KINDS)),
        })
    }
}

impl Member {
    fn of(name: &str) -> Member {
        match name {
            "op" => Member::Op,
            "path" => Member::Path,
            "from" => Member::From,
            "value" => Member::Value,
            _ => Member::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Member;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(Member::of(name))
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Kind;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("variant identifier")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Kind, E> {
                Kind::of(name)
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Operation;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("internally tagged enum PatchOperation")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Operation, A::Error> {
                let (mut kind, mut path, mut from, mut value) = (None, None, None, None);
                // A member given twice keeps its last value (as reading the object first did).
                while let Some(member) = map.next_key::<Member>()? {
                    match member {
                        Member::Op => kind = Some(map.next_value::<Kind>()?),
                        Member::Path => path = Some(map.next_value::<PointerBuf>()?),
                        Member::From => from = Some(map.next_value::<PointerBuf>()?),
                        Member::Value => value = Some(map.next_value::<Value>()?),
                        Member::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                assemble(kind, path, from, value).map(Operation)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// An operation from its members: `op` picks the members it needs.
fn assemble<E: serde::de::Error>(
    kind: Option<Kind>,
    path: Option<PointerBuf>,
    from: Option<PointerBuf>,
    value: Option<Value>,
) -> Result<PatchOperation, E> {
    let kind = kind.ok_or_else(|| E::missing_field("op"))?;
    let path = || path.ok_or_else(|| E::missing_field("path"));
    let value = || value.ok_or_else(|| E::missing_field("value"));
    let from = || from.ok_or_else(|| E::missing_field("from"));
    Ok(match kind {
        Kind::Add => PatchOperation::Add(AddOperation {
            path: path()?,
            value: value()?,
        }),
        Kind::Remove => PatchOperation::Remove(RemoveOperation { path: path()? }),
        Kind::Replace => PatchOperation::Replace(ReplaceOperation {
            path: path()?,
            value: value()?,
        }),
        Kind::Move => PatchOperation::Move(MoveOperation {
            from: from()?,
            path: path()?,
        }),
        Kind::Copy => PatchOperation::Copy(CopyOperation {
            from: from()?,
            path: path()?,
        }),
        Kind::Test => PatchOperation::Test(TestOperation {
            path: path()?,
            value: value()?,
        }),
    })
}

/// The same from a parsed value (the WebAssembly build's reader).
impl FromJson for PatchOperation {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let members = object(value, "internally tagged enum PatchOperation")?;
        let pointer = |value| {
            let text = String::from_json(value)?;
            PointerBuf::parse(text).map_err(crate::protocol::JsonError::custom)
        };
        let (mut kind, mut path, mut from, mut value) = (None, None, None, None);
        for (key, member) in members {
            match Member::of(&key) {
                Member::Op => {
                    kind = Some(Kind::of::<crate::protocol::JsonError>(&String::from_json(
                        member,
                    )?)?)
                }
                Member::Path => path = Some(pointer(member)?),
                Member::From => from = Some(pointer(member)?),
                Member::Value => value = Some(member),
                Member::Other => {}
            }
        }
        assemble(kind, path, from, value)
    }
}

/// RFC 6902's members: `op`, `path`, and `from` or `value`.
impl ToJson for PatchOperation {
    fn to_json(&self) -> Value {
        let (op, from, value) = match self {
            PatchOperation::Add(o) => ("add", None, Some(&o.value)),
            PatchOperation::Remove(_) => ("remove", None, None),
            PatchOperation::Replace(o) => ("replace", None, Some(&o.value)),
            PatchOperation::Move(o) => ("move", Some(o.from.as_str()), None),
            PatchOperation::Copy(o) => ("copy", Some(o.from.as_str()), None),
            PatchOperation::Test(o) => ("test", None, Some(&o.value)),
        };
        Object::new()
            .with("op", op)
            .with("path", self.path().as_str())
            .with_some("from", &from)
            .with_some("value", &value)
            .done()
    }
}

/// Apply RFC 6902 `ops` to `doc` atomically: on error the document is exactly as it was.
///
/// The error names the index of the failing operation, its `path` and the reason. A patch that
/// would nest the document deeper than [`MAX_DEPTH`] containers fails too, and so does a patch
/// with `copy` operations that would make it heavier than [`MAX_COPY_WEIGHT`].
pub fn apply_patch(doc: &mut Value, ops: &[PatchOperation]) -> Result<(), DiffError> {
    let mut budget = CopyBudget::new(doc, ops);
    match ops {
        [] => Ok(()),
        // Every single operation but `move` fails before it changes anything.
        [op] if !matches!(op, PatchOperation::Move(_)) => {
            budget.place(doc, 0, op)?;
            apply_one(doc, 0, op)
        }
        _ => {
            let mut work = doc.clone();
            for (index, op) in ops.iter().enumerate() {
                budget.place(&work, index, op)?;
                apply_one(&mut work, index, op)?;
            }
            *doc = work;
            Ok(())
        }
    }
}

/// How heavy a patch with `copy` operations may still make the document: an upper bound of its
/// weight is kept (what operations remove is not subtracted). Patches without `copy` are not
/// counted.
pub(crate) struct CopyBudget {
    /// The bound so far; `None` when the patch has no `copy`.
    weight: Option<usize>,
}

impl CopyBudget {
    /// The budget for applying `ops` to `doc`.
    pub(crate) fn new(doc: &Value, ops: &[PatchOperation]) -> Self {
        let copies = ops.iter().any(|op| matches!(op, PatchOperation::Copy(_)));
        CopyBudget {
            weight: copies.then(|| weight(doc, MAX_COPY_WEIGHT)),
        }
    }

    /// Counts what `op` (the operation at `index`) places into `doc`, the document it is about to
    /// apply to; an error when that goes over the limit.
    pub(crate) fn place(
        &mut self,
        doc: &Value,
        index: usize,
        op: &PatchOperation,
    ) -> Result<(), DiffError> {
        let Some(total) = self.weight.as_mut() else {
            return Ok(());
        };
        let placed = match op {
            PatchOperation::Add(o) => Some(&o.value),
            PatchOperation::Replace(o) => Some(&o.value),
            PatchOperation::Copy(o) => doc.pointer(o.from.as_str()),
            _ => None,
        };
        if let Some(value) = placed {
            *total = total.saturating_add(weight(value, MAX_COPY_WEIGHT));
        }
        if *total > MAX_COPY_WEIGHT {
            return Err(DiffError::TooHeavy {
                index,
                path: op.path().as_str().to_owned(),
                limit: MAX_COPY_WEIGHT,
            });
        }
        Ok(())
    }
}

fn invalid(index: usize, op: &PatchOperation, reason: impl Into<String>) -> DiffError {
    DiffError::InvalidPatch {
        index,
        path: op.path().as_str().to_owned(),
        reason: reason.into(),
    }
}

/// Apply one operation. May leave `doc` changed on error only for `move`.
fn apply_one(doc: &mut Value, index: usize, op: &PatchOperation) -> Result<(), DiffError> {
    // The value the operation puts at `path`, to bound the depth of the result.
    let placed = match op {
        PatchOperation::Add(o) => Some(&o.value),
        PatchOperation::Replace(o) => Some(&o.value),
        PatchOperation::Move(o) => doc.pointer(o.from.as_str()),
        PatchOperation::Copy(o) => doc.pointer(o.from.as_str()),
        PatchOperation::Remove(_) => None,
        PatchOperation::Test(o) => {
            // The comparison recurses along `o.value`: bound it first.
            if depth_of(&o.value, MAX_DEPTH) > MAX_DEPTH {
                return Err(invalid(index, op, too_deep()));
            }
            let target = doc
                .pointer(o.path.as_str())
                .ok_or_else(|| invalid(index, op, "path does not exist"))?;
            return if json_equal(target, &o.value) {
                Ok(())
            } else {
                Err(invalid(index, op, "test failed: value did not match"))
            };
        }
    };
    if let Some(value) = placed {
        // Its tokens: one `/` before each (a `/` inside a token is written `~1`), counted
        // without splitting the pointer into tokens.
        let prefix = memchr::memchr_iter(b'/', op.path().as_str().as_bytes()).count();
        if prefix > MAX_DEPTH || depth_of(value, MAX_DEPTH - prefix) + prefix > MAX_DEPTH {
            return Err(invalid(index, op, too_deep()));
        }
    }
    if set_member(doc, op) {
        return Ok(());
    }
    json_patch::patch_unsafe(doc, std::slice::from_ref(op))
        .map_err(|e| invalid(index, op, e.kind.to_string()))
}

/// An `add` or a `replace` of an object member whose parent is reached through objects only
/// (the usual event: a field set), done where it is: what `json_patch` does, without its copies
/// of every token on the way (serde_json's `pointer_mut` makes two strings of each) and of the
/// member's name. False, with nothing changed, for any other operation or path, and for a
/// `replace` of a member that is not there: those go the general way (and fail there with its
/// error).
fn set_member(doc: &mut Value, op: &PatchOperation) -> bool {
    let (path, value, must_exist) = match op {
        PatchOperation::Add(o) => (&o.path, &o.value, false),
        PatchOperation::Replace(o) => (&o.path, &o.value, true),
        _ => return false,
    };
    let Some((parent, last)) = path.split_back() else {
        return false;
    };
    let Some(members) = object_at(doc, parent) else {
        return false;
    };
    let name = last.decoded();
    match members.get_mut(name.as_ref()) {
        Some(member) => *member = value.clone(),
        None if must_exist => return false,
        None => {
            members.insert(name.into_owned(), value.clone());
        }
    }
    true
}

/// The object at `pointer`, when every step to it is an object member.
fn object_at<'d>(
    doc: &'d mut Value,
    pointer: &json_patch::jsonptr::Pointer,
) -> Option<&'d mut serde_json::Map<String, Value>> {
    let mut at = doc;
    for token in pointer.tokens() {
        at = match at {
            Value::Object(members) => members.get_mut(token.decoded().as_ref())?,
            _ => return None,
        };
    }
    match at {
        Value::Object(members) => Some(members),
        _ => None,
    }
}

fn too_deep() -> String {
    format!("the document would be nested deeper than {MAX_DEPTH} levels")
}

/// JSON equality as RFC 6902 `test` defines it: numbers are equal when numerically equal
/// (`1 == 1.0`), objects regardless of member order, arrays element by element.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn as_integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn numbers_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (as_integer(x), as_integer(y)) {
        (Some(x), Some(y)) => x == y,
        _ => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(v: Value) -> Vec<PatchOperation> {
        serde_json::from_value(v).unwrap()
    }

    /// A field set in place (`set_member`) ends as `json_patch` ends it, and what it does not
    /// take (arrays on the way, a missing member to replace, the root) fails or applies as
    /// there.
    #[test]
    fn members_set_in_place_as_json_patch_sets_them() {
        let doc = json!({
            "a": 1, "o": {"x": {"y": 2}, "a/b": {"m~n": 3}}, "l": [{"k": 1}, 2], "s": "t"
        });
        let cases = json!([
            {"op": "add", "path": "/a", "value": 5},
            {"op": "add", "path": "/new", "value": {"z": [1]}},
            {"op": "add", "path": "/o/x/y", "value": null},
            {"op": "add", "path": "/o/x/w", "value": 7},
            {"op": "add", "path": "/o/a~1b/m~0n", "value": "escaped"},
            {"op": "add", "path": "/o/a~1b/new~1one", "value": 1},
            {"op": "add", "path": "/l/0/k", "value": 9},
            {"op": "add", "path": "/l/1", "value": 3},
            {"op": "add", "path": "/missing/x", "value": 1},
            {"op": "add", "path": "/s/x", "value": 1},
            {"op": "add", "path": "", "value": {"root": true}},
            {"op": "add", "path": "/", "value": "empty name"},
            {"op": "replace", "path": "/a", "value": [1]},
            {"op": "replace", "path": "/o/a~1b/m~0n", "value": 4},
            {"op": "replace", "path": "/o/absent", "value": 4},
            {"op": "replace", "path": "/l/0/k", "value": 0},
            {"op": "replace", "path": "", "value": 1},
        ]);
        for case in cases.as_array().unwrap() {
            let op = ops(json!([case]));
            let mut expected = doc.clone();
            let outcome = json_patch::patch(&mut expected, &op).map(|_| expected);
            let mut got = doc.clone();
            let result = apply_patch(&mut got, &op);
            match outcome {
                Ok(expected) => {
                    assert!(result.is_ok(), "{case}: {result:?}");
                    assert_eq!(got, expected, "{case}");
                }
                Err(_) => {
                    assert!(result.is_err(), "{case} applied: {got}");
                    assert_eq!(got, doc, "{case} changed the document");
                }
            }
        }
    }

    #[test]
    fn applies_every_operation_in_order() {
        let mut doc = json!({"a": 1, "list": [1, 2]});
        apply_patch(
            &mut doc,
            &ops(json!([
                {"op": "add", "path": "/b", "value": {"c": true}},
                {"op": "remove", "path": "/a"},
                {"op": "replace", "path": "/b/c", "value": false},
                {"op": "move", "from": "/list/0", "path": "/list/-"},
                {"op": "copy", "from": "/b", "path": "/d"},
                {"op": "test", "path": "/list", "value": [2, 1]},
            ])),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"b": {"c": false}, "d": {"c": false}, "list": [2, 1]})
        );
    }

    #[test]
    fn a_failing_op_in_the_middle_leaves_the_document_unchanged() {
        let mut doc = json!({"a": 1, "b": [1, 2, 3], "c": {"d": "e"}});
        let before = serde_json::to_string(&doc).unwrap();
        let err = apply_patch(
            &mut doc,
            &ops(json!([
                {"op": "add", "path": "/x", "value": 1},
                {"op": "remove", "path": "/b/0"},
                {"op": "replace", "path": "/missing", "value": 2},
                {"op": "add", "path": "/y", "value": 3},
            ])),
        )
        .unwrap_err();
        assert_eq!(serde_json::to_string(&doc).unwrap(), before);
        match err {
            DiffError::InvalidPatch { index, path, .. } => {
                assert_eq!(index, 2);
                assert_eq!(path, "/missing");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_failing_move_does_not_lose_its_source() {
        // json_patch::patch alone drops "/a" here.
        let mut doc = json!({"a": {"b": 1}, "c": 2});
        let before = serde_json::to_string(&doc).unwrap();
        let err = apply_patch(
            &mut doc,
            &ops(json!([{"op": "move", "from": "/a", "path": "/x/y"}])),
        )
        .unwrap_err();
        assert!(matches!(err, DiffError::InvalidPatch { index: 0, .. }));
        assert_eq!(serde_json::to_string(&doc).unwrap(), before);
    }

    #[test]
    fn a_move_to_the_root_then_a_failure_does_not_panic() {
        // json_patch::patch panics while undoing this.
        let mut doc = json!({"a": {"b": 1}, "c": 2});
        let before = serde_json::to_string(&doc).unwrap();
        let err = apply_patch(
            &mut doc,
            &ops(json!([
                {"op": "move", "from": "/a", "path": ""},
                {"op": "test", "path": "/zz", "value": 1},
            ])),
        )
        .unwrap_err();
        assert!(matches!(err, DiffError::InvalidPatch { index: 1, .. }));
        assert_eq!(serde_json::to_string(&doc).unwrap(), before);
    }

    #[test]
    fn single_failing_ops_leave_the_document_unchanged() {
        for op in [
            json!({"op": "add", "path": "/a/b/c", "value": 1}),
            json!({"op": "add", "path": "/list/9", "value": 1}),
            json!({"op": "remove", "path": "/nope"}),
            json!({"op": "replace", "path": "/list/5", "value": 1}),
            json!({"op": "copy", "from": "/nope", "path": "/x"}),
            json!({"op": "move", "from": "/a", "path": "/a/inside"}),
            json!({"op": "test", "path": "/a", "value": 2}),
        ] {
            let mut doc = json!({"a": {"k": 1}, "list": [1]});
            let before = serde_json::to_string(&doc).unwrap();
            assert!(
                apply_patch(&mut doc, &ops(json!([op.clone()]))).is_err(),
                "{op}"
            );
            assert_eq!(serde_json::to_string(&doc).unwrap(), before, "{op}");
        }
    }

    #[test]
    fn test_compares_numbers_by_value() {
        let mut doc = json!({"n": 1, "f": 2.5, "o": {"x": [1, 2]}});
        apply_patch(
            &mut doc,
            &ops(json!([
                {"op": "test", "path": "/n", "value": 1.0},
                {"op": "test", "path": "/o", "value": {"x": [1.0, 2]}},
            ])),
        )
        .unwrap();
        let err = apply_patch(
            &mut doc,
            &ops(json!([{"op": "test", "path": "/f", "value": 2}])),
        )
        .unwrap_err();
        assert!(err.to_string().contains("test failed"), "{err}");
    }

    #[test]
    fn json_equal_is_structural() {
        assert!(json_equal(
            &json!({"a": 1, "b": 2}),
            &json!({"b": 2.0, "a": 1})
        ));
        assert!(!json_equal(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_equal(&json!("1"), &json!(1)));
        assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_equal(&json!(u64::MAX), &json!(i64::MAX)));
    }

    #[test]
    fn patches_that_nest_too_deep_are_refused() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        let mut doc = json!({});
        // `deep` has MAX_DEPTH containers; under "/a" it would be MAX_DEPTH + 1 deep.
        let err = apply_patch(
            &mut doc,
            &[PatchOperation::Add(json_patch::AddOperation {
                path: "/a".parse().unwrap(),
                value: deep.clone(),
            })],
        )
        .unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        assert_eq!(doc, json!({}));
        // At the root it fits exactly.
        apply_patch(
            &mut doc,
            &[PatchOperation::Add(json_patch::AddOperation {
                path: "".parse().unwrap(),
                value: deep,
            })],
        )
        .unwrap();
        // Copying it one level down is refused too.
        let err = apply_patch(
            &mut doc,
            &ops(json!([{"op": "copy", "from": "/0", "path": "/0/0/-"}])),
        )
        .unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }

    /// `n` copies of the root into a new member: each doubles the document.
    fn copy_bomb(n: usize) -> Vec<PatchOperation> {
        ops(Value::Array(
            (0..n)
                .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
                .collect(),
        ))
    }

    #[test]
    fn copies_may_not_grow_the_document_without_limit() {
        // Without the bound these 64 operations (about 2 KB) would ask for 2^64 values.
        let mut doc = json!({"seed": "x".repeat(100)});
        let before = doc.clone();
        let err = apply_patch(&mut doc, &copy_bomb(64)).unwrap_err();
        assert!(matches!(err, DiffError::TooHeavy { .. }), "{err:?}");
        assert_eq!(err.code(), crate::protocol::ErrorCode::TooLarge);
        assert_eq!(doc, before, "nothing applied");
        // A few copies are fine, and so is one large copy within the limit.
        apply_patch(&mut doc, &copy_bomb(3)).unwrap();
        assert_eq!(doc.as_object().unwrap().len(), 4);
        let mut big = json!({"a": "y".repeat(super::MAX_COPY_WEIGHT / 3)});
        apply_patch(
            &mut big,
            &ops(json!([{"op": "copy", "from": "/a", "path": "/b"}])),
        )
        .unwrap();
        // A single copy over the limit fails before it changes anything.
        let err = apply_patch(
            &mut big,
            &ops(json!([{"op": "copy", "from": "/a", "path": "/c"}])),
        )
        .unwrap_err();
        assert!(
            matches!(err, DiffError::TooHeavy { index: 0, .. }),
            "{err:?}"
        );
        assert!(big.get("c").is_none());
    }

    #[test]
    fn read_patch_reads_what_the_derived_impl_reads() {
        for patch in [
            json!([]),
            json!([{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]),
            json!([{"op": "replace", "path": "", "value": null}, {"op": "test", "path": "/x", "value": [1]}]),
            json!([{"op": "move", "from": "/a", "path": "/b"}, {"op": "copy", "from": "/b", "path": "/c", "extra": 1}]),
            json!([{"path": "/a", "op": "add", "value": {"k": "v"}}]),
            // Errors: the same ones, with the same messages.
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"path": "/a"}]),
            json!([{"op": "add", "path": "no-slash", "value": 1}]),
            json!([{"op": 7, "path": "/a"}]),
            json!([{"op": "add", "path": 3, "value": 1}]),
            json!(["add"]),
            json!({"op": "add"}),
            json!(null),
        ] {
            let derived = serde_json::from_value::<Vec<PatchOperation>>(patch.clone())
                .map_err(|e| e.to_string());
            let read = super::read_patch(patch.clone()).map_err(|e| e.to_string());
            match (&derived, &read) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{patch}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{patch}: derived {derived:?}, read {read:?}"),
            }
        }
    }
}
