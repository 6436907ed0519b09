//! The server's side of the protocol, sans IO: what every eventsync server does, written once.
//!
//! - [`ServerConnection`]: one WebSocket connection or SSE stream, from `hello` to close.
//! - [`CatchUp`]: one page of the events a position is missing (6.2, 6.3, 12.2).
//! - [`VersionAt`]: the document as of a position of its history (12.4, 18.8).
//! - [`requests`]: what a connection asks of its driver, and the answers.
//! - [`PresenceTable`]: who is on each document and what they show (18.7).
//! - [`limits`]: the limits, the rate limiter and the identifier rules.
//! - [`MemoryLog`]: a whole server of one document in memory, driving [`ServerConnection`]s, and
//!   [`MemoryServer`]: many documents and connections of protocol version 2; for tests and demos.
//!
//! The ordering of edits into the log is [`crate::sequencer`]. The reference server
//! (`examples/server`) is a driver around these: sockets, a durable store, a fan-out.

pub mod catch_up;
pub mod connection;
pub mod history;
pub mod limits;
pub mod memory;
pub mod memory_server;
pub mod presence;
pub mod requests;

pub use catch_up::{CatchUp, LogEvents, LogHead, Page, Read, ReadResult, SnapshotPolicy, Step};
pub use connection::{close_code, negotiate_version, Mode, ServerConnection};
pub use history::{run_version_sync, VersionAt, VersionStep};
pub use memory::{ConnectionId, Delivery, MemoryLog};
pub use memory_server::{Frame, MemoryServer};
pub use presence::{Owner, PresenceTable};
pub use requests::{Credentials, LiveBatch, Output, Reply, Request, Rights, Submitted};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
