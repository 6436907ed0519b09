//! The HTTP API (`docs/PROTOCOL.md` section 12) and the SSE stream (section 13).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventsync::protocol::{
    self, ErrorBody, ErrorCode, EventsPage, FrameKind, ServerMessage, Snapshot, StateVector,
};
use eventsync::server::{Output, SnapshotPolicy};
use eventsync::VectorClock;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::WebSocketConfig;

use crate::admission::{Kind, Peer};
use crate::app::AppState;
use crate::auth::{self, Access, Rights};
use crate::drive::{now_ms, Connection, Driver, Incoming, Outgoing, Transport};
use crate::hooks::Authentication;
use crate::limits::validate_document_id;
use crate::service::{ServiceError, Write};
use crate::ws::Upgrading;

/// An error answer: the status of its code and an ErrorBody.
#[derive(Debug)]
pub struct ApiError(pub ErrorCode, pub String);

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(code, message.into())
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        ApiError(err.code, err.message)
    }
}

impl From<auth::AuthError> for ApiError {
    fn from(err: auth::AuthError) -> Self {
        ApiError(err.code(), err.to_string())
    }
}

/// The HTTP status of each error code (`docs/PROTOCOL.md` 10.2).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::MalformedFrame
        | ErrorCode::UnexpectedMessage
        | ErrorCode::UnsupportedVersion
        | ErrorCode::InvalidSequence => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidPatch | ErrorCode::InvalidDocument => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict | ErrorCode::StaleBase | ErrorCode::DocumentState => {
            StatusCode::CONFLICT
        }
        ErrorCode::UnknownDocument => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::ClientMismatch => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::HistoryCompacted => StatusCode::GONE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.0,
            message: self.1,
        };
        let status = status_of(self.0);
        if self.0 == ErrorCode::RateLimited {
            // 10.2: HTTP answers of `rate_limited` carry `Retry-After`.
            return (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response();
        }
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Checks the document id and the caller's rights; returns what the request may do. The
/// application's hooks authenticate first; when they do not decide, the built-in tokens do.
async fn admit(
    state: &AppState,
    document_id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    need: Rights,
) -> ApiResult<Access> {
    validate_document_id(document_id).map_err(|m| ApiError::new(ErrorCode::UnknownDocument, m))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = auth::token_from(authorization, query);
    let request = Authentication {
        token: token.as_deref(),
        headers,
        address: None,
    };
    let now = now_ms() / 1000;
    let access = match state.rules.authenticate(&request).await {
        Err(refusal) => return Err(ApiError::new(refusal.code, refusal.message)),
        Ok(Some(claims)) => auth::access_for(&claims, document_id, now)?,
        Ok(None) => auth::authorize(state.authority.as_ref(), token.as_deref(), document_id, now)?,
    };
    if need == Rights::Write && access.rights != Rights::Write {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this token is read-only",
        ));
    }
    Ok(access)
}

/// Parses a JSON body within the limits, with the protocol's error codes. A body the router
/// refused to buffer (far over the limit) is `too_large` too, with an ErrorBody like every error.
fn parse_body<T: DeserializeOwned>(
    state: &AppState,
    body: &Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "body over the limit of {} bytes",
                    state.limits.max_frame_bytes
                ),
            ))
        }
        Err(rejection) => {
            return Err(ApiError::new(
                ErrorCode::MalformedFrame,
                format!("bad body: {}", rejection.body_text()),
            ))
        }
    };
    if body.len() > state.limits.max_frame_bytes {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "body of {} bytes is over the limit of {} bytes",
                body.len(),
                state.limits.max_frame_bytes
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            ApiError::new(ErrorCode::TooLarge, "body nested deeper than 128 levels")
        } else {
            ApiError::new(ErrorCode::MalformedFrame, format!("bad body: {e}"))
        }
    })
}

