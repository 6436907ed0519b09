//! The `SyncClient` class JavaScript sees. Conversion only: every method converts its arguments
//! once, calls the driver ([`super::driver::SyncClient`]) and converts the result once.
//!
//! Its TypeScript declaration is written out below rather than generated: `SyncClient<T>` is
//! generic over the document's type, which wasm-bindgen cannot declare for a class. The JS tests
//! check that the declaration names every method the class has (js/test/typed.test.mjs).

use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{self, fields_from_js, from_js};
use super::driver::{self, ClientEvent};
use super::error::{client_error, invalid_argument, to_u64};
use crate::conflict::{Conflict, ConflictKind, ConflictPolicy, Resolution};
use crate::protocol::members::{Members, Object, ToJson};
use crate::protocol::PresencePeer;
use crate::reconnect::Backoff;
use crate::session::{ConnectionStatus, SessionEvent};

#[derive(Default)]
pub(super) struct Options {
    pub client_id: Option<String>,
    pub persist: bool,
    pub database: Option<String>,
    pub token: Option<String>,
    /// `"serverWins"`, `"clientWins"` or a `ConflictResolver` function (checked by
    /// [`Options::from_js`]), kept as it came (read apart from the other fields).
    conflict_policy: JsValue,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    max_batch: Option<usize>,
    undo_capture_ms: Option<u64>,
    undo_limit: Option<usize>,
    reconnect_initial_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
}

/// A live, offline-capable replica of one document on an eventsync server. (Its TypeScript
/// declaration, generic over the document's type, is the hand-written one in `TYPES`.)
#[wasm_bindgen(js_name = SyncClient, skip_typescript)]
pub struct JsSyncClient {
    pub(super) inner: driver::SyncClient,
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
        options: JsValue,
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
        options: JsValue,
    ) -> Result<JsSyncClient, JsValue> {
        let builder = builder(url, document_id, options)?;
        let inner = builder.open().await.map_err(client_error)?;
        Ok(JsSyncClient { inner })
    }

    /// Calls `callback` with every event (a plain object, see `SyncEvent`), until the function
    /// it returns is called. The events of one step (say, a catch-up page of thousands) cross
    /// into JavaScript as one array.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: js_sys::Function) -> js_sys::Function {
        unsubscribe(self.inner.on_events(move |events| {
            let events = events_to_js(events);
            for event in events.iter() {
                if let Err(thrown) = callback.call1(&JsValue::NULL, &event) {
                    web_sys::console::error_2(
                        &"eventsync: an onEvent callback threw".into(),
                        &thrown,
                    );
                }
            }
        }))
    }

    /// Calls `callback` once per step with that step's events, in order (a catch-up page is
    /// one call): re-render once per batch. Until the function it returns is called.
    #[wasm_bindgen(js_name = onEvents)]
    pub fn on_events(&self, callback: js_sys::Function) -> js_sys::Function {
        unsubscribe(self.inner.on_events(move |events| {
            if let Err(thrown) = callback.call1(&JsValue::NULL, &events_to_js(events)) {
                web_sys::console::error_2(&"eventsync: an onEvents callback threw".into(), &thrown);
            }
        }))
    }

    /// Shows `state` (any JSON value: a cursor, a selection, a name) to the other peers of the
    /// document: presence, never stored. Sent at most every 100 ms (the latest wins), kept while
    /// offline and published again after every reconnect; `null` clears it. Only a document of
    /// a `SyncConnection` has presence: a client of its own throws (`code`
    /// `"unexpected_message"`), and so does a state over 4096 bytes of JSON (`"too_large"`).
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(&self, state: JsValue) -> Result<(), JsValue> {
        let state = from_js(&state).map_err(|e| invalid_argument("state", e))?;
        self.inner.set_presence(state).map_err(client_error)
    }

    /// Stops showing presence on the document.
    #[wasm_bindgen(js_name = clearPresence)]
    pub fn clear_presence(&self) -> Result<(), JsValue> {
        self.inner.clear_presence().map_err(client_error)
    }

    /// The other peers with presence on the document, in client id order (empty while the
    /// document is not open on the server). A fresh copy each call.
    pub fn others(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.others().to_json())
    }

    /// Calls `callback` with all the other peers (see `others()`) each time someone joins,
    /// moves or leaves, until the function it returns is called (`peers_to_js`: a peer whose
    /// state JavaScript cannot hold is left out and logged).
    #[wasm_bindgen(js_name = onPresence)]
    pub fn on_presence(&self, callback: js_sys::Function) -> js_sys::Function {
        unsubscribe(self.inner.on_presence(move |others| {
            if let Err(thrown) = callback.call1(&JsValue::NULL, &peers_to_js(others)) {
                web_sys::console::error_2(
                    &"eventsync: an onPresence callback threw".into(),
                    &thrown,
                );
            }
        }))
    }

    /// Resolves once the client is online and has caught up with the server's log. With
    /// `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
    #[wasm_bindgen(js_name = syncState)]
    pub fn sync_state(&self, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wait_promise(options, Box::pin(async move { inner.sync_state().await }))
    }

    /// Resolves once every local edit made so far is in the server's log (or was rejected).
    /// With `{ timeoutMs }`, rejects with the code `timeout` when that passes first (the edits
    /// stay queued).
    pub fn flush(&self, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wait_promise(options, Box::pin(async move { inner.flush().await }))
    }

    /// Resolves once every local edit made so far is saved in IndexedDB (with `persist`; at
    /// once otherwise). `edit` applies at once and the commit follows a moment later. With
    /// `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
    pub fn saved(&self, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wait_promise(options, Box::pin(async move { inner.saved().await }))
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
    pub fn document(&self) -> Result<JsValue, JsValue> {
        self.inner.with_document(|document| match document {
            Some(document) => to_js(document),
            None => Ok(JsValue::NULL),
        })
    }

    /// Applies an RFC 6902 patch (an array of operations, all in one call) locally at once and
    /// queues it for the server. Returns its `clientSeq`. Throws, changing nothing, when the
    /// patch is malformed or does not apply.
    pub fn edit(&self, patch: JsValue) -> Result<f64, JsValue> {
        // Read as JSON first, like every other JSON argument: the operations are then parsed by
        // the code that parses them everywhere else rather than by a copy of it for JavaScript
        // values (about 19 KB of wasm).
        let patch = from_js(&patch).map_err(|e| invalid_argument("patch", e))?;
        let patch = crate::diff::read_patch(patch).map_err(|e| invalid_argument("patch", e))?;
        let client_seq = self.inner.edit(patch).map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Creates the document (it must not exist). Returns the edit's `clientSeq`.
    pub fn create(&self, document: JsValue) -> Result<f64, JsValue> {
        let document = from_js(&document).map_err(|e| invalid_argument("document", e))?;
        let client_seq = self.inner.create(document).map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Deletes the document. Returns the edit's `clientSeq`.
    pub fn delete(&self) -> Result<f64, JsValue> {
        let client_seq = self.inner.delete().map_err(client_error)?;
        Ok(client_seq as f64)
    }

    /// Connection status.
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
    #[wasm_bindgen(js_name = stateVector)]
    pub fn state_vector(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.state_vector().to_json())
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
        if let Some(resolve) = options.resolver() {
            builder = builder.conflict_resolver(resolve);
        }
        if options.persist {
            builder = builder.indexed_db(options.database);
        }
        builder
    }};
}
pub(super) use apply_options;

