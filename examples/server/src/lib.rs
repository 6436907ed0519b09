//! The eventsync reference server, as a library so that tests and embedders can start it.
//!
//! The seed's components, by name: [`store::EventStore`] (the durable log; SQLite or
//! PostgreSQL), [`service::StateVectorManager`] (clients' last known state vectors),
//! [`service::SyncService`] (catch-up, ordering edits exactly once) and [`broker::EventBroker`]
//! (per-document fan-out to WebSocket and SSE subscribers), beside [`presence::PresenceHub`]
//! (who is on each document, never stored) and [`webhook`] (every event POSTed, signed, from
//! a durable outbox). [`ws`] and [`http`] are the
//! endpoints of `docs/PROTOCOL.md`; [`app`] wires them.

pub mod admission;
pub mod app;
pub mod auth;
pub mod broker;
pub mod drive;
pub mod http;
pub mod limits;
pub mod presence;
pub mod service;
pub mod store;
pub mod webhook;
pub mod ws;
