//! Each document's cache: its head, its most recent events and what is known of its clients'
//! edits, behind the document's async mutex in [`crate::service::SyncService`]; and the cache
//! seen through the core's [`LogView`] when ordering.

use std::collections::{HashMap, VecDeque};

use eventsync::conflict::ShapedOp;
use eventsync::protocol::{ErrorCode, Event, Snapshot};
use eventsync::sequencer::{LogView, Proposed};
use eventsync::VectorClock;
use serde_json::Value;

use crate::hooks::Rules;
use crate::store::{DocumentHead, EventStore, StoreError};

/// How many recent events each document keeps in memory (for stale checks and fan-out repair).
const RECENT_EVENTS: usize = 1024;

/// How many clients' highest `clientSeq` a document's cache remembers before it forgets them all
/// (they are read from the store again as each client submits).
const KNOWN_CLIENTS: usize = 4096;

/// The head of one document and its recent events, with their shaped operations when known
/// (events this process ordered): a stale submit is transformed over them instead of refused.
pub(crate) struct DocumentCache {
    pub(crate) document_id: String,
    pub(crate) head: DocumentHead,
    recent: VecDeque<(Event, Option<Vec<ShapedOp>>)>,
    /// An upper bound of the head document's weight, from the last edit this process ordered
    /// (`None`: unknown, the next edit measures the document).
    pub(crate) weight_bound: Option<usize>,
    /// The highest `clientSeq` of each client listed, complete through `head` (read from the
    /// store once, then kept up by every event this cache takes in): a submit needs no store
    /// read to tell a client's new edits from its resends. An append this cache did not see
    /// moves the stored head, so nothing decided from a stale entry is ever stored.
    clients: HashMap<String, u64>,
    /// The store holds a snapshot of this document (seen in a read, or saved by this process):
    /// a sync answer then starts from the head without reading it (snapshots are replaced by
    /// newer ones, never removed).
    pub(crate) snapshot_stored: bool,
}

impl DocumentCache {
    pub(crate) async fn load(
        store: &dyn EventStore,
        document_id: &str,
    ) -> Result<Self, StoreError> {
        let head = store.head(document_id).await?;
        let from = head
            .head_seq
            .saturating_sub(RECENT_EVENTS as u64)
            .max(head.first_retained_seq.saturating_sub(1));
        let recent = store
            .events_after(document_id, from, RECENT_EVENTS)
            .await?
            .into_iter()
            .map(|event| (event, None))
            .collect();
        Ok(DocumentCache {
            weight_bound: None,
            document_id: document_id.to_owned(),
            head,
            recent,
            clients: HashMap::new(),
            snapshot_stored: false,
        })
    }

    /// The head as a snapshot: what is stored every `snapshot_every` events, and what a sync
    /// answer starts with.
    pub(crate) fn head_snapshot(&self) -> Snapshot {
        Snapshot {
            document_id: self.document_id.clone(),
            sequence_num: self.head.head_seq,
            document: self.head.document.clone(),
            vector_clock: self.head.vector.clone(),
        }
    }

    /// Takes in events appended after the head, and the document they lead to.
    pub(crate) fn append(
        &mut self,
        events: &[Event],
        shapes: &[Option<Vec<ShapedOp>>],
        document: Option<Value>,
    ) {
        let shapes = shapes.iter().cloned().chain(std::iter::repeat(None));
        for (event, shape) in events.iter().zip(shapes) {
            self.head.head_seq = event.sequence_num;
            self.head.vector.merge(&event.vector_clock);
            self.head
                .vector
                .observe(&event.client_id, event.sequence_num);
            if let (Some(seq), Some(highest)) =
                (event.client_seq, self.clients.get_mut(&event.client_id))
            {
                *highest = (*highest).max(seq);
            }
            self.recent.push_back((event.clone(), shape));
            if self.recent.len() > RECENT_EVENTS {
                self.recent.pop_front();
            }
        }
        if !events.is_empty() {
            self.head.document = document;
            self.weight_bound = None;
        }
    }