/// A counter in the query (`after`, `limit`): a non-negative integer up to 2^53 - 1 (section 1).
fn number(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<u64>> {
    params.get(name).map(|v| counter(name, v)).transpose()
}

fn counter(name: &str, text: &str) -> ApiResult<u64> {
    let malformed = |reason: String| ApiError::new(ErrorCode::MalformedFrame, reason);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("{name} must be a non-negative integer")));
    }
    let n = text.parse::<u64>().map_err(|_| {
        malformed(format!(
            "{name} {text} is above 9007199254740991 (2^53 - 1)"
        ))
    })?;
    protocol::check_counter(n).map_err(|reason| malformed(format!("{name} {reason}")))
}

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// A WebSocket connection's read buffer: its initial size, which it keeps while the client's
/// frames fit (a `hello`, a `sync`, small edits), and the most read from the socket at once.
/// Idle, it is most of what a connection's socket costs; a larger frame grows it, and is read
/// in as many reads of this size.
const READ_BUFFER_BYTES: usize = 1024;

/// What a WebSocket connection queues before it writes without waiting for a flush (the driver
/// flushes once it has queued every frame it has ready). tungstenite's default is 128 KiB, and
/// its write buffer keeps the capacity it once reached: a burst of frames would leave that
/// much on every connection that saw one.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// `ws://{server}/sync/{documentId}`: a connection of protocol version 1 to one document. An
/// invalid id is refused in a frame, after `hello` (4.1, 5.2), where browsers can read it.
pub async fn websocket(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Peer,
    upgrading: Upgrading,
    _checked: WebSocketUpgrade,
) -> Response {
    upgrade_to(state, Some(document_id), query, &headers, peer, upgrading)
}

/// `ws://{server}/sync`: a connection of protocol version 2, for any number of documents (18).
pub async fn websocket_multiplexed(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Peer,
    upgrading: Upgrading,
    _checked: WebSocketUpgrade,
) -> Response {
    upgrade_to(state, None, query, &headers, peer, upgrading)
}

fn upgrade_to(
    state: AppState,
    document_id: Option<String>,
    query: Option<String>,
    headers: &HeaderMap,
    Peer(peer): Peer,
    upgrading: Upgrading,
) -> Response {
    // The hooks see the upgrade request's headers when the `hello` arrives. Copied only for
    // them, and into allocations of their own: hyper's header values are slices of the
    // connection's read buffer (8 KiB or more), which a plain clone would keep alive.
    let kept = match state.rules.hooks.is_empty() {
        true => HeaderMap::new(),
        false => own_copy(headers),
    };
    // Over a connection limit: refused before the upgrade, with an error body (HTTP 429).
    let admitted = match state.admission.admit(peer, Kind::WebSocket) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Checked with the hello, where a token in `hello` wins over this one (5.3).
    let token = auth::token_from(authorization, query.as_deref());
    // Frames over the limit get a `too_large` error; far over it, the socket is dropped.
    let max = state.limits.max_frame_bytes.saturating_mul(4);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // tungstenite zero-fills its whole read buffer (128 KiB by default) on the first read:
        // that was most of an idle connection's memory. Larger frames grow it as needed.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES);
    // axum's `WebSocketUpgrade` (the handlers' `_checked`) checked the request and refused a
    // bad one; the socket is the server's own (crate::ws).
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return StatusCode::UPGRADE_REQUIRED.into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let request = crate::drive::Upgrade {
        headers: kept,
        peer,
    };
    crate::ws::serve(
        upgrading,
        config,
        state,
        document_id,
        token,
        admitted,
        request,
    );
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&accept).expect("base64"),
            ),
        ],
    )
        .into_response()
}

/// A copy of `headers` that shares no memory with them.
fn own_copy(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            copy.append(name.clone(), owned);
        }
    }
    copy
}

