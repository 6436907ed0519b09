//! Admission: how many WebSocket connections and SSE streams the server holds, in all and per
//! client address, and how fast one address may write over HTTP. Reaching a limit refuses the
//! new connection or write with `rate_limited` (HTTP 429, before any upgrade) and never
//! touches what is already admitted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::limits::RateLimiter;
use eventsync::protocol::ErrorCode;
use tokio::sync::Notify;

use crate::http::ApiError;

/// The limits (each a flag of [`crate::app::Config`]).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// WebSocket connections and SSE streams open at once, in all.
    pub max_connections: usize,
    /// The same, from one client address.
    pub max_connections_per_address: usize,
    /// SSE streams open at once from one client address (they count as connections too).
    pub max_streams_per_address: usize,
    /// HTTP writes per second from one address (sustained) and in a burst: a token bucket
    /// like a WebSocket connection's frame bucket.
    pub writes_per_second: u32,
    /// See `writes_per_second`.
    pub write_burst: u32,
}

/// What is being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A WebSocket connection (either protocol version).
    WebSocket,
    /// A server-sent events stream.
    EventStream,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    connections: usize,
    streams: usize,
}

/// The server's admission state.
pub struct Admission {
    limits: AdmissionLimits,
    open: AtomicUsize,
    closed: Notify,
    per_address: Mutex<HashMap<IpAddr, Counts>>,
    writers: Mutex<HashMap<IpAddr, RateLimiter>>,
}

/// Beyond this many addresses with a write bucket, full buckets are forgotten (a full bucket is
/// what a new address gets anyway).
const MAX_WRITE_BUCKETS: usize = 10_000;

impl Admission {
    /// Nothing open yet.
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            per_address: Mutex::default(),
            writers: Mutex::default(),
        }
    }

    /// Admits a connection or stream from `peer` (`None`: an address unknown, as in-process
    /// embeddings without connection info), counted until the guard drops.
    pub fn admit(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        kind: Kind,
    ) -> Result<ConnectionGuard, ApiError> {
        let limits = self.limits;
        let mut per_address = self.per_address.lock().expect("admission lock");
        if self.open.load(Ordering::SeqCst) >= limits.max_connections {
            return Err(refused(format!(
                "the server holds its maximum of {} connections; try again later",
                limits.max_connections
            )));
        }
        if let Some(peer) = peer {
            let counts = per_address.entry(peer).or_default();
            if counts.connections >= limits.max_connections_per_address {
                return Err(refused(format!(
                    "{peer} has {} connections open, the most one address may",
                    counts.connections
                )));
            }
            if kind == Kind::EventStream && counts.streams >= limits.max_streams_per_address {
                return Err(refused(format!(
                    "{peer} has {} event streams open, the most one address may",
                    counts.streams
                )));
            }
            counts.connections += 1;
            counts.streams += usize::from(kind == Kind::EventStream);
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok(ConnectionGuard {
            admission: self.clone(),
            peer,
            kind,
        })
    }

    /// Takes a token of `peer`'s HTTP write bucket.
    pub fn allow_write(&self, peer: Option<IpAddr>, now_ms: u64) -> Result<(), ApiError> {
        let Some(peer) = peer else { return Ok(()) };
        let limits = self.limits;
        let mut writers = self.writers.lock().expect("admission lock");
        if writers.len() >= MAX_WRITE_BUCKETS && !writers.contains_key(&peer) {
            writers.retain(|_, bucket| {
                let mut probe = bucket.clone();
                // Not full when it cannot give a whole burst now.
                !(0..limits.write_burst.max(1)).all(|_| probe.allow(now_ms))
            });
        }
        let bucket = writers
            .entry(peer)
            .or_insert_with(|| RateLimiter::new(limits.writes_per_second, limits.write_burst));
        if bucket.allow(now_ms) {
            return Ok(());
        }
        let wait = bucket
            .retry_after_ms()
            .map_or("never".to_owned(), |ms| format!("in {ms} ms"));
        Err(refused(format!(
            "{peer} writes faster than {} per second; the next write may pass {wait}",
            limits.writes_per_second
        )))
    }

    /// How many WebSocket connections and SSE streams are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until every connection closed.
    pub async fn all_closed(&self) {
        while self.open() > 0 {
            let closed = self.closed.notified();
            if self.open() == 0 {
                break;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), closed).await;
        }
    }
}

fn refused(message: String) -> ApiError {
    ApiError(ErrorCode::RateLimited, message)
}

/// One admitted connection or stream, counted until dropped.
pub struct ConnectionGuard {
    admission: Arc<Admission>,
    peer: Option<IpAddr>,
    kind: Kind,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            let mut per_address = self.admission.per_address.lock().expect("admission lock");
            if let Some(counts) = per_address.get_mut(&peer) {
                counts.connections = counts.connections.saturating_sub(1);
                if self.kind == Kind::EventStream {
                    counts.streams = counts.streams.saturating_sub(1);
                }
                if counts.connections == 0 {
                    per_address.remove(&peer);
                }
            }
        }
        if self.admission.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.admission.closed.notify_waiters();
        }
    }
}

/// The client's address, when the server knows it (it is served with connection info; an app
/// that mounts the router without it gets `None`, and per-address limits do not apply).
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let info = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Peer(info.map(|info| info.0.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: 3,
            max_connections_per_address: 2,
            max_streams_per_address: 1,
            writes_per_second: 1,
            write_burst: 2,
        }
    }

    #[test]
    fn limits_per_address_and_in_all_and_guards_give_back_their_slot() {
        let admission = Arc::new(Admission::new(limits()));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(Some(a), Kind::WebSocket).unwrap();
        let stream = admission.admit(Some(a), Kind::EventStream).unwrap();
        let refused = admission.admit(Some(a), Kind::WebSocket).err().unwrap();
        assert_eq!(refused.0, ErrorCode::RateLimited);
        drop(stream);
        let stream = admission.admit(Some(a), Kind::EventStream).unwrap();
        assert!(admission.admit(Some(b), Kind::WebSocket).is_ok_and(|g| {
            drop(g);
            true
        }));
        let other = admission.admit(Some(b), Kind::EventStream).unwrap();
        assert_eq!(admission.open(), 3);
        assert!(admission.admit(Some(b), Kind::WebSocket).is_err(), "full");
        drop((first, stream, other));
        assert_eq!(admission.open(), 0);
        assert!(admission.per_address.lock().unwrap().is_empty());
    }

    #[test]
    fn http_writes_draw_from_a_bucket_per_address() {
        let admission = Admission::new(limits());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(admission.allow_write(Some(a), 0).is_ok());
        assert!(admission.allow_write(Some(a), 0).is_ok());
        let refused = admission.allow_write(Some(a), 0).err().unwrap();
        assert!(refused.1.contains("in 1000 ms"), "{}", refused.1);
        assert!(admission.allow_write(Some(b), 0).is_ok(), "another address");
        assert!(admission.allow_write(Some(a), 1000).is_ok(), "refilled");
    }
}
