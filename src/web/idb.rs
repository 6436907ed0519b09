//! [`IndexedDbStore`]: the browser client's state in IndexedDB, so that edits made offline
//! survive a page reload.
//!
//! One database (default `eventsync`) with one object store, `clients`, holding one record per
//! (document, client): the encoded [`ClientState`] under the key `[documentId, clientId]`.
//!
//! Tabs: two tabs of one origin must never share a client id, or their `clientSeq`s would collide
//! and the server would drop one tab's edits as duplicates. Each open record is therefore held by
//! a Web Lock (`navigator.locks`) for as long as its client lives; the browser releases it when
//! the tab goes away. Opening a document takes a record nobody holds (one with pending edits
//! first, so they get sent), else starts a new client id. The number of records per document
//! stays at the number of tabs that were open at once.
//!
//! A connection ([`IndexedDbDirectory`]) holds one client id for all its documents; its marker
//! record says which of them have pending edits, so that the next page resumes a connection with
//! edits to send before one without.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{EventTarget, IdbDatabase, IdbFactory, IdbKeyRange, IdbOpenDbRequest, IdbRequest};

use crate::protocol::members::{FromJson, Members, Object, ToJson};
use crate::protocol::{write_json, Quoted};
use crate::queue::{decode, encode, ClientState, StoreError};

/// The database used when none is named.
pub const DEFAULT_DATABASE: &str = "eventsync";

