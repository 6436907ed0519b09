//! `SyncService`: orders edits and changes into each document's log and answers catch-ups
//! (`StateVectorManager`, the record of what each client knows, is [`crate::vectors`]).
//!
//! Each document has a cache of its head and its most recent events behind an async mutex: the
//! mutex is the document's single writer. Ordering itself is the core's
//! [`eventsync::sequencer::order_submit`], run against the cache; the store makes it durable;
//! only then does the [`EventBroker`] publish it and the caller acknowledge it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eventsync::conflict::ShapedOp;
use eventsync::protocol::{Edit, ErrorCode, Event, EventsPage, Operation, Snapshot};
use eventsync::sequencer::{self, SubmitOutcome};
use eventsync::server::{
    CatchUp, LogHead, Read, ReadResult, SnapshotPolicy, Step, Submitted, VersionAt, VersionStep,
};
use eventsync::VectorClock;
use serde_json::Value;
use tokio::sync::Mutex as AsyncMutex;

use crate::broker::EventBroker;
use crate::cache::{DocumentCache, SubmitView};
use crate::hooks::Rules;
use crate::store::{DocumentHead, EventStore, StoreError};

/// Snapshot and retention settings.
#[derive(Debug, Clone)]
pub struct History {
    /// A snapshot is stored every this many events (0: never).
    pub snapshot_every: u64,
    /// Events kept behind the latest snapshot; older ones are compacted (None: keep all).
    pub retain_events: Option<u64>,
}

impl Default for History {
    fn default() -> Self {
        History {
            snapshot_every: 1000,
            retain_events: None,
        }
    }
}

/// A failure with the protocol code it is answered with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// The protocol code.
    pub code: ErrorCode,
    /// Detail.
    pub message: String,
}

impl ServiceError {
    /// An error with a code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "event store failed");
        ServiceError::new(ErrorCode::Internal, format!("event store failed: {err}"))
    }
}

/// Orders edits and changes, answers catch-ups.
pub struct SyncService {
    store: Arc<dyn EventStore>,
    broker: Arc<EventBroker>,
    history: History,
    rules: Arc<Rules>,
    documents: Mutex<HashMap<String, Arc<AsyncMutex<Option<DocumentCache>>>>>,
    ids: EventIds,
}

