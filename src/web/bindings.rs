//! The `SyncClient` class JavaScript sees. Conversion only: every method converts its arguments
//! once, calls the driver ([`super::driver::SyncClient`]) and converts the result once.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::driver::{self, ClientEvent};
use super::error::{client_error, invalid_argument};
use crate::conflict::ConflictPolicy;
use crate::reconnect::Backoff;
use crate::session::{ConnectionStatus, SessionEvent};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `new SyncClient(url, documentId, options)` and `SyncClient.open`; every field is
 * optional. */
export interface SyncOptions {
  /** This client's stable id (default: the persisted one, else a new random one). */
  clientId?: string;
  /** Keep the offline queue, the last document and the state vector in IndexedDB, so that edits
   * made offline survive a reload (default false). Needs `await SyncClient.open(...)`, IndexedDB
   * and the Web Locks API (a page served over https or from localhost). Each tab holds its own
   * record; a new tab takes over a record no open tab holds, so queued edits are sent. */
  persist?: boolean;
  /** The IndexedDB database `persist` uses (default `"eventsync"`). */
  database?: string;
  /** An access token, sent in `hello`. */
  token?: string;
  /** How true conflicts are resolved when rebasing local edits (default `"serverWins"`). */
  conflictPolicy?: "serverWins" | "clientWins";
  /** A `sync` or `submit` unanswered this long is sent again (default 10000). */
  requestTimeoutMs?: number;
  /** A connection silent this long is closed and reopened (default 30000). */
  idleTimeoutMs?: number;
  /** A `ping` is sent after this long without traffic (default 15000). */
  pingIntervalMs?: number;
  /** At most this many edits per `submit` (default 1000). */
  maxBatch?: number;
  /** The first reconnect wait (default 250). */
  reconnectInitialMs?: number;
  /** The longest reconnect wait (default 30000). */
  reconnectMaxMs?: number;
}

/** Per client id, the highest `sequenceNum` of its events applied (what `sync` sends). */
export type StateVector = Record<string, number>;

/** Options of `syncState`, `flush` and `saved`. */
export interface WaitOptions {
  /** Reject with the code `timeout` when this many milliseconds pass first (default: wait as
   * long as it takes; the client keeps reconnecting meanwhile). */
  timeoutMs?: number;
}

/** The `code` of every error the client throws or rejects with: the protocol's codes, and
 * `closed` (the client or document was closed), `timeout` (a `timeoutMs` passed),
 * `invalid_argument` (a bad URL, document id, patch or option) and `storage` (IndexedDB failed). */
export type ClientErrorCode = ErrorCode | "closed" | "timeout" | "invalid_argument" | "storage";

/** What the client throws and rejects with (`TypeError` for arguments that do not convert, with
 * the code `invalid_argument`). */
export interface EventsyncError extends Error {
  code: ClientErrorCode;
}

/** Connection status. */
export type SyncStatus = "offline" | "connecting" | "online" | "reconnecting";

/** One RFC 6902 operation. */
export type PatchOp =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

/** An event of the document's log, as the server wrote it. */
export interface LogEvent {
  eventId: string;
  sequenceNum: number;
  clientId: string;
  clientSeq?: number;
  operation: "create" | "update" | "delete";
  [field: string]: unknown;
}

/** The protocol's error codes (docs/PROTOCOL.md); `"unknown"` stands for codes newer than this
 * package. */
export type ErrorCode =
  | "malformed_frame" | "unexpected_message" | "unsupported_version" | "invalid_patch"
  | "conflict" | "stale_base" | "invalid_sequence" | "document_state" | "unknown_document"
  | "unauthorized" | "forbidden" | "client_mismatch" | "too_large" | "rate_limited" | "internal"
  | "unknown";

/** Why a local edit could not simply be carried over a remote change when rebasing. */
export type ConflictKind =
  | "samePath" | "ancestorOverwrite" | "parentRemoved" | "parentReplaced" | "testInvalidated";

