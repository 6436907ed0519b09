//! The offline queue and the storage it survives restarts in.
//!
//! Everything a client must not lose lives in one [`ClientState`]: the confirmed document, its log
//! position and state vector, and the pending edits (each with its `clientSeq`). A [`Store`] keeps
//! the latest `ClientState`; drivers save it whenever the session asks (`Output::Persist`) and
//! before anything is transmitted, so an edit is durable before it is shown as made (DESIGN
//! invariant 8).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conflict::ShapedOp;
use crate::protocol::Operation;
use crate::vector_clock::VectorClock;

/// Version of the [`ClientState`] encoding.
pub const STATE_FORMAT: u32 = 1;

/// A local edit not yet in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingEdit {
    /// The idempotency key with the client id.
    pub client_seq: u64,
    /// Create, update or delete.
    pub operation: Operation,
    /// The edit, rebased onto the confirmed document plus the pending edits before it.
    pub ops: Vec<ShapedOp>,
}

/// Everything a client persists for one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientState {
    /// Encoding version ([`STATE_FORMAT`]).
    pub format: u32,
    /// The document.
    pub document_id: String,
    /// The client's stable id (must survive restarts for exactly-once to hold).
    pub client_id: String,
    /// The `clientSeq` the next local edit gets.
    pub next_client_seq: u64,
    /// The confirmed document (`None` when it does not exist).
    pub confirmed: Option<Value>,
    /// The `sequenceNum` of the last applied event.
    pub applied_seq: u64,
    /// The state vector.
    pub vector_clock: VectorClock,
    /// Local edits not yet in the log, in `clientSeq` order.
    pub pending: Vec<PendingEdit>,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// What was stored cannot be read back.
    #[error("stored client state is corrupt: {0}")]
    Corrupt(String),
    /// The storage backend (IndexedDB, Web Locks) refused or failed.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The stored state belongs to another document or client.
    #[error("stored state is for document {document_id:?} and client {client_id:?}")]
    Mismatch {
        /// Stored document id.
        document_id: String,
        /// Stored client id.
        client_id: String,
    },
}

/// Keeps the latest [`ClientState`] of one document.
pub trait Store {
    /// The last saved state, or `None` when nothing was saved yet.
    fn load(&mut self) -> Result<Option<ClientState>, StoreError>;
    /// Replaces the saved state; durable when it returns.
    fn save(&mut self, state: &ClientState) -> Result<(), StoreError>;
}

pub(crate) fn encode(state: &ClientState) -> Vec<u8> {
    serde_json::to_vec(state).expect("client state always serializes")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ClientState, StoreError> {
    let state: ClientState =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if state.format != STATE_FORMAT {
        return Err(StoreError::Corrupt(format!(
            "unknown state format {}",
            state.format
        )));
    }
    Ok(state)
}

/// A store in memory. Clones share the same slot, so a test can "restart" a client by building a
/// new one from a clone of the old one's store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    slot: Arc<Mutex<Option<Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Option<ClientState>, StoreError> {
        let slot = self.slot.lock().expect("memory store lock");
        slot.as_deref().map(decode).transpose()
    }

    fn save(&mut self, state: &ClientState) -> Result<(), StoreError> {
        *self.slot.lock().expect("memory store lock") = Some(encode(state));
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use file::FileStore;

#[cfg(not(target_arch = "wasm32"))]
mod file {
    use std::fs::{self, File};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::{decode, encode, ClientState, Store, StoreError};

    /// A store in one file, replaced atomically (write a temporary file, fsync, rename, fsync the
    /// directory): a crash leaves either the old state or the new one, never a mix.
    #[derive(Debug, Clone)]
    pub struct FileStore {
        path: PathBuf,
    }

    impl FileStore {
        /// A store at `path` (created on the first save; its directory must exist).
        pub fn new(path: impl Into<PathBuf>) -> Self {
            FileStore { path: path.into() }
        }

        /// Where the state is kept.
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    impl Store for FileStore {
        fn load(&mut self) -> Result<Option<ClientState>, StoreError> {
            match fs::read(&self.path) {
                Ok(bytes) => decode(&bytes).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        }

        fn save(&mut self, state: &ClientState) -> Result<(), StoreError> {
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            {
                let mut file = File::create(&tmp)?;
                file.write_all(&encode(state))?;
                file.sync_all()?;
            }
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Makes the rename itself durable.
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ClientState {
        ClientState {
            format: STATE_FORMAT,
            document_id: "doc".into(),
            client_id: "alice".into(),
            next_client_seq: 3,
            confirmed: Some(json!({"a": 1})),
            applied_seq: 9,
            vector_clock: VectorClock::from_iter([("bob".to_string(), 9)]),
            pending: vec![PendingEdit {
                client_seq: 2,
                operation: Operation::Update,
                ops: crate::conflict::shape(
                    &json!({"a": 1}),
                    &serde_json::from_value::<Vec<json_patch::PatchOperation>>(
                        json!([{"op": "add", "path": "/b", "value": 2}]),
                    )
                    .unwrap(),
                )
                .unwrap(),
            }],
        }
    }

    #[test]
    fn memory_store_clones_share_state() {
        let mut a = MemoryStore::new();
        assert_eq!(a.load().unwrap(), None);
        a.save(&sample()).unwrap();
        let mut b = a.clone();
        assert_eq!(b.load().unwrap(), Some(sample()));
    }

    #[test]
    fn file_store_survives_a_new_instance_and_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("eventsync-queue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let mut store = FileStore::new(&path);
        assert_eq!(store.load().unwrap(), None);
        store.save(&sample()).unwrap();
        let mut next = sample();
        next.next_client_seq = 4;
        store.save(&next).unwrap();
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(next));
        assert!(!dir.join("state.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("eventsync-corrupt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            FileStore::new(&path).load(),
            Err(StoreError::Corrupt(_))
        ));
        std::fs::write(&path, br#"{"format": 99}"#).unwrap();
        assert!(matches!(
            FileStore::new(&path).load(),
            Err(StoreError::Corrupt(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
