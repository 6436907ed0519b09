//! Diff formats an event may carry, and their atomic application.
//!
//! eventsync's own format is RFC 6902 (`patch`). Events written by the seed's original Go server
//! may instead carry `jsonPatch` (older RFC 6902 field), `mergePatch`
//! (RFC 7396, usually base64), `bsonPatch` (MongoDB update operators), or no diff at all and the
//! whole document in `metadata`. [`apply_event`] turns any of them into a [`Change`]: the
//! document after the event and canonical RFC 6902 operations from the document before.
//!
//! Every function here is atomic: on error nothing changes, and inputs are never mutated except
//! by [`apply_patch`], which either applies every operation or none.

mod bson;
mod merge;
mod patch;

#[cfg(test)]
mod tests;

use json_patch::PatchOperation;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::protocol::members::{object, serialize_to_json, FromJson, Object, ToJson};
use crate::protocol::{ErrorCode, Event, Operation};

pub use bson::{BsonPatch, MAX_ARRAY_PADDING};
pub use merge::MergePatch;
pub(crate) use patch::CopyBudget;
use patch::Operations;
pub use patch::{apply_patch, read_patch};

/// The deepest nesting of arrays and objects a document may have.
///
/// `serde_json` refuses to parse text nested 128 containers deep, so every document that arrives
/// as text is within this limit; the limit also bounds what patches can build, so that the
/// recursive algorithms applied to documents (comparison, diffing, dropping) cannot overflow the
/// stack.
pub const MAX_DEPTH: usize = 128;

/// The deepest document an edit may produce: a document travels 6 levels deep inside an `event`
/// frame, and frames stop at [`MAX_DEPTH`] (see `docs/PROTOCOL.md` section 11).
pub const MAX_DOCUMENT_DEPTH: usize = 120;

/// The heaviest document, in [`weight`] units, that a patch with `copy` operations may produce.
///
/// `copy` is the one operation that places more than its frame carries: a few dozen copies of
/// the root into itself double the document each time, so a patch of a few kilobytes would ask
/// for more memory than exists. Patches without `copy` grow a document by at most their own size.
pub const MAX_COPY_WEIGHT: usize = 1 << 20;

/// A value's size, roughly: one per value, plus the bytes of every string and object key; or
/// any weight above `limit` once it is known to exceed it. Iterative, like [`check_depth`].
pub fn weight(value: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += 1;
        match v {
            Value::String(s) => total += s.len(),
            Value::Array(items) => stack.extend(items),
            Value::Object(members) => {
                for (key, child) in members {
                    total += key.len();
                    stack.push(child);
                }
            }
            _ => {}
        }
        if total > limit {
            return total;
        }
    }
    total
}

/// The change an event carries.
///
/// Exactly one format is used, by precedence `patch` > `jsonPatch` > `mergePatch` > `bsonPatch`.
/// Every member is optional; unknown members are kept in [`Diff::other`] so that a diff in a
/// format this crate does not know is reported ([`DiffError::UnknownFormat`]), never ignored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    /// eventsync's canonical format: RFC 6902 operations.
    pub patch: Option<Vec<PatchOperation>>,
    /// The seed's older field for RFC 6902 operations (same content as `patch`).
    pub json_patch: Option<Vec<PatchOperation>>,
    /// RFC 7396 merge patch, as an object or as base64 of its JSON text (the seed's form).
    pub merge_patch: Option<MergePatch>,
    /// The seed's MongoDB update operators. When a diff carries both this and `mergePatch`, they
    /// describe the same change and `mergePatch` (which uses the JSON field names) is used.
    pub bson_patch: Option<Box<BsonPatch>>,
    /// `false`: the write changed nothing.
    pub has_changes: Option<bool>,
    /// The seed's database version counter after the write. It is not part of the JSON document:
    /// when present, an `inc` of `version` in `bsonPatch` is that counter and is skipped.
    pub version: Option<i64>,
    /// Any other member.
    pub other: Map<String, Value>,
}