/// `POST /api/sync/{documentId}`: a state vector in, the missing events out.
pub async fn sync(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<EventsPage>> {
    let access = admit(
        &state,
        &document_id,
        &headers,
        query.as_deref(),
        Rights::Read,
    )
    .await?;
    // A StateVector is an object: serde would also read an array, by position.
    let raw: Value = parse_body(&state, &body)?;
    if !raw.is_object() {
        return Err(ApiError::new(
            ErrorCode::MalformedFrame,
            "the body must be a StateVector object",
        ));
    }
    let vector: StateVector = serde_json::from_value(raw)
        .map_err(|e| ApiError::new(ErrorCode::MalformedFrame, format!("bad body: {e}")))?;
    if !vector.document_id.is_empty() && vector.document_id != document_id {
        return Err(ApiError::new(
            ErrorCode::MalformedFrame,
            "the body's documentId is not the URL's",
        ));
    }
    if let Some(bound) = &access.client_id {
        if !vector.client_id.is_empty() && vector.client_id != *bound {
            return Err(ApiError::new(
                ErrorCode::ClientMismatch,
                "the body's clientId is not the token's",
            ));
        }
    }
    let page = state
        .service
        .catch_up(
            &document_id,
            &vector.vector_clock,
            None,
            state.limits.default_page,
            SnapshotPolicy::WhenBehindOrNew,
        )
        .await?;
    if !vector.client_id.is_empty() {
        state
            .vectors
            .record(&document_id, &vector.client_id, &vector.vector_clock);
    }
    Ok(Json(page))
}

/// `GET /api/events/{documentId}?after=&limit=`.
pub async fn events(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<EventsPage>> {
    admit(
        &state,
        &document_id,
        &headers,
        query.as_deref(),
        Rights::Read,
    )
    .await?;
    let after = number(&params, "after")?.unwrap_or(0);
    let limit = number(&params, "limit")?.map_or(state.limits.default_page, |l| {
        (l as usize).min(state.limits.max_page)
    });
    let page = state
        .service
        .catch_up(
            &document_id,
            &VectorClock::new(),
            Some(after),
            limit,
            // A page starts with a snapshot only when `after` is older than the history (12.2).
            SnapshotPolicy::WhenBehind,
        )
        .await?;
    Ok(Json(page))
}

/// `GET /api/documents/{documentId}`: the document at its head (a Snapshot), or with `?at=` as
/// of that position of its history (a Version, 12.4).
pub async fn read_document(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admit(
        &state,
        &document_id,
        &headers,
        query.as_deref(),
        Rights::Read,
    )
    .await?;
    if let Some(at) = number(&params, "at")? {
        let version = state
            .service
            .version_at(&document_id, at, state.limits.default_page)
            .await?;
        return Ok(Json(version).into_response());
    }
    let head = state.service.head(&document_id).await?;
    Ok(Json(Snapshot {
        document_id,
        sequence_num: head.head_seq,
        document: head.document,
        vector_clock: head.vector,
    })
    .into_response())
}

async fn write(
    state: AppState,
    (document_id, Peer(peer)): (String, Peer),
    query: Option<String>,
    headers: HeaderMap,
    write: impl FnOnce(&AppState) -> ApiResult<Write>,
) -> ApiResult<Json<Value>> {
    // A token bucket per client address, like a connection's frame bucket.
    state.admission.allow_write(peer, now_ms())?;
    let access = admit(
        &state,
        &document_id,
        &headers,
        query.as_deref(),
        Rights::Write,
    )
    .await?;
    let write = write(&state)?;
    let origin = access
        .client_id
        .unwrap_or_else(|| eventsync::protocol::SERVER_CLIENT_ID.to_owned());
    let event = state.service.change(&document_id, &origin, write).await?;
    Ok(Json(json!({"sequenceNum": event.sequence_num})))
}

/// `PUT /api/documents/{documentId}`: the whole new document.
pub async fn put_document(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(state, (document_id, peer), query, headers, |state| {
        let document: Value = parse_body(state, &body)?;
        if document.is_null() {
            return Err(ApiError::new(
                ErrorCode::InvalidPatch,
                "a document cannot be null",
            ));
        }
        Ok(Write::Put(document))
    })
    .await
}

/// `PATCH /api/documents/{documentId}`: an RFC 6902 patch.
pub async fn patch_document(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    write(state, (document_id, peer), query, headers, |state| {
        let raw: Value = parse_body(state, &body)?;
        // A body that is not an RFC 6902 patch at all is malformed, as the same patch in a
        // submit is (10.2); a patch that does not apply is `invalid_patch`.
        let patch = serde_json::from_value(raw).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedFrame,
                format!("not an RFC 6902 patch: {e}"),
            )
        })?;
        Ok(Write::Patch(patch))
    })
    .await
}

