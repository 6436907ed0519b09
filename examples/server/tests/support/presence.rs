//! Waiting on a document's presence (`docs/PROTOCOL.md` 18.7), for the presence tests.

use std::time::Duration;

use eventsync::protocol::PresencePeer;
use eventsync::SyncClient;
use serde_json::Value;

/// Waits up to `wait` until `handle.others()` satisfies `wanted`; fails with `what` and the
/// others seen last.
pub async fn until_others(
    handle: &SyncClient,
    wait: Duration,
    what: &str,
    wanted: impl Fn(&[PresencePeer]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let others = handle.others();
        if wanted(&others) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: others are {others:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The state `client` shows among `others`, if any.
pub fn state_of(others: &[PresencePeer], client: &str) -> Option<Value> {
    others
        .iter()
        .find(|p| p.client_id == client)
        .map(|p| p.state.clone())
}