const OBJECT_STORE: &str = "clients";
const DATABASE_VERSION: u32 = 1;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks`.
    type LockManager;

    #[wasm_bindgen(method, catch)]
    fn request(
        this: &LockManager,
        name: &str,
        options: &JsValue,
        callback: &Function,
    ) -> Result<Promise, JsValue>;

    /// An `IDBDatabase`, for the one method web-sys marks unstable.
    type RawDatabase;

    /// `IDBDatabase.transaction(store, mode, options)`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &RawDatabase,
        store: &str,
        mode: &str,
        options: &JsValue,
    ) -> Result<web_sys::IdbTransaction, JsValue>;
}

/// One document's client state in IndexedDB, held by this client alone while it lives.
pub struct IndexedDbStore {
    db: IdbDatabase,
    key: JsValue,
    client_id: String,
    /// For a connection's document: the connection's marker, rewritten when this document gains
    /// its first pending edit or loses its last.
    marker: Option<Rc<Marker>>,
    _lock: HeldLock,
}

impl std::fmt::Debug for IndexedDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedDbStore")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl IndexedDbStore {
    /// Opens `database` and takes a record of `document_id`: `client_id`'s when one is named
    /// (an error if another tab holds it), else a free one, else a new client's. Returns the
    /// store and the state saved in the record (`None` for a new client).
    pub async fn open(
        database: &str,
        document_id: &str,
        client_id: Option<&str>,
    ) -> Result<(IndexedDbStore, Option<ClientState>), StoreError> {
        let locks = lock_manager()?;
        let db = open_database(database).await?;
        let lock_name =
            |client: &str| write_json(&[database, document_id, client].as_slice().to_json());
        if let Some(client_id) = client_id {
            let lock = try_lock(&locks, &lock_name(client_id))
                .await?
                .ok_or_else(|| {
                    backend(format!(
                        "client id {} of document {} is open in another tab",
                        Quoted(client_id),
                        Quoted(document_id)
                    ))
                })?;
            let key = record_key(document_id, client_id);
            let saved = read_record(&db, &key).await?;
            let store = IndexedDbStore::new(db, key, client_id, lock);
            return Ok((store, saved));
        }
        // Records with pending edits first (so they get sent), then the most caught-up one.
        let mut saved = read_document_records(&db, document_id).await?;
        let rank = |state: &ClientState| {
            (
                state.pending.is_empty(),
                std::cmp::Reverse(state.applied_seq),
            )
        };
        crate::vec_map::sort_small(&mut saved, |a, b| rank(a) < rank(b));
        for state in saved {
            if let Some(lock) = try_lock(&locks, &lock_name(&state.client_id)).await? {
                let key = record_key(document_id, &state.client_id);
                let client_id = state.client_id.clone();
                return Ok((IndexedDbStore::new(db, key, &client_id, lock), Some(state)));
            }
        }
        let client_id = crate::reconnect::random_client_id();
        let lock = try_lock(&locks, &lock_name(&client_id))
            .await?
            .ok_or_else(|| backend("a new client id is locked already"))?;
        let key = record_key(document_id, &client_id);
        Ok((IndexedDbStore::new(db, key, &client_id, lock), None))
    }

    fn new(db: IdbDatabase, key: JsValue, client_id: &str, lock: HeldLock) -> Self {
        IndexedDbStore {
            db,
            key,
            client_id: client_id.to_owned(),
            marker: None,
            _lock: lock,
        }
    }

    /// The client id of the record this store holds.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Replaces the record; the future resolves once IndexedDB committed it (strict
    /// durability: flushed to disk, not only to the OS).
    pub fn save(&self, state: &ClientState) -> impl Future<Output = Result<(), StoreError>> {
        let value = JsValue::from_str(&encode(state));
        let db = self.db.clone();
        let key = self.key.clone();
        // The marker's put is queued in the same transaction, so it commits with the record.
        let marker = self
            .marker
            .as_ref()
            .and_then(|marker| marker.note(&state.document_id, !state.pending.is_empty()));
        async move {
            let options = js_sys::Object::new();
            Reflect::set(&options, &"durability".into(), &"strict".into()).map_err(js_failure)?;
            let transaction = db
                .unchecked_ref::<RawDatabase>()
                .transaction_with_options(OBJECT_STORE, "readwrite", &options)
                .map_err(js_failure)?;
            let store = transaction.object_store(OBJECT_STORE).map_err(js_failure)?;
            store.put_with_key(&value, &key).map_err(js_failure)?;
            if let Some((marker_key, marker_value)) = marker {
                store
                    .put_with_key(&marker_value, &marker_key)
                    .map_err(js_failure)?;
            }
            if settled(&transaction, "complete", &["error", "abort"]).await {
                Ok(())
            } else {
                Err(backend(format!(
                    "saving to IndexedDB failed: {}",
                    transaction
                        .error()
                        .map_or_else(|| "aborted".to_owned(), |e| e.message())
                )))
            }
        }
    }
}

/// The documents of one connection in IndexedDB: one client id for all of them, held by a Web
/// Lock while the connection lives, and a record per document (the same records a client of its
/// own uses, under the key `[documentId, clientId]`). The connection's client ids are remembered
/// under `["", clientId]` (no document has an empty id), so that the next page takes one back.
pub struct IndexedDbDirectory {
    db: IdbDatabase,
    database: String,
    client_id: String,
    marker: Rc<Marker>,
    _lock: HeldLock,
}

impl std::fmt::Debug for IndexedDbDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedDbDirectory")
            .field("database", &self.database)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The record that remembers a connection's client id, under `["", clientId]`: when it was last
/// taken and which of its documents have pending edits, so that the next page takes back a
/// connection with edits still to send before any other.
struct Marker {
    key: JsValue,
    client_id: String,
    used_at: f64,
    /// Sorted, without duplicates.
    pending: RefCell<Vec<String>>,
}

#[derive(Default)]
struct MarkerRecord {
    client_id: String,
    used_at: f64,
    /// The document ids, sorted (a set; a `Vec` costs less code than a `BTreeSet`).
    pending: Vec<String>,
}

impl ToJson for MarkerRecord {
    fn to_json(&self) -> serde_json::Value {
        Object::new()
            .with("clientId", &self.client_id)
            .with("usedAt", &self.used_at)
            .with("pending", &self.pending)
            .done()
    }
}

impl FromJson for MarkerRecord {
    fn from_json(value: serde_json::Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(value, "a client marker")?;
        Ok(MarkerRecord {
            client_id: m.required("clientId")?,
            used_at: m.required("usedAt")?,
            pending: m.required("pending")?,
        })
    }
}

impl Marker {
    fn value(&self) -> JsValue {
        let record = MarkerRecord {
            client_id: self.client_id.clone(),
            used_at: self.used_at,
            pending: self.pending.borrow().clone(),
        };
        JsValue::from_str(&write_json(&record.to_json()))
    }

    /// Records whether `document_id` has pending edits; the key and value to write when that
    /// changed the marker.
    fn note(&self, document_id: &str, has_pending: bool) -> Option<(JsValue, JsValue)> {
        let changed = {
            let mut pending = self.pending.borrow_mut();
            match (
                pending.binary_search_by(|p| p.as_str().cmp(document_id)),
                has_pending,
            ) {
                (Err(at), true) => {
                    pending.insert(at, document_id.to_owned());
                    true
                }
                (Ok(at), false) => {
                    pending.remove(at);
                    true
                }
                _ => false,
            }
        };
        changed.then(|| (self.key.clone(), self.value()))
    }
}

impl IndexedDbDirectory {
    /// Opens `database` for a connection: `client_id` when one is named (an error if another
    /// tab's connection holds it), else the client id of an earlier connection that no open tab
    /// holds, else a new one.
    pub async fn open(database: &str, client_id: Option<&str>) -> Result<Self, StoreError> {
        let locks = lock_manager()?;
        let db = open_database(database).await?;
        let lock_name = |client: &str| write_json(&[database, "", client].as_slice().to_json());
        let directory = |client_id: &str, lock, record: Option<MarkerRecord>| IndexedDbDirectory {
            db: db.clone(),
            database: database.to_owned(),
            client_id: client_id.to_owned(),
            marker: Rc::new(Marker {
                key: record_key("", client_id),
                client_id: client_id.to_owned(),
                used_at: js_sys::Date::now(),
                pending: RefCell::new({
                    let mut pending: Vec<String> = Vec::new();
                    for id in record.unwrap_or_default().pending {
                        if let Err(at) = pending.binary_search(&id) {
                            pending.insert(at, id);
                        }
                    }
                    pending
                }),
            }),
            _lock: lock,
        };
        if let Some(client_id) = client_id {
            let lock = try_lock(&locks, &lock_name(client_id))
                .await?
                .ok_or_else(|| {
                    backend(format!(
                        "client id {} is open in another tab's connection",
                        Quoted(client_id)
                    ))
                })?;
            let record = read_markers(&db)
                .await?
                .into_iter()
                .find(|record| record.client_id == client_id);
            let directory = directory(client_id, lock, record);
            directory.remember().await?;
            return Ok(directory);
        }
        // Connections with edits still to send first, then the one used last.
        let mut markers = read_markers(&db).await?;
        let rank = |r: &MarkerRecord| (!r.pending.is_empty(), r.used_at);
        crate::vec_map::sort_small(&mut markers, |a, b| rank(a) > rank(b));
        for record in markers {
            if let Some(lock) = try_lock(&locks, &lock_name(&record.client_id)).await? {
                let client_id = record.client_id.clone();
                let directory = directory(&client_id, lock, Some(record));
                directory.remember().await?;
                return Ok(directory);
            }
        }
        let client_id = crate::reconnect::random_client_id();
        let lock = try_lock(&locks, &lock_name(&client_id))
            .await?
            .ok_or_else(|| backend("a new client id is locked already"))?;
        let directory = directory(&client_id, lock, None);
        directory.remember().await?;
        Ok(directory)
    }

    /// The connection's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Writes the marker that remembers this connection's client id.
    async fn remember(&self) -> Result<(), StoreError> {
        let transaction = self
            .db
            .transaction_with_str_and_mode(OBJECT_STORE, web_sys::IdbTransactionMode::Readwrite)
            .map_err(js_failure)?;
        let store = transaction.object_store(OBJECT_STORE).map_err(js_failure)?;
        store
            .put_with_key(&self.marker.value(), &self.marker.key)
            .map_err(js_failure)?;
        if settled(&transaction, "complete", &["error", "abort"]).await {
            Ok(())
        } else {
            Err(backend("remembering the connection's client id failed"))
        }
    }

    /// Takes this connection's record of `document_id`; returns its store and what it holds
    /// (`None`: nothing yet).
    pub async fn open_document(
        &self,
        document_id: &str,
    ) -> Result<(IndexedDbStore, Option<ClientState>), StoreError> {
        let locks = lock_manager()?;
        let name = write_json(&[self.database.as_str(), document_id, &self.client_id].to_json());
        let lock = try_lock(&locks, &name).await?.ok_or_else(|| {
            backend(format!(
                "document {} of client {} is open in another tab",
                Quoted(document_id),
                Quoted(&self.client_id)
            ))
        })?;
        let key = record_key(document_id, &self.client_id);
        let saved = read_record(&self.db, &key).await?;
        let mut store = IndexedDbStore::new(self.db.clone(), key, &self.client_id, lock);
        store.marker = Some(self.marker.clone());
        Ok((store, saved))
    }
}

fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

/// A JavaScript exception as a store error.
fn js_failure(err: JsValue) -> StoreError {
    let message = err
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("{err:?}"));
    backend(message)
}

fn record_key(document_id: &str, client_id: &str) -> JsValue {
    Array::of2(&document_id.into(), &client_id.into()).into()
}

fn global_property(object: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(object, &name.into())
        .ok()
        .filter(|value| !value.is_undefined() && !value.is_null())
}

fn lock_manager() -> Result<LockManager, StoreError> {
    global_property(&js_sys::global(), "navigator")
        .and_then(|navigator| global_property(&navigator, "locks"))
        .map(JsCast::unchecked_into)
        .ok_or_else(|| {
            backend(
                "persistence needs the Web Locks API (navigator.locks): a browser page served \
                 over https or from localhost",
            )
        })
}

/// Resolves when `target` fires `success` (true) or one of `failures` (false).
async fn settled(target: &EventTarget, success: &str, failures: &[&str]) -> bool {
    let (sender, receiver) = oneshot::channel();
    let sender = Rc::new(RefCell::new(Some(sender)));
    let listener = |outcome: bool| {
        let sender = sender.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(sender) = sender.borrow_mut().take() {
                let _ = sender.send(outcome);
            }
        })
    };
    let on_success = listener(true);
    let on_failure = listener(false);
    let _ = target.add_event_listener_with_callback(success, on_success.as_ref().unchecked_ref());
    for failure in failures {
        let _ =
            target.add_event_listener_with_callback(failure, on_failure.as_ref().unchecked_ref());
    }
    let outcome = receiver.await.unwrap_or(false);
    let _ =
        target.remove_event_listener_with_callback(success, on_success.as_ref().unchecked_ref());
    for failure in failures {
        let _ = target
            .remove_event_listener_with_callback(failure, on_failure.as_ref().unchecked_ref());
    }
    outcome
}

/// The result of `request` once it succeeded.
async fn request_result(request: &IdbRequest) -> Result<JsValue, StoreError> {
    if settled(request, "success", &["error"]).await {
        request.result().map_err(js_failure)
    } else {
        let message = request
            .error()
            .ok()
            .flatten()
            .map_or_else(|| "request failed".to_owned(), |e| e.message());
        Err(backend(format!("IndexedDB: {message}")))
    }
}

async fn open_database(name: &str) -> Result<IdbDatabase, StoreError> {
    let factory: IdbFactory = global_property(&js_sys::global(), "indexedDB")
        .ok_or_else(|| backend("this environment has no IndexedDB"))?
        .unchecked_into();
    let request: IdbOpenDbRequest = factory
        .open_with_u32(name, DATABASE_VERSION)
        .map_err(js_failure)?;
    // A new database gets its object store while the upgrade runs (it must happen in there).
    let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new({
        let request = request.clone();
        move |_| {
            if let Ok(db) = request.result() {
                let db: IdbDatabase = db.unchecked_into();
                if !db.object_store_names().contains(OBJECT_STORE) {
                    let _ = db.create_object_store(OBJECT_STORE);
                }
            }
        }
    });
    request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let result = request_result(&request).await;
    request.set_onupgradeneeded(None);
    Ok(result?.unchecked_into())
}

fn read_only(db: &IdbDatabase) -> Result<web_sys::IdbObjectStore, StoreError> {
    db.transaction_with_str(OBJECT_STORE)
        .and_then(|transaction| transaction.object_store(OBJECT_STORE))
        .map_err(js_failure)
}

/// Every connection's marker that this version can read (others are left alone).
async fn read_markers(db: &IdbDatabase) -> Result<Vec<MarkerRecord>, StoreError> {
    let range = IdbKeyRange::bound(
        &Array::of2(&"".into(), &"".into()),
        &Array::of2(&"".into(), &Array::new()),
    )
    .map_err(js_failure)?;
    let values = request_result(
        &read_only(db)?
            .get_all_with_key(&range)
            .map_err(js_failure)?,
    )
    .await?;
    Ok(Array::from(&values)
        .iter()
        .filter_map(|value| {
            let text = value.as_string()?;
            crate::protocol::parse_json(&text)
                .and_then(MarkerRecord::from_json)
                .ok()
        })
        .collect())
}

fn decode_record(value: &JsValue) -> Result<ClientState, StoreError> {
    let text = value
        .as_string()
        .ok_or_else(|| StoreError::Corrupt("a record is not a string".into()))?;
    decode(&text)
}

async fn read_record(db: &IdbDatabase, key: &JsValue) -> Result<Option<ClientState>, StoreError> {
    let value = request_result(&read_only(db)?.get(key).map_err(js_failure)?).await?;
    if value.is_undefined() {
        return Ok(None);
    }
    decode_record(&value).map(Some)
}

/// Every readable record of `document_id`. A corrupt record is skipped with a console warning
/// rather than failing the app for good.
async fn read_document_records(
    db: &IdbDatabase,
    document_id: &str,
) -> Result<Vec<ClientState>, StoreError> {
    // Arrays sort after strings in IndexedDB's key order: [doc, []] is above every [doc, id].
    let range = IdbKeyRange::bound(
        &Array::of2(&document_id.into(), &"".into()),
        &Array::of2(&document_id.into(), &Array::new()),
    )
    .map_err(js_failure)?;
    let values = request_result(
        &read_only(db)?
            .get_all_with_key(&range)
            .map_err(js_failure)?,
    )
    .await?;
    let mut states = Vec::new();
    for value in Array::from(&values).iter() {
        match decode_record(&value) {
            Ok(state) if state.document_id == document_id => states.push(state),
            Ok(_) => {}
            Err(err) => web_sys::console::warn_1(
                &format!("eventsync: skipping an unreadable IndexedDB record: {err}").into(),
            ),
        }
    }
    Ok(states)
}

/// A Web Lock held until this value is dropped (or the page goes away).
struct HeldLock {
    release: Function,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = self.release.call0(&JsValue::NULL);
    }
}

/// Takes the lock `name` if nobody holds it (`None` if someone does).
async fn try_lock(locks: &LockManager, name: &str) -> Result<Option<HeldLock>, StoreError> {
    let (sender, receiver) = oneshot::channel::<Option<Function>>();
    // The browser calls this with the lock (or null when it is taken) and holds the lock until
    // the returned promise settles: it settles when `HeldLock` drops.
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        if lock.is_null() {
            let _ = sender.send(None);
            return JsValue::UNDEFINED;
        }
        let mut release = None;
        let held = Promise::new(&mut |resolve, _| release = Some(resolve));
        let _ = sender.send(release);
        held.into()
    });
    let options = js_sys::Object::new();
    Reflect::set(&options, &"ifAvailable".into(), &true.into()).map_err(js_failure)?;
    let _ = locks
        .request(name, &options, callback.unchecked_ref())
        .map_err(js_failure)?;
    let release = receiver
        .await
        .map_err(|_| backend("the lock request was dropped"))?;
    Ok(release.map(|release| HeldLock { release }))
}