/// Written with the members it has, and [`Diff::other`]'s beside them. `Serialize` writes the
/// same (through this).
impl ToJson for Diff {
    fn to_json(&self) -> Value {
        Object::of(self.other.clone())
            .with_some("patch", &self.patch)
            .with_some("jsonPatch", &self.json_patch)
            .with_some("mergePatch", &self.merge_patch)
            .with_some("bsonPatch", &self.bson_patch)
            .with_some("hasChanges", &self.has_changes)
            .with_some("version", &self.version)
            .done()
    }
}

serialize_to_json!(Diff);

/// Read member by member rather than derived: serde's `flatten` (for [`Diff::other`]) buffers
/// the members in serde's own `Content` and compiles every member's parser once more for it, a
/// large share of the WebAssembly build. `patch` and `jsonPatch` (what nearly every event
/// carries) are read straight into their operations (`patch::Operations`, what [`read_patch`]
/// reads with); every other member is read as JSON, and the known ones are then taken out of it.
impl<'de> Deserialize<'de> for Diff {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Diff;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a diff object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Diff, A::Error> {
                let (mut patch, mut json_patch) = (None, None);
                let mut other = Map::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Patch => patch = map.next_value::<Option<Operations>>()?.map(|o| o.0),
                        Key::JsonPatch => {
                            json_patch = map.next_value::<Option<Operations>>()?.map(|o| o.0)
                        }
                        Key::Other(key) => {
                            let value = map.next_value()?;
                            other.insert(key, value);
                        }
                    }
                }
                Diff::from_parts(patch, json_patch, other).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The same from a parsed value (the WebAssembly build's reader): `patch` and `jsonPatch` as
/// operations, the rest as [`Diff::from_parts`] reads it.
impl FromJson for Diff {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let members = object(value, "a diff object")?;
        let (mut patch, mut json_patch) = (None, None);
        let mut other = Map::new();
        for (key, value) in members {
            match key.as_str() {
                "patch" => patch = Option::from_json(value)?,
                "jsonPatch" => json_patch = Option::from_json(value)?,
                _ => {
                    other.insert(key, value);
                }
            }
        }
        Diff::from_parts(patch, json_patch, other)
    }
}

impl Diff {
    /// A diff from its operations and its other members, the known ones taken out of them.
    fn from_parts(
        patch: Option<Vec<PatchOperation>>,
        json_patch: Option<Vec<PatchOperation>>,
        mut other: Map<String, Value>,
    ) -> Result<Diff, crate::protocol::JsonError> {
        Ok(Diff {
            patch,
            json_patch,
            merge_patch: take_member(&mut other, "mergePatch")?,
            bson_patch: take_member(&mut other, "bsonPatch")?,
            has_changes: take_member(&mut other, "hasChanges")?,
            version: take_member(&mut other, "version")?,
            other,
        })
    }
}

