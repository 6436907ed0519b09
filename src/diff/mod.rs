//! Diff formats an event may carry, and their atomic application.
//!
//! PLACEHOLDER: filled in by the diff-formats work.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The change an event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// Canonical: RFC 6902 operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Vec<json_patch::PatchOperation>>,
    /// Any other member, kept so that unknown formats are reported rather than ignored.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Why a diff could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// An RFC 6902 operation failed.
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
}
