//! The API the native (`src/native/`) and browser (`src/web/driver.rs`) `SyncClient`s share,
//! pinned at compile time. This module builds on both targets against whichever `SyncClient`
//! the crate root re-exports there, so a method that changes name, receiver, arguments or result
//! on one side breaks that side's build (native: `cargo build`; browser:
//! `scripts/build-wasm.sh`). Nothing here runs.
//!
//! Deliberate differences, left out of the pin:
//! - Threads: native callbacks, stores and `session_config` closures must be `Send` (and
//!   callbacks `Sync`); the browser client is `!Send`, `Rc`-based, and `Clone`.
//! - Closing: native `close()` is async (it waits for the connection task to end); the browser's
//!   is synchronous (there is no task to join on the page's one thread).
//! - Errors: native `ClientError::{Session, Store}` wrap the inner errors (`#[from]`); the
//!   browser's carry their messages (`String`), so that its errors are `Clone` for every waiting
//!   promise. Native also has `ClientError::Timeout`.
//! - Native only: `file_store`, the `events()` stream and `update(closure)`.
//! - Browser only: `indexed_db` with `open().await`, `with_document` (no copy), and
//!   `conflict_resolver` (a resolver that may fail, as a JavaScript function may throw).
//! - Subscriptions: both cancel the same way; the native one is `Send + Sync` (an `Arc` and an
//!   atomic flag), the browser's is not.
//! - `SyncConnection` (protocol 2, many documents on one socket): the browser's `open(document)`
//!   is async (it reads the document's IndexedDB record first), the native one returns at once;
//!   native `close()` is async as above. Native persists with `directory`, the browser with
//!   `indexed_db` and `SyncConnectionBuilder::open().await` (JavaScript: `SyncConnection.connect`).
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::multiplex::PresenceError;
use crate::protocol::PresencePeer;
use crate::queue::MemoryStore;
use crate::{
    Backoff, ClientError, ConflictPolicy, ConnectionStatus, ErrorCode, SessionConfig, SessionEvent,
    SyncClient, SyncClientBuilder, SyncConnection, SyncConnectionBuilder, VectorClock,
};

/// Building and connecting.
fn builder(server: String, document_id: String) -> Result<SyncClient, ClientError> {
    let builder: SyncClientBuilder = SyncClient::builder(server, document_id)
        .client_id("alice")
        .token("secret")
        .conflict_policy(ConflictPolicy::ClientWins)
        .store(MemoryStore::new())
        .backoff(Backoff::default())
        .session_config(|config: &mut SessionConfig| config.max_batch = 10);
    let connect: fn(SyncClientBuilder) -> Result<SyncClient, ClientError> =
        SyncClientBuilder::connect;
    connect(builder)
}

/// The synchronous methods, receivers and results exactly.
fn methods(client: &SyncClient) {
    let _: fn(&SyncClient) -> Option<Value> = SyncClient::document;
    let _: fn(&SyncClient) -> ConnectionStatus = SyncClient::status;
    let _: fn(&SyncClient) -> usize = SyncClient::pending_count;
    let _: fn(&SyncClient) -> u64 = SyncClient::applied_seq;
    let _: fn(&SyncClient) -> String = SyncClient::client_id;
    let _: fn(&SyncClient) -> VectorClock = SyncClient::state_vector;
    let _: fn(&SyncClient, &str, u64) = SyncClient::update_state_vector;
    let _: fn(&SyncClient, Vec<json_patch::PatchOperation>) -> Result<u64, ClientError> =
        SyncClient::edit::<Vec<json_patch::PatchOperation>>;
    let _: fn(&SyncClient, Value) -> Result<u64, ClientError> = SyncClient::edit::<Value>;
    let _: fn(&SyncClient, Value) -> Result<u64, ClientError> = SyncClient::create;
    let _: fn(&SyncClient) -> Result<u64, ClientError> = SyncClient::delete;
    // Undo and redo of this client's own edits.
    let _: fn(&SyncClient) -> Result<Option<u64>, ClientError> = SyncClient::undo;
    let _: fn(&SyncClient) -> Result<Option<u64>, ClientError> = SyncClient::redo;
    let _: fn(&SyncClient) -> bool = SyncClient::can_undo;
    let _: fn(&SyncClient) -> bool = SyncClient::can_redo;
    let _: fn(&SyncClient) -> Result<(), ClientError> = SyncClient::stop_capturing;
    let _: Result<u8, ClientError> = client.transact(|| 1u8);
    // Presence (a document of a `SyncConnection`; a client of its own refuses).
    let _: fn(&SyncClient, Value) -> Result<(), ClientError> = SyncClient::set_presence;
    let _: fn(&SyncClient) -> Result<(), ClientError> = SyncClient::clear_presence;
    let _: fn(&SyncClient) -> Vec<PresencePeer> = SyncClient::others;
    // Both drivers' `ClientEvent` is the session's event; each callback comes back as a
    // subscription that cancels it (idempotently, through a shared reference).
    let subscription = client.on_event(|event: &SessionEvent| drop(event.clone()));
    subscription.cancel();
    subscription.cancel();
    let _: bool = subscription.is_active();
    client
        .on_events(|events: &[SessionEvent]| drop(events.to_vec()))
        .cancel();
    client
        .on_presence(|others: &[PresencePeer]| drop(others.to_vec()))
        .cancel();
    let _ = client.create(json!({}));
}

/// The waiting methods.
async fn waiting(client: &SyncClient) {
    let _: Result<(), ClientError> = client.sync_state().await;
    let _: Result<(), ClientError> = client.flush().await;
    let _: Result<(), ClientError> = client.saved().await;
    // History (a document of a `SyncConnection`; a client of its own refuses).
    let _: Result<crate::multiplex::HistoryPage, ClientError> = client.history(0, Some(20)).await;
    let _: Result<crate::protocol::Version, ClientError> = client.version_at(1).await;
    let _: Result<u64, ClientError> = client.restore(1).await;
}

/// The error cases both sides report the same way.
fn errors(error: ClientError) -> Option<(Option<ErrorCode>, String)> {
    fn is_error<E: std::error::Error + 'static>(_: &E) {}
    is_error(&error);
    match error {
        ClientError::Refused { code, message } => Some((code, message)),
        ClientError::Presence(error) => {
            let _: PresenceError = error.clone();
            Some((Some(error.code()), error.to_string()))
        }
        ClientError::Closed => None,
        _ => None,
    }
}

/// A connection: the same settings as a client's, and the same `SyncClient` per document.
fn connection(server: String) -> Result<SyncConnection, ClientError> {
    let builder: SyncConnectionBuilder = SyncConnection::builder(server)
        .client_id("alice")
        .token("secret")
        .conflict_policy(ConflictPolicy::ClientWins)
        .backoff(Backoff::default())
        .session_config(|config: &mut SessionConfig| config.max_batch = 10);
    let connect: fn(SyncConnectionBuilder) -> Result<SyncConnection, ClientError> =
        SyncConnectionBuilder::connect;
    let connection = connect(builder)?;
    let _: fn(&SyncConnection) -> String = SyncConnection::client_id;
    let _: fn(&SyncConnection) -> ConnectionStatus = SyncConnection::status;
    Ok(connection)
}
