//! Shaped operations: RFC 6902 operations normalized against the document they apply to.

use json_patch::jsonptr::{Pointer, PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation};
use serde_json::Value;

use crate::protocol::members::{
    deserialize_from_json, serialize_to_json, FromJson, Members, Object, ToJson,
};

/// What a [`ShapedOp`] does, written as its name (`"add"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// In an object: set the member (create it or overwrite it). In an array: insert before the
    /// index. At the root: replace the whole document.
    Add,
    /// Remove the object member or array element.
    Remove,
    /// Replace the existing value.
    Replace,
    /// Check that the value equals [`ShapedOp::value`]; changes nothing.
    Test,
}

/// One elementary operation whose path tokens are known to index objects or arrays.
///
/// Produced by [`shape`] against the document it applies to: `move` and `copy` are decomposed,
/// an array append token `-` is replaced by the concrete index, and [`ShapedOp::in_array`]
/// records whether the last token indexes an array. Serialized in camelCase (it is persisted in
/// the offline queue).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapedOp {
    /// What the operation does.
    pub kind: OpKind,
    /// Unescaped JSON Pointer tokens; empty for the document root.
    pub path: Vec<String>,
    /// The value added, replaced with or tested against; `None` for [`OpKind::Remove`].
    pub value: Option<Value>,
    /// Whether the last token of `path` indexes an array (it is then a canonical decimal index).
    pub in_array: bool,
}

/// The kinds with their names.
const OP_KINDS: [(OpKind, &str); 4] = [
    (OpKind::Add, "add"),
    (OpKind::Remove, "remove"),
    (OpKind::Replace, "replace"),
    (OpKind::Test, "test"),
];

impl ToJson for OpKind {
    fn to_json(&self) -> Value {
        Value::String(OP_KINDS[*self as usize].1.to_owned())
    }
}

impl FromJson for OpKind {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let name = String::from_json(value)?;
        match OP_KINDS.iter().find(|(_, known)| *known == name) {
            Some((kind, _)) => Ok(*kind),
            None => Err(serde::de::Error::unknown_variant(
                &name,
                &["add", "remove", "replace", "test"],
            )),
        }
    }
}

impl ToJson for ShapedOp {
    fn to_json(&self) -> Value {
        Object::new()
            .with("kind", &self.kind)
            .with("path", &self.path)
            .with_some("value", &self.value)
            .with("inArray", &self.in_array)
            .done()
    }
}

impl FromJson for ShapedOp {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a shaped operation")?;
        Ok(ShapedOp {
            kind: m.required("kind")?,
            path: m.required("path")?,
            value: m.optional("value")?,
            in_array: m.or_default("inArray")?,
        })
    }
}

deserialize_from_json!(OpKind, ShapedOp);
serialize_to_json!(OpKind, ShapedOp);

impl ShapedOp {
    /// Builds a shaped operation from its parts.
    pub fn new(kind: OpKind, path: &[&str], value: Option<Value>, in_array: bool) -> Self {
        ShapedOp {
            kind,
            path: path.iter().map(|t| (*t).to_owned()).collect(),
            value,
            in_array,
        }
    }

    /// The path as an RFC 6901 JSON Pointer string (tokens escaped with `~0` and `~1`).
    pub fn pointer(&self) -> String {
        pointer_of(&self.path).as_str().to_owned()
    }

    /// The RFC 6902 operation (a missing value is sent as `null`).
    pub fn to_operation(&self) -> PatchOperation {
        elementary(self.kind, pointer_of(&self.path), self.value.clone())
    }
}

fn elementary(kind: OpKind, path: PointerBuf, value: Option<Value>) -> PatchOperation {
    let value = || value.unwrap_or(Value::Null);
    match kind {
        OpKind::Add => PatchOperation::Add(AddOperation {
            path,
            value: value(),
        }),
        OpKind::Remove => PatchOperation::Remove(RemoveOperation { path }),
        OpKind::Replace => PatchOperation::Replace(ReplaceOperation {
            path,
            value: value(),
        }),
        OpKind::Test => PatchOperation::Test(TestOperation {
            path,
            value: value(),
        }),
    }
}

