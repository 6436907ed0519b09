//! Rebasing pending local edits over remote events: operational transformation of RFC 6902
//! JSON Patch edits.
//!
//! The server's log is the single total order. A client keeps a *confirmed* document plus
//! *pending* local edits; when a remote event arrives it is applied to the confirmed document
//! and the pending edits are rebased over it with [`ConflictResolver::rebase`]. Convergence is
//! guaranteed by the log; the transform is about intent preservation, determinism (every
//! function here is a pure function of its inputs) and never producing operations that do not
//! apply.
//!
//! # Pipeline
//! 1. [`shape`] each edit against the document it was made on: JSON Pointer tokens become
//!    known array indices or object keys, `move`/`copy` are decomposed, `-` becomes an index.
//! 2. [`ConflictResolver::transform`] one edit `a` over a concurrent edit `b` that was ordered
//!    first, or [`ConflictResolver::rebase`] a list of pending edits over a remote change.
//! 3. [`to_patch`] turns the result back into RFC 6902.
//!
//! # Rules (`a` local, `b` remote, both made against the same state)
//! - `b` inserts at array index `Q/i`: every `a` path through `Q` with index `j >= i` gets
//!   `j + 1`, `a`'s own insertion at `Q/i` included: at an equal index `b`'s element comes
//!   first and both survive.
//! - `b` removes array element `Q/i`: `a` paths through `Q` with `j > i` get `j - 1`; an `a`
//!   insertion at `Q/i` stays; `a` removing the same element vanishes; `a` replacing it is a
//!   [`ConflictKind::SamePath`] conflict; `a` strictly under it is dropped
//!   ([`ConflictKind::ParentRemoved`]).
//! - `b` sets a location (object add/replace, array replace, root): `a` at the same location
//!   is [`ConflictKind::SamePath`], `a` under it is dropped ([`ConflictKind::ParentReplaced`]).
//! - `b` removes an object member: `a` removing it too vanishes, `a` setting it is
//!   [`ConflictKind::SamePath`], `a` under it is dropped ([`ConflictKind::ParentRemoved`]).
//! - `a` sets or removes a strict ancestor of anything `b` changes (for an insertion: the
//!   array itself or above) is [`ConflictKind::AncestorOverwrite`]. The root is an ancestor of
//!   everything.
//! - A `test` in `a` is invalidated ([`ConflictKind::TestInvalidated`]) when `b` changes the
//!   tested location, something under it or an ancestor of it; an insertion or removal of a
//!   *sibling* array element only shifts the tested index.
//!
//! [`ConflictKind::SamePath`] and [`ConflictKind::AncestorOverwrite`] are resolved by the
//! [`ConflictPolicy`]; the other kinds are never resolvable: always dropped and reported.
//!
//! Across pending edits: when an edit that set a location to an object or array lost to a
//! remote change that set it to a value of the same kind (two clients creating a document at
//! once), the edits after it meet only the differences between the two values
//! ([`ConflictResolver::rebase`]).

mod shape;
mod transform;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

pub use shape::{from_patch, shape, shape_valid, to_patch, OpKind, ShapeError, ShapedOp};

/// What wins when a local edit and a remote event conflict ([`ConflictKind::SamePath`] or
/// [`ConflictKind::AncestorOverwrite`]).
#[derive(Clone, Default)]
pub enum ConflictPolicy {
    /// The remote (earlier ordered) change stands; the local conflicting op is dropped.
    #[default]
    ServerWins,
    /// Last writer wins: the local op is kept. A local remove of a remotely set member stays a
    /// remove; a local replace of a remotely removed member or element becomes an add (an
    /// insert at the same index in an array) of the local value.
    ClientWins,
    /// Asks the closure. It is called for [`ConflictKind::SamePath`] and
    /// [`ConflictKind::AncestorOverwrite`] only, and must be deterministic for the rebase to be.
    Custom(Arc<CustomResolve>),
}

/// The closure of [`ConflictPolicy::Custom`]: `Send + Sync` natively, where the client's session
/// moves between threads. In the browser everything runs on the page's one thread, so any
/// closure does, a JavaScript function among them.
#[cfg(not(target_arch = "wasm32"))]
pub type CustomResolve = dyn Fn(&Conflict) -> Resolution + Send + Sync;
/// The closure of [`ConflictPolicy::Custom`]: `Send + Sync` natively, where the client's session
/// moves between threads. In the browser everything runs on the page's one thread, so any
/// closure does, a JavaScript function among them.
#[cfg(target_arch = "wasm32")]
pub type CustomResolve = dyn Fn(&Conflict) -> Resolution;

impl fmt::Debug for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConflictPolicy::ServerWins => f.write_str("ServerWins"),
            ConflictPolicy::ClientWins => f.write_str("ClientWins"),
            ConflictPolicy::Custom(_) => f.write_str("Custom(<closure>)"),
        }
    }
}

/// How one conflict is resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The remote change stands; the local op is dropped.
    KeepRemote,
    /// The local op is kept (and the remote change to that location is dropped from the
    /// remote continued over the local edit).
    KeepLocal,
    /// The local op's location is set to this value.
    Value(Value),
}

/// Why a local op could not simply be carried over a remote change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// Both set or remove the same location (resolvable).
    SamePath,
    /// The local op sets or removes an ancestor of what the remote changed (resolvable).
    AncestorOverwrite,
    /// The local op is under something the remote removed: dropped.
    ParentRemoved,
    /// The local op is under something the remote set: dropped.
    ParentReplaced,
    /// A local `test` op's location was changed by the remote: the edit is invalidated.
    TestInvalidated,
}

