//! Operational transformation of shaped operations.
//!
//! Every function here is a pure function of its inputs.

use serde_json::Value;

use super::shape::{OpKind, ShapedOp};
use super::{Conflict, ConflictKind, Resolution};

/// The outcome of transforming one local op `a` over one remote op `b` (both made against the
/// same state `S`).
pub(crate) struct Step {
    /// `a'`: applies after `b`.
    pub local: Option<ShapedOp>,
    /// `b'`: applies after `a`.
    pub remote: Option<ShapedOp>,
    /// The conflict met, if any.
    pub conflict: Option<Conflict>,
    /// Set when `a` was dropped by [`Resolution::KeepRemote`] on an ancestor overwrite: `b'`
    /// restores `a`'s location with a placeholder; this op marks that location (see
    /// [`Local::Restored`]).
    pub restored: Option<ShapedOp>,
}

/// Parses a canonical RFC 6901 array index (`0`, or digits without a leading zero).
fn parse_index(token: &str) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|c| c.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

/// `(array path, index)` when `op` addresses an array element.
fn array_slot(op: &ShapedOp) -> Option<(&[String], usize)> {
    if !op.in_array {
        return None;
    }
    let (last, parent) = op.path.split_last()?;
    Some((parent, parse_index(last)?))
}

/// An insertion into an array.
fn is_insert(op: &ShapedOp) -> bool {
    op.kind == OpKind::Add && array_slot(op).is_some()
}

/// `p` is a token-wise prefix of `q` (or equal to it).
fn is_prefix(p: &[String], q: &[String]) -> bool {
    p.len() <= q.len() && q[..p.len()] == *p
}

/// `p` is a token-wise strict prefix of `q`.
fn is_strict_prefix(p: &[String], q: &[String]) -> bool {
    p.len() < q.len() && is_prefix(p, q)
}

/// Shifts the array index in `path` that goes through the array `over` inserts into or
/// removes from. `path` was made against the same state as `over`; the result addresses the
/// same location after `over`. `path_is_insert`: `path` is itself an insertion (its last
/// token is an insertion point); `first_on_tie`: at an equal insertion point, `path` stays
/// before `over`'s element.
fn shift(path: &mut [String], path_is_insert: bool, over: &ShapedOp, first_on_tie: bool) {
    if !matches!(over.kind, OpKind::Add | OpKind::Remove) {
        return;
    }
    let Some((array, i)) = array_slot(over) else {
        return;
    };
    let depth = array.len();
    if path.len() <= depth || path[..depth] != *array {
        return;
    }
    let Some(j) = parse_index(&path[depth]) else {
        return;
    };
    let exact_insert = path_is_insert && path.len() == depth + 1;
    let shifted = match over.kind {
        OpKind::Add if j > i || (j == i && !(exact_insert && first_on_tie)) => j.saturating_add(1),
        OpKind::Remove if j > i => j - 1,
        _ => j,
    };
    path[depth] = shifted.to_string();
}

fn shifted(op: &ShapedOp, over: &ShapedOp, first_on_tie: bool) -> ShapedOp {
    let mut out = op.clone();
    shift(&mut out.path, is_insert(op), over, first_on_tie);
    out
}

/// An op that makes the value at `path` be `value`, in a state where the location exists
/// (`exists`: replace) or not (object member add, or array insert at that index).
fn set_op(path: &[String], value: Value, in_array: bool, exists: bool) -> ShapedOp {
    ShapedOp {
        kind: if exists || path.is_empty() {
            OpKind::Replace
        } else {
            OpKind::Add
        },
        path: path.to_vec(),
        value: Some(value),
        in_array,
    }
}

fn conflict(kind: ConflictKind, a: &ShapedOp, b: &ShapedOp) -> Conflict {
    Conflict {
        kind,
        path: a.pointer(),
        local: a.clone(),
        remote: b.clone(),
    }
}