/** Another peer's presence on a document (a document of a `SyncConnection`). */
export interface PresencePeer {
  /** The peer's client id. */
  clientId: string;
  /** What it shows (any JSON value but `null`). */
  state: unknown;
  /** When it first published presence on the document (RFC 3339). */
  since?: string;
}

/** What `onEvent` callbacks receive. */
export type SyncEvent =
  | { type: "status"; status: SyncStatus; reason?: string; retryInMs?: number }
  | { type: "applied"; event: LogEvent; own: boolean }
  | { type: "synced"; sequenceNum: number }
  | { type: "acked"; clientSeq: number; sequenceNum: number }
  | { type: "editRejected"; clientSeq: number; code: ErrorCode; message: string }
  | { type: "conflict"; clientSeq: number; kind: ConflictKind; path: string }
  | { type: "presence"; others: PresencePeer[] }
  | { type: "error"; code: ErrorCode | null; message: string };
"#;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Options {
    pub client_id: Option<String>,
    #[serde(default)]
    pub persist: bool,
    pub database: Option<String>,
    pub token: Option<String>,
    conflict_policy: Option<Policy>,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    max_batch: Option<usize>,
    reconnect_initial_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum Policy {
    ServerWins,
    ClientWins,
}

/// A live, offline-capable replica of one document on an eventsync server.
#[wasm_bindgen(js_name = SyncClient)]
pub struct JsSyncClient {
    inner: driver::SyncClient,
}

impl From<driver::SyncClient> for JsSyncClient {
    fn from(inner: driver::SyncClient) -> Self {
        JsSyncClient { inner }
    }
}