impl Options {
    /// `SyncOptions` from JavaScript (`undefined` and `null`: the defaults).
    /// The fields read from JavaScript (all but `conflictPolicy`, which is kept as it came).
    const FIELDS: &'static [&'static str] = &[
        "clientId",
        "persist",
        "database",
        "token",
        "requestTimeoutMs",
        "idleTimeoutMs",
        "pingIntervalMs",
        "maxBatch",
        "undoCaptureMs",
        "undoLimit",
        "reconnectInitialMs",
        "reconnectMaxMs",
    ];

    pub(super) fn from_js(options: JsValue) -> Result<Options, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Ok(Options::default());
        }
        let fields = fields_from_js(&options, Options::FIELDS)
            .map_err(|e| invalid_argument("options", e))?;
        let read = |fields| -> Result<Options, crate::protocol::JsonError> {
            let mut m = Members::of(fields, "options")?;
            Ok(Options {
                client_id: m.optional("clientId")?,
                persist: m.or_default("persist")?,
                database: m.optional("database")?,
                token: m.optional("token")?,
                conflict_policy: js_sys::Reflect::get(&options, &"conflictPolicy".into())
                    .unwrap_or_default(),
                request_timeout_ms: m.optional("requestTimeoutMs")?,
                idle_timeout_ms: m.optional("idleTimeoutMs")?,
                ping_interval_ms: m.optional("pingIntervalMs")?,
                max_batch: m.optional("maxBatch")?,
                undo_capture_ms: m.optional("undoCaptureMs")?,
                undo_limit: m.optional("undoLimit")?,
                reconnect_initial_ms: m.optional("reconnectInitialMs")?,
                reconnect_max_ms: m.optional("reconnectMaxMs")?,
            })
        };
        let options = read(fields).map_err(|e| invalid_argument("options", e))?;
        let policy = &options.conflict_policy;
        let named = matches!(
            policy.as_string().as_deref(),
            Some("serverWins" | "clientWins")
        );
        if !(named || policy.is_function() || policy.is_undefined() || policy.is_null()) {
            let message = format!(
                "conflictPolicy is {}, not \"serverWins\", \"clientWins\" or a function",
                describe(policy)
            );
            return Err(invalid_argument("options", message));
        }
        Ok(options)
    }

    pub(super) fn policy(&self) -> ConflictPolicy {
        match self.conflict_policy.as_string().as_deref() {
            Some("clientWins") => ConflictPolicy::ClientWins,
            _ => ConflictPolicy::ServerWins,
        }
    }

    /// `conflictPolicy` when it is a function: a resolver that asks it.
    pub(super) fn resolver(
        &self,
    ) -> Option<impl Fn(&Conflict) -> Result<Resolution, String> + 'static> {
        let function = self.conflict_policy.dyn_ref::<js_sys::Function>()?.clone();
        Some(move |conflict: &Conflict| resolve_with(&function, conflict))
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
            undo_capture_ms: self.undo_capture_ms,
            undo_limit: self.undo_limit,
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
    undo_capture_ms: Option<u64>,
    undo_limit: Option<usize>,
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
        if let Some(ms) = self.undo_capture_ms {
            config.undo.capture_ms = ms;
        }
        if let Some(limit) = self.undo_limit {
            config.undo.limit = limit;
        }
    }
}

