//! What several integration tests of the core share.

/// The seeds a seeded property test runs: just `{PREFIX}_SEED` when it is set (to reproduce a
/// failure), else `0..{PREFIX}_SEEDS` (default `default_count`).
pub fn seeds(prefix: &str, default_count: u64) -> Vec<u64> {
    let var = |name: &str| {
        std::env::var(format!("{prefix}_{name}"))
            .ok()
            .and_then(|s| s.parse().ok())
    };
    if let Some(seed) = var("SEED") {
        return vec![seed];
    }
    (0..var("SEEDS").unwrap_or(default_count)).collect()
}