/// Transforms local `a` over remote `b` (both against the same state). `decide` is asked for
/// [`ConflictKind::SamePath`] and [`ConflictKind::AncestorOverwrite`] only.
pub(crate) fn transform_op(
    a: &ShapedOp,
    b: &ShapedOp,
    decide: &dyn Fn(&Conflict) -> Resolution,
) -> Step {
    let pass = |local: Option<ShapedOp>, remote: Option<ShapedOp>| Step {
        local,
        remote,
        conflict: None,
        restored: None,
    };
    if b.kind == OpKind::Test {
        // A remote test changes nothing; it is not carried into b'.
        return pass(Some(a.clone()), None);
    }
    let a_insert = is_insert(a);
    let b_insert = is_insert(b);

    if a.kind == OpKind::Test {
        // The tested value is changed when b's change is at, above or under it. An insertion
        // into an array only moves the elements after it: it touches the array itself.
        let touched = if b_insert {
            is_strict_prefix(&a.path, &b.path)
        } else {
            is_prefix(&a.path, &b.path) || is_prefix(&b.path, &a.path)
        };
        if touched {
            return Step {
                local: None,
                remote: Some(b.clone()),
                conflict: Some(conflict(ConflictKind::TestInvalidated, a, b)),
                restored: None,
            };
        }
        return pass(Some(shifted(a, b, false)), Some(b.clone()));
    }

    // Same location, neither an insertion.
    if !a_insert && !b_insert && a.path == b.path {
        let a_removes = a.kind == OpKind::Remove;
        let b_removes = b.kind == OpKind::Remove;
        if a_removes && b_removes {
            return pass(None, None);
        }
        let c = conflict(ConflictKind::SamePath, a, b);
        let (local, remote) = match decide(&c) {
            Resolution::KeepRemote => {
                let remote = if b_removes {
                    b.clone()
                } else {
                    let v = b.value.clone().unwrap_or(Value::Null);
                    set_op(&b.path, v, b.in_array, !a_removes)
                };
                (None, Some(remote))
            }
            Resolution::KeepLocal => {
                let local = if a_removes {
                    a.clone()
                } else {
                    let v = a.value.clone().unwrap_or(Value::Null);
                    set_op(&a.path, v, a.in_array, !b_removes)
                };
                (Some(local), None)
            }
            Resolution::Value(v) => (
                Some(set_op(&a.path, v.clone(), a.in_array, !b_removes)),
                Some(set_op(&a.path, v, a.in_array, !a_removes)),
            ),
        };
        return Step {
            local,
            remote,
            conflict: Some(c),
            restored: None,
        };
    }

    // a is under what b removed or set (for an insertion: into the array b removed or set).
    if !b_insert && is_strict_prefix(&b.path, &a.path) {
        let kind = if b.kind == OpKind::Remove {
            ConflictKind::ParentRemoved
        } else {
            ConflictKind::ParentReplaced
        };
        return Step {
            local: None,
            remote: Some(b.clone()),
            conflict: Some(conflict(kind, a, b)),
            restored: None,
        };
    }

    // a sets or removes an ancestor of what b changed (for b's insertion: the array itself or
    // above).
    if !a_insert && is_strict_prefix(&a.path, &b.path) {
        let c = conflict(ConflictKind::AncestorOverwrite, a, b);
        let a_removes = a.kind == OpKind::Remove;
        let mut restored = None;
        let (local, remote) = match decide(&c) {
            // a's location still exists after b (b changed only under it): a applies as is.
            Resolution::KeepLocal => (Some(a.clone()), None),
            // b' must restore the ancestor to its value after the remote change, which only the
            // document knows: a null placeholder keeps the chain structurally right for later
            // edits (what was under a's location is replaced), but not its value.
            Resolution::KeepRemote => {
                restored = Some(set_op(&a.path, Value::Null, a.in_array, true));
                (
                    None,
                    Some(set_op(&a.path, Value::Null, a.in_array, !a_removes)),
                )
            }
            Resolution::Value(v) => (
                Some(set_op(&a.path, v.clone(), a.in_array, true)),
                Some(set_op(&a.path, v, a.in_array, !a_removes)),
            ),
        };
        return Step {
            local,
            remote,
            conflict: Some(c),
            restored,
        };
    }

    // Independent, up to array index shifts: b stays first at an equal insertion point.
    pass(Some(shifted(a, b, false)), Some(shifted(b, a, true)))
}

