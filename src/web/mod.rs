//! The browser driver (`wasm32` only): a single-threaded, `Rc`-based loop around
//! [`SyncSession`](crate::SyncSession) over the browser's WebSocket, and its JavaScript bindings.
//!
//! - [`driver`]: [`SyncClient`], the same behaviour as the native driver (reconnect with backoff
//!   and jitter, status events, timers from `poll_timeout`), `!Send` by design.
//! - [`JsSyncClient`]: the `SyncClient` class JavaScript sees; conversion only (public so that
//!   the browser tests can drive it from Rust).
//! - [`idb`]: [`IndexedDbStore`], the client's state in IndexedDB (one record per tab, held by a
//!   Web Lock).
//! - `error`: Rust errors to JavaScript `Error`s.

mod bindings;
pub mod driver;
mod error;
pub mod idb;

pub use bindings::JsSyncClient;
pub use driver::{ClientError, ClientEvent, SyncClient, SyncClientBuilder};
pub use idb::IndexedDbStore;
