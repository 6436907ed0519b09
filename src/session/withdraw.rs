//! [`SyncSession::withdraw_unsaved`]: a local edit whose save failed is taken back before
//! anything of it leaves the session, so that the call that made it can fail instead of
//! accepting work a crash would lose.

use super::apply::apply_pending;
use super::{Output, SyncSession};
use crate::protocol::ClientMessage;

impl SyncSession {
    /// Withdraws the local edit `client_seq` because saving it failed: it leaves the pending
    /// queue, the visible document is again what it was before the edit, and the `submit` that
    /// carries it is never sent. The driver then fails the call that made the edit with the
    /// store's error: the edit was never accepted, so nothing accepted is lost. Returns true
    /// when the edit was withdrawn; false, changing nothing, when it cannot be (see below).
    ///
    /// # Precondition
    ///
    /// Call it when the save that the [`Output::Persist`] following the edit asked for failed:
    /// right after [`SyncSession::poll_output`] returned that `Persist`, before polling anything
    /// else and before any other input. The edit is the one a local edit ([`SyncSession::edit`],
    /// [`SyncSession::create`], [`SyncSession::delete`], [`SyncSession::undo`], ...) just
    /// returned as `client_seq`.
    /// `poll_output` returns a `Persist` before any queued output, so at that moment the
    /// `submit` the edit may have caused is still in the session's outputs: it is removed, with
    /// the edits before it that it carried (they were saved; they go out in a new `submit`
    /// without the withdrawn one). A driver that moves the session's outputs elsewhere (as
    /// [`crate::multiplex::Multiplexer::with_session`] does) must save and withdraw before that.
    ///
    /// When the precondition does not hold it returns false and changes nothing: when a later
    /// edit was made (it was built on this one), or when the `submit` carrying the edit was
    /// already polled (it may be on its way; the server may log it).
    ///
    /// The edit's `clientSeq` is not reused: the next edit gets the one after it (section 8
    /// allows gaps). The undo and redo steps are forgotten, as when an edit is dropped: they
    /// were made with the withdrawn edit in the document (an `UndoStack` event says so when
    /// that changes what can be undone). Saved state is behind after the failure, so
    /// [`SyncSession::needs_save`] is true afterwards: nothing would be lost if that save
    /// failed too (the store holds no edit that is not pending), so a driver retries it as a
    /// lazy save.
    pub fn withdraw_unsaved(&mut self, now: u64, client_seq: u64) -> bool {
        let latest = self.next_client_seq == client_seq + 1
            && self
                .pending
                .back()
                .is_some_and(|p| p.client_seq == client_seq);
        if !latest {
            return false;
        }
        let in_flight = self
            .inflight
            .as_ref()
            .is_some_and(|inflight| inflight.unsettled.contains(&client_seq));
        let submit = self
            .outputs
            .iter()
            .rposition(|output| carries(output, client_seq));
        if in_flight && submit.is_none() {
            return false;
        }
        if let Some(index) = submit {
            self.outputs.remove(index);
        }
        if in_flight {
            self.inflight = None;
        }
        self.pending.pop_back();
        self.restore_visible();
        self.forget_undo();
        self.dirty = true;
        if submit.is_some() {
            // The saved edits the removed submit carried go out without the withdrawn one.
            self.flush(now);
        }
        true
    }

    /// The visible document without the withdrawn edit, which was the last pending one: the
    /// confirmed document plus the other pending edits, as it was before the edit.
    fn restore_visible(&mut self) {
        let Some(before) = &self.restarting_from else {
            // visible = confirmed + pending holds outside a restart: the other edits applied
            // before the withdrawn one, and still do.
            self.recompute_visible();
            return;
        };
        // Starting over (`restart_from_scratch`): the pending edits are relative to the
        // document from before the restart, and the app sees them applied to it.
        if self.pending.is_empty() {
            self.overlay = None;
            return;
        }
        let mut document = before.document().cloned();
        for pending in &self.pending {
            let _ = apply_pending(&mut document, pending);
        }
        self.overlay = Some(document);
    }
}