impl SyncService {
    /// A service over a store, publishing through a broker.
    pub fn new(
        store: Arc<dyn EventStore>,
        broker: Arc<EventBroker>,
        history: History,
        rules: Arc<Rules>,
    ) -> Self {
        SyncService {
            store,
            broker,
            history,
            rules,
            documents: Mutex::new(HashMap::new()),
            ids: EventIds::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    fn slot(&self, document_id: &str) -> Arc<AsyncMutex<Option<DocumentCache>>> {
        self.documents
            .lock()
            .expect("documents lock")
            .entry(document_id.to_owned())
            .or_default()
            .clone()
    }

    /// The document's head (loading it on first use).
    pub async fn head(&self, document_id: &str) -> Result<DocumentHead, ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        Ok(self.cache(&mut guard, document_id).await?.head.clone())
    }

    async fn cache<'a>(
        &self,
        guard: &'a mut Option<DocumentCache>,
        document_id: &str,
    ) -> Result<&'a mut DocumentCache, StoreError> {
        if guard.is_none() {
            *guard = Some(DocumentCache::load(self.store.as_ref(), document_id).await?);
        }
        Ok(guard.as_mut().expect("just loaded"))
    }

    /// Orders a client's submit: durable, then published, then returned for acknowledgement.
    /// A failure that stored nothing is [`Submitted::Refused`]; one in the append's commit, which
    /// may have stored the events, is [`Submitted::Unknown`] (8.3).
    pub async fn submit(
        &self,
        document_id: &str,
        client_id: &str,
        edits: &[Edit],
        may_write: bool,
    ) -> Submitted {
        match self.order(document_id, client_id, edits, may_write).await {
            Ok(outcome) => Submitted::from(&outcome),
            Err(Failure::Before(err)) => Submitted::Refused(err.code, err.message),
            Err(Failure::Append(err)) => {
                tracing::error!(error = %err, document = document_id, "append failed: the submit's outcome is unknown");
                Submitted::Unknown(err.to_string())
            }
        }
    }

    async fn order(
        &self,
        document_id: &str,
        client_id: &str,
        edits: &[Edit],
        may_write: bool,
    ) -> Result<SubmitOutcome, Failure> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        for _attempt in 0..3 {
            let cache = self.cache(&mut guard, document_id).await?;
            if edits
                .first()
                .is_some_and(|e| e.base_seq > cache.head.head_seq)
            {
                // The client may know more of the log than this cache: catch-ups and repairs read
                // the store, where other server processes append. Catch up before judging.
                self.catch_up_cache(cache).await?;
            }
            let highest = match cache.highest_client_seq(client_id) {
                Some(highest) => highest,
                None => {
                    let highest = self
                        .store
                        .highest_client_seq(document_id, client_id)
                        .await?;
                    cache.know_client(client_id, highest);
                    highest
                }
            };
            let mut duplicates = HashMap::new();
            for edit in edits.iter().filter(|e| e.client_seq <= highest) {
                if let Some(seq) = self
                    .store
                    .ordered_edit(document_id, client_id, edit.client_seq)
                    .await?
                {
                    duplicates.insert(edit.client_seq, seq);
                }
            }
            let view = SubmitView {
                rules: self.rules.as_ref(),
                cache,
                highest_client_seq: highest,
                duplicates,
            };
            let outcome = sequencer::order_submit(&view, client_id, edits, may_write, &mut |seq| {
                self.ids.stamp(seq)
            });
            if outcome.events.is_empty() {
                return Ok(outcome);
            }
            let document = outcome.document.clone();
            match self
                .commit_or_catch_up(cache, &outcome.events, &outcome.shapes, document)
                .await
            {
                Ok(true) => {
                    cache.weight_bound = outcome.weight_bound;
                    return Ok(outcome);
                }
                Ok(false) => {}
                Err(CommitError::Append(err @ StoreError::CommitUnknown(_))) => {
                    return Err(Failure::Append(err))
                }
                // Rolled back: nothing of this submit was stored.
                Err(CommitError::Append(err) | CommitError::Store(err)) => {
                    return Err(Failure::Before(err.into()))
                }
            }
        }
        Err(Failure::Before(too_busy()))
    }

    /// Orders a change that is not a client edit (HTTP writes, database changes). `after` is the
    /// whole new document for a `PUT`/`DELETE`; `patch` an RFC 6902 patch for a `PATCH`.
    pub async fn change(
        &self,
        document_id: &str,
        origin: &str,
        write: Write,
    ) -> Result<Event, ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        for _attempt in 0..3 {
            let cache = self.cache(&mut guard, document_id).await?;
            let (operation, patch) = match &write {
                Write::Put(after) => {
                    sequencer::change_between(cache.head.document.as_ref(), Some(after))
                }
                Write::Patch(patch) => (Operation::Update, patch.clone()),
                Write::Delete => {
                    if cache.head.document.is_none() {
                        return Err(ServiceError::new(
                            ErrorCode::DocumentState,
                            "the document does not exist",
                        ));
                    }
                    (Operation::Delete, Vec::new())
                }
            };
            let view = SubmitView {
                rules: self.rules.as_ref(),
                cache,
                highest_client_seq: 0,
                duplicates: HashMap::new(),
            };
            let sequencer::OrderedChange {
                event,
                document,
                shape,
                weight_bound,
            } = sequencer::order_change(&view, origin, operation, patch, &mut |seq| {
                self.ids.stamp(seq)
            })
            .map_err(|(code, message)| ServiceError::new(code, message))?;
            let events = std::slice::from_ref(&event);
            match self
                .commit_or_catch_up(cache, events, &[shape], document)
                .await
            {
                Ok(true) => {
                    cache.weight_bound = weight_bound;
                    return Ok(event);
                }
                Ok(false) => {}
                Err(CommitError::Append(err) | CommitError::Store(err)) => return Err(err.into()),
            }
        }
        Err(too_busy())
    }

    /// [`SyncService::commit`], or, when another server process wrote first, catches the cache
    /// up (publishing what it wrote) and returns false: order again.
    async fn commit_or_catch_up(
        &self,
        cache: &mut DocumentCache,
        events: &[Event],
        shapes: &[Option<Vec<ShapedOp>>],
        document: Option<Value>,
    ) -> Result<bool, CommitError> {
        match self.commit(cache, events, shapes, document).await {
            Ok(()) => Ok(true),
            Err(StoreError::HeadMoved { .. }) => {
                self.catch_up_cache(cache)
                    .await
                    .map_err(CommitError::Store)?;
                Ok(false)
            }
            Err(err) => Err(CommitError::Append(err)),
        }
    }

    /// Stores, updates the cache, publishes, and keeps snapshots and retention in step.
    async fn commit(
        &self,
        cache: &mut DocumentCache,
        events: &[Event],
        shapes: &[Option<Vec<ShapedOp>>],
        document: Option<Value>,
    ) -> Result<(), StoreError> {
        let expected = cache.head.head_seq;
        self.store
            .append(&cache.document_id, expected, events, document.as_ref())
            .await?;
        cache.append(events, shapes, document);
        self.rules.committed(events);
        self.broker.publish(&cache.document_id, events);
        self.maintain_history(cache, expected).await;
        Ok(())
    }

    async fn maintain_history(&self, cache: &mut DocumentCache, before: u64) {
        let every = self.history.snapshot_every;
        let head = cache.head.head_seq;
        if every == 0 || head / every == before / every {
            return;
        }
        if let Err(err) = self.store.save_snapshot(&cache.head_snapshot()).await {
            tracing::warn!(error = %err, document = %cache.document_id, "snapshot failed");
            return;
        }
        cache.snapshot_stored = true;
        if let Some(retain) = self.history.retain_events {
            let through = head.saturating_sub(retain);
            if through >= cache.head.first_retained_seq {
                match self.store.compact(&cache.document_id, through).await {
                    Ok(_) => cache.head.first_retained_seq = through + 1,
                    Err(err) => tracing::warn!(error = %err, "compaction failed"),
                }
            }
        }
    }

    /// The head a catch-up reads ([`Read::Head`]): from the cache, or with `fresh` as the store
    /// has it now (catching the cache up first).
    pub async fn log_head(&self, document_id: &str, fresh: bool) -> Result<LogHead, ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        let cache = self.cache(&mut guard, document_id).await?;
        let mut first_retained_seq = cache.head.first_retained_seq;
        if fresh {
            // Another process may have appended or compacted.
            let stored = self.catch_up_cache(cache).await?;
            first_retained_seq = first_retained_seq.max(stored.first_retained_seq);
        }
        Ok(LogHead {
            head_seq: cache.head.head_seq,
            first_retained_seq,
            vector: cache.head.vector.clone(),
        })
    }

    /// The head's `sequenceNum` (loading the document on first use).
    pub async fn head_seq(&self, document_id: &str) -> Result<u64, ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        Ok(self.cache(&mut guard, document_id).await?.head.head_seq)
    }

    /// The snapshot a `sync` answer starts with ([`Read::SyncSnapshot`]): the head itself, from
    /// the cache, once the store holds a snapshot, so that the client replays none of the
    /// events after the stored one (up to `snapshot_every - 1` of them). A document without a
    /// stored snapshot has none: its clients replay the log, as before any snapshot was taken.
    /// The store is read only until a snapshot is known to exist.
    async fn sync_snapshot(&self, document_id: &str) -> Result<Option<Snapshot>, ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        let cache = self.cache(&mut guard, document_id).await?;
        if !cache.snapshot_stored {
            let Some(stored) = self.store.latest_snapshot(document_id).await? else {
                return Ok(None);
            };
            cache.snapshot_stored = true;
            if stored.sequence_num >= cache.head.head_seq {
                return Ok(Some(stored));
            }
        }
        Ok(Some(cache.head_snapshot()))
    }

    /// Answers a read of the core's catch-up or of a connection repairing a gap.
    pub async fn read(&self, document_id: &str, read: Read) -> Result<ReadResult, ServiceError> {
        Ok(match read {
            Read::Head { fresh } => ReadResult::Head(self.log_head(document_id, fresh).await?),
            Read::Snapshot => ReadResult::Snapshot(self.store.latest_snapshot(document_id).await?),
            Read::SyncSnapshot => ReadResult::Snapshot(self.sync_snapshot(document_id).await?),
            Read::Events { after, limit } => ReadResult::Encoded(
                self.store
                    .encoded_events_after(document_id, after, limit)
                    .await?,
            ),
        })
    }

    /// One page of the events a position misses (the core's [`CatchUp`]): by cursor when
    /// `after` is given, else by the seed's state-vector rule.
    pub async fn catch_up(
        &self,
        document_id: &str,
        vector: &VectorClock,
        after: Option<u64>,
        limit: usize,
        policy: SnapshotPolicy,
    ) -> Result<EventsPage, ServiceError> {
        let (mut machine, mut read) = CatchUp::new(vector.clone(), after, None, limit, policy);
        loop {
            match machine.handle(self.read(document_id, read).await?) {
                Step::Read(next) => read = next,
                Step::Page(page) => {
                    return page
                        .into_events_page(document_id)
                        .map_err(|(code, message)| ServiceError::new(code, message))
                }
                Step::Refused(code, message) => return Err(ServiceError::new(code, message)),
            }
        }
    }

    /// The document as of `at` (the core's [`VersionAt`]): `history_compacted` for a position
    /// compaction removed, `invalid_sequence` for one ahead of the log.
    pub async fn version_at(
        &self,
        document_id: &str,
        at: u64,
        limit: usize,
    ) -> Result<eventsync::protocol::Version, ServiceError> {
        let (mut machine, mut read) = VersionAt::new(at, limit);
        loop {
            match machine.handle(self.read(document_id, read).await?) {
                VersionStep::Read(next) => read = next,
                VersionStep::Done(mut version) => {
                    version.document_id = document_id.to_owned();
                    return Ok(version);
                }
                VersionStep::Refused(code, message) => {
                    return Err(ServiceError::new(code, message))
                }
            }
        }
    }

    /// Another process appended to `document_id`: bring the cache up and publish what is new.
    pub async fn refresh(&self, document_id: &str) -> Result<(), ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        let Some(cache) = guard.as_mut() else {
            // Not cached: nothing here is subscribed to it yet; it loads fresh on first use.
            return Ok(());
        };
        self.catch_up_cache(cache).await?;
        Ok(())
    }

    /// Brings the cache up to the store's head and publishes the events other processes
    /// appended meanwhile. Every advance of a cache goes through here or `commit`, so that this
    /// process's subscribers are sent every event: the `Appended` notification of those events
    /// may arrive later, and `refresh` then finds nothing new.
    /// Returns the head the store gave (its document is the row's body).
    async fn catch_up_cache(&self, cache: &mut DocumentCache) -> Result<DocumentHead, StoreError> {
        let head = self.store.head(&cache.document_id).await?;
        if head.head_seq <= cache.head.head_seq {
            return Ok(head);
        }
        let missing = usize::try_from(head.head_seq - cache.head.head_seq).unwrap_or(usize::MAX);
        let events = self
            .store
            .events_after(&cache.document_id, cache.head.head_seq, missing)
            .await?;
        // Shapes of other processes' events are not known: a submit stale across them is refused.
        cache.caught_up(&events, head.clone());
        self.broker.publish(&cache.document_id, &events);
        Ok(head)
    }

    /// A row of the documents table was written with plain SQL: turn the difference between the
    /// log's head and the row into an event of the `server` origin.
    pub async fn absorb_external_write(&self, document_id: &str) -> Result<(), ServiceError> {
        let slot = self.slot(document_id);
        let mut guard = slot.lock().await;
        // The row as it is now (its head and body, read together). A cached document is brought
        // up to that head first, publishing what other processes appended (another server may
        // have absorbed this very write already).
        let stored = match guard.as_mut() {
            Some(cache) => self.catch_up_cache(cache).await?,
            None => self.cache(&mut guard, document_id).await?.head.clone(),
        };
        let cache = guard.as_mut().expect("cached above");
        // The row's body may not be the log's: rebuild the log's document at that head.
        let log_document = self.log_document(document_id, &stored).await?;
        if log_document == stored.document {
            return Ok(());
        }
        cache.head.document = log_document.clone();
        let (operation, patch) =
            sequencer::change_between(log_document.as_ref(), stored.document.as_ref());
        let view = SubmitView {
            rules: self.rules.as_ref(),
            cache,
            highest_client_seq: 0,
            duplicates: HashMap::new(),
        };
        let sequencer::OrderedChange {
            event,
            document,
            shape,
            ..
        } = sequencer::order_change(
            &view,
            eventsync::protocol::SERVER_CLIENT_ID,
            operation,
            patch,
            &mut |seq| self.ids.stamp(seq),
        )
        .map_err(|(code, message)| ServiceError::new(code, message))?;
        self.commit(cache, std::slice::from_ref(&event), &[shape], document)
            .await?;
        tracing::info!(
            document = document_id,
            seq = event.sequence_num,
            "external write became an event"
        );
        Ok(())
    }

    /// The document as the log says it is at `head` (latest snapshot plus the events after it).
    async fn log_document(
        &self,
        document_id: &str,
        head: &DocumentHead,
    ) -> Result<Option<Value>, ServiceError> {
        let mut state = eventsync::StateManager::new(document_id);
        if let Some(snapshot) = self.store.latest_snapshot(document_id).await? {
            state
                .install_snapshot(snapshot)
                .map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
        }
        let mut after = state.applied_seq();
        while after < head.head_seq {
            let batch = usize::try_from(head.head_seq - after).map_or(1000, |n| n.min(1000));
            let events = self.store.events_after(document_id, after, batch).await?;
            let Some(last) = events.last() else { break };
            after = last.sequence_num;
            for event in &events {
                state
                    .apply(event)
                    .map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
            }
        }
        Ok(state.document().cloned())
    }
}

