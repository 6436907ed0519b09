//! Long logs without thousands of round trips: events ordered by the core's sequencer and
//! stored in one transaction, straight into the server's store.

use eventsync::protocol::Operation;
use eventsync::sequencer::{order_change, LogView};
use eventsync::server::MemoryLog;
use serde_json::json;

use super::TestServer;

/// Stores `count` events of the `server` origin for a document that was never written: #1
/// creates `{"n": 0}`, each later event sets `n` to its `sequenceNum` − 1. Must run before the
/// server first touches the document (it caches a document's head on first use).
pub async fn seed_log(server: &TestServer, document: &str, count: u64) {
    let mut log = MemoryLog::new(document);
    let mut stamp = |seq: u64| (format!("seed-{seq}"), "2026-01-01T00:00:00Z".to_owned());
    for seq in 1..=count {
        let (operation, patch) = if seq == 1 {
            (
                Operation::Create,
                json!([{"op": "add", "path": "", "value": {"n": 0}}]),
            )
        } else {
            (
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": seq - 1}]),
            )
        };
        let patch = serde_json::from_value(patch).expect("a patch");
        let change = order_change(&log, "server", operation, patch, &mut stamp).expect("orders");
        log.append_shaped(&[change.event], &[change.shape], change.document);
    }
    let store = server
        .server
        .as_ref()
        .expect("server running")
        .state
        .service
        .store()
        .clone();
    store
        .append(document, 0, log.events(), log.document())
        .await
        .expect("bulk append");
}