#[wasm_bindgen(js_class = SyncClient)]
impl JsSyncClient {
    /// Connects to `url` (`ws://host:port`) for `documentId` and returns at once: edits work
    /// offline from the first moment. Keeps its state in memory; `SyncClient.open` can persist it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        #[wasm_bindgen(js_name = documentId)] document_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SyncOptions")] options: JsValue,
    ) -> Result<JsSyncClient, JsValue> {
        let builder = builder(url, document_id, options)?;
        let inner = builder.connect().map_err(client_error)?;
        Ok(JsSyncClient { inner })
    }

    /// Like `new SyncClient(...)`, and with `persist: true` first loads what the last page saved
    /// in IndexedDB (edits made offline before a reload are sent once online).
    pub async fn open(
        url: String,
        #[wasm_bindgen(js_name = documentId)] document_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SyncOptions")] options: JsValue,
    ) -> Result<JsSyncClient, JsValue> {
        let builder = builder(url, document_id, options)?;
        let inner = builder.open().await.map_err(client_error)?;
        Ok(JsSyncClient { inner })
    }

    /// Calls `callback` with every event (a plain object, see `SyncEvent`). The events of one
    /// step (say, a catch-up page of thousands) cross into JavaScript as one array.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: SyncEvent) => void")]
        callback: js_sys::Function,
    ) {
        self.inner.on_events(move |events| {
            let events = events_to_js(events);
            for event in events.iter() {
                if let Err(thrown) = callback.call1(&JsValue::NULL, &event) {
                    web_sys::console::error_2(
                        &"eventsync: an onEvent callback threw".into(),
                        &thrown,
                    );
                }
            }
        });
    }

    /// Calls `callback` once per step with that step's events, in order (a catch-up page is
    /// one call): re-render once per batch.
    #[wasm_bindgen(js_name = onEvents)]
    pub fn on_events(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(events: SyncEvent[]) => void")]
        callback: js_sys::Function,
    ) {
        self.inner.on_events(move |events| {
            if let Err(thrown) = callback.call1(&JsValue::NULL, &events_to_js(events)) {
                web_sys::console::error_2(&"eventsync: an onEvents callback threw".into(), &thrown);
            }
        });
    }

    /// Shows `state` (any JSON value: a cursor, a selection, a name) to the other peers of the
    /// document: presence, never stored. Sent at most every 100 ms (the latest wins), kept while
    /// offline and published again after every reconnect; `null` clears it. Only a document of
    /// a `SyncConnection` has presence: a client of its own throws (`code`
    /// `"unexpected_message"`), and so does a state over 4096 bytes of JSON (`"too_large"`).
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(
        &self,
        #[wasm_bindgen(unchecked_param_type = "unknown")] state: JsValue,
    ) -> Result<(), JsValue> {
        let state: Value =
            serde_wasm_bindgen::from_value(state).map_err(|e| invalid_argument("state", e))?;
        self.inner.set_presence(state).map_err(client_error)
    }

    /// Stops showing presence on the document.
    #[wasm_bindgen(js_name = clearPresence)]
    pub fn clear_presence(&self) -> Result<(), JsValue> {
        self.inner.clear_presence().map_err(client_error)
    }

    /// The other peers with presence on the document, in client id order (empty while the
    /// document is not open on the server). A fresh copy each call.
    #[wasm_bindgen(unchecked_return_type = "PresencePeer[]")]
    pub fn others(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.others())
    }

    /// Calls `callback` with all the other peers (see `others()`) each time someone joins,
    /// moves or leaves.
    #[wasm_bindgen(js_name = onPresence)]
    pub fn on_presence(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(others: PresencePeer[]) => void")]
        callback: js_sys::Function,
    ) {
        self.inner.on_presence(move |others| {
            let others = to_js(&others).unwrap_or_else(|_| js_sys::Array::new().into());
            if let Err(thrown) = callback.call1(&JsValue::NULL, &others) {
                web_sys::console::error_2(
                    &"eventsync: an onPresence callback threw".into(),
                    &thrown,
                );
            }
        });
    }

    /// Resolves once the client is online and has caught up with the server's log. With
    /// `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
    #[wasm_bindgen(js_name = syncState, unchecked_return_type = "Promise<void>")]
    pub fn sync_state(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "WaitOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let timeout = wait_options(options);
        void_promise(async move { driver::within(timeout?, inner.sync_state()).await })
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    /// With `{ timeoutMs }`, rejects with the code `timeout` when that passes first (the edits
    /// stay queued).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "WaitOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let timeout = wait_options(options);
        void_promise(async move { driver::within(timeout?, inner.flush()).await })
    }

    /// Resolves once every local edit made so far is saved in IndexedDB (with `persist`; at
    /// once otherwise). `edit` applies at once and the commit follows a moment later. With
    /// `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn saved(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "WaitOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let timeout = wait_options(options);
        void_promise(async move { driver::within(timeout?, inner.saved()).await })
    }

    /// Records that events of `clientId` up to `sequenceNum` are known.
    #[wasm_bindgen(js_name = updateStateVector)]
    pub fn update_state_vector(
        &self,
        #[wasm_bindgen(js_name = clientId)] client_id: &str,
        #[wasm_bindgen(js_name = sequenceNum)] sequence_num: f64,
    ) -> Result<(), JsValue> {
        let sequence_num = to_u64(sequence_num, "sequenceNum")?;
        self.inner.update_state_vector(client_id, sequence_num);
        Ok(())
    }

    /// The document as the app sees it (confirmed plus pending edits); `null` if it does not
    /// exist. A fresh copy each call.
    #[wasm_bindgen(unchecked_return_type = "unknown")]
    pub fn document(&self) -> Result<JsValue, JsValue> {
        self.inner.with_document(|document| match document {
            Some(document) => to_js(document),
            None => Ok(JsValue::NULL),
        })
    }

    /// Applies an RFC 6902 patch (an array of operations, all in one call) locally at once and
    /// queues it for the server. Returns its `clientSeq`. Throws, changing nothing, when the
    /// patch is malformed or does not apply.
    pub fn edit(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PatchOp[]")] patch: JsValue,
    ) -> Result<f64, JsValue> {
        let patch: Vec<json_patch::PatchOperation> =
            serde_wasm_bindgen::from_value(patch).map_err(|e| invalid_argument("patch", e))?;
        let client_seq = self.inner.edit(patch).map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Creates the document (it must not exist). Returns the edit's `clientSeq`.
    pub fn create(
        &self,
        #[wasm_bindgen(unchecked_param_type = "unknown")] document: JsValue,
    ) -> Result<f64, JsValue> {
        let document: Value = serde_wasm_bindgen::from_value(document)
            .map_err(|e| invalid_argument("document", e))?;
        let client_seq = self.inner.create(document).map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Deletes the document. Returns the edit's `clientSeq`.
    pub fn delete(&self) -> Result<f64, JsValue> {
        let client_seq = self.inner.delete().map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Connection status.
    #[wasm_bindgen(unchecked_return_type = "SyncStatus")]
    pub fn status(&self) -> String {
        status_name(self.inner.status()).to_owned()
    }

    /// Local edits not yet in the server's log.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> usize {
        self.inner.pending_count()
    }

    /// The `sequenceNum` of the last event applied.
    #[wasm_bindgen(js_name = appliedSeq)]
    pub fn applied_seq(&self) -> f64 {
        self.inner.applied_seq() as f64
    }

    /// The state vector: per client id, the highest `sequenceNum` of its events applied here.
    #[wasm_bindgen(js_name = stateVector, unchecked_return_type = "StateVector")]
    pub fn state_vector(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.state_vector())
    }

    /// This client's id.
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.inner.client_id()
    }

    /// Closes the connection and stops reconnecting; waiting promises reject.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// The driver's builder for `new SyncClient(url, documentId, options)` and `SyncClient.open`.