/// Why a commit failed: the append itself (only its `CommitUnknown` may have stored the events),
/// or a read after another process appended first (nothing of this commit was stored).
enum CommitError {
    Append(StoreError),
    Store(StoreError),
}

/// Why a submit failed.
enum Failure {
    /// Before anything could be stored.
    Before(ServiceError),
    /// In the append's commit: the events may have been stored.
    Append(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Before(err.into())
    }
}

fn too_busy() -> ServiceError {
    ServiceError::new(ErrorCode::Internal, "the document is too busy: try again")
}

/// A write through the HTTP API.
#[derive(Debug, Clone)]
pub enum Write {
    /// The whole new document.
    Put(Value),
    /// An RFC 6902 patch.
    Patch(Vec<json_patch::PatchOperation>),
    /// Delete the document.
    Delete,
}

/// Event ids in the seed's shape (24 hex characters: seconds, process, counter) and RFC 3339
/// timestamps.
struct EventIds {
    process: u64,
    counter: AtomicU64,
}

impl EventIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        EventIds {
            process: hasher.finish() & 0xff_ffff_ffff,
            counter: AtomicU64::new(0),
        }
    }

    fn stamp(&self, _seq: u64) -> (String, String) {
        let now = time::OffsetDateTime::now_utc();
        let count = self.counter.fetch_add(1, Ordering::Relaxed) & 0xff_ffff;
        let id = format!(
            "{:08x}{:010x}{:06x}",
            now.unix_timestamp() as u32,
            self.process,
            count
        );
        (id, now_rfc3339())
    }
}

/// Now, RFC 3339, to the millisecond (finer digits would only make every event longer).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let millis = now.replace_millisecond(now.millisecond()).unwrap_or(now);
    millis
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
