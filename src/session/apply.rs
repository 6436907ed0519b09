//! Applying the server's log: events and snapshots to the confirmed document, the pending
//! edits rebased over them, and what the app sees recomputed.

use std::collections::VecDeque;

use serde_json::Value;

use super::{Phase, SessionEvent, SyncSession};
use crate::conflict::{self, ShapedOp};
use crate::protocol::{ErrorCode, Event, Snapshot};
use crate::queue::PendingEdit;
use crate::state::{StateError, StateManager};

impl SyncSession {
    pub(super) fn receive_events(&mut self, now: u64, events: Vec<Event>) {
        let mut gap = false;
        for event in events {
            // The usual case (the next event, nothing waiting): applied as it is, without
            // passing through what `receive` returns.
            if self.state.is_next(&event) {
                self.apply_ready(now, event);
                continue;
            }
            match self.state.receive(event) {
                Ok(received) => {
                    gap |= received.gap;
                    for ready in received.ready {
                        if !self.apply_ready(now, ready) {
                            break;
                        }
                    }
                }
                Err(err) => {
                    gap |= matches!(err, StateError::BufferFull(_));
                    self.emit(SessionEvent::Error {
                        code: None,
                        message: err.to_string(),
                    });
                }
            }
        }
        if gap && self.phase == Phase::Online && self.sync_sent_at.is_none() {
            self.request_sync(now, Some(self.state.applied_seq()));
        }
        self.settle_inflight(now);
    }

    /// [`SyncSession::apply_event`], reporting an error (and holding further fetches back for a
    /// while: the same event would fail again). False when it did not apply.
    fn apply_ready(&mut self, now: u64, event: Event) -> bool {
        let Err(err) = self.apply_event(event) else {
            return true;
        };
        self.emit(SessionEvent::Error {
            code: None,
            message: format!("{err}; retrying in {} ms", self.config.request_timeout_ms),
        });
        self.stalled_until = now + self.config.request_timeout_ms;
        false
    }

    /// Applies the next event of the log; on error nothing changes.
    pub(super) fn apply_event(&mut self, event: Event) -> Result<(), StateError> {
        let own = event.client_id == self.config.client_id && event.client_seq.is_some();
        let rebase = !own && !self.pending.is_empty() && self.restarting_from.is_none();
        // With undo steps but nothing pending, the change is the event's own patch, shaped
        // against the document before it (cheap for the usual one-op patch): no copy of the
        // document per event.
        let tracked = (!own && !rebase && !self.undo.is_empty() && self.restarting_from.is_none())
            .then(|| self.remote_change(&event))
            .flatten();
        if let Some(change) = tracked {
            self.state.apply(&event)?;
            self.carry_undo(&change);
        } else if rebase || (!own && !self.undo.is_empty() && self.restarting_from.is_none()) {
            // Rebasing needs the document before the event next to the one after it.
            let change = self.state.prepare(&event)?;
            let null = Value::Null;
            let before = self.state.document().unwrap_or(&null);
            let remote = conflict::shape_valid(before, &change.ops).unwrap_or_default();
            self.state.commit(&event, change);
            let change = self.rebase_pending(&remote);
            self.carry_undo(&change);
        } else {
            // Otherwise in place: the cost of the event, not of the document.
            self.state.apply(&event)?;
        }
        if own {
            let client_seq = event.client_seq.unwrap_or_default();
            let mut taken_as_sent = true;
            // Edits before it that never made it to the log never will (the server refuses
            // clientSeqs at or below its highest); the protocol does not allow this, so say so.
            while self
                .pending
                .front()
                .is_some_and(|p| p.client_seq < client_seq)
            {
                taken_as_sent = false;
                let lost = self.pending.pop_front().expect("checked");
                self.emit(SessionEvent::EditRejected {
                    client_seq: lost.client_seq,
                    code: ErrorCode::InvalidSequence,
                    message: "a later edit was ordered first; this one can no longer be".into(),
                });
            }
            match self.pending.front() {
                Some(edit) if edit.client_seq == client_seq => {
                    taken_as_sent &= logged_as_sent(&event, edit);
                    self.pending.pop_front();
                }
                _ => taken_as_sent = false,
            }
            // Confirmed plus the rest of the queue is what the app already sees when the log
            // took the edit as it was sent: replaying the whole queue per acknowledged edit
            // made flushing a long queue quadratic.
            if !(taken_as_sent && self.overlay.is_some() && !self.pending.is_empty()) {
                self.recompute_visible();
            }
        } else if !rebase && self.pending.is_empty() {
            self.overlay = None;
        }
        // The confirmed document is a cache of the server's log: it need not be saved at once.
        self.dirty = true;
        self.emit(SessionEvent::Applied {
            event: std::sync::Arc::new(event),
            own,
        });
        Ok(())
    }

    pub(super) fn install_snapshot(&mut self, now: u64, snapshot: Snapshot) {
        match self.state.install_snapshot(snapshot) {
            Ok(Some(before)) => {
                if self.restarting_from.is_none() {
                    self.rebase_over_jump(before);
                }
                self.dirty = true;
            }
            Ok(None) => {}
            Err(err) => self.emit(SessionEvent::Error {
                code: None,
                message: err.to_string(),
            }),
        }
        self.settle_inflight(now);
    }