/// A `Promise<void>` settled by `done`: resolved, or rejected with the client error.
/// The `timeoutMs` of a `WaitOptions` argument (`undefined`: none).
fn wait_options(options: JsValue) -> Result<Option<u32>, driver::ClientError> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    fields_from_js(&options, &["timeoutMs"])
        .and_then(|fields| {
            let read = |fields| Members::of(fields, "wait options")?.optional("timeoutMs");
            read(fields).map_err(|e: crate::protocol::JsonError| e.to_string())
        })
        .map_err(|err| driver::ClientError::InvalidArgument(format!("invalid wait options: {err}")))
}

pub(super) fn void_promise(
    done: impl std::future::Future<Output = Result<(), driver::ClientError>> + 'static,
) -> js_sys::Promise {
    void_promise_boxed(Box::pin(done))
}

/// `syncState`, `flush` and `saved`: `wait` bounded by `{ timeoutMs }`, one copy of the timeout
/// race for the three (issue 17).
fn wait_promise(
    options: JsValue,
    wait: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), driver::ClientError>>>>,
) -> js_sys::Promise {
    let timeout = wait_options(options);
    void_promise(async move { driver::within(timeout?, wait).await })
}

/// [`void_promise`]'s promise, compiled once for every future.
fn void_promise_boxed(
    done: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), driver::ClientError>>>>,
) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        done.await.map_err(client_error)?;
        Ok(JsValue::UNDEFINED)
    })
}

/// JSON as a plain JavaScript value (objects, not `Map`s), converted once; an integer that a
/// JavaScript number cannot hold is an error with the code `unsafe_integer`.
pub(super) fn to_js(value: &Value) -> Result<JsValue, JsValue> {
    convert::to_js(value).map_err(super::error::unsafe_integer)
}

/// A subscription as the function that cancels it (what `onEvent` and its kin return). The
/// function is JavaScript's to collect; it holds the client weakly.
fn unsubscribe(subscription: driver::Subscription) -> js_sys::Function {
    Closure::<dyn Fn()>::new(move || subscription.cancel())
        .into_js_value()
        .unchecked_into()
}

/// Asks a `ConflictResolver` function about `conflict` (as a `Conflict` object) and reads its
/// answer (a `Resolution`); `Err` says what went wrong.
fn resolve_with(function: &js_sys::Function, conflict: &Conflict) -> Result<Resolution, String> {
    let argument = Object::new()
        .with("kind", kind_name(conflict.kind))
        .with("path", &conflict.path)
        .with("local", &conflict.local.to_operation())
        .with("remote", &conflict.remote.to_operation())
        .done();
    let argument = to_js(&argument).map_err(|e| describe(&e))?;
    let answer = function
        .call1(&JsValue::NULL, &argument)
        .map_err(|thrown| format!("it threw {}", describe(&thrown)))?;
    let not_a_resolution =
        |what: String| format!("it answered {what}, not \"local\", \"remote\" or {{ value }}");
    match answer.as_string().as_deref() {
        Some("local") => return Ok(Resolution::KeepLocal),
        Some("remote") => return Ok(Resolution::KeepRemote),
        _ => {}
    }
    if answer.is_instance_of::<js_sys::Promise>() {
        return Err(not_a_resolution("a promise".into()));
    }
    if answer.is_object() {
        let value = js_sys::Reflect::get(&answer, &"value".into()).unwrap_or_default();
        if !value.is_undefined() {
            return from_js(&value)
                .map(Resolution::Value)
                .map_err(|e| format!("its value is not JSON: {e}"));
        }
    }
    Err(not_a_resolution(describe(&answer)))
}

