//! `StateVectorManager`: the last state vector each client told the server about each document
//! (the seed's record of what each client knows), kept in the store.
//!
//! A `sync` is answered without waiting for its record: with SQLite's `synchronous=FULL` every
//! write is a commit and an fsync, and nothing in the answer depends on it. The records are
//! written by one task at a time, all the vectors told since its last write in one statement
//! (the newest of each document and client): a storm of reconnecting clients costs the store a
//! write per batch instead of one per client, queues at most one write ahead of the edits
//! waiting for the store, and memory holds one vector per client not yet written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eventsync::protocol::StateVector;
use eventsync::VectorClock;

use crate::service::now_rfc3339;
use crate::store::{EventStore, StoreError};

/// Last known state vector of every client, per document (the seed's `StateVectorManager`).
pub struct StateVectorManager {
    store: Arc<dyn EventStore>,
    pending: Arc<Mutex<Pending>>,
}

/// Vectors told and not yet written.
#[derive(Default)]
struct Pending {
    /// The newest vector of each (document, client).
    vectors: HashMap<(String, String), VectorClock>,
    /// A task is writing them: the next vector told waits for it.
    writing: bool,
}

impl StateVectorManager {
    /// Keeps vectors in `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        StateVectorManager {
            store,
            pending: Arc::default(),
        }
    }

    /// Records what `client_id` has told (or been sent) about `document_id`, in the background:
    /// returns at once, and a task spawned on the current Tokio runtime writes it (a failed
    /// write is logged; the client's next `sync` records it again). A newer vector of the same
    /// client and document told before the write replaces it.
    pub fn record(&self, document_id: &str, client_id: &str, vector_clock: &VectorClock) {
        let mut pending = self.pending.lock().expect("state vector records poisoned");
        pending.vectors.insert(
            (document_id.to_owned(), client_id.to_owned()),
            vector_clock.clone(),
        );
        if pending.writing {
            return;
        }
        pending.writing = true;
        drop(pending);
        let (store, pending) = (self.store.clone(), self.pending.clone());
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut pending = pending.lock().expect("state vector records poisoned");
                    if pending.vectors.is_empty() {
                        pending.writing = false;
                        return;
                    }
                    std::mem::take(&mut pending.vectors)
                };
                let last_updated = Some(now_rfc3339());
                let batch: Vec<StateVector> = batch
                    .into_iter()
                    .map(|((document_id, client_id), vector_clock)| StateVector {
                        client_id,
                        document_id,
                        vector_clock,
                        last_updated: last_updated.clone(),
                    })
                    .collect();
                if let Err(err) = store.save_state_vectors(&batch).await {
                    tracing::warn!(error = %err, count = batch.len(), "state vectors not recorded");
                }
            }
        });
    }

    /// Every client's last known vector for a document, as written so far.
    pub async fn vectors(&self, document_id: &str) -> Result<Vec<StateVector>, StoreError> {
        self.store.state_vectors(document_id).await
    }
}
