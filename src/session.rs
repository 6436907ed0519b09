//! [`SyncSession`]: the client's sync state machine, sans IO.
//!
//! The session owns the confirmed document ([`StateManager`]), the pending edits (the offline
//! queue) and the [`ConflictResolver`]. It opens no sockets, reads no clock and draws no random
//! numbers: a driver feeds it inputs and drains its outputs.
//!
//! - Inputs: [`SyncSession::handle_connected`], [`SyncSession::handle_frame`] (or
//!   [`SyncSession::handle_message`]), [`SyncSession::handle_disconnected`],
//!   [`SyncSession::handle_timeout`], and local edits ([`SyncSession::edit`],
//!   [`SyncSession::create`], [`SyncSession::delete`]). Time is a caller-supplied millisecond
//!   count from any monotonic clock.
//! - Outputs: after every input, call [`SyncSession::poll_output`] until it returns `None`, then
//!   arm a timer for [`SyncSession::poll_timeout`]. `Output::Persist` always comes before the
//!   `Output::Transmit` that depends on it: save [`SyncSession::client_state`] when you see it.
//!   Changes that can wait (applied events) are only flagged: save when
//!   [`SyncSession::needs_save`] says so and it suits you.

use std::collections::VecDeque;

use serde_json::Value;

use crate::conflict::{self, ConflictResolver, ShapedOp};
use crate::diff;
use crate::protocol::{ClientMessage, Edit, ErrorCode, Operation, PROTOCOL_VERSION};
use crate::queue::{ClientState, PendingEdit, STATE_FORMAT};
use crate::state::StateManager;
use crate::undo::UndoHistory;
use crate::vector_clock::VectorClock;

mod apply;
mod receive;
mod types;
mod undoing;
mod withdraw;

pub use types::{ConnectionStatus, Output, SessionConfig, SessionError, SessionEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offline,
    /// `hello` and `sync` sent; waiting for the first catch-up of this connection to finish.
    Connecting,
    /// Caught up once on this connection; live events flow (a resync may be outstanding).
    Online,
}

#[derive(Debug)]
struct Inflight {
    /// `clientSeq`s sent and not yet settled (acked and applied, or rejected).
    unsettled: Vec<u64>,
    sent_at: u64,
}

/// The client sync state machine for one document.
#[derive(Debug)]
pub struct SyncSession {
    config: SessionConfig,
    resolver: ConflictResolver,
    state: StateManager,
    pending: VecDeque<PendingEdit>,
    next_client_seq: u64,
    /// The document with pending edits applied, while there are any (`None`: the confirmed
    /// document is what the app sees, so it is not copied).
    overlay: Option<Option<Value>>,
    phase: Phase,
    /// On a connection of protocol version 2, shared with other documents: `open` instead of
    /// `hello`, and the connection keeps the pings and the idle timer (see [`crate::multiplex`]).
    attached: bool,
    welcomed: bool,
    /// Events or a snapshot arrived on this connection.
    events_seen: bool,
    inflight: Option<Inflight>,
    /// Do not submit before the confirmed document reaches this (after a retryable reject).
    hold_until_seq: u64,
    /// When the outstanding `sync` was sent.
    sync_sent_at: Option<u64>,
    /// `sync_state` was called while a sync was in flight: the server may have answered that
    /// one before the call, so one more round trip comes before `Synced`.
    fresh_sync_wanted: bool,
    /// An event failed to apply: no resync before this time (0: not stalled), so that a bad
    /// event is not fetched again in a tight loop.
    stalled_until: u64,
    /// No submit before this time (0: none): backoff after `rate_limited` or `internal`.
    retry_at: u64,
    /// The current backoff for `retry_at`.
    backoff_ms: u64,
    /// Fewer edits per submit after the server said a frame was `too_large`.
    batch_limit: Option<usize>,
    /// The server's log turned out to be behind this replica: the confirmed document before
    /// the restart from scratch, to rebase pending edits over once caught up again.
    restarting_from: Option<StateManager>,
    last_received: u64,
    last_sent: u64,
    persist: bool,
    /// Saved state is behind, but nothing would be lost (see `needs_save`).
    dirty: bool,
    outputs: VecDeque<Output>,
    /// This client's undo and redo steps.
    undo: UndoHistory,
}

