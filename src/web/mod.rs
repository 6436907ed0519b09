//! The browser driver (`wasm32` only): a single-threaded, `Rc`-based loop around the sans-IO
//! core over the browser's WebSocket, and its JavaScript bindings.
//!
//! - [`driver`]: [`SyncClient`], the same behaviour as the native driver (reconnect with backoff
//!   and jitter, status events, timers from `poll_timeout`), `!Send` by design. A client of its
//!   own (`single`, protocol version 1) or one document of a [`SyncConnection`] (`connection`,
//!   version 2, many documents on one WebSocket); both run the one loop in `socket`, and keep
//!   their saves and waiting promises the one way (`saves`).
//! - [`JsSyncClient`], [`JsSyncConnection`]: the classes JavaScript sees; conversion only
//!   (public so that the browser tests can drive them from Rust).
//! - [`idb`]: [`IndexedDbStore`], a document's state in IndexedDB (one record per tab, held by a
//!   Web Lock), and [`IndexedDbDirectory`], a connection's documents there.
//! - `error`: Rust errors to JavaScript `Error`s.

mod bindings;
mod connection;
mod connection_bindings;
mod convert;
pub mod driver;
mod error;
mod history_bindings;
pub mod idb;
mod saves;
mod single;
mod socket;
mod types;
mod undo_bindings;

pub use bindings::JsSyncClient;
pub use connection::{SyncConnection, SyncConnectionBuilder};
pub use connection_bindings::JsSyncConnection;
pub use driver::{
    ClientError, ClientEvent, FallibleResolver, Subscription, SyncClient, SyncClientBuilder,
};
pub use idb::{IndexedDbDirectory, IndexedDbStore};
