//! The server's side of the core: ordering submitted edits into a document's log.
//!
//! [`order_submit`] is a pure function of what the log already holds (a [`LogView`]) and the edits;
//! the caller stores the events it returns durably, then broadcasts them, then sends the acks
//! (DESIGN invariant 8). [`crate::server::MemoryLog`] is a complete in-memory log and server, used
//! by the simulation and tests.

use serde_json::Value;

use crate::conflict::{ConflictPolicy, ConflictResolver, ShapedOp};
use crate::diff::{self, Diff};
use crate::protocol::{Ack, Edit, ErrorCode, Event, Operation};
use crate::vector_clock::VectorClock;

mod rules;
pub use rules::Proposed;
use rules::{admit_edit, Admission, WeightGuard};

/// What ordering needs to know about a document's log.
pub trait LogView {
    /// The document id.
    fn document_id(&self) -> &str;
    /// The last `sequenceNum` (0 for an empty log).
    fn head_seq(&self) -> u64;
    /// The document at the head (`None` when it does not exist).
    fn document(&self) -> Option<&Value>;
    /// The document's state vector at the head.
    fn head_vector(&self) -> &VectorClock;
    /// The highest `clientSeq` ordered for `client_id` (0 when none).
    fn highest_client_seq(&self, client_id: &str) -> u64;
    /// Where the edit `(client_id, client_seq)` sits in the log, if it was ordered.
    fn ordered_edit(&self, client_id: &str, client_seq: u64) -> Option<u64>;
    /// Origin and `clientSeq` of every event after `sequence_num`, in order.
    fn origins_after(&self, sequence_num: u64) -> Vec<(String, Option<u64>)>;
    /// The shaped operations of every event after `sequence_num`, in order, when all are known
    /// (lets a stale submit be transformed instead of refused). `None` by default.
    fn shapes_after(&self, _sequence_num: u64) -> Option<Vec<Vec<ShapedOp>>> {
        None
    }
    /// The heaviest the document may become, in [`diff::weight`] units (`too_large` above it).
    /// `None` (the default): no limit.
    fn max_weight(&self) -> Option<usize> {
        None
    }
    /// An upper bound of the head document's weight, when known (a [`SubmitOutcome::weight_bound`]
    /// kept from the last submit); `None` makes the first edit measure the document.
    fn weight_bound(&self) -> Option<usize> {
        None
    }
    /// Whether [`LogView::check`] has anything to check (false by default: no copy is made).
    fn checks_edits(&self) -> bool {
        false
    }
    /// Whether [`LogView::check`] needs [`Proposed::before`] (a copy of the document per edit).
    fn check_wants_before(&self) -> bool {
        false
    }
    /// The server's own rules on an edit that applied, before it is ordered: an error refuses
    /// it (and every later edit of its submit) with that code. Only called when
    /// [`LogView::checks_edits`].
    fn check(&self, _edit: &Proposed<'_>) -> Result<(), (ErrorCode, String)> {
        Ok(())
    }
}

/// An edit (and every later edit of its submit) that was not ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The first edit not ordered.
    pub client_seq: u64,
    /// Why.
    pub code: ErrorCode,
    /// Detail for humans.
    pub message: String,
    /// The head when it was refused (after the edits of the same submit that were ordered).
    pub head_seq: u64,
}

/// The result of ordering one submit.
#[derive(Debug, Clone, Default)]
pub struct SubmitOutcome {
    /// New events to store (in this order) and then broadcast.
    pub events: Vec<Event>,
    /// The document after the new events.
    pub document: Option<Value>,
    /// One ack per ordered or duplicate edit, in submit order.
    pub acks: Vec<Ack>,
    /// Per new event, its operations shaped against the document before it (what later
    /// stale submits are transformed over); `None` when it could not be shaped.
    pub shapes: Vec<Option<Vec<ShapedOp>>>,
    /// Set when an edit was refused; no later edit of the submit was looked at.
    pub rejection: Option<Rejection>,
    /// An upper bound of the weight of [`SubmitOutcome::document`] when the log has a size
    /// limit, for the next submit's [`LogView::weight_bound`].
    pub weight_bound: Option<usize>,
}

