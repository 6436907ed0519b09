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
mod tests;
