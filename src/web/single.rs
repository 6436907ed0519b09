//! A browser client of its own (protocol version 1, `ws://{server}/sync/{documentId}`): one
//! [`SyncSession`] behind a `RefCell`, driven by [`super::socket::drive`].

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::FutureExt;

use super::driver::{
    performance_now, ClientError, ClientEvent, Listener, ResolverFailures, LAZY_SAVE_MS,
};
use super::saves::{has_synced, Persistence, SaveInFlight, Saves, Settle, Waiters};
use super::socket::{Control, Link};
use crate::protocol::{self, ErrorCode};
use crate::queue::StoreError;
use crate::session::{Output, SessionEvent, SyncSession};

pub(super) struct Shared {
    pub core: RefCell<Core>,
    pub control: mpsc::UnboundedSender<Control>,
    pub epoch: f64,
}

pub(super) struct Core {
    pub session: SyncSession,
    /// Where the client's state survives restarts; `None` keeps it in memory only.
    pub store: Option<Persistence>,
    pub saves: Saves,
    /// When the state was last saved (`performance.now()`).
    pub saved_at: f64,
    /// The current connection's outgoing frames.
    pub writer: Option<mpsc::UnboundedSender<String>>,
    pub listeners: Vec<Listener>,
    /// What a fallible conflict resolver could not decide, to be told as `Error` events.
    pub resolver_failures: ResolverFailures,
    pub waiters: Waiters,
    /// Set when the server refused us for good.
    pub refused: Option<(Option<ErrorCode>, String)>,
    pub closed: bool,
}

impl Core {
    /// Begins saving the session's state.
    pub fn begin_save(&mut self) -> Option<SaveInFlight> {
        let store = self.store.as_mut()?;
        let state = self.session.client_state();
        self.session.mark_saved();
        self.saved_at = performance_now();
        Some(self.saves.begin(store, &state))
    }

    /// Save `number` ended. A failed one leaves the session wanting a save, so that the next
    /// chance tries again.
    pub fn save_ended(
        &mut self,
        number: u64,
        result: Result<(), StoreError>,
    ) -> Option<ClientEvent> {
        if result.is_err() {
            self.session.save_failed();
        }
        self.saves.ended(number, result)
    }

    /// Why waiting for the server cannot succeed any more.
    pub fn failure(&self) -> Option<ClientError> {
        if let Some((code, message)) = &self.refused {
            Some(ClientError::Refused {
                code: *code,
                message: message.clone(),
            })
        } else if self.closed {
            Some(ClientError::Closed)
        } else {
            None
        }
    }

    /// Resolves the waiters whose condition holds, given the events just emitted.
    pub fn settle_waiters(&mut self, events: &[ClientEvent]) {
        let settle = Settle {
            synced: has_synced(events),
            flushed: self.session.pending_count() == 0,
            failure: self.failure(),
            saves: &self.saves,
        };
        self.waiters.settle(&settle);
    }
}

impl Shared {
    pub fn now(&self) -> u64 {
        (performance_now() - self.epoch).max(0.0) as u64
    }

    /// Runs `f` on the session, then carries out its outputs: saves, sends (after the saves
    /// they depend on), resolves waiters and tells the app (after the borrow ends, so listeners
    /// may call back into the client). Returns `f`'s result and whether the session closed the
    /// connection. An app's call: it wakes the connection loop, whose deadlines may have
    /// changed.
    pub fn with_session<T>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> (T, bool) {
        self.run(true, f)
    }

    /// [`Shared::with_session`]; `by_app` false for the connection loop's own calls (a frame, a
    /// timeout), which leave the loop unwoken: it reads the deadlines again before it waits,
    /// and waking it would poll its task a second time for every frame.
    fn run<T>(
        self: &Rc<Self>,
        by_app: bool,
        f: impl FnOnce(&mut SyncSession, u64) -> T,
    ) -> (T, bool) {
        // The work is in `step`, compiled once rather than once per closure (wasm size).
        let mut f = Some(f);
        let mut result = None;
        let close = self.step(by_app, &mut |session, now| {
            result = f.take().map(|f| f(session, now))
        });
        (result.expect("`step` calls its closure"), close)
    }