impl SyncSession {
    /// A new session with nothing stored.
    pub fn new(config: SessionConfig) -> Self {
        let state = StateManager::new(config.document_id.clone());
        Self::from_parts(config, state, VecDeque::new(), 1)
    }

    /// A session resumed from a saved [`ClientState`] (pending edits included).
    pub fn restore(config: SessionConfig, saved: ClientState) -> Result<Self, SessionError> {
        if saved.document_id != config.document_id || saved.client_id != config.client_id {
            return Err(SessionError::StateMismatch {
                document_id: saved.document_id,
                client_id: saved.client_id,
            });
        }
        let state = StateManager::restore(
            config.document_id.clone(),
            saved.confirmed,
            saved.applied_seq,
            saved.vector_clock,
        );
        let mut session = Self::from_parts(
            config,
            state,
            saved.pending.into(),
            saved.next_client_seq.max(1),
        );
        session.undo = saved.undo;
        session.recompute_visible();
        Ok(session)
    }

    fn from_parts(
        config: SessionConfig,
        state: StateManager,
        pending: VecDeque<PendingEdit>,
        next_client_seq: u64,
    ) -> Self {
        SyncSession {
            resolver: ConflictResolver::new(config.policy.clone()),
            config,
            state,
            pending,
            next_client_seq,
            overlay: None,
            phase: Phase::Offline,
            attached: false,
            welcomed: false,
            events_seen: false,
            inflight: None,
            hold_until_seq: 0,
            sync_sent_at: None,
            fresh_sync_wanted: false,
            stalled_until: 0,
            retry_at: 0,
            backoff_ms: 0,
            batch_limit: None,
            restarting_from: None,
            last_received: 0,
            last_sent: 0,
            persist: false,
            dirty: false,
            outputs: VecDeque::new(),
            undo: UndoHistory::default(),
        }
    }

    // ----- getters -----

    /// The document as the app sees it: confirmed plus pending edits (`None` if it does not exist).
    pub fn document(&self) -> Option<&Value> {
        match &self.overlay {
            Some(document) => document.as_ref(),
            None => self.state.document(),
        }
    }

    /// The document as of the last applied event.
    pub fn confirmed(&self) -> Option<&Value> {
        self.state.document()
    }

    /// The `sequenceNum` of the last applied event.
    pub fn applied_seq(&self) -> u64 {
        self.state.applied_seq()
    }

    /// The state vector.
    pub fn state_vector(&self) -> &VectorClock {
        self.state.state_vector()
    }

