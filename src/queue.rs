//! The offline queue and the storage it survives restarts in.
//!
//! Everything a client must not lose lives in one [`ClientState`]: the confirmed document, its log
//! position and state vector, and the pending edits (each with its `clientSeq`). A [`Store`] keeps
//! the latest `ClientState`; drivers save it whenever the session asks (`Output::Persist`) and
//! before anything is transmitted, so an edit is durable before it is shown as made (DESIGN
//! invariant 8).

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::conflict::ShapedOp;
use crate::protocol::members::{
    deserialize_from_json, serialize_to_json, FromJson, Members, Object, ToJson,
};
use crate::protocol::{Operation, Quoted};
use crate::undo::UndoHistory;
use crate::vector_clock::VectorClock;

/// Version of the [`ClientState`] encoding.
pub const STATE_FORMAT: u32 = 1;

/// A local edit not yet in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEdit {
    /// The idempotency key with the client id.
    pub client_seq: u64,
    /// Create, update or delete.
    pub operation: Operation,
    /// The edit, rebased onto the confirmed document plus the pending edits before it.
    pub ops: Vec<ShapedOp>,
}

/// Everything a client persists for one document.
#[derive(Debug, Clone, PartialEq)]
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
    /// The undo and redo steps (absent when there are none; older saves have none).
    pub undo: UndoHistory,
}

impl FromJson for PendingEdit {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a pending edit")?;
        Ok(PendingEdit {
            client_seq: m.required("clientSeq")?,
            operation: m.required("operation")?,
            ops: m.required("ops")?,
        })
    }
}

impl FromJson for ClientState {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a client state")?;
        Ok(ClientState {
            format: m.required("format")?,
            document_id: m.required("documentId")?,
            client_id: m.required("clientId")?,
            next_client_seq: m.required("nextClientSeq")?,
            confirmed: m.optional("confirmed")?,
            applied_seq: m.required("appliedSeq")?,
            vector_clock: m.required("vectorClock")?,
            pending: m.required("pending")?,
            undo: m.or_default("undo")?,
        })
    }
}

impl ToJson for PendingEdit {
    fn to_json(&self) -> Value {
        Object::new()
            .with("clientSeq", &self.client_seq)
            .with("operation", &self.operation)
            .with("ops", &self.ops)
            .done()
    }
}

impl ToJson for ClientState {
    fn to_json(&self) -> Value {
        let object = Object::new()
            .with("format", &self.format)
            .with("documentId", &self.document_id)
            .with("clientId", &self.client_id)
            .with("nextClientSeq", &self.next_client_seq)
            .with("confirmed", &self.confirmed)
            .with("appliedSeq", &self.applied_seq)
            .with("vectorClock", &self.vector_clock)
            .with("pending", &self.pending);
        // Absent when there are none (older saves have none).
        if self.undo.is_empty() {
            object.done()
        } else {
            object.with("undo", &self.undo).done()
        }
    }
}

deserialize_from_json!(PendingEdit, ClientState);
serialize_to_json!(PendingEdit, ClientState);

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed. Not in WebAssembly builds, whose stores are not files: there
    /// `std::io`'s error texts would only add to the module's size (issue 17).
    #[cfg(not(target_arch = "wasm32"))]
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// What was stored cannot be read back.
    #[error("stored client state is corrupt: {0}")]
    Corrupt(String),
    /// The storage backend (IndexedDB, Web Locks) refused or failed.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The stored state belongs to another document or client.
    #[error(
        "stored state is for document {} and client {}",
        Quoted(.document_id),
        Quoted(.client_id)
    )]
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

pub(crate) fn encode(state: &ClientState) -> String {
    crate::protocol::write_json(&state.to_json())
}