/// Makes an event's `id` and `timestamp` from its `sequenceNum` (the core has no clock).
pub type Stamp<'a> = &'a mut dyn FnMut(u64) -> (String, String);

/// Orders a client's submit against the log, edit by edit (see `docs/PROTOCOL.md`, "Edits").
/// `may_write` is whether the client's credentials allow writing: without, an edit that is neither
/// a duplicate nor stale is refused `forbidden` (8.3 step 4).
///
/// Exactly once: an edit at or below the client's highest ordered `clientSeq` is acknowledged with
/// its original `sequenceNum` and applied again never. Stale edits (the log holds events after
/// `baseSeq` the client had not seen) are refused with `stale_base` so that the client rebases
/// them with its own conflict policy.
pub fn order_submit(
    log: &impl LogView,
    client_id: &str,
    edits: &[Edit],
    may_write: bool,
    stamp: Stamp<'_>,
) -> SubmitOutcome {
    let mut out = SubmitOutcome {
        document: log.document().cloned(),
        ..SubmitOutcome::default()
    };
    let Some(first) = edits.first() else {
        return out;
    };
    let mut head = log.head_seq();
    let mut highest = log.highest_client_seq(client_id);
    let reject = |client_seq, code, message: String, head_seq| {
        Some(Rejection {
            client_seq,
            code,
            message,
            head_seq,
        })
    };
    let base = first.base_seq;
    if edits.iter().any(|e| e.base_seq != base) {
        out.rejection = reject(
            first.client_seq,
            ErrorCode::InvalidSequence,
            "every edit of a submit must carry the same baseSeq".into(),
            head,
        );
        return out;
    }
    if let Err((code, message)) = check_position("baseSeq", base, head) {
        out.rejection = reject(first.client_seq, code, message, head);
        return out;
    }
    // Events after the base are fine only when they are earlier edits of this same submit.
    let own: Vec<u64> = edits.iter().map(|e| e.client_seq).collect();
    let after_base = log.origins_after(base);
    let stale = after_base
        .iter()
        .any(|(origin, seq)| origin != client_id || !seq.is_some_and(|s| own.contains(&s)));
    // A stale submit is transformed over the events it missed when that is safe; else refused.
    let rebased = if stale && after_base.iter().all(|(origin, _)| origin != client_id) {
        let fresh: Vec<&Edit> = edits.iter().filter(|e| e.client_seq > highest).collect();
        rebase_submit(&fresh, log.shapes_after(base))
    } else {
        None
    };
    let mut guard = WeightGuard::new(log);
    out.weight_bound = guard.bound();
    // What this submit ordered, to rebuild the document from when a rule refuses a later edit.
    let rules_may_refuse = log.max_weight().is_some() || log.checks_edits();
    let mut ordered: Vec<(Operation, Vec<json_patch::PatchOperation>)> = Vec::new();
    let mut fresh_index = 0;
    let mut previous = 0;
    for edit in edits {
        if edit.client_seq <= previous {
            out.rejection = reject(
                edit.client_seq,
                ErrorCode::InvalidSequence,
                "clientSeq must increase within a submit".into(),
                head,
            );
            return out;
        }
        previous = edit.client_seq;
        if edit.client_seq <= highest {
            match log.ordered_edit(client_id, edit.client_seq) {
                Some(sequence_num) => out.acks.push(Ack {
                    client_seq: edit.client_seq,
                    sequence_num,
                    duplicate: true,
                }),
                None => {
                    out.rejection = reject(
                        edit.client_seq,
                        ErrorCode::InvalidSequence,
                        format!(
                            "clientSeq {} is below {highest}, the highest already ordered",
                            edit.client_seq
                        ),
                        head,
                    );
                    return out;
                }
            }
            continue;
        }
        let transformed;
        let edit = if !stale {
            edit
        } else {
            match &rebased {
                None => {
                    out.rejection = reject(
                        edit.client_seq,
                        ErrorCode::StaleBase,
                        format!("the log has events after baseSeq {base} this client has not seen"),
                        head,
                    );
                    return out;
                }
                Some(rebased) if fresh_index >= rebased.first_conflict => {
                    out.rejection = reject(
                        edit.client_seq,
                        ErrorCode::Conflict,
                        format!(
                            "the edit conflicts with events after baseSeq {base}: rebase it with your conflict policy"
                        ),
                        head,
                    );
                    return out;
                }
                Some(rebased) => {
                    transformed = Edit {
                        patch: crate::conflict::to_patch(&rebased.edits[fresh_index]),
                        ..edit.clone()
                    };
                    &transformed
                }
            }
        };
        fresh_index += 1;
        if !may_write {
            // 8.3 step 4: after the exactly-once and staleness checks, before application.
            out.rejection = reject(
                edit.client_seq,
                ErrorCode::Forbidden,
                "this client may not write the document".into(),
                head,
            );
            return out;
        }
        // Shaped against the document before it, for stale submits to be transformed over.
        let null = Value::Null;
        let shape =
            crate::conflict::shape_valid(out.document.as_ref().unwrap_or(&null), &edit.patch).ok();
        let proposed = Proposed {
            document_id: log.document_id(),
            client_id,
            client_seq: Some(edit.client_seq),
            operation: edit.operation,
            patch: &edit.patch,
            before: None,
            after: None,
        };
        if let Err(admission) = admit_edit(log, &mut guard, &mut out.document, proposed) {
            if let Admission::Rewind(_) = admission {
                // The document as it was after the edits of this submit ordered so far.
                out.document = log.document().cloned();
                for (operation, patch) in &ordered {
                    apply_edit(&mut out.document, *operation, patch)
                        .expect("the ordered edits applied in this order just now");
                }
            }
            let (code, message) = admission.refusal();
            out.rejection = reject(edit.client_seq, code, message, head);
            return out;
        }
        if rules_may_refuse {
            ordered.push((edit.operation, edit.patch.clone()));
        }
        out.weight_bound = guard.bound();
        head += 1;
        highest = edit.client_seq;
        let (id, timestamp) = stamp(head);
        out.events.push(Event {
            id,
            document_id: log.document_id().to_owned(),
            timestamp,
            sequence_num: head,
            operation: edit.operation,
            diff: event_diff(edit.operation, &edit.patch),
            // The event carries no vector: its origin and sequenceNum are its entry (2).
            vector_clock: VectorClock::new(),
            client_id: client_id.to_owned(),
            client_seq: Some(edit.client_seq),
            server_seq: 0,
            metadata: Default::default(),
        });
        out.shapes.push(shape);
        out.acks.push(Ack {
            client_seq: edit.client_seq,
            sequence_num: head,
            duplicate: false,
        });
    }
    out
}

