//! The core of a [`super::SyncClient`] of its own: one [`SyncSession`] on a connection of
//! protocol version 1 (`ws://{server}/sync/{documentId}`), behind a lock, with its store and
//! listeners.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::link::Link;
use super::{ClientError, ClientEvent, Listeners, LAZY_SAVE};
use crate::protocol::{self, ErrorCode};
use crate::queue::Store;
use crate::session::{Output, SessionEvent, SyncSession};

pub(super) struct Shared {
    pub(super) core: Mutex<Core>,
    pub(super) events: broadcast::Sender<super::Batch>,
    /// Something changed the session's deadlines: the driver re-reads them.
    pub(super) wake: Notify,
    /// `close()` was called.
    pub(super) closed: Notify,
    pub(super) epoch: Instant,
}

pub(super) struct Core {
    pub(super) session: SyncSession,
    /// Where the client's state survives restarts; `None` keeps it in memory only.
    pub(super) store: Option<Box<dyn Store + Send>>,
    /// The current connection's outgoing frames.
    pub(super) writer: Option<mpsc::UnboundedSender<Message>>,
    pub(super) listeners: Listeners,
    /// Set when the server refused us for good.
    pub(super) refused: Option<(Option<ErrorCode>, String)>,
    /// When the state was last saved.
    pub(super) saved_at: Instant,
    /// The app closed the client: it takes no more work.
    pub(super) closed: bool,
}

impl Core {
    /// Saves what the session says can wait (see [`SyncSession::needs_save`]).
    pub(super) fn save_lazily(&mut self, events: &mut Vec<ClientEvent>) {
        match self.save() {
            Ok(()) => self.session.mark_saved(),
            Err(err) => events.push(SessionEvent::Error {
                code: None,
                message: format!("could not save the client state: {err}"),
            }),
        }
        self.saved_at = Instant::now();
    }

    /// Saves the session's state to the store. Without a store nothing is made: the state is a
    /// copy of the whole document.
    fn save(&mut self) -> Result<(), crate::queue::StoreError> {
        match self.store.as_mut() {
            Some(store) => store.save(&self.session.client_state()),
            None => Ok(()),
        }
    }
}

impl Shared {
    pub(super) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection loop's input: runs `f` on the session, then carries out its outputs:
    /// saves, sends, and tells the app (outside the lock, so listeners may call back into the
    /// client). The loop reads the deadlines again itself: it is not woken for them.
    fn step<T>(&self, f: impl FnOnce(&mut SyncSession, u64) -> T) -> (T, bool) {
        self.carry_out(|core, now| f(&mut core.session, now))
    }

    /// An app's call: [`Shared::with_core`], with a local edit saved before anything of it
    /// is sent (see [`super::save_local_edit`]).
    pub(super) fn local<T>(
        &self,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> Result<T, ClientError> {
        self.with_core(|core, now| {
            let Core {
                session,
                store,
                saved_at,
                ..
            } = core;
            super::save_local_edit(session, store.as_mut(), saved_at, now, f)
        })
        .0
    }

    /// An app's call ([`Shared::carry_out`]): wakes the connection loop, whose deadlines may
    /// have changed.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core, u64) -> T) -> (T, bool) {
        let result = self.carry_out(f);
        self.wake.notify_one();
        result
    }

    /// Runs `f` on the core, then carries out the session's outputs: saves, sends, and tells
    /// the app (outside the lock, so listeners may call back into the client).
    fn carry_out<T>(&self, f: impl FnOnce(&mut Core, u64) -> T) -> (T, bool) {
        let now = self.now();
        let mut events = Vec::new();
        let mut close = false;
        let mut last_code = None;
        let (result, listeners) = {
            let mut core = self.lock();
            let result = f(&mut core, now);
            while let Some(output) = core.session.poll_output() {
                match output {
                    Output::Persist => {
                        core.saved_at = Instant::now();
                        if let Err(err) = core.save() {
                            events.push(SessionEvent::Error {
                                code: None,
                                message: format!("could not save the offline queue: {err}"),
                            });
                        }
                    }
                    Output::Transmit(message) => {
                        if let Some(writer) = &core.writer {
                            let _ = writer.send(Message::Text(
                                protocol::encode_client(None, &message).into(),
                            ));
                        }
                    }
                    Output::Event(event) => {
                        if let SessionEvent::Error {
                            code: Some(code), ..
                        } = &event
                        {
                            last_code = Some(*code);
                        }
                        events.push(event)
                    }
                    Output::Close { reconnect, reason } => {
                        close = true;
                        core.writer = None;
                        if !reconnect {
                            // Reconnecting cannot help (bad token, unsupported version, ...).
                            core.refused = Some((last_code, reason));
                        }
                    }
                }
            }
            if core.session.needs_save() && core.saved_at.elapsed() >= LAZY_SAVE {
                core.save_lazily(&mut events);
            }
            // Taken under this lock, for the events of this step.
            let listeners = (!events.is_empty()).then(|| core.listeners.clone());
            (result, listeners)
        };
        if let Some(listeners) = listeners {
            self.deliver(&listeners, events);
        }
        (result, close)
    }

    pub(super) fn dispatch(&self, events: Vec<ClientEvent>) {
        if events.is_empty() {
            return;
        }
        let listeners = self.lock().listeners.clone();
        self.deliver(&listeners, events);
    }

    /// Hands a step's events to the listeners and the streams, outside the lock, so that
    /// listeners may call the client (or cancel themselves).
    fn deliver(&self, listeners: &Listeners, events: Vec<ClientEvent>) {
        listeners.call(&events);
        // A batch is made only for a stream or a waiter that reads it.
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(events.into());
        }
    }

    fn emit(&self, event: ClientEvent) {
        self.dispatch(vec![event]);
    }
}

impl Link for Shared {
    fn wake(&self) -> &Notify {
        &self.wake
    }

    fn closed(&self) -> &Notify {
        &self.closed
    }

    fn epoch(&self) -> Instant {
        self.epoch
    }

    fn connected(&self, writer: mpsc::UnboundedSender<Message>) -> bool {
        self.lock().writer = Some(writer);
        self.step(|s, now| s.handle_connected(now)).1
    }

    fn frame(&self, text: &str) -> bool {
        self.step(|s, now| s.handle_frame(now, text)).1
    }

    fn timeout(&self) -> bool {
        self.step(|s, now| s.handle_timeout(now)).1
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.lock().session.poll_timeout()
    }

    fn disconnected(&self) {
        self.lock().writer = None;
        self.step(|s, now| s.handle_disconnected(now));
    }

    fn refused(&self) -> bool {
        self.lock().refused.is_some()
    }

    fn reconnecting(&self, reason: &str, retry_in_ms: u64) {
        self.emit(SessionEvent::Reconnecting {
            reason: reason.to_owned(),
            retry_in_ms,
        });
    }
}