fn builder(
    url: String,
    document_id: String,
    options: JsValue,
) -> Result<driver::SyncClientBuilder, JsValue> {
    let options = Options::from_js(options)?;
    Ok(apply_options!(
        driver::SyncClient::builder(url, document_id),
        options
    ))
}

/// Sets what `options` says on a client's or a connection's builder (the same settings).
macro_rules! apply_options {
    ($builder:expr, $options:expr) => {{
        let options = $options;
        let mut builder = $builder;
        if let Some(client_id) = options.client_id.clone() {
            builder = builder.client_id(client_id);
        }
        if let Some(token) = options.token.clone() {
            builder = builder.token(token);
        }
        let timers = options.timers();
        builder = builder
            .conflict_policy(options.policy())
            .backoff(options.backoff())
            .session_config(move |config| timers.apply(config));
        if options.persist {
            builder = builder.indexed_db(options.database);
        }
        builder
    }};
}
pub(super) use apply_options;

impl Options {
    /// `SyncOptions` from JavaScript (`undefined` and `null`: the defaults).
    pub(super) fn from_js(options: JsValue) -> Result<Options, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Ok(Options::default());
        }
        serde_wasm_bindgen::from_value(options).map_err(|e| invalid_argument("options", e))
    }

    pub(super) fn policy(&self) -> ConflictPolicy {
        match self.conflict_policy {
            Some(Policy::ClientWins) => ConflictPolicy::ClientWins,
            Some(Policy::ServerWins) | None => ConflictPolicy::ServerWins,
        }
    }

    pub(super) fn backoff(&self) -> Backoff {
        let mut backoff = Backoff::default();
        if let Some(ms) = self.reconnect_initial_ms {
            backoff.initial = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.reconnect_max_ms {
            backoff.max = std::time::Duration::from_millis(ms);
        }
        backoff
    }

    pub(super) fn timers(&self) -> Timers {
        Timers {
            request_timeout_ms: self.request_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            ping_interval_ms: self.ping_interval_ms,
            max_batch: self.max_batch,
        }
    }
}

/// The session settings of `SyncOptions`.
#[derive(Clone, Copy)]
pub(super) struct Timers {
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    max_batch: Option<usize>,
}

