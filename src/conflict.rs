//! Rebasing pending local edits over remote events.
//!
//! PLACEHOLDER: filled in by the conflict-resolution work.

/// What wins when a local edit and a remote event set the same path.
#[derive(Clone, Default)]
pub enum ConflictPolicy {
    /// The remote (earlier ordered) change stands.
    #[default]
    ServerWins,
}

/// Rebases pending edits over remote changes.
#[derive(Clone, Default)]
pub struct ConflictResolver {
    /// The policy for true conflicts.
    pub policy: ConflictPolicy,
}