/// A stale submit's new edits transformed over the events after its base.
struct RebasedSubmit {
    edits: Vec<Vec<ShapedOp>>,
    /// Edits from this index on conflict with those events (or lost a `test`): refused.
    first_conflict: usize,
}

/// The most (local op, remote op) pairs the server transforms for one stale submit. Transforming
/// costs the product of the two sizes: without a bound, one frame of a few thousand ops, stale
/// across events of a few thousand ops each, would hold the document for hours. Beyond it the
/// submit is refused with `stale_base` and the client rebases it itself.
pub const MAX_TRANSFORM_PAIRS: usize = 1 << 20;

/// Transforms `edits` (each after the ones before it) over the events a client missed, with the
/// same function clients rebase with. `None` when it cannot be done exactly: an edit without a
/// `shape`, or an event whose shape is not known; or when it would cost more than
/// [`MAX_TRANSFORM_PAIRS`].
fn rebase_submit(edits: &[&Edit], missed: Option<Vec<Vec<ShapedOp>>>) -> Option<RebasedSubmit> {
    let missed = missed?;
    let local_ops: usize = edits.iter().map(|e| e.patch.len()).sum();
    let remote_ops: usize = missed.iter().map(Vec::len).sum();
    if local_ops.saturating_mul(remote_ops) > MAX_TRANSFORM_PAIRS {
        return None;
    }
    let mut shaped = edits
        .iter()
        .map(|e| {
            let flags = e.shape.as_ref()?;
            crate::conflict::from_patch(&e.patch, flags)
        })
        .collect::<Option<Vec<_>>>()?;
    let detector = ConflictResolver::new(ConflictPolicy::ServerWins);
    let mut first_conflict = shaped.len();
    for event in &missed {
        let rebased = detector.rebase(&shaped, event);
        let conflicted = rebased.conflicts.iter().map(|(k, _)| *k);
        first_conflict = conflicted
            .chain(rebased.invalidated.iter().copied())
            .fold(first_conflict, usize::min);
        shaped = rebased.edits;
    }
    Some(RebasedSubmit {
        edits: shaped,
        first_conflict,
    })
}

