//! History: a document as of any position the server can still rebuild (`docs/PROTOCOL.md` 3.9,
//! 12.4 and 18.8), read from a log the caller owns.
//!
//! [`VersionAt`] is a sans-IO machine like [`super::CatchUp`], asking for the same [`Read`]s: the
//! head, the latest snapshot, then the events from where it starts up to the position, which it
//! applies with the same function every replica applies events with
//! ([`crate::diff::apply_event_in_place`]). The rule for positions compaction removed is here:
//! a store keeps one snapshot, so once events were compacted the oldest position that can be
//! rebuilt is the snapshot's; an older one is `history_compacted`. A position ahead of the log
//! is `invalid_sequence`, as everywhere.
//!
//! A page of history (who, when, what changed) is a plain catch-up page
//! ([`super::CatchUp::after`] with [`super::SnapshotPolicy::WhenBehind`]): `GET /api/events`
//! and the `history` request of version 2 answer the same page.

use serde_json::Value;

use crate::diff::apply_event_in_place;
use crate::protocol::{ErrorCode, Event, Snapshot, Version};
use crate::sequencer::check_position;

use super::catch_up::{LogHead, Read, ReadResult};

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum VersionStep {
    /// Read this and feed the result to [`VersionAt::handle`].
    Read(Read),
    /// The document as of the position.
    Done(Version),
    /// The position is refused (`invalid_sequence`, `history_compacted`), or the log could not
    /// be read consistently (`internal`).
    Refused(ErrorCode, String),
}

/// Reads that find a gap (history compacted while they ran) are tried this many times.
const ATTEMPTS: u32 = 3;

/// The document as of one position (see the module documentation).
#[derive(Debug, Clone)]
pub struct VersionAt {
    at: u64,
    limit: usize,
    failed_attempts: u32,
    fresh_head_read: bool,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Head,
    Snapshot {
        first_retained_seq: u64,
    },
    Events {
        /// Events up to `base` are not applied (the start already holds them); the event at
        /// `at` is read for who and when.
        base: u64,
        /// The last `sequenceNum` read.
        read: u64,
        document: Option<Value>,
        origin: Option<Box<Event>>,
    },
    Done,
}

impl VersionAt {
    /// The document as of `at`, reading at most `limit` events at a time. Returns the machine
    /// and its first read.
    pub fn new(at: u64, limit: usize) -> (Self, Read) {
        let machine = VersionAt {
            at,
            limit: limit.max(1),
            failed_attempts: 0,
            fresh_head_read: false,
            state: State::Head,
        };
        (machine, Read::Head { fresh: false })
    }

    /// Feeds what the last [`Read`] found.
    pub fn handle(&mut self, result: ReadResult) -> VersionStep {
        match (std::mem::replace(&mut self.state, State::Done), result) {
            (State::Head, ReadResult::Head(head)) => self.plan(head),
            (State::Snapshot { first_retained_seq }, ReadResult::Snapshot(snapshot)) => {
                self.start(first_retained_seq, snapshot)
            }
            (
                State::Events {
                    base,
                    read,
                    document,
                    origin,
                },
                ReadResult::Events(events),
            ) => self.take_events(base, read, document, origin, events),
            (
                State::Events {
                    base,
                    read,
                    document,
                    origin,
                },
                ReadResult::Encoded(events),
            ) => match events.to_events("") {
                Ok(events) => self.take_events(base, read, document, origin, events),
                Err(err) => VersionStep::Refused(
                    ErrorCode::Internal,
                    format!("an event of the log cannot be read: {err}"),
                ),
            },
            (_, other) => VersionStep::Refused(
                ErrorCode::Internal,
                format!("history: unexpected read result {other:?}"),
            ),
        }
    }

    fn plan(&mut self, head: LogHead) -> VersionStep {
        if let Err((code, message)) = check_position("at", self.at, head.head_seq) {
            if !self.fresh_head_read {
                // Ahead of a cache, maybe not of the store: look again before refusing.
                self.fresh_head_read = true;
                self.state = State::Head;
                return VersionStep::Read(Read::Head { fresh: true });
            }
            return VersionStep::Refused(code, message);
        }
        self.state = State::Snapshot {
            first_retained_seq: head.first_retained_seq,
        };
        VersionStep::Read(Read::Snapshot)
    }

