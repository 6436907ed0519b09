//! The server's limits, rate limiter and identifier rules: the core's
//! ([`eventsync::server::limits`]), which the connection engine applies.

pub use eventsync::server::limits::*;
