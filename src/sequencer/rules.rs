//! The server's rules on what a document may become, applied to each edit after it applies and
//! before it is ordered: the size limit (`too_large`, section 11) and the checks a server adds
//! through [`LogView::check`] (a JSON Schema, an application's hooks: `invalid_document` or
//! `forbidden`). A refused edit changes nothing: the document stays as it was before it.

use json_patch::PatchOperation;
use serde_json::Value;

use super::{apply_edit, LogView};
use crate::diff;
use crate::protocol::{ErrorCode, Operation};

/// An edit that applied and is about to be ordered, for [`LogView::check`].
#[derive(Debug, Clone, Copy)]
pub struct Proposed<'a> {
    /// The document.
    pub document_id: &'a str,
    /// Who made it: a client id, or the origin of an HTTP write or a database change.
    pub client_id: &'a str,
    /// The edit's `clientSeq`; `None` for HTTP writes and database changes.
    pub client_seq: Option<u64>,
    /// Create, update or delete.
    pub operation: Operation,
    /// Its RFC 6902 operations (after the server transformed a stale edit, when it did).
    pub patch: &'a [PatchOperation],
    /// The document before the edit (`None`: it did not exist). Empty unless
    /// [`LogView::check_wants_before`] asked for it (it costs a copy of the document per edit).
    pub before: Option<&'a Option<Value>>,
    /// The document after it (`None`: deleted).
    pub after: Option<&'a Value>,
}

/// Keeps an upper bound of the document's weight ([`diff::weight`]) across the edits of one
/// submit, so that the document is walked only when the bound nears the limit.
pub(crate) struct WeightGuard {
    limit: Option<usize>,
    bound: Option<usize>,
}

impl WeightGuard {
    pub(crate) fn new(log: &impl LogView) -> Self {
        WeightGuard {
            limit: log.max_weight(),
            bound: log.weight_bound(),
        }
    }

    /// The bound after the edits admitted so far (`None`: unknown, or no limit).
    pub(crate) fn bound(&self) -> Option<usize> {
        self.bound
    }

    /// The bound after `patch` when it is sure to stay within the limit without walking the
    /// document; `None` when the document must be measured.
    fn quick(&self, patch: &[PatchOperation]) -> Option<usize> {
        let limit = self.limit?;
        let upper = self.bound?.saturating_add(added_weight(patch)?);
        (upper <= limit).then_some(upper)
    }

    /// Admits a document that `patch` produced: the quick bound, else the exact weight.
    fn admit(&mut self, patch: &[PatchOperation], after: Option<&Value>) -> Result<(), String> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        if let Some(upper) = self.quick(patch) {
            self.bound = Some(upper);
            return Ok(());
        }
        let exact = after.map_or(0, |doc| diff::weight(doc, limit));
        if exact > limit {
            return Err(format!(
                "the document would be larger than the server's limit of {limit} (one per value plus the bytes of every string and key)"
            ));
        }
        self.bound = Some(exact);
        Ok(())
    }
}

/// How much heavier `patch` can make a document at most; `None` when it moves or copies
/// (what those place is in the document, not in the patch).
fn added_weight(patch: &[PatchOperation]) -> Option<usize> {
    let mut added = 0usize;
    for op in patch {
        let (path, value) = match op {
            PatchOperation::Add(o) => (&o.path, &o.value),
            PatchOperation::Replace(o) => (&o.path, &o.value),
            PatchOperation::Move(_) | PatchOperation::Copy(_) => return None,
            PatchOperation::Remove(_) | PatchOperation::Test(_) => continue,
        };
        // The key it may add to an object, and the value.
        let key = path.as_str().rsplit('/').next().map_or(0, str::len);
        added = added.saturating_add(key + diff::weight(value, usize::MAX));
    }
    Some(added)
}

/// Applies an edit to `document` under the log's rules: the edit must apply ([`apply_edit`]),
/// keep the document within the size limit, and pass the log's own checks. When the edit does
/// not apply, `document` is unchanged; when a rule refuses it, it is [`Admission::Rewind`]: the
/// caller puts back the document as it was (rebuilt, so that no copy is made per edit unless a
/// check asks for the document before).
pub(crate) fn admit_edit(
    log: &impl LogView,
    guard: &mut WeightGuard,
    document: &mut Option<Value>,
    edit: Proposed<'_>,
) -> Result<(), Admission> {
    let wants_before = log.checks_edits() && log.check_wants_before();
    let before = wants_before.then(|| document.clone());
    apply_edit(document, edit.operation, edit.patch).map_err(Admission::Unchanged)?;
    if let Err(message) = guard.admit(edit.patch, document.as_ref()) {
        return Err(Admission::Rewind((ErrorCode::TooLarge, message)));
    }
    if log.checks_edits() {
        let proposed = Proposed {
            before: before.as_ref(),
            after: document.as_ref(),
            ..edit
        };
        if let Err(refusal) = log.check(&proposed) {
            return Err(Admission::Rewind(refusal));
        }
    }
    Ok(())
}

/// Why [`admit_edit`] refused an edit, and what became of the document.
pub(crate) enum Admission {
    /// The edit did not apply: the document is as it was.
    Unchanged((ErrorCode, String)),
    /// A rule refused the edit after it applied: the document must be put back.
    Rewind((ErrorCode, String)),
}