impl Timers {
    pub(super) fn apply(&self, config: &mut crate::session::SessionConfig) {
        if let Some(ms) = self.request_timeout_ms {
            config.request_timeout_ms = ms;
        }
        if let Some(ms) = self.idle_timeout_ms {
            config.idle_timeout_ms = ms;
        }
        if let Some(ms) = self.ping_interval_ms {
            config.ping_interval_ms = ms;
        }
        if let Some(max) = self.max_batch {
            config.max_batch = max;
        }
    }
}

/// A `Promise<void>` settled by `done`: resolved, or rejected with the client error.
/// The `timeoutMs` of a `WaitOptions` argument (`undefined`: none).
fn wait_options(options: JsValue) -> Result<Option<u32>, driver::ClientError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct WaitOptions {
        timeout_ms: Option<u32>,
    }
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    serde_wasm_bindgen::from_value::<WaitOptions>(options)
        .map(|o| o.timeout_ms)
        .map_err(|err| driver::ClientError::InvalidArgument(format!("invalid wait options: {err}")))
}

pub(super) fn void_promise(
    done: impl std::future::Future<Output = Result<(), driver::ClientError>> + 'static,
) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        done.await.map_err(client_error)?;
        Ok(JsValue::UNDEFINED)
    })
}

fn to_u64(number: f64, what: &str) -> Result<u64, JsValue> {
    if number >= 0.0 && number.fract() == 0.0 && number <= 9_007_199_254_740_991.0 {
        Ok(number as u64)
    } else {
        Err(invalid_argument(
            what,
            format!("{number} is not a non-negative integer"),
        ))
    }
}

/// A Rust value as a plain JavaScript value (objects, not `Map`s), converted once.
fn to_js(value: &impl Serialize) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| super::error::js_error("EventsyncError", e))
}

pub(super) fn status_name(status: ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::Offline => "offline",
        ConnectionStatus::Connecting => "connecting",
        ConnectionStatus::Online => "online",
        ConnectionStatus::Reconnecting => "reconnecting",
    }
}

/// Events as an array of plain objects (`SyncEvent[]`), converted in one go.
fn events_to_js(events: &[ClientEvent]) -> js_sys::Array {
    let values: Vec<Value> = events.iter().map(event_value).collect();
    to_js(&values).map_or_else(|_| js_sys::Array::new(), JsCast::unchecked_into)
}

/// An event as JSON (`SyncEvent` in the TypeScript types).
fn event_value(event: &ClientEvent) -> Value {
    match event {
        SessionEvent::Status(status) => json!({"type": "status", "status": status_name(*status)}),
        SessionEvent::Reconnecting {
            reason,
            retry_in_ms,
        } => json!({
            "type": "status", "status": "reconnecting", "reason": reason, "retryInMs": retry_in_ms
        }),
        SessionEvent::Applied { event, own } => {
            json!({"type": "applied", "event": event, "own": own})
        }
        SessionEvent::Synced { sequence_num } => {
            json!({"type": "synced", "sequenceNum": sequence_num})
        }
        SessionEvent::Acked {
            client_seq,
            sequence_num,
        } => json!({"type": "acked", "clientSeq": client_seq, "sequenceNum": sequence_num}),
        SessionEvent::EditRejected {
            client_seq,
            code,
            message,
        } => json!({
            "type": "editRejected", "clientSeq": client_seq, "code": code, "message": message
        }),
        SessionEvent::Conflict {
            client_seq,
            conflict,
        } => {
            let kind = format!("{:?}", conflict.kind);
            let kind = kind[..1].to_lowercase() + &kind[1..];
            json!({
                "type": "conflict", "clientSeq": client_seq, "kind": kind, "path": conflict.path
            })
        }
        SessionEvent::Presence(others) => json!({"type": "presence", "others": others}),
        SessionEvent::Error { code, message } => {
            json!({"type": "error", "code": code, "message": message})
        }
    }
}