/// A member name of a diff: the two read as operations, named without a copy of the name.
enum Key {
    Patch,
    JsonPatch,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Key;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "patch" => Key::Patch,
                    "jsonPatch" => Key::JsonPatch,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// Takes the member `key` out of `members` and reads it (absent or `null`: `None`).
pub(crate) fn take_member<T: FromJson>(
    members: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, crate::protocol::JsonError> {
    members.remove(key).map_or(Ok(None), Option::from_json)
}

/// The format a diff is applied with.
enum Format<'a> {
    Patch(&'a [PatchOperation]),
    Merge(&'a MergePatch),
    Bson(&'a BsonPatch),
}

impl Diff {
    /// A diff in the canonical format: RFC 6902 operations.
    pub fn from_patch(ops: Vec<PatchOperation>) -> Diff {
        Diff {
            patch: Some(ops),
            ..Diff::default()
        }
    }

    fn format(&self) -> Option<Format<'_>> {
        if let Some(ops) = self.patch.as_deref().or(self.json_patch.as_deref()) {
            Some(Format::Patch(ops))
        } else if let Some(merge) = &self.merge_patch {
            Some(Format::Merge(merge))
        } else {
            self.bson_patch.as_deref().map(Format::Bson)
        }
    }

    /// The error for a diff without a known format.
    fn no_format_error(&self) -> DiffError {
        if self.other.is_empty() {
            DiffError::NoChange
        } else {
            DiffError::UnknownFormat(self.other.keys().cloned().collect())
        }
    }
}

/// The effect of one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    /// The document after the event; `None` when it does not exist (deleted).
    pub document: Option<Value>,
    /// Canonical RFC 6902 operations that turn the document before the event into `document`: the
    /// event's own operations for `patch`/`jsonPatch`, a computed diff for the other formats and
    /// for snapshots, exactly `[{"op": "add", "path": "", "value": document}]` for a create, and
    /// none for a delete.
    pub ops: Vec<PatchOperation>,
}

/// Why a diff or an event could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// An RFC 6902 operation failed (or would nest the document deeper than [`MAX_DEPTH`]).
    #[error("invalid patch: operation {index} at `{path}`: {reason}")]
    InvalidPatch {
        /// Index of the failing operation in the patch.
        index: usize,
        /// Its `path`.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// A `mergePatch` string is not base64.
    #[error("mergePatch is not valid base64: {0}")]
    InvalidBase64(String),
    /// A base64 `mergePatch` does not decode to JSON.
    #[error("mergePatch is not valid JSON: {0}")]
    InvalidMergePatch(String),
    /// A `bsonPatch` operator cannot be applied at a path.
    #[error("invalid bsonPatch: {operator} `{path}`: {reason}")]
    InvalidBsonPatch {
        /// The operator (`set`, `inc`, ...).
        operator: String,
        /// The dotted path.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// A `bsonPatch` operator, modifier or positional path this crate does not support.
    #[error("unsupported bsonPatch operator: {0}")]
    UnsupportedBsonOperator(String),
    /// The diff has no format this crate knows; these are its unknown member names.
    #[error("unknown diff format: {}", .0.join(", "))]
    UnknownFormat(Vec<String>),
    /// The event carries neither a diff nor a whole-document snapshot in `metadata`.
    #[error("the event carries neither a diff nor a document snapshot")]
    NoChange,
    /// An update of a document that does not exist.
    #[error("update of a document that does not exist")]
    DocumentMissing,
    /// A snapshot in `metadata` is not a JSON document.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// A document (or a value in a diff) nested deeper than the limit.
    #[error("document nested deeper than {limit} levels")]
    TooDeep {
        /// The limit ([`MAX_DEPTH`] unless [`check_depth`] was given another).
        limit: usize,
    },
    /// A patch with `copy` operations would make the document heavier than [`MAX_COPY_WEIGHT`].
    #[error("operation {index} at `{path}`: a patch that copies may not make the document heavier than {limit} (values plus bytes of strings and keys)")]
    TooHeavy {
        /// Index of the operation that went over.
        index: usize,
        /// Its `path`.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// The event would leave the document `null`: a document that exists is never `null`.
    #[error("the event would leave the document null (a document that exists is never null)")]
    NullDocument,
    /// An edit would place an integer beyond +/-(2^53 - 1), which JavaScript replicas would read
    /// rounded (`docs/PROTOCOL.md` section 1).
    #[error("operation {index}: the integer {number} is beyond +/-(2^53 - 1), which JavaScript clients cannot hold exactly: store it as a string")]
    UnsafeInteger {
        /// Index of the operation.
        index: usize,
        /// The integer, as written.
        number: String,
    },
}

impl DiffError {
    /// The protocol error code a server answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DiffError::DocumentMissing => ErrorCode::DocumentState,
            DiffError::TooDeep { .. }
            | DiffError::TooHeavy { .. }
            | DiffError::UnsafeInteger { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::InvalidPatch,
        }
    }
}

/// Refuse `value` when arrays and objects nest more than `max` deep (`1` has depth 0, `[]` and
/// `{"a": 1}` depth 1, `[[]]` depth 2).
///
/// Iterative, so that a hostile value cannot overflow the stack.
pub fn check_depth(value: &Value, max: usize) -> Result<(), DiffError> {
    if depth_of(value, max) > max {
        Err(DiffError::TooDeep { limit: max })
    } else {
        Ok(())
    }
}

/// The nesting depth of `value`, or any depth above `limit` once it is known to exceed it.
pub(crate) fn depth_of(value: &Value, limit: usize) -> usize {
    fn children(v: &Value) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
        match v {
            Value::Array(a) => Some(Box::new(a.iter())),
            Value::Object(o) => Some(Box::new(o.values())),
            _ => None,
        }
    }
    let mut deepest = 0;
    // Each entry: the iterator over one container's children, at that container's depth.
    let mut stack: Vec<Box<dyn Iterator<Item = &Value> + '_>> = Vec::new();
    if let Some(it) = children(value) {
        stack.push(it);
        deepest = 1;
    }
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(child) => {
                if let Some(it) = children(child) {
                    stack.push(it);
                    deepest = deepest.max(stack.len());
                    if deepest > limit {
                        return deepest;
                    }
                }
            }
        }
    }
    deepest
}