impl Admission {
    /// The code and message, once the document is as it was.
    pub(crate) fn refusal(self) -> (ErrorCode, String) {
        match self {
            Admission::Unchanged(refusal) | Admission::Rewind(refusal) => refusal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Edit;
    use crate::server::MemoryLog;
    use serde_json::json;

    /// A log that admits documents up to `limit` and refuses any with `"forbidden": true`.
    struct Ruled {
        log: MemoryLog,
        limit: usize,
        bound: Option<usize>,
        seen_before: std::cell::RefCell<Vec<Option<Value>>>,
    }

    impl LogView for Ruled {
        fn document_id(&self) -> &str {
            self.log.document_id()
        }
        fn head_seq(&self) -> u64 {
            self.log.head_seq()
        }
        fn document(&self) -> Option<&Value> {
            LogView::document(&self.log)
        }
        fn head_vector(&self) -> &crate::VectorClock {
            self.log.head_vector()
        }
        fn highest_client_seq(&self, client_id: &str) -> u64 {
            self.log.highest_client_seq(client_id)
        }
        fn ordered_edit(&self, client_id: &str, client_seq: u64) -> Option<u64> {
            self.log.ordered_edit(client_id, client_seq)
        }
        fn origins_after(&self, sequence_num: u64) -> Vec<(String, Option<u64>)> {
            self.log.origins_after(sequence_num)
        }
        fn max_weight(&self) -> Option<usize> {
            Some(self.limit)
        }
        fn weight_bound(&self) -> Option<usize> {
            self.bound
        }
        fn checks_edits(&self) -> bool {
            true
        }
        fn check_wants_before(&self) -> bool {
            true
        }
        fn check(&self, edit: &Proposed<'_>) -> Result<(), (ErrorCode, String)> {
            self.seen_before
                .borrow_mut()
                .push(edit.before.cloned().flatten());
            if edit.after.is_some_and(|d| d["forbidden"] == json!(true)) {
                return Err((ErrorCode::InvalidDocument, "forbidden is forbidden".into()));
            }
            Ok(())
        }
    }

    fn edit(seq: u64, base: u64, operation: Operation, patch: Value) -> Edit {
        Edit {
            client_seq: seq,
            base_seq: base,
            operation,
            patch: serde_json::from_value(patch).unwrap(),
            shape: None,
        }
    }

    fn stamp() -> impl FnMut(u64) -> (String, String) {
        |seq| (format!("e{seq}"), "2026-01-01T00:00:00.000Z".into())
    }

    fn ruled(limit: usize) -> Ruled {
        Ruled {
            log: MemoryLog::new("doc"),
            limit,
            bound: None,
            seen_before: Default::default(),
        }
    }

    fn create(seq: u64) -> Edit {
        edit(
            seq,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"list": []}}]),
        )
    }

    fn push(seq: u64, base: u64, text: &str) -> Edit {
        edit(
            seq,
            base,
            Operation::Update,
            json!([{"op": "add", "path": "/list/-", "value": text}]),
        )
    }

    #[test]
    fn an_edit_past_the_size_limit_is_refused_too_large_and_the_ones_before_it_stay() {
        let view = ruled(40);
        let edits = [
            create(1),
            push(2, 0, "0123456789"),
            push(3, 0, &"x".repeat(40)),
        ];
        let out = super::super::order_submit(&view, "a", &edits, true, &mut stamp());
        assert_eq!(out.events.len(), 2, "{:?}", out.rejection);
        let rejection = out.rejection.expect("the third edit is refused");
        assert_eq!(
            (rejection.client_seq, rejection.code),
            (3, ErrorCode::TooLarge)
        );
        assert_eq!(out.document, Some(json!({"list": ["0123456789"]})));
        let bound = out.weight_bound.expect("a bound after the ordered edits");
        let exact = diff::weight(out.document.as_ref().unwrap(), usize::MAX);
        assert!(
            bound >= exact,
            "the bound {bound} is below the weight {exact}"
        );
    }

    #[test]
    fn the_bound_is_an_upper_bound_and_removals_are_found_by_measuring() {
        // Fill near the limit, remove everything, then add again: the bound only grows, so the
        // add must measure the document (which is small again) and be admitted.
        let mut view = ruled(60);
        let mut out = super::super::order_submit(
            &view,
            "a",
            &[create(1), push(2, 0, &"y".repeat(40))],
            true,
            &mut stamp(),
        );
        assert_eq!(out.rejection, None);
        view.bound = out.weight_bound;
        replay(&mut view.log, &out);
        let clear = edit(
            3,
            2,
            Operation::Update,
            json!([{"op": "remove", "path": "/list/0"}]),
        );
        out = super::super::order_submit(&view, "a", &[clear], true, &mut stamp());
        assert_eq!(out.rejection, None);
        view.bound = out.weight_bound;
        replay(&mut view.log, &out);
        out = super::super::order_submit(
            &view,
            "a",
            &[push(4, 3, &"z".repeat(40))],
            true,
            &mut stamp(),
        );
        assert_eq!(out.rejection, None, "the list was emptied: room again");
    }

    #[test]
    fn a_check_sees_before_and_after_and_its_refusal_changes_nothing() {
        let view = ruled(1 << 20);
        let set = edit(
            2,
            0,
            Operation::Update,
            json!([{"op": "add", "path": "/forbidden", "value": true}]),
        );
        let out = super::super::order_submit(&view, "a", &[create(1), set], true, &mut stamp());
        assert_eq!(out.events.len(), 1);
        let rejection = out.rejection.unwrap();
        assert_eq!(
            (rejection.client_seq, rejection.code),
            (2, ErrorCode::InvalidDocument)
        );
        assert_eq!(out.document, Some(json!({"list": []})));
        assert_eq!(
            *view.seen_before.borrow(),
            vec![None, Some(json!({"list": []}))],
            "the create saw no document before it; the update saw the created one"
        );
    }

    fn replay(log: &mut MemoryLog, out: &super::super::SubmitOutcome) {
        log.append(&out.events, out.document.clone());
    }
}