/// [`super::ConflictResolver::rebase`]'s refinement: `b'` as the differences between two
/// containers instead of a set of the whole remote value, when the local edit `a` was one op
/// setting a location to an object or array (not an insertion), the remote change `b` one op
/// setting the same location to a value of the same kind, and `a` lost (`a'` is empty, `b'`
/// sets the remote value). Both forms take `S + a` to `S + b`; the differences, shaped against
/// the local value, let later edits made inside it keep what still applies. Anything else:
/// `b'` as it came.
pub(crate) fn differences_instead(
    a: &[ShapedOp],
    b: &[ShapedOp],
    a_after: &[ShapedOp],
    b_after: Vec<ShapedOp>,
) -> Vec<ShapedOp> {
    let ([local], [remote], [], [continued]) = (a, b, a_after, b_after.as_slice()) else {
        return b_after;
    };
    let sets = |op: &ShapedOp| matches!(op.kind, OpKind::Add | OpKind::Replace) && !is_insert(op);
    let (Some(mine), Some(theirs)) = (&local.value, &remote.value) else {
        return b_after;
    };
    let same_kind =
        (mine.is_object() && theirs.is_object()) || (mine.is_array() && theirs.is_array());
    if !sets(local) || !sets(remote) || local.path != remote.path || !same_kind {
        return b_after;
    }
    if continued.path != remote.path || continued.value.as_ref() != Some(theirs) {
        return b_after;
    }
    let differences = json_patch::diff(mine, theirs).0;
    let Ok(shaped) = super::shape::shape(mine, &differences) else {
        return b_after;
    };
    if shaped.iter().any(|op| op.path.is_empty()) {
        return b_after;
    }
    shaped
        .into_iter()
        .map(|mut op| {
            let mut path = remote.path.clone();
            path.append(&mut op.path);
            op.path = path;
            op
        })
        .collect()
}

/// A location that `b'` restored with a placeholder (a local op dropped by
/// [`Resolution::KeepRemote`] on an ancestor overwrite), kept in the grid's local list as a
/// `Replace` at that location. The placeholder stands for the location's value after the
/// *whole* remote change, so later remote ops under it are absorbed (dropped from `b'`: they
/// could not apply to the placeholder); a later remote op at or above it ends the marker.
fn over_restored(marker: &ShapedOp, b: &ShapedOp) -> (Option<ShapedOp>, Option<ShapedOp>) {
    if b.kind == OpKind::Test || is_strict_prefix(&marker.path, &b.path) {
        return (Some(marker.clone()), None);
    }
    let b_insert = is_insert(b);
    if !b_insert && b.path == marker.path {
        let b2 = if b.kind == OpKind::Remove {
            b.clone()
        } else {
            let v = b.value.clone().unwrap_or(Value::Null);
            set_op(&b.path, v, b.in_array, true)
        };
        return (None, Some(b2));
    }
    if !b_insert && is_strict_prefix(&b.path, &marker.path) {
        return (None, Some(b.clone()));
    }
    (
        Some(shifted(marker, b, false)),
        Some(shifted(b, marker, true)),
    )
}

/// An entry of the local list in the grid.
enum Local {
    /// A local op.
    Op(ShapedOp),
    /// See [`over_restored`].
    Restored(ShapedOp),
}

/// The result of transforming a sequence of local ops over a sequence of remote ops.
pub(crate) struct SeqOutcome {
    pub local: Vec<ShapedOp>,
    pub remote: Vec<ShapedOp>,
    pub conflicts: Vec<Conflict>,
    pub invalidated: bool,
}

/// The 2-D grid: for each remote op in order, walk the local ops in order, transforming each
/// over the remote op and carrying the remote op over it.
pub(crate) fn transform_seq(
    local: &[ShapedOp],
    remote: &[ShapedOp],
    decide: &dyn Fn(&Conflict) -> Resolution,
) -> SeqOutcome {
    let mut a: Vec<Local> = local.iter().cloned().map(Local::Op).collect();
    let mut remote_out = Vec::with_capacity(remote.len());
    let mut conflicts = Vec::new();
    let mut invalidated = false;
    for b in remote.iter().filter(|op| op.kind != OpKind::Test) {
        let mut current = Some(b.clone());
        let mut next = Vec::with_capacity(a.len());
        for entry in a {
            let Some(b_op) = current.as_ref() else {
                next.push(entry);
                continue;
            };
            match entry {
                Local::Op(a_op) => {
                    let step = transform_op(&a_op, b_op, decide);
                    if let Some(c) = step.conflict {
                        invalidated |= c.kind == ConflictKind::TestInvalidated;
                        conflicts.push(c);
                    }
                    next.extend(step.local.map(Local::Op));
                    next.extend(step.restored.map(Local::Restored));
                    current = step.remote;
                }
                Local::Restored(marker) => {
                    let (marker, b2) = over_restored(&marker, b_op);
                    next.extend(marker.map(Local::Restored));
                    current = b2;
                }
            }
        }
        a = next;
        remote_out.extend(current);
    }
    SeqOutcome {
        local: a
            .into_iter()
            .filter_map(|entry| match entry {
                Local::Op(op) => Some(op),
                Local::Restored(_) => None,
            })
            .collect(),
        remote: remote_out,
        conflicts,
        invalidated,
    }
}