/// The rule for every position a client names (a `sync`'s `after` or vector, a `baseSeq`, an
/// HTTP `after` or SSE start): it may not be ahead of the log's head (`invalid_sequence`, 6.2,
/// 8.3, 12.2, 13). `what` names the position in the message.
pub fn check_position(what: &str, position: u64, head_seq: u64) -> Result<(), (ErrorCode, String)> {
    if position > head_seq {
        return Err((
            ErrorCode::InvalidSequence,
            format!("{what} {position} is ahead of the log (head {head_seq})"),
        ));
    }
    Ok(())
}

/// Orders a change that is not a client edit (an HTTP write, a database change): one event of
/// `origin` with no `clientSeq`, at the head. Returns the event and the document after it.
pub fn order_change(
    log: &impl LogView,
    origin: &str,
    operation: Operation,
    patch: Vec<json_patch::PatchOperation>,
    stamp: Stamp<'_>,
) -> Result<OrderedChange, (ErrorCode, String)> {
    let edit = Edit {
        client_seq: 0,
        base_seq: log.head_seq(),
        operation,
        patch,
        shape: None,
    };
    let shape =
        crate::conflict::shape_valid(log.document().unwrap_or(&Value::Null), &edit.patch).ok();
    let mut document = log.document().cloned();
    let mut guard = WeightGuard::new(log);
    let proposed = Proposed {
        document_id: log.document_id(),
        client_id: origin,
        client_seq: None,
        operation,
        patch: &edit.patch,
        before: None,
        after: None,
    };
    admit_edit(log, &mut guard, &mut document, proposed).map_err(Admission::refusal)?;
    let head = log.head_seq() + 1;
    let (id, timestamp) = stamp(head);
    let event = Event {
        id,
        document_id: log.document_id().to_owned(),
        timestamp,
        sequence_num: head,
        operation,
        diff: event_diff(operation, &edit.patch),
        vector_clock: VectorClock::new(),
        client_id: origin.to_owned(),
        client_seq: None,
        server_seq: 0,
        metadata: Default::default(),
    };
    Ok(OrderedChange {
        event,
        document,
        shape,
        weight_bound: guard.bound(),
    })
}

/// A change ordered by [`order_change`].
#[derive(Debug, Clone)]
pub struct OrderedChange {
    /// The new event.
    pub event: Event,
    /// The document after it.
    pub document: Option<Value>,
    /// Its operations shaped against the document before it.
    pub shape: Option<Vec<ShapedOp>>,
    /// An upper bound of the document's weight when the log has a size limit.
    pub weight_bound: Option<usize>,
}

