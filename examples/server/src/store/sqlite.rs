//! PLACEHOLDER: filled in by the store work.

use async_trait::async_trait;
use eventsync::protocol::{Event, Snapshot, StateVector};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{DocumentHead, EventStore, StoreChange, StoreError};

/// Placeholder.
pub struct SqliteStore;

impl SqliteStore {
    /// Placeholder.
    pub async fn open(_url: &str) -> Result<Self, StoreError> {
        todo!()
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn head(&self, _: &str) -> Result<DocumentHead, StoreError> {
        todo!()
    }
    async fn append(
        &self,
        _: &str,
        _: u64,
        _: &[Event],
        _: Option<&Value>,
    ) -> Result<(), StoreError> {
        todo!()
    }
    async fn events_after(&self, _: &str, _: u64, _: usize) -> Result<Vec<Event>, StoreError> {
        todo!()
    }
    async fn ordered_edit(&self, _: &str, _: &str, _: u64) -> Result<Option<u64>, StoreError> {
        todo!()
    }
    async fn highest_client_seq(&self, _: &str, _: &str) -> Result<u64, StoreError> {
        todo!()
    }
    async fn save_snapshot(&self, _: &Snapshot) -> Result<(), StoreError> {
        todo!()
    }
    async fn latest_snapshot(&self, _: &str) -> Result<Option<Snapshot>, StoreError> {
        todo!()
    }
    async fn compact(&self, _: &str, _: u64) -> Result<u64, StoreError> {
        todo!()
    }
    async fn save_state_vector(&self, _: &StateVector) -> Result<(), StoreError> {
        todo!()
    }
    async fn state_vectors(&self, _: &str) -> Result<Vec<StateVector>, StoreError> {
        todo!()
    }
    async fn changes(&self) -> Result<Option<mpsc::Receiver<StoreChange>>, StoreError> {
        todo!()
    }
}
