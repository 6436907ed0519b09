//! Undo and redo on the session: the steps live in [`crate::undo::UndoHistory`]; here they
//! become edits, and remote changes are carried into them.

use serde_json::Value;

use super::{Output, SessionError, SessionEvent, SyncSession};
use crate::conflict::{self, ConflictPolicy, ConflictResolver, OpKind, ShapedOp};
use crate::diff;
use crate::protocol::{Event, Operation};
use crate::undo::{self, UndoConfig, UndoStep};

impl SyncSession {
    /// Whether [`SyncSession::undo`] would change something now.
    pub fn can_undo(&self) -> bool {
        self.undo.can_undo()
    }

    /// Whether [`SyncSession::redo`] would change something now.
    pub fn can_redo(&self) -> bool {
        self.undo.can_redo()
    }

    /// Undoes this client's latest step of edits (edits made within
    /// [`UndoConfig::capture_ms`] of each other, or in one group, form a step) with a new edit:
    /// the step's inverse, carried over every change applied since. Others' changes are not
    /// reverted, except where they conflict with the step at the same place, which the
    /// conflict policy decides (server wins or client wins; with a resolver function, which
    /// decides pending edits, the remote change stays) and [`SessionEvent::UndoConflict`]
    /// reports. Returns the new edit's `clientSeq`, or `None` when there is nothing to undo.
    pub fn undo(&mut self, now: u64) -> Result<Option<u64>, SessionError> {
        self.step(now, false)
    }

    /// Redoes the latest undone step (until a new edit clears what can be redone).
    pub fn redo(&mut self, now: u64) -> Result<Option<u64>, SessionError> {
        self.step(now, true)
    }

    /// The next edit starts a new undo step, however soon it comes.
    pub fn stop_capturing(&mut self) {
        self.undo.stop_capturing();
    }

    /// Edits until the matching [`SyncSession::end_group`] are undone as one step (groups
    /// nest; the outermost one counts).
    pub fn begin_group(&mut self) {
        self.undo.begin_group();
    }

    /// Ends a group begun with [`SyncSession::begin_group`].
    pub fn end_group(&mut self) {
        self.undo.end_group();
    }

    fn step(&mut self, now: u64, redo: bool) -> Result<Option<u64>, SessionError> {
        if self.document().is_none() {
            return Err(SessionError::NoDocument);
        }
        let flags = self.undo_flags();
        let mut done = None;
        loop {
            let step = if redo {
                self.undo.take_redo()
            } else {
                self.undo.take_undo()
            };
            let Some(step) = step else { break };
            // A step that no longer changes anything is skipped: undo changes something while it can.
            if let Some((client_seq, inverse)) = self.apply_step(now, step)? {
                if redo {
                    self.undo.redone(inverse, &self.config.undo);
                } else {
                    self.undo.undone(inverse, &self.config.undo);
                }
                done = Some(client_seq);
                break;
            }
        }
        self.undo_changed(flags);
        Ok(done)
    }

    /// Applies a step as a new edit; its ops that no longer apply are left out. Returns the
    /// edit's `clientSeq` and its inverse, or `None` when nothing of it applies.
    fn apply_step(
        &mut self,
        now: u64,
        step: UndoStep,
    ) -> Result<Option<(u64, Vec<ShapedOp>)>, SessionError> {
        let before = self.document().ok_or(SessionError::NoDocument)?;
        let mut after = before.clone();
        let mut kept = Vec::with_capacity(step.ops.len());
        for op in step.ops {
            let patch = [op.to_operation()];
            if let Ok(shaped) = conflict::shape_valid(&after, &patch) {
                if diff::apply_patch(&mut after, &patch).is_ok() {
                    kept.extend(shaped);
                }
            }
        }
        if kept.is_empty() || after == *before {
            return Ok(None);
        }
        diff::check_depth(&after, diff::MAX_DOCUMENT_DEPTH)?;
        let inverse = undo::invert(before, &kept)?;
        let client_seq = self.queue(now, Operation::Update, kept, Some(after));
        Ok(Some((client_seq, inverse)))
    }

