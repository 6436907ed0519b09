//! eventsync: real-time, offline-capable JSON document sync built on event sourcing and state
//! vectors.
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
//! - [`session`]: [`SyncSession`], the client state machine.
//! - [`sequencer`]: the server's ordering of edits into the log.
#![warn(missing_docs)]

pub mod conflict;
pub mod diff;
pub mod protocol;
pub mod queue;
pub mod sequencer;
pub mod session;
pub mod state;
pub mod vector_clock;

pub use conflict::{ConflictPolicy, ConflictResolver};
pub use diff::{Diff, DiffError};
pub use protocol::{ClientMessage, Edit, ErrorCode, Event, Operation, ServerMessage, StateVector};
pub use session::{SessionConfig, SyncSession};
pub use state::StateManager;
pub use vector_clock::VectorClock;