    /// Where the rebuild starts: the snapshot when it is at or below the position, else the
    /// empty log, which only a log that was never compacted still holds.
    fn start(&mut self, first_retained_seq: u64, snapshot: Option<Snapshot>) -> VersionStep {
        let snapshot_seq = snapshot.as_ref().map(|s| s.sequence_num);
        let (base, document) = match snapshot {
            Some(snapshot) if snapshot.sequence_num <= self.at => {
                (snapshot.sequence_num, snapshot.document)
            }
            _ if first_retained_seq <= 1 => (0, None),
            _ => {
                let oldest = snapshot_seq.unwrap_or(first_retained_seq.saturating_sub(1));
                return VersionStep::Refused(
                    ErrorCode::HistoryCompacted,
                    format!(
                        "the history before {oldest} was compacted: the oldest position that can be read is {oldest}"
                    ),
                );
            }
        };
        // The event at the position itself, for who and when, when it is still stored.
        let from = if self.at == base && self.at >= first_retained_seq.max(1) {
            self.at - 1
        } else {
            base
        };
        if from >= self.at {
            return self.finish(document, None);
        }
        self.read_events(base, from, document, None)
    }

    fn read_events(
        &mut self,
        base: u64,
        read: u64,
        document: Option<Value>,
        origin: Option<Box<Event>>,
    ) -> VersionStep {
        let limit = usize::try_from(self.at - read).map_or(self.limit, |n| n.min(self.limit));
        self.state = State::Events {
            base,
            read,
            document,
            origin,
        };
        VersionStep::Read(Read::Events { after: read, limit })
    }

    fn take_events(
        &mut self,
        base: u64,
        read: u64,
        mut document: Option<Value>,
        mut origin: Option<Box<Event>>,
        events: Vec<Event>,
    ) -> VersionStep {
        if events.first().map(|e| e.sequence_num) != Some(read + 1) {
            // Compacted while this was read: start again (it then finds the newer snapshot).
            self.failed_attempts += 1;
            if self.failed_attempts >= ATTEMPTS {
                return VersionStep::Refused(
                    ErrorCode::Internal,
                    "the log was compacted while the version was read: try again".into(),
                );
            }
            self.state = State::Head;
            return VersionStep::Read(Read::Head { fresh: true });
        }
        let mut last = read;
        for event in events.into_iter().take_while(|e| e.sequence_num <= self.at) {
            if event.sequence_num != last + 1 {
                return VersionStep::Refused(
                    ErrorCode::Internal,
                    format!("the log has a gap before event {}", event.sequence_num),
                );
            }
            last = event.sequence_num;
            if event.sequence_num > base {
                if let Err(err) = apply_event_in_place(&mut document, &event) {
                    return VersionStep::Refused(
                        ErrorCode::Internal,
                        format!("event {} does not apply: {err}", event.sequence_num),
                    );
                }
            }
            if event.sequence_num == self.at {
                origin = Some(Box::new(event));
            }
        }
        if last >= self.at {
            return self.finish(document, origin);
        }
        self.read_events(base, last, document, origin)
    }

    fn finish(&mut self, document: Option<Value>, origin: Option<Box<Event>>) -> VersionStep {
        self.state = State::Done;
        VersionStep::Done(Version {
            document_id: String::new(),
            sequence_num: self.at,
            document,
            client_id: origin.as_ref().map(|e| e.client_id.clone()),
            timestamp: origin
                .as_ref()
                .map(|e| e.timestamp.clone())
                .filter(|t| !t.is_empty()),
            operation: origin.map(|e| e.operation),
        })
    }
}

