//! eventsync: real-time, offline-capable JSON document sync built on event sourcing and state
//! vectors.
//!
//! # Quick start
//!
//! A [`SyncClient`] is a live replica of one JSON document on an eventsync server
//! (`cargo run -p eventsync-server` serves one on `ws://127.0.0.1:8080`). Edits are RFC 6902
//! patches; they apply at once, online or not, and reach the server exactly once.
//!
//! ```no_run
//! use eventsync::{SessionEvent, SyncClient};
//! use serde_json::json;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), eventsync::ClientError> {
//! let client = SyncClient::builder("ws://127.0.0.1:8080", "shopping")
//!     .file_store("shopping.json") // the offline queue survives restarts
//!     .connect()?;
//! client.on_event(|event| {
//!     if let SessionEvent::Applied { event, own: false } = event {
//!         println!("someone else changed the list: {:?}", event.diff);
//!     }
//! });
//! client.sync_state().await?; // online and caught up
//! if client.document().is_none() {
//!     client.create(json!({"items": []}))?;
//! }
//! client.edit(json!([
//!     {"op": "add", "path": "/items/-", "value": {"id": "milk", "text": "milk", "done": false}}
//! ]))?;
//! client.flush().await?; // the edit is in the server's log
//! println!("{}", client.document().unwrap());
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Errors print as sentences (`Display`): a refused connection, a patch that does not apply, a
//! closed client. Many documents share one connection with [`SyncConnection`]
//! (`connection.open("doc")` gives each its `SyncClient`), which also carries presence
//! ([`SyncClient::set_presence`], [`SyncClient::others`]). In a browser or Node, the same API is
//! the npm package `eventsync` (this crate compiled to WebAssembly).
//!
//! # Inside
//!
//! The crate is a sans-IO core: no sockets, no async, no clock and no randomness of its own.
//! Drivers (the native client, the browser client, the reference server) move bytes and time in
//! and out of it.
//!
//! - [`protocol`]: every wire message, one file.
//! - [`diff`]: every diff format an event may carry, applied atomically.
//! - [`vector_clock`]: state vectors and the missing-event computation shared by client and server.
//! - [`state`]: [`StateManager`], the confirmed document and its place in the log.
//! - [`conflict`]: [`ConflictResolver`], rebasing pending edits over remote events.
//! - [`queue`]: the offline queue and the storage it survives restarts in.
//! - [`session`]: [`SyncSession`], the client state machine of one document.
//! - [`multiplex`]: [`multiplex::Multiplexer`], many documents' sessions on one connection of
//!   protocol version 2.
//! - [`sequencer`]: the server's ordering of edits into the log.
//! - [`server`]: the server's side of a connection ([`server::ServerConnection`]), catch-up paging,
//!   and [`server::MemoryLog`], a whole server in memory.
//! - [`native`]: [`SyncClient`], the tokio/WebSocket driver around the session for Rust apps.
//! - `web` (wasm32 only): the browser driver and its JavaScript bindings (`SyncClient` in JS).
//! - [`reconnect`]: reconnect backoff and client ids, shared by both drivers.
//!
//! # The whole flow
//!
//! A client session and a server log, both from this crate, wired by hand. A real driver does
//! the same over a WebSocket: send what [`session::Output::Transmit`] says, feed back what arrives.
//!
//! ```
//! use eventsync::queue::{MemoryStore, Store};
//! use eventsync::sequencer::LogView;
//! use eventsync::server::{Delivery, MemoryLog};
//! use eventsync::session::{Output, SessionConfig, SyncSession};
//! use serde_json::json;
//!
//! let mut log = MemoryLog::new("notes");
//! let mut store = MemoryStore::new();
//! let mut alice = SyncSession::new(SessionConfig::new("notes", "alice"));
//!
//! // Offline: the edit applies at once and waits in the queue.
//! alice.create(0, json!({"title": "todo", "items": []})).unwrap();
//! alice
//!     .edit(0, serde_json::from_value(json!([{"op": "add", "path": "/items/-", "value": "milk"}])).unwrap())
//!     .unwrap();
//! assert_eq!(alice.pending_count(), 2);
//!
//! // Online: the log answers each message as a server would, until nobody has anything to say.
//! alice.handle_connected(1);
//! let connection = log.connect(1);
//! let mut inbox = Vec::new();
//! loop {
//!     while let Some(output) = alice.poll_output() {
//!         match output {
//!             Output::Persist => store.save(&alice.client_state()).unwrap(),
//!             Output::Transmit(message) => {
//!                 for delivery in log.receive_message(connection, 2, &message) {
//!                     if let Delivery::Message(_, answer) = delivery {
//!                         inbox.push(answer);
//!                     }
//!                 }
//!             }
//!             _ => {}
//!         }
//!     }
//!     if alice.needs_save() {
//!         // Applied events: saving them can wait (losing them costs a refetch, not an edit).
//!         store.save(&alice.client_state()).unwrap();
//!         alice.mark_saved();
//!     }
//!     if inbox.is_empty() {
//!         break;
//!     }
//!     for message in inbox.drain(..) {
//!         alice.handle_message(2, message);
//!     }
//! }
//!
//! // Both edits are in the log, once each; the queue is empty, also in storage.
//! assert_eq!(log.head_seq(), 2);
//! assert_eq!(alice.pending_count(), 0);
//! assert_eq!(alice.document(), log.document());
//! assert!(store.load().unwrap().unwrap().pending.is_empty());
//! ```
#![warn(missing_docs)]

pub mod conflict;
pub mod diff;
pub mod multiplex;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
pub mod protocol;
pub mod queue;
pub mod reconnect;
pub mod sequencer;
pub mod server;
pub mod session;
mod shared_api;
pub mod state;
pub mod undo;
mod vec_map;
pub mod vector_clock;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use conflict::{ConflictPolicy, ConflictResolver};
pub use diff::{Diff, DiffError};
#[cfg(not(target_arch = "wasm32"))]
pub use native::{
    ClientError, Subscription, SyncClient, SyncClientBuilder, SyncConnection, SyncConnectionBuilder,
};
pub use protocol::{ClientMessage, Edit, ErrorCode, Event, Operation, ServerMessage, StateVector};
pub use reconnect::{Backoff, IntoPatch};
pub use session::{ConnectionStatus, SessionConfig, SessionEvent, SyncSession};
pub use state::StateManager;
pub use vector_clock::VectorClock;
#[cfg(target_arch = "wasm32")]
pub use web::{
    ClientError, Subscription, SyncClient, SyncClientBuilder, SyncConnection, SyncConnectionBuilder,
};

/// The README's Rust blocks, compiled as doc tests (`cargo test --doc`) so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