    fn step(self: &Rc<Self>, by_app: bool, f: &mut dyn FnMut(&mut SyncSession, u64)) -> bool {
        let now = self.now();
        let mut events = Vec::new();
        let mut close = false;
        let mut last_code = None;
        let (listeners, save_in_flight) = {
            let mut core = self.core.borrow_mut();
            let core = &mut *core;
            f(&mut core.session, now);
            // Set by `Output::Persist`: what follows waits for the save begun below.
            let mut urgent = false;
            while let Some(output) = core.session.poll_output() {
                match output {
                    Output::Persist => urgent = core.store.is_some(),
                    Output::Transmit(message) => {
                        if let Some(writer) = &core.writer {
                            let frame = protocol::encode_client(None, &message);
                            let awaited = core.saves.begun + u64::from(urgent);
                            core.saves.send_after(awaited, writer, frame);
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
            // After the step's `Conflict` events: the resolver's failures among them.
            events.extend(core.resolver_failures.take().into_iter().map(|(_, e)| e));
            let lazy =
                core.session.needs_save() && performance_now() - core.saved_at >= LAZY_SAVE_MS;
            let mut save_in_flight = None;
            if urgent || lazy {
                if let Some((number, mut saved)) = core.begin_save() {
                    // A synchronous store is done already; IndexedDB finishes later.
                    match (&mut saved).now_or_never() {
                        Some(result) => events.extend(core.save_ended(number, result)),
                        None => save_in_flight = Some((number, saved)),
                    }
                }
            }
            core.settle_waiters(&events);
            let listeners = if events.is_empty() {
                Vec::new()
            } else {
                core.listeners.clone()
            };
            (listeners, save_in_flight)
        };
        if !events.is_empty() {
            for listener in &listeners {
                listener.call(&events);
            }
        }
        if let Some((number, saved)) = save_in_flight {
            let shared = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = saved.await;
                let events: Vec<ClientEvent> = {
                    let mut core = shared.core.borrow_mut();
                    let events = core.save_ended(number, result).into_iter().collect();
                    core.settle_waiters(&[]);
                    events
                };
                if !events.is_empty() {
                    shared.emit_all(&events);
                }
            });
        }
        if by_app {
            let _ = self.control.unbounded_send(Control::Wake);
        }
        close
    }

    pub fn emit_all(&self, events: &[ClientEvent]) {
        let listeners = self.core.borrow().listeners.clone();
        for listener in &listeners {
            listener.call(events);
        }
    }

    /// The app closes the client: what could wait is saved now, then the store is let go
    /// (another client may take its record).
    pub fn close(&self) {
        let _ = self.control.unbounded_send(Control::Close);
        let (last_save, store) = {
            let mut core = self.core.borrow_mut();
            let last_save = if core.session.needs_save() {
                core.begin_save()
            } else {
                None
            };
            (last_save, core.store.take())
        };
        wasm_bindgen_futures::spawn_local(async move {
            if let Some((_, saved)) = last_save {
                let _ = saved.await;
            }
            drop(store);
        });
        self.finish();
    }
}

impl Link for Shared {
    fn now(&self) -> u64 {
        Shared::now(self)
    }

    fn finished(&self) -> bool {
        self.core.borrow().closed
    }

    fn connected(self: Rc<Self>, writer: mpsc::UnboundedSender<String>) -> bool {
        self.core.borrow_mut().writer = Some(writer);
        self.run(false, |s, now| s.handle_connected(now)).1
    }

    fn frame(self: Rc<Self>, text: &str) -> bool {
        self.run(false, |s, now| s.handle_frame(now, text)).1
    }

    fn timeout(self: Rc<Self>) -> bool {
        self.run(false, |s, now| s.handle_timeout(now)).1
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.core.borrow().session.poll_timeout()
    }

    fn disconnected(self: Rc<Self>) {
        self.core.borrow_mut().writer = None;
        self.run(false, |s, now| s.handle_disconnected(now));
    }

    fn refused(&self) -> bool {
        self.core.borrow().refused.is_some()
    }

    fn reconnecting(&self, reason: &str, retry_in_ms: u64) {
        self.emit_all(&[SessionEvent::Reconnecting {
            reason: reason.to_owned(),
            retry_in_ms,
        }]);
    }

    fn finish(&self) {
        let mut core = self.core.borrow_mut();
        core.closed = true;
        core.settle_waiters(&[]);
    }
}