/// Whether `output` is a `submit` carrying edit `client_seq`.
fn carries(output: &Output, client_seq: u64) -> bool {
    match output {
        Output::Transmit(ClientMessage::Submit { edits }) => {
            edits.iter().any(|edit| edit.client_seq == client_seq)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::protocol::{ClientMessage, Edit, Operation};
    use crate::server::{ConnectionId, Delivery, MemoryLog};
    use crate::session::{Output, SessionConfig, SessionEvent, SyncSession};

    fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
        serde_json::from_value(v).unwrap()
    }

    /// A log holding `{"items": []}` (created by another client at sequenceNum 1).
    fn log() -> MemoryLog {
        let mut log = MemoryLog::new("doc");
        let create = Edit {
            client_seq: 1,
            base_seq: 0,
            operation: Operation::Create,
            patch: patch(json!([{"op": "add", "path": "", "value": {"items": []}}])),
            shape: None,
        };
        log.submit("other", &[create], &mut |seq| {
            (format!("e{seq}"), "2026-01-01T00:00:00Z".into())
        });
        log
    }

    /// What the session sent, and whether it asked for a save first.
    struct Step {
        persist_first: bool,
        sent: Vec<ClientMessage>,
    }

    /// Polls every output (saves always succeed here).
    fn drain(session: &mut SyncSession) -> Step {
        let mut step = Step {
            persist_first: false,
            sent: Vec::new(),
        };
        let mut first = true;
        while let Some(output) = session.poll_output() {
            match output {
                Output::Persist => step.persist_first |= first,
                Output::Transmit(message) => step.sent.push(message),
                Output::Event(_) | Output::Close { .. } => {}
            }
            first = false;
        }
        step
    }

    /// Hands `sent` to the log on `connection` and the answers back to the session, until
    /// nothing more is sent.
    fn serve(
        session: &mut SyncSession,
        log: &mut MemoryLog,
        connection: ConnectionId,
        mut sent: Vec<ClientMessage>,
    ) {
        for _ in 0..50 {
            if sent.is_empty() {
                return;
            }
            let mut answers = Vec::new();
            for message in &sent {
                for delivery in log.receive_message(connection, 0, message) {
                    if let Delivery::Message(to, answer) = delivery {
                        if to == connection {
                            answers.push(answer);
                        }
                    }
                }
            }
            for answer in answers {
                session.handle_message(0, answer);
            }
            sent = drain(session).sent;
        }
        panic!("the session and the log did not settle");
    }

    /// A session online and caught up with `log`.
    fn online(log: &mut MemoryLog) -> (SyncSession, ConnectionId) {
        let mut session = SyncSession::new(SessionConfig::new("doc", "me"));
        let connection = log.connect(0);
        session.handle_connected(0);
        let sent = drain(&mut session).sent;
        serve(&mut session, log, connection, sent);
        assert!(session.is_settled());
        (session, connection)
    }

    fn submitted(sent: &[ClientMessage]) -> Vec<Vec<u64>> {
        sent.iter()
            .filter_map(|message| match message {
                ClientMessage::Submit { edits } => {
                    Some(edits.iter().map(|edit| edit.client_seq).collect())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_edit_whose_save_failed_is_withdrawn_before_its_submit_leaves() {
        let mut log = log();
        let (mut session, connection) = online(&mut log);
        let before = session.document().cloned();

        let add = patch(json!([{"op": "add", "path": "/items/-", "value": "lost"}]));
        let lost = session.edit(0, add).unwrap();
        // The save comes first: nothing of the edit has left the session yet.
        assert!(matches!(session.poll_output(), Some(Output::Persist)));
        assert!(session.withdraw_unsaved(0, lost));
        // Its submit is never sent; the undo step recorded for it is gone again.
        let rest: Vec<Output> = std::iter::from_fn(|| session.poll_output()).collect();
        assert!(
            !rest.iter().any(|o| matches!(o, Output::Transmit(_))),
            "{rest:?}"
        );
        assert!(matches!(
            rest.last(),
            Some(Output::Event(SessionEvent::UndoStack {
                can_undo: false,
                can_redo: false
            }))
        ));
        assert_eq!(session.document().cloned(), before);
        assert_eq!(session.pending_count(), 0);
        assert!(session.inflight.is_none());
        assert!(session.needs_save(), "the store is behind");
        assert!(
            !session.can_undo(),
            "no step undoes an edit that is not there"
        );
        assert!(!session.withdraw_unsaved(0, lost), "only once");

        // The next edit is saved, sent (alone, under the next clientSeq) and logged.
        let add = patch(json!([{"op": "add", "path": "/items/-", "value": "kept"}]));
        let kept = session.edit(0, add).unwrap();
        assert_eq!(kept, lost + 1);
        let step = drain(&mut session);
        assert!(step.persist_first);
        assert_eq!(submitted(&step.sent), vec![vec![kept]]);
        serve(&mut session, &mut log, connection, step.sent);
        assert!(session.is_settled());
        assert_eq!(session.document(), Some(&json!({"items": ["kept"]})));
        assert!(session.can_undo());
        let logged: Vec<Option<u64>> = log.events().iter().map(|e| e.client_seq).collect();
        assert_eq!(
            logged,
            vec![Some(1), Some(kept)],
            "the withdrawn edit is not in the log"
        );
    }

    #[test]
    fn the_saved_edits_of_the_withdrawn_submit_go_out_without_it() {
        let mut log = log();
        let (mut session, connection) = online(&mut log);
        // A backoff holds edit `a` back (saved, not sent)...
        session.retry_at = 1;
        let a = session
            .edit(
                0,
                patch(json!([{"op": "add", "path": "/items/-", "value": "a"}])),
            )
            .unwrap();
        assert!(submitted(&drain(&mut session).sent).is_empty());
        // ... and is over when `b` comes: one submit carries both.
        session.retry_at = 0;
        let b = session
            .edit(
                0,
                patch(json!([{"op": "add", "path": "/items/-", "value": "b"}])),
            )
            .unwrap();
        assert!(matches!(session.poll_output(), Some(Output::Persist)));
        assert!(session.withdraw_unsaved(0, b));
        assert_eq!(session.document(), Some(&json!({"items": ["a"]})));
        let sent = drain(&mut session).sent;
        assert_eq!(submitted(&sent), vec![vec![a]], "a goes out alone");
        assert_eq!(session.inflight.as_ref().unwrap().unsettled, vec![a]);
        serve(&mut session, &mut log, connection, sent);
        assert!(session.is_settled());
        assert_eq!(session.document(), Some(&json!({"items": ["a"]})));
    }

    #[test]
    fn an_offline_edit_is_withdrawn_and_the_earlier_ones_stay() {
        let mut log = log();
        let (mut session, _) = online(&mut log);
        session.handle_disconnected(0);
        let a = session
            .edit(
                0,
                patch(json!([{"op": "add", "path": "/items/-", "value": "a"}])),
            )
            .unwrap();
        drain(&mut session);
        let b = session.delete(0).unwrap();
        assert_eq!(session.document(), None);
        assert!(matches!(session.poll_output(), Some(Output::Persist)));
        assert!(session.withdraw_unsaved(0, b));
        assert_eq!(session.document(), Some(&json!({"items": ["a"]})));
        let pending: Vec<u64> = session.pending().map(|p| p.client_seq).collect();
        assert_eq!(pending, vec![a]);
        assert!(!session.withdraw_unsaved(0, b));
    }

    #[test]
    fn an_undo_whose_save_failed_is_withdrawn() {
        let mut log = log();
        let (mut session, _) = online(&mut log);
        let add = patch(json!([{"op": "add", "path": "/items/-", "value": "a"}]));
        session.edit(0, add).unwrap();
        drain(&mut session);
        let undo = session.undo(0).unwrap().expect("a step to undo");
        assert_eq!(session.document(), Some(&json!({"items": []})));
        assert!(matches!(session.poll_output(), Some(Output::Persist)));
        assert!(session.withdraw_unsaved(0, undo));
        assert_eq!(session.document(), Some(&json!({"items": ["a"]})));
        let pending: Vec<u64> = session.pending().map(|p| p.client_seq).collect();
        assert_eq!(pending, vec![undo - 1]);
        assert!(!session.can_undo() && !session.can_redo());
    }

    #[test]
    fn an_edit_that_may_be_on_its_way_or_has_a_later_one_is_not_withdrawn() {
        let mut log = log();
        let (mut session, _) = online(&mut log);
        let a = session
            .edit(
                0,
                patch(json!([{"op": "add", "path": "/items/-", "value": "a"}])),
            )
            .unwrap();
        // Its submit was polled: it may be on its way.
        let sent = drain(&mut session).sent;
        assert_eq!(submitted(&sent), vec![vec![a]]);
        assert!(!session.withdraw_unsaved(0, a));
        assert_eq!(session.pending_count(), 1);
        assert!(session.inflight.is_some());
        // A later edit was built on it.
        let b = session
            .edit(
                0,
                patch(json!([{"op": "add", "path": "/items/-", "value": "b"}])),
            )
            .unwrap();
        assert!(!session.withdraw_unsaved(0, a));
        assert!(session.withdraw_unsaved(0, b));
        assert_eq!(session.document(), Some(&json!({"items": ["a"]})));
        assert!(session.inflight.is_some(), "a is still in flight");
    }
}
