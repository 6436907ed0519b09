//! The core of a [`super::SyncClient`] of its own: one [`SyncSession`] on a connection of
//! protocol version 1 (`ws://{server}/sync/{documentId}`), behind a lock, with its store and
//! listeners.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::link::Link;
use super::{ClientError, ClientEvent, Listener, LAZY_SAVE};
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
    pub(super) listeners: Vec<Listener>,
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
        let state = self.session.client_state();
        match self.store.as_mut().map_or(Ok(()), |s| s.save(&state)) {
            Ok(()) => self.session.mark_saved(),
            Err(err) => events.push(SessionEvent::Error {
                code: None,
                message: format!("could not save the client state: {err}"),
            }),
        }
        self.saved_at = Instant::now();
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

    /// Runs `f` on the session, then carries out its outputs: saves, sends, and tells the app
    /// (outside the lock, so listeners may call back into the client).
    pub(super) fn with_session<T>(&self, f: impl FnOnce(&mut SyncSession, u64) -> T) -> (T, bool) {
        self.with_core(|core, now| f(&mut core.session, now))
    }

    /// An app's call: [`Shared::with_session`], with a local edit saved before anything of it
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

    /// [`Shared::with_session`] with the whole core.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core, u64) -> T) -> (T, bool) {
        let now = self.now();
        let mut events = Vec::new();
        let mut close = false;
        let mut last_code = None;
        let result = {
            let mut core = self.lock();
            let result = f(&mut core, now);
            while let Some(output) = core.session.poll_output() {
                match output {
                    Output::Persist => {
                        core.saved_at = Instant::now();
                        let state = core.session.client_state();
                        let saved = core.store.as_mut().map_or(Ok(()), |s| s.save(&state));
                        if let Err(err) = saved {
                            events.push(SessionEvent::Error {
                                code: None,
                                message: format!("could not save the offline queue: {err}"),
                            });
                        }
                    }
                    Output::Transmit(message) => {
                        if let Some(writer) = &core.writer {
                            let _ = writer.send(Message::Text(protocol::encode(&message).into()));
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
            result
        };
        self.dispatch(events);
        self.wake.notify_one();
        (result, close)
    }

    pub(super) fn dispatch(&self, events: Vec<ClientEvent>) {
        if events.is_empty() {
            return;
        }
        // Outside the lock, so that listeners may call the client (or cancel themselves).
        let listeners = self.lock().listeners.clone();
        for listener in &listeners {
            listener.call(&events);
        }
        let _ = self.events.send(events.into());
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
        self.with_session(|s, now| s.handle_connected(now)).1
    }

    fn frame(&self, text: &str) -> bool {
        self.with_session(|s, now| s.handle_frame(now, text)).1
    }

    fn timeout(&self) -> bool {
        self.with_session(|s, now| s.handle_timeout(now)).1
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.lock().session.poll_timeout()
    }

    fn disconnected(&self) {
        self.lock().writer = None;
        self.with_session(|s, now| s.handle_disconnected(now));
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
