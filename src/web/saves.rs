//! What both browser drivers (a client of its own, and a connection of many documents) keep
//! between the session and the page: saves in flight with the frames that wait for them, and
//! the promises (`sync_state`, `flush`, `saved`) waiting on a document.

use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::FutureExt;

use super::driver::{ClientError, ClientEvent};
use crate::queue::{ClientState, Store, StoreError};
use crate::session::SessionEvent;
use crate::web::idb::IndexedDbStore;

/// Where a document's state survives reloads.
pub(super) enum Persistence {
    /// Any synchronous [`Store`]: saves are done when `save` returns.
    Sync(Box<dyn Store>),
    /// IndexedDB: saves are done later.
    IndexedDb(IndexedDbStore),
}

impl Persistence {
    fn save(&mut self, state: &ClientState) -> LocalBoxFuture<'static, Result<(), StoreError>> {
        match self {
            Persistence::Sync(store) => futures::future::ready(store.save(state)).boxed_local(),
            Persistence::IndexedDb(store) => store.save(state).boxed_local(),
        }
    }
}

/// A save begun: its number, and its completion.
pub(super) type SaveInFlight = (u64, LocalBoxFuture<'static, Result<(), StoreError>>);

/// Saves in flight, and the frames that wait for them. Saves are numbered; a frame the session
/// sent after an `Output::Persist` waits for that save (or a later one) to be durable. IndexedDB
/// commits read-write transactions on one store in the order they began, so "durable" only grows
/// (across the documents of one database too: they share the object store).
#[derive(Default)]
pub(super) struct Saves {
    /// The number of the last save begun.
    pub begun: u64,
    /// The number of the last save known durable (or failed: failing it loses nothing sent).
    pub durable: u64,
    /// Frames waiting, in the order the session sent them: (save awaited, connection, frame).
    waiting: Vec<(u64, mpsc::UnboundedSender<String>, String)>,
    /// Why the last save that ended failed, if it did.
    pub failure: Option<String>,
}

impl Saves {
    /// Begins saving `state` to `store`.
    pub fn begin(&mut self, store: &mut Persistence, state: &ClientState) -> SaveInFlight {
        self.begun += 1;
        (self.begun, store.save(state))
    }

    /// Sends `frame` on `connection` once save `awaited` is durable (at once if it is).
    pub fn send_after(
        &mut self,
        awaited: u64,
        connection: &mpsc::UnboundedSender<String>,
        frame: String,
    ) {
        if awaited > self.durable {
            self.waiting.push((awaited, connection.clone(), frame));
        } else {
            let _ = connection.unbounded_send(frame);
        }
    }

    /// Save `number` ended: sends the frames that waited for it. An error event when it failed.
    pub fn ended(&mut self, number: u64, result: Result<(), StoreError>) -> Option<ClientEvent> {
        self.failure = None;
        let event = result.err().map(|err| {
            let message = format!("could not save the client state: {err}");
            self.failure = Some(message.clone());
            SessionEvent::Error {
                code: None,
                message,
            }
        });
        self.durable = self.durable.max(number);
        let durable = self.durable;
        let ready = self
            .waiting
            .iter()
            .take_while(|(awaited, _, _)| *awaited <= durable)
            .count();
        for (_, connection, frame) in self.waiting.drain(..ready) {
            let _ = connection.unbounded_send(frame);
        }
        event
    }
}

/// What a `sync_state()`, `flush()` or `saved()` call waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitFor {
    Synced,
    Flushed,
    /// Save number `n` (and those before it) ended.
    Saved(u64),
}

/// The promises waiting on one document.
#[derive(Default)]
pub(super) struct Waiters(Vec<(WaitFor, oneshot::Sender<Result<(), ClientError>>)>);

/// What a document's waiters are settled against.
pub(super) struct Settle<'a> {
    /// The events just emitted for the document included `Synced`.
    pub synced: bool,
    /// Nothing of the document is pending.
    pub flushed: bool,
    /// Why waiting for the server cannot succeed any more (closed, refused).
    pub failure: Option<ClientError>,
    pub saves: &'a Saves,
}

impl Waiters {
    /// A new waiter.
    pub fn add(&mut self, until: WaitFor) -> oneshot::Receiver<Result<(), ClientError>> {
        let (done, receiver) = oneshot::channel();
        self.0.push((until, done));
        receiver
    }

    /// Resolves the waiters whose condition holds.
    pub fn settle(&mut self, now: &Settle<'_>) {
        for (until, done) in std::mem::take(&mut self.0) {
            let result = match (&now.failure, until) {
                // Saves finish even after close() (it begins the last one itself).
                (_, WaitFor::Saved(number)) if now.saves.durable >= number => {
                    match &now.saves.failure {
                        Some(message) => Err(ClientError::Store(message.clone())),
                        None => Ok(()),
                    }
                }
                (_, WaitFor::Saved(_)) => {
                    self.0.push((until, done));
                    continue;
                }
                (Some(err), _) => Err(err.clone()),
                (None, WaitFor::Synced) if now.synced => Ok(()),
                (None, WaitFor::Flushed) if now.flushed => Ok(()),
                _ => {
                    self.0.push((until, done));
                    continue;
                }
            };
            let _ = done.send(result);
        }
    }
}

/// Whether `events` include `Synced`.
pub(super) fn has_synced(events: &[ClientEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, SessionEvent::Synced { .. }))
}