fn pointer_of(tokens: &[String]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().map(|t| Token::new(t.as_str())))
}

/// Why [`shape`] failed: the operations do not apply to the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Operation `index` does not apply to the document left by the operations before it.
    #[error("operation {index} ({op} {path}) does not apply: {reason}")]
    DoesNotApply {
        /// Index of the failing operation in the input.
        index: usize,
        /// The RFC 6902 operation name (`add`, `move`, ...).
        op: &'static str,
        /// The operation's `path`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Operation `index` is a `move` into a child of its own `from` location.
    #[error("operation {index} (move {from} -> {path}) moves a value inside itself")]
    MoveIntoItself {
        /// Index of the failing operation in the input.
        index: usize,
        /// The `from` pointer.
        from: String,
        /// The `path` pointer.
        path: String,
    },
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// Applies `ops` to a clone of `before` one by one, recording their shapes.
///
/// `move` becomes `remove(from)` + `add(path, moved value)`; `copy` becomes
/// `add(path, copied value)`; an array append token `-` becomes the concrete index (the array
/// length); operations whose parent is an array get `in_array = true`. Succeeds exactly when
/// `json_patch::patch(before, ops)` does (except for a patch whose copies go over
/// [`crate::diff::MAX_COPY_WEIGHT`], which fails), and applying [`to_patch`] of the result to
/// `before` gives the same document.
pub fn shape(before: &Value, ops: &[PatchOperation]) -> Result<Vec<ShapedOp>, ShapeError> {
    let mut doc = before.clone();
    let mut out = Vec::with_capacity(ops.len());
    // The same bound as `diff::apply_patch`: copies must not grow the document without limit.
    let mut budget = crate::diff::CopyBudget::new(before, ops);
    for (index, op) in ops.iter().enumerate() {
        let fail = |reason: String| ShapeError::DoesNotApply {
            index,
            op: op_name(op),
            path: op.path().as_str().to_owned(),
            reason,
        };
        budget
            .place(&doc, index, op)
            .map_err(|e| fail(e.to_string()))?;
        match op {
            PatchOperation::Add(o) => {
                out.push(step(&mut doc, OpKind::Add, &o.path, Some(o.value.clone())).map_err(fail)?)
            }
            PatchOperation::Remove(o) => {
                out.push(step(&mut doc, OpKind::Remove, &o.path, None).map_err(fail)?)
            }
            PatchOperation::Replace(o) => out.push(
                step(&mut doc, OpKind::Replace, &o.path, Some(o.value.clone())).map_err(fail)?,
            ),
            PatchOperation::Test(o) => out
                .push(step(&mut doc, OpKind::Test, &o.path, Some(o.value.clone())).map_err(fail)?),
            PatchOperation::Move(o) => {
                // Same check, in the same order, as json_patch.
                if o.path.starts_with(&o.from) && o.path.len() != o.from.len() {
                    return Err(ShapeError::MoveIntoItself {
                        index,
                        from: o.from.as_str().to_owned(),
                        path: o.path.as_str().to_owned(),
                    });
                }
                let moved = doc
                    .pointer(o.from.as_str())
                    .cloned()
                    .ok_or_else(|| fail("\"from\" path is invalid".to_owned()))?;
                out.push(step(&mut doc, OpKind::Remove, &o.from, None).map_err(fail)?);
                out.push(step(&mut doc, OpKind::Add, &o.path, Some(moved)).map_err(fail)?);
            }
            PatchOperation::Copy(o) => {
                let copied = doc
                    .pointer(o.from.as_str())
                    .cloned()
                    .ok_or_else(|| fail("\"from\" path is invalid".to_owned()))?;
                out.push(step(&mut doc, OpKind::Add, &o.path, Some(copied)).map_err(fail)?);
            }
        }
    }
    Ok(out)
}

/// As [`shape`], for operations already known to apply to `before` (a remote event that was
/// applied, a local edit that was): a single operation other than `move` is shaped without
/// copying the document.
pub fn shape_valid(before: &Value, ops: &[PatchOperation]) -> Result<Vec<ShapedOp>, ShapeError> {
    let (kind, ptr, value) = match ops {
        [PatchOperation::Add(o)] => (OpKind::Add, &o.path, Some(o.value.clone())),
        [PatchOperation::Remove(o)] => (OpKind::Remove, &o.path, None),
        [PatchOperation::Replace(o)] => (OpKind::Replace, &o.path, Some(o.value.clone())),
        [PatchOperation::Test(o)] => (OpKind::Test, &o.path, Some(o.value.clone())),
        [PatchOperation::Copy(o)] => (
            OpKind::Add,
            &o.path,
            before.pointer(o.from.as_str()).cloned(),
        ),
        _ => return shape(before, ops),
    };
    Ok(vec![describe(before, kind, ptr, value)])
}

/// Shapes one elementary operation against `doc`, then applies it to `doc`.
fn step(
    doc: &mut Value,
    kind: OpKind,
    ptr: &Pointer,
    value: Option<Value>,
) -> Result<ShapedOp, String> {
    let shaped = describe(doc, kind, ptr, value.clone());
    // Apply the op as written (not the shaped one) so that validity is exactly json_patch's.
    let op = elementary(kind, ptr.to_buf(), value);
    json_patch::patch(doc, &[op]).map_err(|e| e.kind.to_string())?;
    Ok(shaped)
}

/// The shape of one elementary operation against the document it applies to.
fn describe(doc: &Value, kind: OpKind, ptr: &Pointer, value: Option<Value>) -> ShapedOp {
    let mut path: Vec<String> = ptr.tokens().map(|t| t.decoded().into_owned()).collect();
    let mut in_array = false;
    if let Some((parent, last)) = ptr.split_back() {
        if let Some(Value::Array(items)) = doc.pointer(parent.as_str()) {
            in_array = true;
            if kind == OpKind::Add && last.encoded() == "-" {
                if let Some(token) = path.last_mut() {
                    *token = items.len().to_string();
                }
            }
        }
    }
    ShapedOp {
        kind,
        path,
        value,
        in_array,
    }
}

/// Converts shaped operations back to RFC 6902 (tokens escaped with `~0` and `~1`).
pub fn to_patch(ops: &[ShapedOp]) -> Vec<PatchOperation> {
    ops.iter().map(ShapedOp::to_operation).collect()
}

/// Reads back a patch in the normal form [`to_patch`] writes (add, remove, replace and test only;
/// array positions as numbers) given, per operation, whether its last token indexes an array:
/// how a server reads an edit's `shape`. `None` when the patch is not in that form.
pub fn from_patch(ops: &[PatchOperation], in_array: &[bool]) -> Option<Vec<ShapedOp>> {
    if ops.len() != in_array.len() {
        return None;
    }
    ops.iter()
        .zip(in_array)
        .map(|(op, &in_array)| {
            let (kind, value) = match op {
                PatchOperation::Add(o) => (OpKind::Add, Some(o.value.clone())),
                PatchOperation::Remove(_) => (OpKind::Remove, None),
                PatchOperation::Replace(o) => (OpKind::Replace, Some(o.value.clone())),
                PatchOperation::Test(o) => (OpKind::Test, Some(o.value.clone())),
                PatchOperation::Move(_) | PatchOperation::Copy(_) => return None,
            };
            let path: Vec<String> = op
                .path()
                .tokens()
                .map(|t| t.decoded().into_owned())
                .collect();
            let concrete = path.last().is_some_and(|t| t.parse::<usize>().is_ok());
            if in_array && !concrete {
                return None;
            }
            Some(ShapedOp {
                kind,
                path,
                value,
                in_array,
            })
        })
        .collect()
}
