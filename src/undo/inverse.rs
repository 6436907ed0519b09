//! The exact inverse of a shaped edit.
//!
//! Every shaped operation is elementary (`move` and `copy` were decomposed by
//! [`crate::conflict::shape`]), so its inverse is one operation that puts back what it changed:
//!
//! | operation | inverse |
//! | --- | --- |
//! | `add` inserting array element `A/i` | `remove A/i` |
//! | `add` creating object member `P` | `remove P` |
//! | `add` overwriting object member `P` (or the root) | `replace P` with the old value |
//! | `remove P` (member or element) | `add P` with the old value (an insertion at the index) |
//! | `replace P` | `replace P` with the old value |
//! | `test` | nothing |
//!
//! The inverse of an edit is the inverses of its operations in reverse order, each taken
//! against the document that operation met; it applies to the document after the edit and
//! gives back, value for value, the document before it.

use serde_json::Value;

use crate::conflict::{OpKind, ShapedOp};
use crate::diff::{self, DiffError};

/// The inverse of `ops`, which are shaped against `before`. Fails only when `ops` do not apply
/// to `before` (they were shaped against another document).
pub fn invert(before: &Value, ops: &[ShapedOp]) -> Result<Vec<ShapedOp>, DiffError> {
    let mut document = before.clone();
    let mut inverse = Vec::with_capacity(ops.len());
    for op in ops {
        if let Some(undo) = invert_one(&document, op) {
            inverse.push(undo);
        }
        diff::apply_patch(&mut document, &[op.to_operation()])?;
    }
    inverse.reverse();
    Ok(inverse)
}

/// The inverse of one operation against the document it applies to (`None` for a `test`).
fn invert_one(document: &Value, op: &ShapedOp) -> Option<ShapedOp> {
    let old = || document.pointer(&op.pointer()).cloned();
    let (kind, value) = match op.kind {
        OpKind::Test => return None,
        OpKind::Add if op.in_array => (OpKind::Remove, None),
        OpKind::Add => match old() {
            // The root always exists (a missing document is `null` here).
            Some(previous) => (OpKind::Replace, Some(previous)),
            None => (OpKind::Remove, None),
        },
        OpKind::Remove => (OpKind::Add, old()),
        OpKind::Replace => (OpKind::Replace, old()),
    };
    Some(ShapedOp {
        kind,
        path: op.path.clone(),
        value,
        in_array: op.in_array,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conflict;
    use serde_json::json;

    /// Shapes `patch` against `before`, applies it, and checks that the inverse applied to the
    /// result gives `before` back exactly. Returns the inverse as RFC 6902.
    fn round_trip(before: Value, patch: Value) -> Value {
        let patch: Vec<json_patch::PatchOperation> = serde_json::from_value(patch).unwrap();
        let ops = conflict::shape_valid(&before, &patch).unwrap();
        let mut after = before.clone();
        diff::apply_patch(&mut after, &patch).unwrap();
        let inverse = invert(&before, &ops).unwrap();
        // The inverse is shaped against the document after the edit.
        let reshaped = conflict::shape_valid(&after, &conflict::to_patch(&inverse)).unwrap();
        assert_eq!(reshaped, inverse, "the inverse is shaped against `after`");
        let mut back = after.clone();
        diff::apply_patch(&mut back, &conflict::to_patch(&inverse)).unwrap();
        assert_eq!(back, before);
        serde_json::to_value(conflict::to_patch(&inverse)).unwrap()
    }

    #[test]
    fn add_of_a_new_member_is_undone_by_a_remove() {
        let inverse = round_trip(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/b", "value": 2}]),
        );
        assert_eq!(inverse, json!([{"op": "remove", "path": "/b"}]));
    }

    #[test]
    fn add_over_an_existing_member_puts_the_old_value_back() {
        let inverse = round_trip(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/a", "value": 2}]),
        );
        assert_eq!(
            inverse,
            json!([{"op": "replace", "path": "/a", "value": 1}])
        );
    }

    #[test]
    fn array_insertions_and_appends_are_removed() {
        let inverse = round_trip(
            json!({"l": [1, 2]}),
            json!([
                {"op": "add", "path": "/l/0", "value": 0},
                {"op": "add", "path": "/l/-", "value": 3}
            ]),
        );
        assert_eq!(
            inverse,
            json!([{"op": "remove", "path": "/l/3"}, {"op": "remove", "path": "/l/0"}])
        );
    }

    #[test]
    fn remove_is_undone_by_adding_the_old_value_at_its_place() {
        let inverse = round_trip(
            json!({"l": ["a", "b", "c"], "o": {"k": [1]}}),
            json!([{"op": "remove", "path": "/l/1"}, {"op": "remove", "path": "/o/k"}]),
        );
        assert_eq!(
            inverse,
            json!([
                {"op": "add", "path": "/o/k", "value": [1]},
                {"op": "add", "path": "/l/1", "value": "b"}
            ])
        );
    }

    #[test]
    fn replace_puts_the_old_value_back() {
        let inverse = round_trip(
            json!({"l": [1, {"x": true}]}),
            json!([{"op": "replace", "path": "/l/1", "value": null}]),
        );
        assert_eq!(
            inverse,
            json!([{"op": "replace", "path": "/l/1", "value": {"x": true}}])
        );
    }

    #[test]
    fn move_and_copy_are_undone_through_their_decomposition() {
        round_trip(
            json!({"a": {"x": 1}, "l": [1, 2, 3]}),
            json!([{"op": "move", "from": "/a/x", "path": "/b"}]),
        );
        round_trip(
            json!({"l": [1, 2, 3]}),
            json!([{"op": "move", "from": "/l/0", "path": "/l/2"}]),
        );
        round_trip(
            json!({"a": 1, "b": 2}),
            json!([{"op": "move", "from": "/a", "path": "/b"}]),
        );
        round_trip(
            json!({"a": [1], "l": []}),
            json!([{"op": "copy", "from": "/a", "path": "/l/0"}]),
        );
        round_trip(
            json!({"a": [1], "b": 0}),
            json!([{"op": "copy", "from": "/a", "path": "/b"}]),
        );
    }

    #[test]
    fn test_ops_have_no_inverse_and_the_root_is_replaced_back() {
        let inverse = round_trip(
            json!({"a": 1}),
            json!([
                {"op": "test", "path": "/a", "value": 1},
                {"op": "replace", "path": "", "value": [1, 2]}
            ]),
        );
        assert_eq!(
            inverse,
            json!([{"op": "replace", "path": "", "value": {"a": 1}}])
        );
        round_trip(
            json!({"a": 1}),
            json!([{"op": "add", "path": "", "value": "x"}]),
        );
    }

    #[test]
    fn edits_touching_the_same_place_twice_are_undone_in_reverse_order() {
        let inverse = round_trip(
            json!({"l": [], "n": 0}),
            json!([
                {"op": "add", "path": "/l/0", "value": "a"},
                {"op": "replace", "path": "/l/0", "value": "b"},
                {"op": "add", "path": "/l/0", "value": "c"},
                {"op": "remove", "path": "/l/1"},
                {"op": "replace", "path": "/n", "value": 1},
                {"op": "replace", "path": "/n", "value": 2}
            ]),
        );
        assert_eq!(inverse.as_array().unwrap().len(), 6);
    }
}