/// The largest integer a document may hold exactly on every replica: 2^53 - 1 (JavaScript's
/// `Number.MAX_SAFE_INTEGER`; `docs/PROTOCOL.md` section 1, "Numbers in documents").
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The first integer in `value` (at any depth) beyond +/-(2^53 - 1), which JavaScript clients
/// would read rounded. Other numbers are IEEE 754 doubles on every replica already.
pub fn unsafe_integer(value: &Value) -> Option<&serde_json::Number> {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => {
                let beyond = match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => u > MAX_SAFE_INTEGER,
                    (None, Some(i)) => i.unsigned_abs() > MAX_SAFE_INTEGER,
                    _ => false,
                };
                if beyond {
                    return Some(n);
                }
            }
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    None
}

/// Refuses a patch that places an integer beyond +/-(2^53 - 1) in the document (the values of
/// `add` and `replace`; moves and copies only place numbers the document holds already).
pub fn check_placed_numbers(patch: &[PatchOperation]) -> Result<(), DiffError> {
    for (index, op) in patch.iter().enumerate() {
        let placed = match op {
            PatchOperation::Add(o) => &o.value,
            PatchOperation::Replace(o) => &o.value,
            _ => continue,
        };
        if let Some(n) = unsafe_integer(placed) {
            return Err(DiffError::UnsafeInteger {
                index,
                number: n.to_string(),
            });
        }
    }
    Ok(())
}

/// Apply just a diff to `start` and return the result; `start` is never changed.
///
/// Uses one format by precedence `patch` > `jsonPatch` > `mergePatch` > `bsonPatch`. A diff with
/// `hasChanges: false` and no format returns `start` unchanged; any other diff without a format
/// is [`DiffError::UnknownFormat`] (or [`DiffError::NoChange`] when it has no members at all).
pub fn apply_diff(start: &Value, diff: &Diff) -> Result<Value, DiffError> {
    check_depth(start, MAX_DEPTH)?;
    let after = match diff.format() {
        Some(Format::Patch(ops)) => {
            let mut doc = start.clone();
            apply_patch(&mut doc, ops)?;
            doc
        }
        Some(Format::Merge(merge)) => merge.apply(start)?,
        Some(Format::Bson(bson)) => bson.apply(start, diff.version.is_some())?,
        None if diff.has_changes == Some(false) => start.clone(),
        None => return Err(diff.no_format_error()),
    };
    check_depth(&after, MAX_DEPTH)?;
    Ok(after)
}

