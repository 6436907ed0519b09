//! The server's messages: a frame read, and what each message does to the session (the
//! handshake, catch-up, acks and rejections, the log's head).

use super::{ConnectionStatus, Phase, SessionEvent, SyncSession};
use crate::protocol::{self, ErrorCode, ServerMessage, PROTOCOL_VERSION};

impl SyncSession {
    /// A text frame from the server.
    pub fn handle_frame(&mut self, now: u64, text: &str) {
        match protocol::decode_server(text) {
            Ok(message) => self.handle_message(now, message),
            Err(err) => {
                self.last_received = now;
                self.emit(SessionEvent::Error {
                    code: Some(err.code()),
                    message: format!("unreadable frame from the server: {err}"),
                });
            }
        }
    }

    /// A message from the server.
    pub fn handle_message(&mut self, now: u64, message: ServerMessage) {
        if self.phase == Phase::Offline {
            return;
        }
        self.last_received = now;
        self.events_seen |= matches!(
            message,
            ServerMessage::Events { .. }
                | ServerMessage::Event { .. }
                | ServerMessage::Snapshot { .. }
        );
        match message {
            // Version 2: the document's welcome.
            ServerMessage::Opened { head_seq } => self.learn_head_at_welcome(now, Some(head_seq)),
            // Closed without a code answers a `close`; a session that did not ask for it (its
            // `open` crossed an earlier `close`) opens the document again.
            ServerMessage::Closed { code: None, .. } => {
                self.close(true, "the server closed the document".into())
            }
            // Version 2: the server stopped serving the document. Opening it again after a
            // backoff helps, unless the refusal is final (18.2).
            ServerMessage::Closed {
                code: Some(code),
                message,
            } => {
                self.emit(SessionEvent::Error {
                    code: Some(code),
                    message: message.clone(),
                });
                let reopen = !matches!(
                    code,
                    ErrorCode::Unauthorized
                        | ErrorCode::Forbidden
                        | ErrorCode::UnknownDocument
                        | ErrorCode::TooLarge
                );
                self.close(reopen, message);
            }
            ServerMessage::Welcome {
                protocol_version,
                head_seq,
                ..
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    self.close(
                        false,
                        format!("server chose unsupported protocol version {protocol_version}"),
                    );
                    return;
                }
                self.learn_head_at_welcome(now, head_seq);
            }
            ServerMessage::Events {
                events,
                head_seq,
                has_more,
            } => {
                self.receive_events(now, events);
                if !has_more {
                    self.finish_catch_up(now, head_seq);
                } else if self.sync_sent_at.is_some() {
                    // A long catch-up is progressing: its request has not timed out.
                    self.sync_sent_at = Some(now);
                }
            }
            ServerMessage::Event { events } => self.receive_events(now, events),
            ServerMessage::Snapshot { snapshot } => self.install_snapshot(now, snapshot),
            ServerMessage::Ack { edits } => {
                let mut folded = false;
                for ack in edits {
                    self.emit(SessionEvent::Acked {
                        client_seq: ack.client_seq,
                        sequence_num: ack.sequence_num,
                    });
                    if ack.sequence_num > self.state.applied_seq() {
                        // The event has not arrived yet: fetch it rather than wait forever.
                        self.hold_until_seq = self.hold_until_seq.max(ack.sequence_num);
                    } else if let Some(index) = self
                        .pending
                        .iter()
                        .position(|p| p.client_seq == ack.client_seq)
                    {
                        // Its event is in the confirmed document but was never applied on its
                        // own: a snapshot folded it in (a resend after compaction, 6.3). The
                        // edit has been applied, so it leaves the queue (8.6).
                        self.pending.remove(index);
                        folded = true;
                    }
                }
                if folded {
                    self.dirty = true;
                    if self.restarting_from.is_none() {
                        self.recompute_visible();
                    }
                }
                self.backoff_ms = 0;
                if self.hold_until_seq > self.state.applied_seq() && self.sync_sent_at.is_none() {
                    self.request_sync(now, Some(self.state.applied_seq()));
                }
                self.settle_inflight(now);
            }
            ServerMessage::Reject {
                client_seq,
                code,
                message,
                head_seq,
            } => self.handle_reject(now, client_seq, code, message, head_seq),
            ServerMessage::Error { code, message } => {
                let fatal = matches!(
                    code,
                    ErrorCode::Unauthorized
                        | ErrorCode::Forbidden
                        | ErrorCode::UnsupportedVersion
                        | ErrorCode::ClientMismatch
                        | ErrorCode::UnknownDocument
                );
                self.emit(SessionEvent::Error {
                    code: Some(code),
                    message: message.clone(),
                });
                match code {
                    _ if fatal => self.close(false, message),
                    // The server did not see our `hello`: start the connection over.
                    ErrorCode::UnexpectedMessage => self.close(true, message),
                    // Our position is ahead of the server's log: it lost history.
                    ErrorCode::InvalidSequence => self.restart_from_scratch(now, 0),
                    ErrorCode::TooLarge if self.inflight.is_some() => self.shrink_submit(now),
                    ErrorCode::RateLimited | ErrorCode::Internal if self.inflight.is_some() => {
                        // The submit was dropped, not ordered: resend after a backoff.
                        self.inflight = None;
                        self.back_off(now);
                    }
                    _ => {}
                }
            }
            ServerMessage::Pong { head_seq, .. } => {
                if let Some(head_seq) = head_seq {
                    self.handle_head(now, head_seq);
                }
            }
            // Presence and history answers are the connection's ([`crate::Multiplexer`]), not
            // the log's.
            ServerMessage::Presence(_)
            | ServerMessage::History(_)
            | ServerMessage::Version(_)
            | ServerMessage::Unknown => {}
        }
    }

    /// The server says its log reaches `head_seq` (a `pong`; version 2: the document's entry of
    /// `pong.heads`). Behind it, with no `sync` outstanding, a live event went missing with
    /// nothing after it to reveal the gap: resync.
    pub fn handle_head(&mut self, now: u64, head_seq: u64) {
        if self.phase != Phase::Offline
            && head_seq > self.state.applied_seq()
            && self.sync_sent_at.is_none()
        {
            self.request_sync(now, Some(self.state.applied_seq()));
        }
    }

    /// A `welcome` (version 1) or an `opened` (version 2) with the log's head.
    fn learn_head_at_welcome(&mut self, now: u64, head_seq: Option<u64>) {
        // Only a welcome that precedes every event of its connection says where the server's
        // log stands (over TCP it always does).
        let first = !std::mem::replace(&mut self.welcomed, true);
        if let Some(head_seq) = head_seq {
            if first && !self.events_seen && head_seq < self.state.applied_seq() {
                self.restart_from_scratch(now, head_seq);
            }
        }
    }

    fn finish_catch_up(&mut self, now: u64, head_seq: Option<u64>) {
        if self.sync_sent_at.is_none() {
            return;
        }
        let behind = head_seq.is_some_and(|head| head > self.state.applied_seq());
        if behind || self.state.buffered() > 0 {
            // Something between here and the head is still missing: ask by cursor.
            self.request_sync(now, Some(self.state.applied_seq()));
            return;
        }
        self.sync_sent_at = None;
        if let Some(before) = self.restarting_from.take() {
            self.rebase_over_jump(before.document().cloned());
            self.dirty = true;
        }
        if self.phase == Phase::Connecting {
            self.phase = Phase::Online;
            self.emit(SessionEvent::Status(ConnectionStatus::Online));
        }
        if std::mem::take(&mut self.fresh_sync_wanted) {
            self.request_sync(now, Some(self.state.applied_seq()));
            return;
        }
        self.emit(SessionEvent::Synced {
            sequence_num: self.state.applied_seq(),
        });
        self.flush(now);
    }

    fn handle_reject(
        &mut self,
        now: u64,
        client_seq: u64,
        code: ErrorCode,
        message: String,
        head_seq: u64,
    ) {
        if let Some(inflight) = &mut self.inflight {
            inflight.unsettled.retain(|seq| *seq < client_seq);
        }
        if code.is_retryable() {
            // Rebase over everything up to the server's head before resending.
            self.hold_until_seq = self.hold_until_seq.max(head_seq);
            if matches!(code, ErrorCode::RateLimited | ErrorCode::Internal) {
                self.back_off(now);
            }
        } else {
            self.drop_pending(client_seq, code, message);
            self.recompute_visible();
        }
        self.settle_inflight(now);
    }
}
