//! The eventsync reference server, as a library: the `eventsync-server` binary is a thin `main`
//! over [`ServerBuilder`], and an application embeds the same server with its own [`Hooks`]
//! (authentication, rules on edits, what happens after each commit) and JSON Schemas.
//!
//! ```no_run
//! use eventsync_server::{async_trait, Config, EditContext, Hooks, Refusal, ServerBuilder};
//!
//! /// Lists of at most 100 items.
//! struct ShortLists;
//!
//! #[async_trait]
//! impl Hooks for ShortLists {
//!     fn check_edit(&self, edit: &EditContext<'_>) -> Result<(), Refusal> {
//!         match edit.after.and_then(|doc| doc["items"].as_array()) {
//!             Some(items) if items.len() > 100 => Err(Refusal::invalid("100 items at most")),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! # async fn run() -> Result<(), eventsync_server::StartError> {
//! let config = Config::for_database("sqlite:./app.db");
//! let server = ServerBuilder::new(config).hooks(ShortLists).build().await?;
//! // Mount eventsync's routes in the app's own router, or `server.listen().await?`.
//! let app = axum::Router::new().merge(server.router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The seed's components, by name: [`store::EventStore`] (the durable log; SQLite or
//! PostgreSQL), [`vectors::StateVectorManager`] (clients' last known state vectors),
//! [`service::SyncService`] (catch-up, ordering edits exactly once) and [`broker::EventBroker`]
//! (per-document fan-out to WebSocket and SSE subscribers), beside [`presence::PresenceHub`]
//! (who is on each document, never stored) and [`webhook`] (every event POSTed, signed, from
//! a durable outbox). [`ws`] and [`http`] are the endpoints of `docs/PROTOCOL.md`; [`app`] wires
//! them, [`hooks`] and [`schema`] check edits.

pub mod admission;
pub mod app;
pub mod auth;
pub mod broker;
mod builder;
mod cache;
pub mod drive;
pub mod hooks;
pub mod http;
pub mod limits;
pub mod presence;
pub mod schema;
pub mod service;
pub mod store;
pub mod vectors;
pub mod webhook;
pub mod ws;

pub use app::{Config, RunningServer, StartError};
pub use async_trait::async_trait;
pub use builder::{Server, ServerBuilder};
pub use hooks::{Authentication, EditContext, Hooks, Refusal};
pub use schema::SchemaRule;
