//! The eventsync reference server, as a library so that tests and embedders can start it.
//!
//! The seed's components, by name: [`store::EventStore`] (durable log), `StateVectorManager`
//! (clients' last known state vectors), `SyncService` (handshake, catch-up, ordering edits) and
//! `EventBroker` (per-document fan-out to WebSocket and SSE subscribers).

pub mod auth;
pub mod limits;
pub mod store;