/// `DELETE /api/documents/{documentId}`.
pub async fn delete_document(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Peer,
) -> ApiResult<Json<Value>> {
    write(state, (document_id, peer), query, headers, |_| {
        Ok(Write::Delete)
    })
    .await
}

/// `GET /api/stream/{documentId}?after=`: server-sent events for receive-only clients.
pub async fn stream(
    State(state): State<AppState>,
    Path(document_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Peer(peer): Peer,
) -> ApiResult<Response> {
    let admitted = state.admission.admit(peer, Kind::EventStream)?;
    let access = admit(
        &state,
        &document_id,
        &headers,
        query.as_deref(),
        Rights::Read,
    )
    .await?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| counter("Last-Event-ID", v.trim()))
        .transpose()?;
    let start = match last_event_id {
        Some(id) => id,
        None => number(&params, "after")?.unwrap_or(0),
    };
    let connection = Connection::event_stream(
        document_id.clone(),
        state.limits.clone(),
        start,
        access
            .expires_at
            .map(|seconds| seconds.saturating_mul(1000)),
        now_ms(),
    );
    let mut driver = Driver::new(state.clone(), connection);
    // An error before anything is streamed is the HTTP answer (a position ahead of the log).
    if let Some(Output::Send(ServerMessage::Error { code, message })) = driver.peek().await {
        return Err(ApiError(*code, message.clone()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let _admitted = admitted;
        driver.run(EventStream { tx, document_id }).await;
    });
    let sse = Sse::new(ReceiverStream::new(rx)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    );
    Ok(([(header::CACHE_CONTROL, "no-cache")], sse).into_response())
}

/// An SSE stream as the driver's transport: each output becomes the event of section 13.
struct EventStream {
    tx: tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>,
    document_id: String,
}

impl EventStream {
    async fn emit(&self, name: &str, id: Option<u64>, data: String) -> Result<(), ()> {
        let mut event = SseEvent::default().event(name).data(data);
        if let Some(id) = id {
            event = event.id(id.to_string());
        }
        self.tx.send(Ok(event)).await.map_err(drop)
    }
}

impl Transport for EventStream {
    // Each event goes into the stream's channel as it comes (the channel is the queue).
    async fn feed(&mut self, _version: u32, out: Outgoing) -> Result<(), ()> {
        match out {
            Outgoing::Connected(head_seq) => {
                let data = json!({"documentId": self.document_id, "headSeq": head_seq});
                self.emit("connected", None, data.to_string()).await
            }
            Outgoing::Live(batch) => {
                for (event, data) in batch.events.iter().zip(&batch.each) {
                    self.emit("event", Some(event.sequence_num), data.clone())
                        .await?;
                }
                Ok(())
            }
            Outgoing::Message(ServerMessage::Snapshot { snapshot }) => {
                let id = snapshot.sequence_num;
                self.emit("snapshot", Some(id), protocol::encode(&snapshot))
                    .await
            }
            Outgoing::Message(ServerMessage::Events { events, .. }) => {
                let id = events.last().map(|e| e.sequence_num);
                self.emit("events", id, protocol::encode(&events)).await
            }
            Outgoing::Encoded(frame) => match frame.kind {
                FrameKind::Events { .. } => {
                    let mut data = String::new();
                    let events = &frame.events;
                    events.write_array(&mut data, Some(&self.document_id));
                    self.emit("events", events.last_seq(), data).await
                }
                FrameKind::Event => {
                    for (seq, data) in frame.events.full_texts(&self.document_id) {
                        self.emit("event", Some(seq), data).await?;
                    }
                    Ok(())
                }
            },
            Outgoing::Message(ServerMessage::Event { events }) => {
                for event in &events {
                    self.emit("event", Some(event.sequence_num), protocol::encode(event))
                        .await?;
                }
                Ok(())
            }
            Outgoing::Message(ServerMessage::Error { code, message }) => {
                let body = protocol::encode(&ErrorBody { code, message });
                self.emit("error", None, body).await
            }
            Outgoing::Message(_) | Outgoing::About(..) => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }

    async fn close(&mut self, _code: u16, _reason: &'static str) {
        // Dropping the sender ends the stream.
    }

    async fn next(&mut self) -> Incoming {
        self.tx.closed().await;
        Incoming::Gone
    }
}