    /// Records a new edit of the app, given its inverse (see [`inverse_of`]).
    pub(super) fn record_undo(&mut self, now: u64, inverse: Option<Vec<ShapedOp>>) {
        if let Some(inverse) = inverse {
            let flags = self.undo_flags();
            self.undo.record(now, inverse, &self.config.undo);
            self.undo_changed(flags);
        }
    }

    /// Carries the undo and redo steps over a change others made to the document the app sees.
    pub(super) fn carry_undo(&mut self, change: &[ShapedOp]) {
        if self.undo.is_empty() {
            return;
        }
        let flags = self.undo_flags();
        // `test` ops change nothing.
        let change: Vec<ShapedOp> = change
            .iter()
            .filter(|op| op.kind != OpKind::Test)
            .cloned()
            .collect();
        // A resolver function decides pending edits; for steps the remote change stays.
        let server_wins = ConflictResolver::default();
        let resolver = match self.resolver.policy {
            ConflictPolicy::Custom(_) => &server_wins,
            _ => &self.resolver,
        };
        for (redo, conflict) in self.undo.carry_over(resolver, &change) {
            self.outputs
                .push_back(Output::Event(SessionEvent::UndoConflict {
                    redo,
                    conflict: Box::new(conflict),
                }));
        }
        self.undo_changed(flags);
    }

    /// What a remote update event changes, shaped against the document before it, when the
    /// event carries an RFC 6902 patch (`None` otherwise: the caller computes it the long way).
    pub(super) fn remote_change(&self, event: &Event) -> Option<Vec<ShapedOp>> {
        if event.operation != Operation::Update {
            return None;
        }
        let patch = event.diff.as_ref()?.patch.as_ref()?;
        conflict::shape_valid(self.state.document()?, patch).ok()
    }

    /// Forgets every step: the document changed in a way they cannot follow (a dropped edit,
    /// a create or delete).
    pub(super) fn forget_undo(&mut self) {
        if self.undo.is_empty() {
            return;
        }
        let flags = self.undo_flags();
        self.undo.clear();
        self.dirty = true;
        self.undo_changed(flags);
    }

    fn undo_flags(&self) -> (bool, bool) {
        (self.undo.can_undo(), self.undo.can_redo())
    }

    fn undo_changed(&mut self, before: (bool, bool)) {
        let now = self.undo_flags();
        if now != before {
            self.outputs
                .push_back(Output::Event(SessionEvent::UndoStack {
                    can_undo: now.0,
                    can_redo: now.1,
                }));
        }
    }
}

impl SyncSession {
    /// Writes `old` (a past state of the document; `None`: it did not exist) back as one new
    /// edit: the difference from the document the app sees now, or a create or delete when
    /// the document's existence differs. Returns the edit's `clientSeq`, or `None` when the
    /// document already is `old`.
    pub fn restore_version(
        &mut self,
        now: u64,
        old: Option<Value>,
    ) -> Result<Option<u64>, SessionError> {
        match (self.document(), old) {
            (Some(current), Some(old)) => {
                let difference = json_patch::diff(current, &old).0;
                if difference.is_empty() {
                    return Ok(None);
                }
                self.edit(now, difference).map(Some)
            }
            (Some(_), None) => self.delete(now).map(Some),
            (None, Some(old)) => self.create(now, old).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// The inverse of an edit of the app (shaped against `before`), when undo is on.
pub(super) fn inverse_of(
    config: &UndoConfig,
    before: &Value,
    ops: &[ShapedOp],
) -> Result<Option<Vec<ShapedOp>>, SessionError> {
    if config.limit == 0 {
        return Ok(None);
    }
    Ok(Some(undo::invert(before, ops)?))
}