/// Apply `event` to the document before it (`None`: the document does not exist) and return
/// the document after it with the operations between the two. Never mutates its input.
///
/// - Delete: no document, no operations (whether or not the document existed).
/// - Create starts from `null` (a re-create replaces whatever was there); update starts from
///   `before` and fails with [`DiffError::DocumentMissing`] when there is none.
/// - With a diff in a known format (see [`apply_diff`]), that format is applied; unknown members
///   next to it are ignored. `hasChanges: false` without a format changes nothing.
/// - Otherwise the whole document is taken from `metadata.data` (a JSON string holding the
///   document, or the document as an object or array), or for a create `metadata.created_doc`.
///   Without one: [`DiffError::UnknownFormat`] when the diff has unknown members, else
///   [`DiffError::NoChange`].
pub fn apply_event(before: Option<&Value>, event: &Event) -> Result<Change, DiffError> {
    let null = Value::Null;
    let start = match event.operation {
        Operation::Delete => return Ok(Change::default()),
        Operation::Create => &null,
        Operation::Update => before.ok_or(DiffError::DocumentMissing)?,
    };
    let diff = event.diff.as_ref();
    let (document, ops) = match diff {
        Some(d) if d.format().is_some() || d.has_changes == Some(false) => {
            let after = apply_diff(start, d)?;
            let ops = match d.format() {
                Some(Format::Patch(ops)) => ops.to_vec(),
                Some(_) => json_patch::diff(start, &after).0,
                None => Vec::new(),
            };
            (after, ops)
        }
        _ => match snapshot(event)? {
            Some(after) => {
                check_depth(start, MAX_DEPTH)?;
                let ops = json_patch::diff(start, &after).0;
                (after, ops)
            }
            None => return Err(diff.map_or(DiffError::NoChange, Diff::no_format_error)),
        },
    };
    let ops = if event.operation == Operation::Create {
        vec![PatchOperation::Add(json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::new(),
            value: document.clone(),
        })]
    } else {
        ops
    };
    if document.is_null() {
        return Err(DiffError::NullDocument);
    }
    Ok(Change {
        document: Some(document),
        ops,
    })
}

/// [`apply_event`] in place: `document` becomes the document after `event`; on error it is
/// exactly as it was.
///
/// An RFC 6902 update that does not touch the root (the usual event) changes the document where
/// it is instead of copying it: [`apply_patch`] is atomic and bounds the depth of every value it
/// places, so this costs what the patch touches, not the size of the document.
pub fn apply_event_in_place(document: &mut Option<Value>, event: &Event) -> Result<(), DiffError> {
    let format = event.diff.as_ref().and_then(Diff::format);
    if let (Operation::Update, Some(doc), Some(Format::Patch(ops))) =
        (event.operation, document.as_mut(), format)
    {
        // A root operation may turn the document into `null`, which apply_event refuses.
        if ops.iter().all(|op| !op.path().as_str().is_empty()) {
            return apply_patch(doc, ops);
        }
    }
    *document = apply_event(document.as_ref(), event)?.document;
    Ok(())
}

/// The whole document an event carries in `metadata`, if any.
fn snapshot(event: &Event) -> Result<Option<Value>, DiffError> {
    let keys: &[&str] = match event.operation {
        Operation::Create => &["data", "created_doc"],
        _ => &["data"],
    };
    for key in keys {
        let doc = match event.metadata.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => crate::protocol::parse_json(text)
                .map_err(|e| DiffError::InvalidSnapshot(format!("metadata.{key}: {e}")))?,
            Some(doc @ (Value::Object(_) | Value::Array(_))) => {
                check_depth(doc, MAX_DEPTH)?;
                doc.clone()
            }
            Some(other) => {
                return Err(DiffError::InvalidSnapshot(format!(
                    "metadata.{key} is neither a JSON string nor an object or array: {}",
                    crate::protocol::write_json(other)
                )))
            }
        };
        check_depth(&doc, MAX_DEPTH)?;
        return Ok(Some(doc));
    }
    Ok(None)
}
