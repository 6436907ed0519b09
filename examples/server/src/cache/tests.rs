//! A document's cache remembers each client's highest `clientSeq`; these tests show that a
//! remembered value gone stale (another server process appended meanwhile) never lets a resend
//! be ordered twice.

use std::sync::Arc;

use eventsync::protocol::{Edit, Operation};
use eventsync::server::Submitted;
use serde_json::json;

use crate::broker::EventBroker;
use crate::hooks::Rules;
use crate::service::{History, SyncService};
use crate::store::{self, EventStore};

/// Two services (two server processes) on one SQLite file.
async fn two_services(
    name: &str,
) -> (
    SyncService,
    SyncService,
    Arc<dyn EventStore>,
    std::path::PathBuf,
) {
    let dir = std::env::temp_dir().join(format!(
        "eventsync-cache-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let url = format!("sqlite:{}", dir.join("events.db").display());
    let service = |store: Arc<dyn EventStore>| {
        SyncService::new(
            store,
            Arc::new(EventBroker::new(1 << 20)),
            History::default(),
            Arc::new(Rules::default()),
        )
    };
    let a = store::open(&url).await.expect("store a");
    let b = store::open(&url).await.expect("store b");
    (service(a.clone()), service(b), a, dir)
}

fn edit(client_seq: u64, base_seq: u64, n: u64) -> Edit {
    Edit {
        client_seq,
        base_seq,
        operation: if base_seq == 0 {
            Operation::Create
        } else {
            Operation::Update
        },
        patch: serde_json::from_value(if base_seq == 0 {
            json!([{"op": "add", "path": "", "value": {"n": n}}])
        } else {
            json!([{"op": "replace", "path": "/n", "value": n}])
        })
        .expect("a patch"),
        shape: None,
    }
}

/// `(sequenceNum, duplicate)` of a one-edit submit's ack.
async fn submit(service: &SyncService, edit: Edit) -> (u64, bool) {
    match service.submit("doc", "carol", &[edit], true).await {
        Submitted::Ordered {
            acks,
            rejection: None,
            ..
        } if acks.len() == 1 => (acks[0].sequence_num, acks[0].duplicate),
        other => panic!("not acked: {other:?}"),
    }
}

#[tokio::test]
async fn a_resend_to_a_process_that_knew_less_is_still_a_duplicate() {
    let (a, b, store, dir) = two_services("resend").await;
    assert_eq!(submit(&a, edit(1, 0, 1)).await, (1, false));
    // B reads carol's highest edit (1) and remembers it.
    assert_eq!(submit(&b, edit(2, 1, 2)).await, (2, false));
    // Carol's next edit goes through A; B's cache does not see it.
    assert_eq!(submit(&a, edit(3, 2, 3)).await, (3, false));
    // Its resend through B, on the base it was made on: the same event, not a new one.
    assert_eq!(submit(&b, edit(3, 2, 3)).await, (3, true));
    // And B goes on with carol's next edit.
    assert_eq!(submit(&b, edit(4, 3, 4)).await, (4, false));
    assert_eq!(submit(&b, edit(4, 3, 4)).await, (4, true));
    let log = store.events_after("doc", 0, 100).await.expect("the log");
    let seqs: Vec<_> = log.iter().map(|e| (e.sequence_num, e.client_seq)).collect();
    assert_eq!(
        seqs,
        [(1, Some(1)), (2, Some(2)), (3, Some(3)), (4, Some(4))]
    );
    std::fs::remove_dir_all(dir).ok();
}