/// The patch that turns `before` into `after` as one event: the operation and RFC 6902 ops
/// (a create is `add` at the root, a delete has no ops).
pub fn change_between(
    before: Option<&Value>,
    after: Option<&Value>,
) -> (Operation, Vec<json_patch::PatchOperation>) {
    let root = |op: &str, value: &Value| {
        serde_json::from_value(serde_json::json!([{"op": op, "path": "", "value": value}]))
            .expect("a root operation is a valid patch")
    };
    match (before, after) {
        (None, Some(after)) => (Operation::Create, root("add", after)),
        (Some(_), None) | (None, None) => (Operation::Delete, Vec::new()),
        (Some(before), Some(after)) => (Operation::Update, json_patch::diff(before, after).0),
    }
}

fn null_document() -> (ErrorCode, String) {
    (ErrorCode::InvalidPatch, "a document cannot be null".into())
}

/// The diff an event carries: the patch, or `null` for a delete.
fn event_diff(operation: Operation, patch: &[json_patch::PatchOperation]) -> Option<Diff> {
    (operation != Operation::Delete).then(|| Diff::from_patch(patch.to_vec()))
}

/// Applies one edit to the document it was ordered after, in place and atomically (on error the
/// document is unchanged); the error carries the protocol code. Used by the server to order
/// edits and by clients to lay pending edits over the confirmed document.
pub fn apply_edit(
    document: &mut Option<Value>,
    operation: Operation,
    patch: &[json_patch::PatchOperation],
) -> Result<(), (ErrorCode, String)> {
    use json_patch::PatchOperation as Op;
    fn placed(op: &json_patch::PatchOperation) -> Option<&Value> {
        match op {
            json_patch::PatchOperation::Add(o) => Some(&o.value),
            json_patch::PatchOperation::Replace(o) => Some(&o.value),
            _ => None,
        }
    }
    if patch
        .iter()
        .any(|op| op.path().is_root() && placed(op).is_some_and(Value::is_null))
    {
        return Err(null_document());
    }
    let too_deep = || {
        (
            ErrorCode::TooLarge,
            format!(
                "the document would be nested deeper than {} levels",
                diff::MAX_DOCUMENT_DEPTH
            ),
        )
    };
    // Only what an operation places can deepen the document; moves and copies place values
    // found in it, so those patches are checked whole on a copy.
    let moves = patch
        .iter()
        .any(|op| matches!(op, Op::Move(_) | Op::Copy(_)));
    let deepens = patch.iter().any(|op| {
        placed(op).is_some_and(|v| {
            op.path().count() + diff::depth_of(v, diff::MAX_DOCUMENT_DEPTH)
                > diff::MAX_DOCUMENT_DEPTH
        })
    });
    if deepens {
        return Err(too_deep());
    }
    diff::check_placed_numbers(patch).map_err(|e| (e.code(), e.to_string()))?;
    let apply = |doc: &mut Value| -> Result<(), (ErrorCode, String)> {
        if moves {
            let mut copy = doc.clone();
            diff::apply_patch(&mut copy, patch).map_err(|e| (e.code(), e.to_string()))?;
            diff::check_depth(&copy, diff::MAX_DOCUMENT_DEPTH).map_err(|_| too_deep())?;
            if copy.is_null() {
                // A move or copy of a null to the root.
                return Err(null_document());
            }
            *doc = copy;
            Ok(())
        } else {
            diff::apply_patch(doc, patch).map_err(|e| (e.code(), e.to_string()))
        }
    };
    match (operation, document.as_mut()) {
        (Operation::Update, Some(doc)) => apply(doc),
        (Operation::Create, None) => {
            let mut doc = Value::Null;
            apply(&mut doc)?;
            if doc.is_null() {
                // A create that sets nothing (an empty patch, only tests): no client could apply it.
                return Err(null_document());
            }
            *document = Some(doc);
            Ok(())
        }
        (Operation::Delete, Some(_)) if patch.is_empty() => {
            *document = None;
            Ok(())
        }
        (Operation::Delete, Some(_)) => {
            Err((ErrorCode::InvalidPatch, "a delete carries no patch".into()))
        }
        (Operation::Create, Some(_)) => Err((
            ErrorCode::DocumentState,
            "create of a document that exists".into(),
        )),
        (_, None) => Err((
            ErrorCode::DocumentState,
            "the document does not exist".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::MemoryLog;
    use serde_json::json;

    fn stamp() -> impl FnMut(u64) -> (String, String) {
        |seq| (format!("ev{seq}"), "2026-01-01T00:00:00Z".to_string())
    }

    fn edit(client_seq: u64, base_seq: u64, operation: Operation, patch: Value) -> Edit {
        Edit {
            client_seq,
            base_seq,
            operation,
            patch: serde_json::from_value(patch).unwrap(),
            shape: None,
        }
    }

    fn create() -> Edit {
        edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"n": 0}}]),
        )
    }

    fn set_n(client_seq: u64, base_seq: u64, n: i64) -> Edit {
        edit(
            client_seq,
            base_seq,
            Operation::Update,
            json!([{"op": "replace", "path": "/n", "value": n}]),
        )
    }

    #[test]
    fn orders_acks_and_numbers_without_gaps() {
        let mut log = MemoryLog::new("doc");
        let out = log.submit("a", &[create(), set_n(2, 0, 5)], &mut stamp());
        assert_eq!(out.rejection, None);
        assert_eq!(
            out.acks.iter().map(|a| a.sequence_num).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(log.document(), Some(&json!({"n": 5})));
        assert!(log.events()[1].vector_clock.is_empty());
        assert_eq!(log.head_vector().get("a"), 2);
        assert_eq!(log.events()[1].client_seq, Some(2));
    }

    #[test]
    fn resends_are_acked_with_the_original_sequence_and_not_applied() {
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        log.submit("b", &[set_n(1, 1, 7)], &mut stamp());
        let out = log.submit("a", &[create()], &mut stamp());
        assert_eq!(
            out.acks,
            vec![Ack {
                client_seq: 1,
                sequence_num: 1,
                duplicate: true
            }]
        );
        assert!(out.events.is_empty());
        assert_eq!(log.head_seq(), 2);
        assert_eq!(log.document(), Some(&json!({"n": 7})));
    }

    #[test]
    fn stale_edits_are_refused_but_own_earlier_edits_of_the_submit_are_not_stale() {
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        // a's edit 2 was ordered on an earlier connection; the resend of [2, 3] is fine.
        log.submit("a", &[set_n(2, 1, 2)], &mut stamp());
        let out = log.submit("a", &[set_n(2, 1, 2), set_n(3, 1, 3)], &mut stamp());
        assert_eq!(out.rejection, None);
        assert_eq!(log.document(), Some(&json!({"n": 3})));
        // b edits against seq 1 while a's edits followed: stale.
        let out = log.submit("b", &[set_n(1, 1, 9)], &mut stamp());
        let rejection = out.rejection.unwrap();
        assert_eq!(rejection.code, ErrorCode::StaleBase);
        assert_eq!(rejection.head_seq, 3);
        assert_eq!(log.head_seq(), 3);
    }

    /// An edit of `n` insertions at the front of `/list`, with its shape, so that a server may
    /// transform it.
    fn inserts(client_seq: u64, base_seq: u64, n: usize) -> Edit {
        let ops: Vec<Value> = (0..n)
            .map(|i| json!({"op": "add", "path": "/list/0", "value": i}))
            .collect();
        Edit {
            shape: Some(vec![true; n]),
            ..edit(client_seq, base_seq, Operation::Update, Value::Array(ops))
        }
    }

    #[test]
    fn stale_submits_too_costly_to_transform_are_refused_stale() {
        let mut log = MemoryLog::new("doc");
        let list = edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"list": []}}]),
        );
        log.submit("a", &[list], &mut stamp());
        log.submit("b", &[inserts(1, 1, 1100)], &mut stamp());
        // 1000 x 1100 op pairs: over the bound, so refused, and nothing is applied.
        let out = log.submit("a", &[inserts(2, 1, 1000)], &mut stamp());
        const { assert!(1000 * 1100 > MAX_TRANSFORM_PAIRS) };
        assert_eq!(out.rejection.unwrap().code, ErrorCode::StaleBase);
        assert_eq!(log.head_seq(), 2);
        // A small stale edit over the same events is transformed and ordered.
        let out = log.submit("a", &[inserts(2, 1, 2)], &mut stamp());
        assert_eq!(out.rejection, None);
        assert_eq!(log.head_seq(), 3);
        assert_eq!(
            log.document().unwrap()["list"].as_array().unwrap().len(),
            1102
        );
    }

    #[test]
    fn a_copy_bomb_is_refused_too_large_and_changes_nothing() {
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        let bomb: Vec<Value> = (0..64)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect();
        let out = log.submit(
            "a",
            &[edit(2, 1, Operation::Update, Value::Array(bomb))],
            &mut stamp(),
        );
        let rejection = out.rejection.unwrap();
        assert_eq!(rejection.code, ErrorCode::TooLarge, "{}", rejection.message);
        assert_eq!(log.document(), Some(&json!({"n": 0})));
        assert_eq!(log.head_seq(), 1);
    }

    #[test]
    fn edits_that_would_leave_a_null_document_are_refused() {
        // Every client refuses such an event: accepting it would stop the document for all.
        let mut log = MemoryLog::new("doc");
        for (client_seq, patch) in [
            (1, json!([])),
            (2, json!([{"op": "test", "path": "", "value": null}])),
        ] {
            let out = log.submit(
                "a",
                &[edit(client_seq, 0, Operation::Create, patch)],
                &mut stamp(),
            );
            assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidPatch);
            assert_eq!(log.head_seq(), 0);
        }
        let doc = json!([{"op": "add", "path": "", "value": {"x": null}}]);
        log.submit("a", &[edit(3, 0, Operation::Create, doc)], &mut stamp());
        for (client_seq, op) in [(4, "move"), (5, "copy")] {
            let patch = json!([{"op": op, "from": "/x", "path": ""}]);
            let out = log.submit(
                "a",
                &[edit(client_seq, 1, Operation::Update, patch)],
                &mut stamp(),
            );
            assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidPatch, "{op}");
        }
        assert_eq!(log.document(), Some(&json!({"x": null})));
        assert_eq!(log.head_seq(), 1);
    }

    #[test]
    fn a_rejection_stops_the_rest_of_the_submit() {
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        let bad = edit(
            3,
            1,
            Operation::Update,
            json!([{"op": "remove", "path": "/nope"}]),
        );
        let out = log.submit("a", &[set_n(2, 1, 1), bad, set_n(4, 1, 4)], &mut stamp());
        assert_eq!(out.acks.len(), 1);
        let rejection = out.rejection.unwrap();
        assert_eq!(
            (rejection.client_seq, rejection.code),
            (3, ErrorCode::InvalidPatch)
        );
        assert_eq!(log.document(), Some(&json!({"n": 1})));
        assert_eq!(log.head_seq(), 2);
    }

    #[test]
    fn document_state_and_sequence_errors() {
        let mut log = MemoryLog::new("doc");
        let out = log.submit("a", &[set_n(1, 0, 1)], &mut stamp());
        assert_eq!(out.rejection.unwrap().code, ErrorCode::DocumentState);
        let out = log.submit("a", &[set_n(1, 5, 1)], &mut stamp());
        assert_eq!(out.rejection.unwrap().code, ErrorCode::InvalidSequence);
        log.submit("a", &[create()], &mut stamp());
        let out = log.submit(
            "b",
            &[edit(1, 1, Operation::Create, json!([]))],
            &mut stamp(),
        );
        assert_eq!(out.rejection.unwrap().code, ErrorCode::DocumentState);
        let out = log.submit(
            "a",
            &[edit(2, 1, Operation::Delete, json!([]))],
            &mut stamp(),
        );
        assert!(out.rejection.is_none());
        assert_eq!(log.document(), None);
        assert_eq!(log.events()[1].operation, Operation::Delete);
    }

    #[test]
    fn server_changes_are_ordered_without_client_seq() {
        let mut log = MemoryLog::new("doc");
        let (op, patch) = change_between(None, Some(&json!({"a": 1})));
        let OrderedChange {
            event,
            document: doc,
            ..
        } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
        assert_eq!(event.operation, Operation::Create);
        assert_eq!((event.sequence_num, event.client_seq), (1, None));
        log.append(&[event], doc);
        let (op, patch) = change_between(log.document(), Some(&json!({"a": 2, "b": [1]})));
        let OrderedChange {
            event,
            document: doc,
            ..
        } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
        assert!(event.vector_clock.is_empty());
        assert_eq!(doc, Some(json!({"a": 2, "b": [1]})));
        log.append(&[event], doc);
        let (op, patch) = change_between(log.document(), None);
        let OrderedChange {
            event,
            document: doc,
            ..
        } = order_change(&log, "server", op, patch, &mut stamp()).unwrap();
        assert_eq!((event.operation, doc), (Operation::Delete, None));
        log.append(&[event], None);
        let bad: Vec<json_patch::PatchOperation> =
            serde_json::from_value(json!([{"op": "remove", "path": "/x"}])).unwrap();
        let err = order_change(&log, "server", Operation::Update, bad, &mut stamp()).unwrap_err();
        assert_eq!(err.0, ErrorCode::DocumentState);
    }

    #[test]
    fn without_write_rights_resends_are_acked_and_new_edits_forbidden() {
        // 8.3: the exactly-once and staleness checks come before the permission (step 4).
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        log.submit("a", &[set_n(2, 1, 2)], &mut stamp());
        let out = order_submit(
            &log,
            "a",
            &[set_n(2, 1, 2), set_n(3, 1, 3)],
            false,
            &mut stamp(),
        );
        assert_eq!(out.acks.len(), 1);
        assert!(out.acks[0].duplicate);
        let rejection = out.rejection.unwrap();
        assert_eq!(
            (rejection.client_seq, rejection.code),
            (3, ErrorCode::Forbidden)
        );
        // A stale edit is refused stale first: the client catches up, then learns it may not write.
        let out = order_submit(&log, "b", &[set_n(1, 1, 9)], false, &mut stamp());
        assert_eq!(out.rejection.unwrap().code, ErrorCode::StaleBase);
        assert!(out.events.is_empty());
    }

    #[test]
    fn integers_javascript_cannot_hold_are_refused_too_large() {
        let mut log = MemoryLog::new("doc");
        log.submit("a", &[create()], &mut stamp());
        for (client_seq, value) in [
            (2, json!(9007199254740992u64)),
            (3, json!({"deep": [-9007199254740992i64]})),
            (4, json!(u64::MAX)),
        ] {
            let patch = json!([{"op": "add", "path": "/big", "value": value}]);
            let out = log.submit(
                "a",
                &[edit(client_seq, 1, Operation::Update, patch)],
                &mut stamp(),
            );
            let rejection = out.rejection.unwrap();
            assert_eq!(rejection.code, ErrorCode::TooLarge, "{value}");
            assert!(
                rejection.message.contains("string"),
                "{}",
                rejection.message
            );
        }
        // The largest safe integers, and doubles of any size, are fine.
        let patch = json!([{"op": "add", "path": "/ok", "value": [9007199254740991u64, -9007199254740991i64, 1e300, 0.5]}]);
        let out = log.submit("a", &[edit(5, 1, Operation::Update, patch)], &mut stamp());
        assert_eq!(out.rejection, None);
    }
}