    /// Rebases the pending edits over a remote change; returns the change as the app sees it
    /// (continued over the pending edits).
    pub(super) fn rebase_pending(&mut self, remote: &[ShapedOp]) -> Vec<ShapedOp> {
        let edits: Vec<Vec<ShapedOp>> = self.pending.iter().map(|p| p.ops.clone()).collect();
        let rebased = self.resolver.rebase(&edits, remote);
        for (index, conflict) in rebased.conflicts {
            let client_seq = self.pending[index].client_seq;
            self.emit(SessionEvent::Conflict {
                client_seq,
                conflict: Box::new(conflict),
            });
        }
        for (pending, ops) in self.pending.iter_mut().zip(rebased.edits) {
            pending.ops = ops;
        }
        let mut invalidated: Vec<u64> = rebased
            .invalidated
            .iter()
            .map(|index| self.pending[*index].client_seq)
            .collect();
        crate::vec_map::sort_small(&mut invalidated, |a, b| a < b);
        for client_seq in invalidated {
            self.drop_pending(
                client_seq,
                ErrorCode::Conflict,
                "a test in the edit no longer holds after a remote change".into(),
            );
        }
        self.recompute_visible();
        rebased.remote
    }

    /// Drops one pending edit for good and reports it. The later pending edits were made on top
    /// of it, so they are rebased over its undoing (an edit that built on it may go too).
    pub(super) fn drop_pending(&mut self, client_seq: u64, code: ErrorCode, message: String) {
        let Some(index) = self.pending.iter().position(|p| p.client_seq == client_seq) else {
            return;
        };
        let mut before = self.state.document().cloned();
        for pending in self.pending.range(..index) {
            let _ = apply_pending(&mut before, pending);
        }
        let mut after = before.clone();
        let applied = apply_pending(&mut after, &self.pending[index]);
        self.pending.remove(index);
        if applied.is_ok() && index < self.pending.len() {
            let after = after.unwrap_or(Value::Null);
            let undo = json_patch::diff(&after, before.as_ref().unwrap_or(&Value::Null)).0;
            let undo = conflict::shape(&after, &undo).unwrap_or_default();
            let later: Vec<Vec<ShapedOp>> =
                self.pending.range(index..).map(|p| p.ops.clone()).collect();
            let rebased = self.resolver.rebase(&later, &undo);
            for (pending, ops) in self.pending.range_mut(index..).zip(rebased.edits) {
                pending.ops = ops;
            }
        }
        self.persist = true;
        self.emit(SessionEvent::EditRejected {
            client_seq,
            code,
            message,
        });
    }

    /// visible = confirmed + pending; pending edits that no longer apply are dropped and reported.
    pub(super) fn recompute_visible(&mut self) {
        if self.restarting_from.is_some() {
            // Pending edits are relative to the document before the restart: wait for the jump.
            return;
        }
        if self.pending.is_empty() {
            self.overlay = None;
            return;
        }
        let mut doc = self.state.document().cloned();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for pending in std::mem::take(&mut self.pending) {
            match apply_pending(&mut doc, &pending) {
                Ok(()) => kept.push_back(pending),
                Err((code, message)) => self.emit(SessionEvent::EditRejected {
                    client_seq: pending.client_seq,
                    code,
                    message,
                }),
            }
        }
        self.pending = kept;
        self.overlay = (!self.pending.is_empty()).then_some(doc);
    }

    /// The confirmed document jumped (a snapshot, or a restart from scratch) from `before`:
    /// rebase pending edits over the difference in one step.
    pub(super) fn rebase_over_jump(&mut self, before: Option<Value>) {
        if self.pending.is_empty() && self.undo.is_empty() {
            self.overlay = None;
            return;
        }
        let before = before.unwrap_or(Value::Null);
        let after = self.state.document().cloned().unwrap_or(Value::Null);
        let ops = json_patch::diff(&before, &after).0;
        let remote = conflict::shape(&before, &ops).unwrap_or_default();
        let change = self.rebase_pending(&remote);
        self.carry_undo(&change);
    }

    /// The server's log is behind this replica (it lost history): fetch everything again and
    /// rebase pending edits over the difference once caught up. Nothing pending is dropped here.
    pub(super) fn restart_from_scratch(&mut self, now: u64, head_seq: u64) {
        self.emit(SessionEvent::Error {
            code: Some(ErrorCode::InvalidSequence),
            message: format!(
                "the server's log (head {head_seq}) is behind this replica (at {}): starting over from the server's state",
                self.state.applied_seq()
            ),
        });
        let fresh = StateManager::new(self.config.document_id.clone());
        let before = std::mem::replace(&mut self.state, fresh);
        self.restarting_from.get_or_insert(before);
        self.inflight = None;
        self.hold_until_seq = 0;
        self.request_sync(now, Some(0));
    }
}

/// Applies one pending edit to a document, in place (this runs for every pending edit on every
/// remote event); on error the document is unchanged and the error says why it no longer applies.
/// Whether the log holds `edit` unchanged (not transformed or rebased by the server).
pub(super) fn logged_as_sent(event: &Event, edit: &PendingEdit) -> bool {
    event.operation == edit.operation
        && event.diff.as_ref().and_then(|diff| diff.patch.as_ref())
            == Some(&conflict::to_patch(&edit.ops))
}

pub(super) fn apply_pending(
    document: &mut Option<Value>,
    pending: &PendingEdit,
) -> Result<(), (ErrorCode, String)> {
    let patch = conflict::to_patch(&pending.ops);
    crate::sequencer::apply_edit(document, pending.operation, &patch)
}
