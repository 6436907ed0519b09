//! State vectors: origin `clientId` -> highest `sequenceNum` of that origin applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A map from origin `clientId` to the highest `sequenceNum` of that origin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(pub BTreeMap<String, u64>);

impl FromIterator<(String, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(iter: I) -> Self {
        VectorClock(iter.into_iter().collect())
    }
}
