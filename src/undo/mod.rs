//! Undo and redo of a client's own edits, as a pure state machine the session drives.
//!
//! # Model
//! Each step of the undo stack holds the *inverse* of one group of this client's edits (see
//! [`invert`]). The stacks are chains: the top step applies to the document the app sees now,
//! the step below it applies to the document after the top one, and so on, so undoing step after
//! step walks back through this client's edits.
//!
//! - A new edit pushes its inverse, or prepends it to the top step when it comes within the
//!   capture time of the previous one (or inside a group opened with [`UndoHistory::begin_group`]),
//!   and clears the redo stack.
//! - Undo pops the top step; the session applies it as a *new edit* and pushes that edit's
//!   inverse onto the redo stack. Redo does the same the other way round.
//! - A remote change (in the coordinates of the document the app sees) is carried into both
//!   chains with [`ConflictResolver::rebase`], exactly as pending edits are: a step's ops move
//!   with array insertions and removals made by others, vanish where others removed what they
//!   point into, and where a step sets the same place a remote change set the client's conflict
//!   policy decides (server wins: the remote value stays and the undo leaves it alone). The
//!   conflicts are returned, for the session to report at once.
//!
//! A step that becomes empty is dropped: undo always changes something while it can.

mod inverse;

use serde_json::Value;

use crate::conflict::{Conflict, ConflictResolver, ShapedOp};
use crate::protocol::members::{
    deserialize_from_json, serialize_to_json, FromJson, Members, Object, ToJson,
};

pub use inverse::invert;

/// How undo groups and keeps steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndoConfig {
    /// Edits this close (ms) to the previous one join its step (0: every edit is a step).
    pub capture_ms: u64,
    /// At most this many steps are kept on each stack (the oldest go first); 0 turns undo off.
    pub limit: usize,
}

impl Default for UndoConfig {
    /// 500 ms capture, 100 steps.
    fn default() -> Self {
        UndoConfig {
            capture_ms: 500,
            limit: 100,
        }
    }
}

/// One undoable (or redoable) step: the ops that revert a group of edits.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoStep {
    /// Shaped against the document this step applies to (see the module's model).
    pub ops: Vec<ShapedOp>,
}

/// The undo and redo stacks of one document. Persisted with the offline queue (the grouping
/// state is not: a restart ends the current group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UndoHistory {
    undo: Vec<UndoStep>,
    redo: Vec<UndoStep>,
    /// When the last edit was recorded; `None` after [`UndoHistory::stop_capturing`].
    last_at: Option<u64>,
    /// Open groups ([`UndoHistory::begin_group`]) and whether the outermost one has a step yet.
    groups: u32,
    group_started: bool,
}

impl FromJson for UndoStep {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "an undo step")?;
        Ok(UndoStep {
            ops: m.required("ops")?,
        })
    }
}

impl FromJson for UndoHistory {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "an undo history")?;
        Ok(UndoHistory {
            undo: m.or_default("undo")?,
            redo: m.or_default("redo")?,
            ..UndoHistory::default()
        })
    }
}

impl ToJson for UndoStep {
    fn to_json(&self) -> Value {
        Object::new().with("ops", &self.ops).done()
    }
}

/// The two stacks, each left out when empty (the grouping state is not saved).
impl ToJson for UndoHistory {
    fn to_json(&self) -> Value {
        let mut object = Object::new();
        if !self.undo.is_empty() {
            object = object.with("undo", &self.undo);
        }
        if !self.redo.is_empty() {
            object = object.with("redo", &self.redo);
        }
        object.done()
    }
}

deserialize_from_json!(UndoStep, UndoHistory);
serialize_to_json!(UndoStep, UndoHistory);

impl UndoHistory {
    /// True when there is nothing to undo or redo (it need not be saved).
    pub fn is_empty(&self) -> bool {
        self.undo.is_empty() && self.redo.is_empty()
    }

    /// Whether [`UndoHistory::take_undo`] has a step.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether [`UndoHistory::take_redo`] has a step.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Records a new edit of the app (its inverse, shaped against the document after it).
    /// Clears the redo stack.
    pub fn record(&mut self, now: u64, inverse: Vec<ShapedOp>, config: &UndoConfig) {
        if config.limit == 0 {
            return;
        }
        self.redo.clear();
        let join = if self.groups > 0 {
            std::mem::replace(&mut self.group_started, true)
        } else {
            self.last_at
                .is_some_and(|last| now.saturating_sub(last) < config.capture_ms)
        };
        self.last_at = Some(now);
        if inverse.is_empty() {
            return;
        }
        match self.undo.last_mut() {
            Some(top) if join => {
                // The newer edit is undone first.
                let older = std::mem::replace(&mut top.ops, inverse);
                top.ops.extend(older);
            }
            _ => push(&mut self.undo, inverse, config),
        }
    }

    /// The next edit starts a new step, however soon it comes.
    pub fn stop_capturing(&mut self) {
        self.last_at = None;
    }

    /// Edits until the matching [`UndoHistory::end_group`] form one step (groups nest; the
    /// outermost counts).
    pub fn begin_group(&mut self) {
        if self.groups == 0 {
            self.group_started = false;
        }
        self.groups += 1;
    }