/// Reads a saved state: its text as a `Value`, then member by member
/// ([`crate::protocol::members`]).
pub(crate) fn decode(text: &str) -> Result<ClientState, StoreError> {
    let state = crate::protocol::parse_json(text)
        .and_then(ClientState::from_json)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
    slot: Arc<Mutex<Option<String>>>,
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
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Serialize};

    use super::{decode, encode, ClientState, PendingEdit, Store, StoreError, UndoHistory};

    /// Below this many bytes the journal is never folded into the state file.
    const MIN_FOLD_BYTES: u64 = 64 * 1024;

    /// A store in one file plus a journal beside it (`<path>.journal`).
    ///
    /// The state file is replaced atomically (write a temporary file, fsync, rename, fsync the
    /// directory): a crash leaves either the old state or the new one, never a mix. A save that
    /// only adds pending edits (a local edit, the common case offline) appends them to the
    /// journal and fsyncs it instead, so queueing N edits writes O(N) bytes, not O(N²). Once
    /// the journal outgrows the state file it is folded back into it.
    #[derive(Debug)]
    pub struct FileStore {
        path: PathBuf,
        journal: PathBuf,
        /// What the files hold, once this store loaded or saved it (appends are relative to it).
        on_disk: Option<ClientState>,
        state_bytes: u64,
        journal_bytes: u64,
    }

    /// One journal line: edits added to the pending queue.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Appended {
        next_client_seq: u64,
        pending: Vec<PendingEdit>,
        /// The undo steps after these edits, when they changed.
        #[serde(default)]
        undo: Option<UndoHistory>,
    }

    /// [`Appended`] as it is written.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct AppendedRef<'a> {
        next_client_seq: u64,
        pending: &'a [PendingEdit],
        #[serde(skip_serializing_if = "Option::is_none")]
        undo: Option<&'a UndoHistory>,
    }

    impl FileStore {
        /// A store at `path` (created on the first save; its directory must exist).
        pub fn new(path: impl Into<PathBuf>) -> Self {
            let path = path.into();
            let mut journal = path.clone().into_os_string();
            journal.push(".journal");
            FileStore {
                path,
                journal: journal.into(),
                on_disk: None,
                state_bytes: 0,
                journal_bytes: 0,
            }
        }

        /// Where the state is kept.
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// The edits `next` adds to what is on disk, when adding them is all it changes.
        fn appended<'a>(&self, next: &'a ClientState) -> Option<&'a [PendingEdit]> {
            let old = self.on_disk.as_ref()?;
            let unchanged = old.format == next.format
                && old.document_id == next.document_id
                && old.client_id == next.client_id
                && old.applied_seq == next.applied_seq
                && old.vector_clock == next.vector_clock
                && next.pending.len() > old.pending.len()
                && next.pending[..old.pending.len()] == old.pending[..]
                && old.confirmed == next.confirmed;
            unchanged.then(|| &next.pending[old.pending.len()..])
        }

        fn append(
            &mut self,
            next_client_seq: u64,
            added: &[PendingEdit],
            undo: Option<&UndoHistory>,
        ) -> Result<(), StoreError> {
            let mut line = serde_json::to_vec(&AppendedRef {
                next_client_seq,
                pending: added,
                undo,
            })
            .expect("pending edits serialize");
            line.push(b'\n');
            let created = !self.journal.exists();
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.journal)?;
            file.write_all(&line)?;
            file.sync_data()?;
            if created {
                sync_dir(&self.journal)?;
            }
            self.journal_bytes += line.len() as u64;
            Ok(())
        }

        fn replace(&mut self, state: &ClientState) -> Result<(), StoreError> {
            let bytes = encode(state);
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            {
                let mut file = File::create(&tmp)?;
                file.write_all(bytes.as_bytes())?;
                file.sync_all()?;
            }
            fs::rename(&tmp, &self.path)?;
            // Makes the rename itself durable.
            sync_dir(&self.path)?;
            // The new state holds everything the journal added; were this removal lost in a
            // crash, loading would skip those lines anyway (their clientSeqs are below
            // `nextClientSeq`).
            match fs::remove_file(&self.journal) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            self.state_bytes = bytes.len() as u64;
            self.journal_bytes = 0;
            Ok(())
        }
    }

    fn sync_dir(file: &Path) -> Result<(), StoreError> {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    impl Store for FileStore {
        fn load(&mut self) -> Result<Option<ClientState>, StoreError> {
            let mut state = match fs::read(&self.path) {
                Ok(bytes) => {
                    self.state_bytes = bytes.len() as u64;
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    decode(text)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.on_disk = None;
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let journal = match fs::read(&self.journal) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            self.journal_bytes = journal.len() as u64;
            // Only whole lines count: a torn last line is a save that never returned.
            let complete = journal
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let torn = complete < journal.len();
            for line in journal[..complete].split(|&b| b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                let appended: Appended = serde_json::from_slice(line)
                    .map_err(|e| StoreError::Corrupt(format!("journal: {e}")))?;
                for edit in appended.pending {
                    // Lines the state file already holds (folded before a crash) are skipped.
                    if edit.client_seq >= state.next_client_seq {
                        state.pending.push(edit);
                    }
                }
                state.next_client_seq = state.next_client_seq.max(appended.next_client_seq);
                if let Some(undo) = appended.undo {
                    state.undo = undo;
                }
            }
            // After a torn line the next save replaces both files rather than append to it.
            self.on_disk = (!torn).then(|| state.clone());
            Ok(Some(state))
        }

        fn save(&mut self, state: &ClientState) -> Result<(), StoreError> {
            let fold = self.journal_bytes > self.state_bytes.max(MIN_FOLD_BYTES);
            let added = match self.appended(state) {
                Some(added) if !fold => added.to_vec(),
                _ => {
                    // After a failure the files are not known: the next save replaces both.
                    self.on_disk = None;
                    self.replace(state)?;
                    self.on_disk = Some(state.clone());
                    return Ok(());
                }
            };
            let on_disk = self.on_disk.take();
            let undo = on_disk
                .as_ref()
                .is_some_and(|old| old.undo != state.undo)
                .then_some(&state.undo);
            self.append(state.next_client_seq, &added, undo)?;
            self.on_disk = on_disk.map(|mut on_disk| {
                on_disk.next_client_seq = state.next_client_seq;
                on_disk.pending.extend(added);
                on_disk.undo = state.undo.clone();
                on_disk
            });
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
            undo: UndoHistory::default(),
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

    /// A fresh directory of its own for a file store test.
    fn store_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("eventsync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `state` with one more pending edit (the next `clientSeq`), adding `key`.
    fn with_edit(state: &ClientState, key: &str) -> ClientState {
        let mut next = state.clone();
        let doc = json!({"a": 1});
        let patch = serde_json::from_value::<Vec<json_patch::PatchOperation>>(
            json!([{"op": "add", "path": format!("/{key}"), "value": key}]),
        )
        .unwrap();
        next.pending.push(PendingEdit {
            client_seq: next.next_client_seq,
            operation: Operation::Update,
            ops: crate::conflict::shape(&doc, &patch).unwrap(),
        });
        next.next_client_seq += 1;
        next
    }

    #[test]
    fn new_edits_are_appended_to_the_journal_and_replayed_on_load() {
        let dir = store_dir("journal");
        let path = dir.join("state.json");
        let mut store = FileStore::new(&path);
        store.save(&sample()).unwrap();
        let written = std::fs::read(&path).unwrap();
        let mut state = sample();
        for key in ["x", "y", "z"] {
            state = with_edit(&state, key);
            store.save(&state).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            written,
            "the state file is untouched"
        );
        let journal = std::fs::read_to_string(dir.join("state.json.journal")).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(state.clone()));
        // Any other change replaces the state file and drops the journal.
        state.applied_seq += 1;
        store.save(&state).unwrap();
        assert!(!dir.join("state.json.journal").exists());
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(state));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_journal_line_is_ignored_and_the_next_save_replaces_it() {
        let dir = store_dir("torn");
        let path = dir.join("state.json");
        let mut store = FileStore::new(&path);
        store.save(&sample()).unwrap();
        let one = with_edit(&sample(), "x");
        store.save(&one).unwrap();
        // A crash in the middle of the next append.
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("state.json.journal"))
            .unwrap();
        std::io::Write::write_all(&mut journal, br#"{"nextClientSeq": 5, "pend"#).unwrap();
        let mut reopened = FileStore::new(&path);
        assert_eq!(reopened.load().unwrap(), Some(one.clone()));
        let two = with_edit(&one, "y");
        reopened.save(&two).unwrap();
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(two));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn journal_lines_the_state_file_already_holds_are_skipped() {
        let dir = store_dir("folded");
        let path = dir.join("state.json");
        let mut store = FileStore::new(&path);
        store.save(&sample()).unwrap();
        let one = with_edit(&sample(), "x");
        store.save(&one).unwrap();
        let journal = std::fs::read(dir.join("state.json.journal")).unwrap();
        // The state file took the edit in (a fold), and the journal's removal was lost.
        let mut folded = one.clone();
        folded.applied_seq += 1;
        store.save(&folded).unwrap();
        std::fs::write(dir.join("state.json.journal"), journal).unwrap();
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(folded));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_long_journal_is_folded_into_the_state_file() {
        let dir = store_dir("fold");
        let path = dir.join("state.json");
        let mut store = FileStore::new(&path);
        let mut state = sample();
        store.save(&state).unwrap();
        let big = "k".repeat(2000);
        for n in 0..100 {
            state = with_edit(&state, &format!("{big}{n}"));
            store.save(&state).unwrap();
        }
        let journal = std::fs::metadata(dir.join("state.json.journal")).map_or(0, |m| m.len());
        let file = std::fs::metadata(&path).unwrap().len();
        assert!(file > 64 * 1024, "the state file took the edits in: {file}");
        assert!(
            journal <= file.max(64 * 1024) + 8192,
            "journal {journal}, state {file}"
        );
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(state));
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