    /// Takes in what the store had after the head (`events`, read up to `head`): when they are
    /// not every event up to it (compacted meanwhile), what is known of clients is forgotten.
    pub(crate) fn caught_up(&mut self, events: &[Event], head: DocumentHead) {
        let from = self.head.head_seq;
        let whole = events
            .iter()
            .zip(from + 1..)
            .all(|(event, seq)| event.sequence_num == seq)
            && from + events.len() as u64 == head.head_seq;
        self.append(events, &[], head.document.clone());
        if !whole {
            self.clients.clear();
        }
        self.head = head;
    }

    /// The highest `clientSeq` `client_id` has stored, when known without the store.
    pub(crate) fn highest_client_seq(&self, client_id: &str) -> Option<u64> {
        self.clients.get(client_id).copied()
    }

    /// Remembers what the store said was `client_id`'s highest `clientSeq` at this head.
    pub(crate) fn know_client(&mut self, client_id: &str, highest: u64) {
        if self.clients.len() >= KNOWN_CLIENTS {
            self.clients.clear();
        }
        self.clients.insert(client_id.to_owned(), highest);
    }
}

/// The cache seen through the core's [`LogView`], with what the store said about one client.
pub(crate) struct SubmitView<'a> {
    pub(crate) cache: &'a DocumentCache,
    pub(crate) rules: &'a Rules,
    pub(crate) highest_client_seq: u64,
    pub(crate) duplicates: HashMap<u64, u64>,
}

impl LogView for SubmitView<'_> {
    fn document_id(&self) -> &str {
        &self.cache.document_id
    }
    fn head_seq(&self) -> u64 {
        self.cache.head.head_seq
    }
    fn document(&self) -> Option<&Value> {
        self.cache.head.document.as_ref()
    }
    fn head_vector(&self) -> &VectorClock {
        &self.cache.head.vector
    }
    fn highest_client_seq(&self, _client_id: &str) -> u64 {
        self.highest_client_seq
    }
    fn ordered_edit(&self, _client_id: &str, client_seq: u64) -> Option<u64> {
        self.duplicates.get(&client_seq).copied()
    }
    fn origins_after(&self, sequence_num: u64) -> Vec<(String, Option<u64>)> {
        if !self.cache.covers(sequence_num) {
            // Older than the window: unknown origins count as foreign, so the edit is stale.
            return vec![(String::new(), None)];
        }
        self.cache
            .after(sequence_num)
            .map(|(e, _)| (e.client_id.clone(), e.client_seq))
            .collect()
    }
    fn max_weight(&self) -> Option<usize> {
        self.rules.max_document_bytes
    }
    fn weight_bound(&self) -> Option<usize> {
        self.cache.weight_bound
    }
    fn checks_edits(&self) -> bool {
        self.rules.checks_edits()
    }
    fn check_wants_before(&self) -> bool {
        self.rules.wants_before()
    }
    fn check(&self, edit: &Proposed<'_>) -> Result<(), (ErrorCode, String)> {
        self.rules.check(edit)
    }
    fn shapes_after(&self, sequence_num: u64) -> Option<Vec<Vec<ShapedOp>>> {
        if !self.cache.covers(sequence_num) {
            return None;
        }
        self.cache
            .after(sequence_num)
            .map(|(_, shape)| shape.clone())
            .collect()
    }
}

impl DocumentCache {
    /// Whether every event after `sequence_num` is in the window.
    fn covers(&self, sequence_num: u64) -> bool {
        let oldest = self
            .recent
            .front()
            .map_or(self.head.head_seq + 1, |(e, _)| e.sequence_num);
        sequence_num + 1 >= oldest
    }

    fn after(&self, sequence_num: u64) -> impl Iterator<Item = &(Event, Option<Vec<ShapedOp>>)> {
        self.recent
            .iter()
            .filter(move |(e, _)| e.sequence_num > sequence_num)
    }
}

#[cfg(test)]
mod tests;