    /// Closes a group; the next edit after the outermost one starts a new step.
    pub fn end_group(&mut self) {
        self.groups = self.groups.saturating_sub(1);
        if self.groups == 0 {
            self.last_at = None;
        }
    }

    /// The step to undo now, if any.
    pub fn take_undo(&mut self) -> Option<UndoStep> {
        self.last_at = None;
        self.undo.pop()
    }

    /// The step to redo now, if any.
    pub fn take_redo(&mut self) -> Option<UndoStep> {
        self.last_at = None;
        self.redo.pop()
    }

    /// An undo was applied: its inverse (shaped against the document after it) is redoable.
    pub fn undone(&mut self, inverse: Vec<ShapedOp>, config: &UndoConfig) {
        if !inverse.is_empty() {
            push(&mut self.redo, inverse, config);
        }
    }

    /// A redo was applied: its inverse is undoable again (the redo stack stays).
    pub fn redone(&mut self, inverse: Vec<ShapedOp>, config: &UndoConfig) {
        if !inverse.is_empty() {
            push(&mut self.undo, inverse, config);
        }
    }

    /// Carries both stacks over a change that others made to the document the app sees
    /// (`change` is shaped against it). Returns the conflicts met, each with whether it was
    /// met on the redo stack.
    pub fn carry_over(
        &mut self,
        resolver: &ConflictResolver,
        change: &[ShapedOp],
    ) -> Vec<(bool, Conflict)> {
        let mut conflicts = Vec::new();
        if !change.is_empty() {
            conflicts.extend(carry(&mut self.undo, resolver, change).map(|c| (false, c)));
            conflicts.extend(carry(&mut self.redo, resolver, change).map(|c| (true, c)));
        }
        conflicts
    }

    /// Forgets both stacks (the document changed in a way the steps cannot follow).
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
        self.last_at = None;
    }
}

fn push(stack: &mut Vec<UndoStep>, ops: Vec<ShapedOp>, config: &UndoConfig) {
    stack.push(UndoStep { ops });
    if stack.len() > config.limit {
        let excess = stack.len() - config.limit;
        stack.drain(..excess);
    }
}

/// Rebases a chain (top first) over `change`, as pending edits are rebased; returns the
/// conflicts met.
fn carry(
    stack: &mut Vec<UndoStep>,
    resolver: &ConflictResolver,
    change: &[ShapedOp],
) -> impl Iterator<Item = Conflict> {
    let mut conflicts = Vec::new();
    if !stack.is_empty() {
        let chain: Vec<Vec<ShapedOp>> = stack.iter().rev().map(|s| s.ops.clone()).collect();
        let rebased = resolver.rebase(&chain, change);
        conflicts = rebased.conflicts.into_iter().map(|(_, c)| c).collect();
        for (step, ops) in stack.iter_mut().rev().zip(rebased.edits) {
            step.ops = ops;
        }
        stack.retain(|step| !step.ops.is_empty());
    }
    conflicts.into_iter()
}

#[cfg(test)]
mod tests;

/// The undo methods of both drivers' `SyncClient` (native and browser), written once: each
/// driver's document handle has the same `with_session` and `read`.
macro_rules! client_undo_api {
    () => {
        /// Undoes this client's latest step of edits with a new edit (see
        /// [`crate::session::SyncSession::undo`]): others' changes since stay, except where
        /// they conflict with the step at the same place, which the conflict policy decides.
        /// Returns the new edit's `clientSeq`, or `None` when there is nothing to undo.
        pub fn undo(&self) -> Result<Option<u64>, ClientError> {
            Ok(self.doc.with_session(|s, now| s.undo(now))??)
        }

        /// Redoes the latest undone step. Returns the new edit's `clientSeq`, or `None` when
        /// there is nothing to redo (a new edit clears what can be redone).
        pub fn redo(&self) -> Result<Option<u64>, ClientError> {
            Ok(self.doc.with_session(|s, now| s.redo(now))??)
        }

        /// Whether [`SyncClient::undo`] would change something now.
        pub fn can_undo(&self) -> bool {
            self.doc.read(crate::session::SyncSession::can_undo)
        }

        /// Whether [`SyncClient::redo`] would change something now.
        pub fn can_redo(&self) -> bool {
            self.doc.read(crate::session::SyncSession::can_redo)
        }

        /// The next edit starts a new undo step, however soon after the last one it comes
        /// (edits within the capture time, 500 ms by default, are otherwise one step).
        pub fn stop_capturing(&self) -> Result<(), ClientError> {
            self.doc.with_session(|s, _| s.stop_capturing())
        }

        /// Runs `f`; the edits it makes are undone as one step (calls nest).
        pub fn transact<T>(&self, f: impl FnOnce() -> T) -> Result<T, ClientError> {
            /// Ends the group however `f` returns.
            struct Group<'a>(&'a SyncClient);
            impl Drop for Group<'_> {
                fn drop(&mut self) {
                    let _ = self.0.doc.with_session(|s, _| s.end_group());
                }
            }
            self.doc.with_session(|s, _| s.begin_group())?;
            let _group = Group(self);
            Ok(f())
        }
    };
}
pub(crate) use client_undo_api;