    /// How many local edits are not yet in the log.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The pending edits, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &PendingEdit> {
        self.pending.iter()
    }

    /// The connection status.
    pub fn status(&self) -> ConnectionStatus {
        match self.phase {
            Phase::Offline => ConnectionStatus::Offline,
            Phase::Connecting => ConnectionStatus::Connecting,
            Phase::Online => ConnectionStatus::Online,
        }
    }

    /// True when online, caught up, and no local edit is waiting for the server.
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Online && self.sync_sent_at.is_none() && self.pending.is_empty()
    }

    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Everything to persist (see [`crate::queue::Store`]).
    ///
    /// While the session starts over from a server that lost history, this is the state from
    /// before (which the pending edits are relative to) until the catch-up completes.
    pub fn client_state(&self) -> ClientState {
        let state = self.restarting_from.as_ref().unwrap_or(&self.state);
        ClientState {
            format: STATE_FORMAT,
            document_id: self.config.document_id.clone(),
            client_id: self.config.client_id.clone(),
            next_client_seq: self.next_client_seq,
            confirmed: state.document().cloned(),
            applied_seq: state.applied_seq(),
            vector_clock: state.state_vector().clone(),
            pending: self.pending.iter().cloned().collect(),
            undo: self.undo.clone(),
        }
    }

    /// True when the state changed since it was last saved in a way that need not be saved at
    /// once: events applied, pending edits rebased. Losing such a change costs a refetch, never
    /// an edit; drivers save it when convenient (say, once a second) and call
    /// [`SyncSession::mark_saved`]. Changes that must be saved at once come as
    /// [`Output::Persist`].
    pub fn needs_save(&self) -> bool {
        self.dirty
    }

    /// The driver saved [`SyncSession::client_state`].
    pub fn mark_saved(&mut self) {
        self.dirty = false;
    }

    /// A save the driver began (and marked) failed: the state needs saving again.
    pub fn save_failed(&mut self) {
        self.dirty = true;
    }

    // ----- outputs -----

    /// The next thing to do; `None` when there is nothing until more input or the timeout.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.persist {
            self.persist = false;
            self.dirty = false;
            return Some(Output::Persist);
        }
        self.outputs.pop_front()
    }

    /// When [`SyncSession::handle_timeout`] should next be called (`None` while offline).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.phase == Phase::Offline {
            return None;
        }
        let mut at = if self.attached {
            u64::MAX
        } else {
            (self.last_received + self.config.idle_timeout_ms)
                .min(self.last_received.max(self.last_sent) + self.config.ping_interval_ms)
        };
        if let Some(sent) = self.sync_sent_at {
            at = at.min(sent + self.config.request_timeout_ms);
        }
        if let Some(inflight) = &self.inflight {
            at = at.min(inflight.sent_at + self.config.request_timeout_ms);
        }
        for deadline in [self.stalled_until, self.retry_at] {
            if deadline != 0 {
                at = at.min(deadline);
            }
        }
        (at != u64::MAX).then_some(at)
    }

    // ----- inputs -----

    /// The transport is open: say hello and ask for what is missing.
    pub fn handle_connected(&mut self, now: u64) {
        self.connect(now, false);
    }

    /// Version 2: the shared connection is welcomed: open this document on it and ask for what
    /// is missing. Its frames go out through the connection ([`crate::multiplex`]), which adds
    /// the `documentId`, pings and watches for silence.
    pub fn handle_attached(&mut self, now: u64) {
        self.connect(now, true);
    }

    fn connect(&mut self, now: u64, attached: bool) {
        self.attached = attached;
        self.phase = Phase::Connecting;
        self.welcomed = false;
        self.events_seen = false;
        self.inflight = None;
        self.hold_until_seq = 0;
        self.batch_limit = None;
        self.last_received = now;
        self.emit(SessionEvent::Status(ConnectionStatus::Connecting));
        let first = if attached {
            ClientMessage::Open
        } else {
            ClientMessage::Hello {
                protocol_versions: vec![PROTOCOL_VERSION],
                client_id: self.config.client_id.clone(),
                token: self.config.token.clone(),
            }
        };
        self.transmit(now, first);
        self.request_sync(now, None);
    }

    /// The transport closed. Pending edits stay queued.
    pub fn handle_disconnected(&mut self, _now: u64) {
        if self.phase == Phase::Offline {
            return;
        }
        self.phase = Phase::Offline;
        self.inflight = None;
        self.sync_sent_at = None;
        self.fresh_sync_wanted = false;
        self.emit(SessionEvent::Status(ConnectionStatus::Offline));
    }

    /// Time passed: resend what went unanswered, ping, or give up on a silent connection.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.phase == Phase::Offline {
            return;
        }
        if !self.attached && now >= self.last_received + self.config.idle_timeout_ms {
            self.close(true, "the connection went silent".into());
            return;
        }
        let timeout = self.config.request_timeout_ms;
        if self.sync_sent_at.is_some_and(|sent| now >= sent + timeout) {
            self.request_sync(now, Some(self.state.applied_seq()));
        }
        if self
            .inflight
            .as_ref()
            .is_some_and(|inflight| now >= inflight.sent_at + timeout)
        {
            // Catch up first: the edits may be in the log already, and their resend must be
            // rebased over whatever else arrived.
            self.inflight = None;
            self.request_sync(now, Some(self.state.applied_seq()));
        }
        if self.stalled_until != 0 && now >= self.stalled_until {
            self.stalled_until = 0;
            self.request_sync(now, Some(self.state.applied_seq()));
        }
        if self.retry_at != 0 && now >= self.retry_at {
            self.retry_at = 0;
            self.flush(now);
        }
        if !self.attached
            && now >= self.last_received.max(self.last_sent) + self.config.ping_interval_ms
        {
            self.transmit(now, ClientMessage::Ping { nonce: Some(now) });
        }
    }

    /// Records that events of `client_id` up to `sequence_num` are known (never lowers an entry).
    ///
    /// This changes what the next `sync` asks for; it never skips an event, because events
    /// still apply strictly in order and a gap is fetched by cursor.
    pub fn update_state_vector(&mut self, client_id: &str, sequence_num: u64) {
        self.state.update_state_vector(client_id, sequence_num);
        self.persist = true;
    }

    /// Asks for a catch-up now (e.g. when the app returns to the foreground). The next
    /// `Synced` answers a sync the server received after this call, so it covers every event
    /// the log held at the call. Offline, the next connection's handshake does that.
    pub fn sync_state(&mut self, now: u64) {
        if self.phase == Phase::Offline {
            return;
        }
        if self.sync_sent_at.is_some() {
            self.fresh_sync_wanted = true;
        } else {
            self.request_sync(now, Some(self.state.applied_seq()));
        }
    }

    /// Applies an RFC 6902 patch to the visible document and queues it. Returns its `clientSeq`.
    /// On error nothing changes.
    pub fn edit(
        &mut self,
        now: u64,
        patch: Vec<json_patch::PatchOperation>,
    ) -> Result<u64, SessionError> {
        let before = self.document().ok_or(SessionError::NoDocument)?;
        diff::check_placed_numbers(&patch)?;
        let mut after = before.clone();
        diff::apply_patch(&mut after, &patch)?;
        let ops = conflict::shape_valid(before, &patch)?;
        diff::check_depth(&after, diff::MAX_DOCUMENT_DEPTH)?;
        let inverse = undoing::inverse_of(&self.config.undo, before, &ops)?;
        self.record_undo(now, inverse);
        Ok(self.queue(now, Operation::Update, ops, Some(after)))
    }

    /// Creates the document (it must not exist). Returns the edit's `clientSeq`.
    pub fn create(&mut self, now: u64, document: Value) -> Result<u64, SessionError> {
        if self.document().is_some() {
            return Err(SessionError::DocumentExists);
        }
        diff::check_depth(&document, diff::MAX_DOCUMENT_DEPTH)?;
        let patch = vec![json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::new(),
            value: document.clone(),
        })];
        diff::check_placed_numbers(&patch)?;
        let ops = conflict::shape(&Value::Null, &patch)?;
        self.forget_undo();
        Ok(self.queue(now, Operation::Create, ops, Some(document)))
    }

    /// Deletes the document (it must exist). Returns the edit's `clientSeq`.
    pub fn delete(&mut self, now: u64) -> Result<u64, SessionError> {
        if self.document().is_none() {
            return Err(SessionError::NoDocument);
        }
        self.forget_undo();
        Ok(self.queue(now, Operation::Delete, Vec::new(), None))
    }

    // ----- internals -----

    fn queue(
        &mut self,
        now: u64,
        operation: Operation,
        ops: Vec<ShapedOp>,
        after: Option<Value>,
    ) -> u64 {
        let client_seq = self.next_client_seq;
        self.next_client_seq += 1;
        self.pending.push_back(PendingEdit {
            client_seq,
            operation,
            ops,
        });
        self.overlay = Some(after);
        self.persist = true;
        self.flush(now);
        client_seq
    }

    fn emit(&mut self, event: SessionEvent) {
        // The steps were made with the dropped edit in the document: they cannot follow.
        let dropped = matches!(event, SessionEvent::EditRejected { .. });
        self.outputs.push_back(Output::Event(event));
        if dropped {
            self.forget_undo();
        }
    }

    fn transmit(&mut self, now: u64, message: ClientMessage) {
        self.last_sent = now;
        self.outputs.push_back(Output::Transmit(message));
    }

    fn close(&mut self, reconnect: bool, reason: String) {
        self.outputs.push_back(Output::Close { reconnect, reason });
        self.handle_disconnected(0);
    }

    fn request_sync(&mut self, now: u64, after: Option<u64>) {
        if self.stalled_until != 0 {
            return;
        }
        self.sync_sent_at = Some(now);
        self.transmit(
            now,
            ClientMessage::Sync {
                vector_clock: self.state.state_vector().clone(),
                after,
            },
        );
    }

    /// Clears the in-flight submit once every edit of it is settled, then sends the next one.
    fn settle_inflight(&mut self, now: u64) {
        if let Some(inflight) = &mut self.inflight {
            let pending = &self.pending;
            inflight
                .unsettled
                .retain(|seq| pending.iter().any(|p| p.client_seq == *seq));
            if inflight.unsettled.is_empty() {
                self.inflight = None;
            }
        }
        if self.hold_until_seq > self.state.applied_seq()
            && self.phase == Phase::Online
            && self.sync_sent_at.is_none()
            && self.inflight.is_none()
        {
            self.request_sync(now, Some(self.state.applied_seq()));
        }
        self.flush(now);
    }

    /// A submit frame was too large: send fewer edits at a time, or give up on a single edit.
    fn shrink_submit(&mut self, now: u64) {
        let Some(inflight) = self.inflight.take() else {
            return;
        };
        if inflight.unsettled.len() <= 1 {
            if let Some(client_seq) = inflight.unsettled.first().copied() {
                self.drop_pending(
                    client_seq,
                    ErrorCode::TooLarge,
                    "the edit alone is larger than the server accepts".into(),
                );
                self.recompute_visible();
            }
        } else {
            self.batch_limit = Some(inflight.unsettled.len() / 2);
        }
        self.flush(now);
    }

    /// Waits before the next submit, doubling from 1 s up to 30 s.
    fn back_off(&mut self, now: u64) {
        self.backoff_ms = (self.backoff_ms * 2).clamp(1_000, 30_000);
        self.retry_at = now + self.backoff_ms;
    }

    fn flush(&mut self, now: u64) {
        if self.phase != Phase::Online
            || self.sync_sent_at.is_some()
            || self.stalled_until != 0
            || self.retry_at != 0
            || self.inflight.is_some()
            || self.pending.is_empty()
            || self.hold_until_seq > self.state.applied_seq()
        {
            return;
        }
        let base_seq = self.state.applied_seq();
        let edits: Vec<Edit> = self
            .pending
            .iter()
            .take(self.batch_limit.unwrap_or(self.config.max_batch).max(1))
            .map(|p| Edit {
                client_seq: p.client_seq,
                base_seq,
                operation: p.operation,
                patch: conflict::to_patch(&p.ops),
                shape: Some(p.ops.iter().map(|op| op.in_array).collect()),
            })
            .collect();
        self.inflight = Some(Inflight {
            unsettled: edits.iter().map(|e| e.client_seq).collect(),
            sent_at: now,
        });
        self.transmit(now, ClientMessage::Submit { edits });
    }
}