/// A JavaScript value in a message: an error's name and message, anything else as JSON where
/// it has some.
fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.to_string());
    }
    if value.is_undefined() {
        return "undefined".into();
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|json| json.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// A conflict kind as `ConflictKind` names it.
fn kind_name(kind: ConflictKind) -> &'static str {
    match kind {
        ConflictKind::SamePath => "samePath",
        ConflictKind::AncestorOverwrite => "ancestorOverwrite",
        ConflictKind::ParentRemoved => "parentRemoved",
        ConflictKind::ParentReplaced => "parentReplaced",
        ConflictKind::TestInvalidated => "testInvalidated",
    }
}

pub(super) fn status_name(status: ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::Offline => "offline",
        ConnectionStatus::Connecting => "connecting",
        ConnectionStatus::Online => "online",
        ConnectionStatus::Reconnecting => "reconnecting",
    }
}

/// Events as an array of plain objects (`SyncEvent[]`), converted in one go. An event that
/// JavaScript cannot hold (an integer beyond 2^53 - 1 in its patch, say) arrives as an `error`
/// event with the code `unsafe_integer` in its place (`error::unsafe_event`); the others arrive
/// as they are.
fn events_to_js(events: &[ClientEvent]) -> js_sys::Array {
    let all = Value::Array(events.iter().map(event_value).collect());
    match (convert::to_js(&all), &all) {
        (Ok(array), _) => array.unchecked_into(),
        (Err(_), Value::Array(values)) => {
            let array = js_sys::Array::new();
            for value in values {
                let event = convert::to_js(value);
                array.push(&event.unwrap_or_else(super::error::unsafe_event));
            }
            array
        }
        (Err(_), _) => js_sys::Array::new(),
    }
}

/// The peers as an array of `PresencePeer`s, each converted on its own. A peer whose state
/// JavaScript cannot hold (an integer beyond 2^53 - 1, which the reference server refuses but
/// another server may relay) is left out and logged as the `unsafe_integer` error; its
/// `presence` event reaches `onEvent` as an `error` event (`events_to_js`) and `others()` throws.
fn peers_to_js(others: &[PresencePeer]) -> js_sys::Array {
    let array = js_sys::Array::new();
    for peer in others {
        match convert::to_js(&peer.to_json()) {
            Ok(peer) => {
                array.push(&peer);
            }
            Err(err) => web_sys::console::error_3(
                &"eventsync: onPresence leaves out a peer whose state JavaScript cannot hold:"
                    .into(),
                &peer.client_id.as_str().into(),
                &super::error::unsafe_integer(err),
            ),
        }
    }
    array
}

/// An event as JSON (`SyncEvent` in the TypeScript types).
fn event_value(event: &ClientEvent) -> Value {
    let of = |kind: &str| Object::new().with("type", kind);
    match event {
        SessionEvent::Status(status) => of("status").with("status", status_name(*status)),
        SessionEvent::Reconnecting {
            reason,
            retry_in_ms,
        } => of("status")
            .with("status", "reconnecting")
            .with("reason", reason)
            .with("retryInMs", retry_in_ms),
        SessionEvent::Applied { event, own } => {
            of("applied").with("event", &**event).with("own", own)
        }
        SessionEvent::Synced { sequence_num } => of("synced").with("sequenceNum", sequence_num),
        SessionEvent::Acked {
            client_seq,
            sequence_num,
        } => of("acked")
            .with("clientSeq", client_seq)
            .with("sequenceNum", sequence_num),
        SessionEvent::EditRejected {
            client_seq,
            code,
            message,
        } => of("editRejected")
            .with("clientSeq", client_seq)
            .with("code", code)
            .with("message", message),
        SessionEvent::Conflict {
            client_seq,
            conflict,
        } => of("conflict")
            .with("clientSeq", client_seq)
            .with("kind", kind_name(conflict.kind))
            .with("path", &conflict.path),
        SessionEvent::Presence(others) => of("presence").with("others", others),
        SessionEvent::UndoStack { can_undo, can_redo } => of("undoStack")
            .with("canUndo", can_undo)
            .with("canRedo", can_redo),
        SessionEvent::UndoConflict { redo, conflict } => of("undoConflict")
            .with("step", if *redo { "redo" } else { "undo" })
            .with("kind", kind_name(conflict.kind))
            .with("path", &conflict.path),
        SessionEvent::Error { code, message } => {
            of("error").with("code", code).with("message", message)
        }
    }
    .done()
}