/// One conflict met while transforming a local op over a remote op.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// What kind of conflict.
    pub kind: ConflictKind,
    /// The local op's JSON Pointer.
    pub path: String,
    /// The local op, as made (against the state the remote op was also made against).
    pub local: ShapedOp,
    /// The remote op, against the same state as `local`.
    pub remote: ShapedOp,
}

/// The result of [`ConflictResolver::transform`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transformed {
    /// `a'`: the local edit, to apply after the remote change.
    pub local: Vec<ShapedOp>,
    /// `b'`: the remote change continued over the local edit (to apply after it), consistent
    /// with the resolutions taken; used to rebase later edits. Remote `test` ops are left out.
    pub remote: Vec<ShapedOp>,
    /// Conflicts met, in grid order.
    pub conflicts: Vec<Conflict>,
    /// Whether a `test` op of the local edit was invalidated (the caller should drop the
    /// edit); `local` then lacks the invalidated test ops.
    pub invalidated: bool,
}

/// The result of [`ConflictResolver::rebase`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rebased {
    /// The rebased edits, same length as the pending list; an edit may become empty.
    pub edits: Vec<Vec<ShapedOp>>,
    /// Conflicts met, with the index of the edit they were met in.
    pub conflicts: Vec<(usize, Conflict)>,
    /// Indexes of edits whose `test` ops were invalidated: the caller drops them whole. Their
    /// entry in `edits` still holds the rest of the edit, rebased (without the invalidated
    /// tests), because the edits after it were made on top of it and rebased accordingly.
    pub invalidated: Vec<usize>,
    /// The remote change continued over all the edits: what it changes in the document with
    /// the edits applied (shaped against that document).
    pub remote: Vec<ShapedOp>,
}

/// Rebases pending edits over remote changes.
#[derive(Clone, Default, Debug)]
pub struct ConflictResolver {
    /// The policy for [`ConflictKind::SamePath`] and [`ConflictKind::AncestorOverwrite`].
    pub policy: ConflictPolicy,
}

impl ConflictResolver {
    /// A resolver with this policy.
    pub fn new(policy: ConflictPolicy) -> Self {
        ConflictResolver { policy }
    }

    fn decide(&self, conflict: &Conflict) -> Resolution {
        match &self.policy {
            ConflictPolicy::ServerWins => Resolution::KeepRemote,
            ConflictPolicy::ClientWins => Resolution::KeepLocal,
            ConflictPolicy::Custom(f) => f(conflict),
        }
    }

    /// Transforms the local edit `local` over the concurrent remote change `remote`, which was
    /// ordered first; both are shaped against the same state `S`.
    ///
    /// `local'` applies to `S + remote`, `remote'` applies to `S + local`. Without conflicts,
    /// with [`ConflictPolicy::ClientWins`], and with [`Resolution::Value`] and
    /// [`Resolution::KeepLocal`] always, `S + remote + local' == S + local + remote'`; with
    /// [`Resolution::KeepRemote`] too, except on [`ConflictKind::AncestorOverwrite`]:
    ///
    /// There the local op that set or removed an ancestor `P` is dropped, so `remote'` has to
    /// restore `P` to its value after the remote change, which only the document holds. It
    /// sets `P` to a `null` placeholder instead, and leaves out the later remote ops under `P`
    /// (the placeholder stands for `P`'s final value; they could not apply to it). `remote'` is
    /// then still structurally right for rebasing later edits (their ops under `P` are
    /// dropped as [`ConflictKind::ParentReplaced`]) and always applies, but `S + local +
    /// remote'` has `null` at `P`. A [`Conflict::remote`] met later in the same rebase can
    /// carry that placeholder.
    pub fn transform(&self, local: &[ShapedOp], remote: &[ShapedOp]) -> Transformed {
        let out = transform::transform_seq(local, remote, &|c| self.decide(c));
        Transformed {
            local: out.local,
            remote: out.remote,
            conflicts: out.conflicts,
            invalidated: out.invalidated,
        }
    }

    /// Rebases pending edits over one remote change.
    ///
    /// Edit `k` was made against `remote`'s base state plus edits `0..k`; `remote` is shaped
    /// against that base state. Edit `k` is transformed over the remote continued over edits
    /// `0..k` (the `remote` output of the previous [`ConflictResolver::transform`]).
    ///
    /// One refinement for the later edits: when an edit that only set a location to an object
    /// or array (a create of the document, say) lost to a remote change that set the same
    /// location to a value of the same kind, the remote continued over it is what differs
    /// between the two values, not the whole value. The later edits were made inside the local
    /// value; what they change that the remote value also has is kept (two clients creating a
    /// document at once, the second then adding an item: the item is added to the first's
    /// document), and only what is under a difference meets it as a conflict.
    pub fn rebase(&self, pending: &[Vec<ShapedOp>], remote: &[ShapedOp]) -> Rebased {
        let mut current: Vec<ShapedOp> = remote.to_vec();
        let mut out = Rebased::default();
        for (k, edit) in pending.iter().enumerate() {
            let t = self.transform(edit, &current);
            let remote = transform::differences_instead(edit, &current, &t.local, t.remote);
            out.edits.push(t.local);
            out.conflicts
                .extend(t.conflicts.into_iter().map(|c| (k, c)));
            if t.invalidated {
                out.invalidated.push(k);
            }
            current = remote;
        }
        out.remote = current;
        out
    }
}