/// Runs a [`VersionAt`] to its answer against a log that answers reads at once (the in-memory
/// log, and tests). Asynchronous drivers run the same loop around their store.
pub fn run_version_sync(
    mut machine: VersionAt,
    first: Read,
    mut read: impl FnMut(Read) -> Result<ReadResult, (ErrorCode, String)>,
) -> Result<Version, (ErrorCode, String)> {
    let mut next = first;
    loop {
        match machine.handle(read(next)?) {
            VersionStep::Read(again) => next = again,
            VersionStep::Done(version) => return Ok(version),
            VersionStep::Refused(code, message) => return Err((code, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector_clock::VectorClock;
    use serde_json::json;

    /// Event `seq` sets `/n` to `seq` (event 1 creates `{"n": 1}`), by client a or b.
    fn event(seq: u64) -> Event {
        let (operation, path, value) = if seq == 1 {
            ("create", "", json!({"n": 1}))
        } else {
            ("update", "/n", json!(seq))
        };
        serde_json::from_value(json!({
            "id": format!("e{seq}"), "documentId": "d", "sequenceNum": seq,
            "timestamp": format!("2026-01-01T00:00:{seq:02}Z"), "operation": operation,
            "diff": {"patch": [{"op": "add", "path": path, "value": value}]},
            "clientId": if seq % 2 == 1 { "a" } else { "b" }
        }))
        .unwrap()
    }

    /// A log of `head` events whose events up to `compacted` are gone, with the snapshot of
    /// `snapshot` (the document at it, as the events make it).
    fn version(
        head: u64,
        compacted: u64,
        snapshot: Option<u64>,
        at: u64,
        limit: usize,
    ) -> Result<Version, (ErrorCode, String)> {
        let events: Vec<Event> = (1..=head).map(event).collect();
        let (machine, first) = VersionAt::new(at, limit);
        run_version_sync(machine, first, |read| {
            Ok(match read {
                Read::Head { .. } => ReadResult::Head(LogHead {
                    head_seq: head,
                    first_retained_seq: compacted + 1,
                    vector: VectorClock::new(),
                }),
                Read::Snapshot => ReadResult::Snapshot(snapshot.map(|seq| Snapshot {
                    document_id: "d".into(),
                    sequence_num: seq,
                    document: Some(json!({"n": seq})),
                    vector_clock: VectorClock::new(),
                })),
                Read::SyncSnapshot => unreachable!("a version reads the latest stored snapshot"),
                Read::Events { after, limit } => ReadResult::Events(
                    events
                        .iter()
                        .filter(|e| e.sequence_num > after.max(compacted))
                        .take(limit)
                        .cloned()
                        .collect(),
                ),
            })
        })
    }

    #[test]
    fn every_position_of_an_uncompacted_log_is_rebuilt_with_who_and_when() {
        for snapshot in [None, Some(4)] {
            for at in 1..=7 {
                let v = version(7, 0, snapshot, at, 2).unwrap();
                assert_eq!(v.document, Some(json!({"n": at})), "at {at}");
                assert_eq!(v.sequence_num, at);
                let who = if at % 2 == 1 { "a" } else { "b" };
                assert_eq!(v.client_id.as_deref(), Some(who));
                assert_eq!(
                    v.timestamp,
                    Some(format!("2026-01-01T00:00:{at:02}Z")),
                    "at {at}"
                );
            }
            let zero = version(7, 0, snapshot, 0, 2).unwrap();
            assert_eq!((zero.document, zero.client_id), (None, None));
        }
    }

    #[test]
    fn positions_compaction_removed_are_history_compacted_and_ahead_is_invalid() {
        // Compacted through 3, snapshot at 5: 5..=8 can be rebuilt.
        for at in 0..5 {
            let err = version(8, 3, Some(5), at, 10).unwrap_err();
            assert_eq!(err.0, ErrorCode::HistoryCompacted, "at {at}: {}", err.1);
            assert!(err.1.contains('5'), "{}", err.1);
        }
        for at in 5..=8 {
            let v = version(8, 3, Some(5), at, 10).unwrap();
            assert_eq!(v.document, Some(json!({"n": at})));
            assert!(v.client_id.is_some());
        }
        // The snapshot's own event compacted: the document without who and when.
        let v = version(8, 5, Some(5), 5, 10).unwrap();
        assert_eq!((v.document, v.client_id), (Some(json!({"n": 5})), None));
        let err = version(8, 0, None, 9, 10).unwrap_err();
        assert_eq!(err.0, ErrorCode::InvalidSequence);
    }
}
