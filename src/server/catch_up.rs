//! Catch-up: one page of the events a position is missing, read from a log the caller owns.
//!
//! [`CatchUp`] is a small sans-IO machine: it asks for reads ([`Read`]), is fed what was read
//! ([`ReadResult`]), and ends with a page or a refusal ([`Step`]). It holds the rules of
//! `docs/PROTOCOL.md` 6.2, 6.3 and 12.2: a position ahead of the log is `invalid_sequence`, a
//! snapshot starts the page only when the position is behind the retained history (or, where the
//! caller allows it, for a client with no state), the vector form skips the events the vector
//! already holds, and a page is never sent with a gap (history compacted while it was read is
//! read again). The WebSocket and SSE connections ([`super::ServerConnection`]), the HTTP
//! endpoints and the in-memory log all page through it.

use crate::protocol::{EncodedEvents, ErrorCode, Event, EventsPage, Snapshot};
use crate::sequencer::check_position;
use crate::vector_clock::VectorClock;

/// What a catch-up needs to know of the log's head (never the document itself).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogHead {
    /// The last `sequenceNum` (0 for an empty log).
    pub head_seq: u64,
    /// The lowest `sequenceNum` still stored as an event (head + 1 when none are; 1 before any
    /// compaction). Older events are reachable only through the latest snapshot.
    pub first_retained_seq: u64,
    /// The document's state vector at the head (used by the vector form only).
    pub vector: VectorClock,
}

/// When a page starts with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Only when the position is older than the retained history: `GET /api/events` (12.2).
    WhenBehind,
    /// Also for a client with no state at all, when a snapshot exists: a `sync` answer, which
    /// MAY start with a snapshot at any time (6.3), `POST /api/sync` and SSE. It asks for
    /// [`Read::SyncSnapshot`], the newest the log can give.
    WhenBehindOrNew,
}

/// A read a catch-up needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The log's head. `fresh`: as the store has it now, not as a cache remembers it (another
    /// server process may have appended, or compacted).
    Head {
        /// Read past any cache.
        fresh: bool,
    },
    /// The latest snapshot, if any.
    Snapshot,
    /// The snapshot a `sync` answer starts with (6.3): the newest state the log can give as
    /// one (a server that holds its head's document may give the head itself, so the client
    /// replays no tail after the latest snapshot), else what [`Read::Snapshot`] answers.
    SyncSnapshot,
    /// Events with `sequenceNum > after`, ascending, at most `limit`.
    Events {
        /// The position.
        after: u64,
        /// The most events.
        limit: usize,
    },
}

/// What a [`Read`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadResult {
    /// Answers [`Read::Head`].
    Head(LogHead),
    /// Answers [`Read::Snapshot`] and [`Read::SyncSnapshot`].
    Snapshot(Option<Snapshot>),
    /// Answers [`Read::Events`].
    Events(Vec<Event>),
    /// Answers [`Read::Events`] too, with the events as a store keeps them (their compact text):
    /// a catch-up then sends them without reading them ([`crate::protocol::EncodedFrame`]).
    Encoded(EncodedEvents),
}

/// The events of a page: read, or kept as text.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvents {
    /// Read ([`ReadResult::Events`]).
    Parsed(Vec<Event>),
    /// As text ([`ReadResult::Encoded`]).
    Encoded(EncodedEvents),
}

impl Default for LogEvents {
    fn default() -> Self {
        LogEvents::Parsed(Vec::new())
    }
}

impl LogEvents {
    /// How many events.
    pub fn len(&self) -> usize {
        match self {
            LogEvents::Parsed(events) => events.len(),
            LogEvents::Encoded(events) => events.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first event's `sequenceNum`.
    pub fn first_seq(&self) -> Option<u64> {
        match self {
            LogEvents::Parsed(events) => events.first().map(|e| e.sequence_num),
            LogEvents::Encoded(events) => events.first_seq(),
        }
    }

    /// The last event's `sequenceNum`.
    pub fn last_seq(&self) -> Option<u64> {
        match self {
            LogEvents::Parsed(events) => events.last().map(|e| e.sequence_num),
            LogEvents::Encoded(events) => events.last_seq(),
        }
    }

    /// Keeps the events `keep` says yes to, given each one's `sequenceNum` and `clientId`.
    fn retain(&mut self, mut keep: impl FnMut(u64, &str) -> bool) {
        match self {
            LogEvents::Parsed(events) => events.retain(|e| keep(e.sequence_num, &e.client_id)),
            LogEvents::Encoded(events) => events.retain(keep),
        }
    }

    /// Adds `more` after these.
    fn extend(&mut self, more: LogEvents) {
        if self.is_empty() {
            *self = more;
            return;
        }
        match (&mut *self, more) {
            (LogEvents::Parsed(events), LogEvents::Parsed(more)) => events.extend(more),
            (LogEvents::Encoded(events), LogEvents::Encoded(more)) => events.append(&more),
            (LogEvents::Encoded(events), LogEvents::Parsed(more)) => {
                more.iter().for_each(|e| events.push(e))
            }
            (LogEvents::Parsed(events), LogEvents::Encoded(more)) => {
                let mut all = EncodedEvents::new();
                events.iter().for_each(|e| all.push(e));
                all.append(&more);
                *self = LogEvents::Encoded(all);
            }
        }
    }

    /// The events read, with `document_id` as the document of those kept as text.
    pub fn into_events(self, document_id: &str) -> Result<Vec<Event>, (ErrorCode, String)> {
        match self {
            LogEvents::Parsed(events) => Ok(events),
            LogEvents::Encoded(events) => events.to_events(document_id).map_err(|err| {
                (
                    ErrorCode::Internal,
                    format!("an event of the log cannot be read: {err}"),
                )
            }),
        }
    }
}

/// One page of a catch-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// A snapshot to install first (6.3).
    pub snapshot: Option<Snapshot>,
    /// The events, in `sequenceNum` order.
    pub events: LogEvents,
    /// The document's `headSeq` when the page was made.
    pub head_seq: u64,
    /// More pages follow.
    pub has_more: bool,
    /// The `sequenceNum` up to which the log was scanned for it: everything up to it that the
    /// position misses is in the page (or in its snapshot). The next page starts after it.
    pub scanned: u64,
}

impl Page {
    /// The page as the HTTP API carries it (3.7), its events read when they came as text.
    pub fn into_events_page(self, document_id: &str) -> Result<EventsPage, (ErrorCode, String)> {
        Ok(EventsPage {
            snapshot: self.snapshot,
            events: self.events.into_events(document_id)?,
            head_seq: self.head_seq,
            has_more: self.has_more,
        })
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Read this and feed the result to [`CatchUp::handle`].
    Read(Read),
    /// The page is complete.
    Page(Page),
    /// The position is refused (`invalid_sequence`), or the log could not be read consistently.
    Refused(ErrorCode, String),
}

/// Reads with a gap (history compacted while the page was read) are tried this many times.
const ATTEMPTS: u32 = 3;

/// One page of a catch-up (see the module documentation).
#[derive(Debug, Clone)]
pub struct CatchUp {
    vector: VectorClock,
    after: Option<u64>,
    resume: Option<u64>,
    limit: usize,
    policy: SnapshotPolicy,
    failed_attempts: u32,
    fresh_head_read: bool,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Head,
    Snapshot {
        head: LogHead,
        cursor: u64,
    },
    Events {
        head: LogHead,
        from: u64,
        filter: bool,
        page: Page,
    },
    Done,
}

impl CatchUp {
    /// A page for a client at `after` (the cursor form) or, without it, at `vector` (the seed's
    /// state-vector form, 2). `resume` is `None` for an answer's first page; later pages of the
    /// vector form pass the previous page's [`Page::scanned`] with the same vector. Returns the
    /// machine and its first read.
    pub fn new(
        vector: VectorClock,
        after: Option<u64>,
        resume: Option<u64>,
        limit: usize,
        policy: SnapshotPolicy,
    ) -> (Self, Read) {
        let machine = CatchUp {
            vector,
            after,
            resume,
            limit,
            policy,
            failed_attempts: 0,
            fresh_head_read: false,
            state: State::Head,
        };
        (machine, Read::Head { fresh: false })
    }

    /// A page of the events after a plain cursor.
    pub fn after(after: u64, limit: usize, policy: SnapshotPolicy) -> (Self, Read) {
        Self::new(VectorClock::new(), Some(after), None, limit, policy)
    }

    /// Feeds what the last [`Read`] found.
    pub fn handle(&mut self, result: ReadResult) -> Step {
        match (std::mem::replace(&mut self.state, State::Done), result) {
            (State::Head, ReadResult::Head(head)) => self.plan(head),
            (State::Snapshot { head, cursor }, ReadResult::Snapshot(snapshot)) => {
                match snapshot.filter(|s| s.sequence_num > cursor) {
                    Some(snapshot) => {
                        let from = snapshot.sequence_num;
                        self.events_from(head, from, Some(snapshot))
                    }
                    None => self.events_from(head, cursor, None),
                }
            }
            (
                State::Events {
                    head,
                    from,
                    filter,
                    page,
                },
                ReadResult::Events(events),
            ) => self.take_events(head, from, filter, page, LogEvents::Parsed(events)),
            (
                State::Events {
                    head,
                    from,
                    filter,
                    page,
                },
                ReadResult::Encoded(events),
            ) => self.take_events(head, from, filter, page, LogEvents::Encoded(events)),
            (_, other) => Step::Refused(
                ErrorCode::Internal,
                format!("catch-up: unexpected read result {other:?}"),
            ),
        }
    }

    /// From the head: where the page starts, whether it needs a snapshot.
    fn plan(&mut self, head: LogHead) -> Step {
        let start = match self.after {
            Some(after) => after,
            None => self
                .vector
                .scan_floor(&head.vector)
                .unwrap_or(head.head_seq),
        };
        let position = start.max(self.vector.max_seq());
        if let Err((code, message)) = check_position("position", position, head.head_seq) {
            if !self.fresh_head_read {
                // Ahead of a cache, maybe not of the store: look again before refusing.
                self.fresh_head_read = true;
                self.state = State::Head;
                return Step::Read(Read::Head { fresh: true });
            }
            return Step::Refused(code, message);
        }
        let cursor = self.resume.unwrap_or(start).min(head.head_seq);
        let behind = cursor + 1 < head.first_retained_seq;
        let new = self.policy == SnapshotPolicy::WhenBehindOrNew
            && self.resume.is_none()
            && cursor == 0
            && self.vector.is_empty();
        if behind || new {
            self.state = State::Snapshot { head, cursor };
            return Step::Read(match self.policy {
                SnapshotPolicy::WhenBehind => Read::Snapshot,
                SnapshotPolicy::WhenBehindOrNew => Read::SyncSnapshot,
            });
        }
        self.events_from(head, cursor, None)
    }

    fn events_from(&mut self, head: LogHead, from: u64, snapshot: Option<Snapshot>) -> Step {
        let filter = self.after.is_none() && snapshot.is_none();
        let page = Page {
            snapshot,
            events: LogEvents::default(),
            // What was read may be newer than `head`; the page's headSeq covers all of it.
            head_seq: head.head_seq.max(from),
            has_more: false,
            scanned: from,
        };
        if self.limit == 0 || from >= head.head_seq {
            // Nothing to read (or nothing asked for): the answer needs no trip to the store. An
            // event newer than `head` reaches the client live.
            let has_more = from < head.head_seq;
            return Step::Page(Page { has_more, ..page });
        }
        self.state = State::Events {
            head,
            from,
            filter,
            page,
        };
        Step::Read(Read::Events {
            after: from,
            limit: self.limit,
        })
    }

    fn take_events(
        &mut self,
        head: LogHead,
        from: u64,
        filter: bool,
        mut page: Page,
        mut events: LogEvents,
    ) -> Step {
        let gapless = match events.first_seq() {
            Some(first) => first == from + 1,
            None => from >= head.head_seq,
        };
        if !gapless {
            // Compacted while this page was read: read it again (it then finds the snapshot).
            self.failed_attempts += 1;
            if self.failed_attempts >= ATTEMPTS {
                return Step::Refused(
                    ErrorCode::Internal,
                    "the log was compacted during the catch-up: try again".into(),
                );
            }
            self.state = State::Head;
            return Step::Read(Read::Head { fresh: true });
        }
        let full = events.len() == self.limit;
        let scanned = events.last_seq().unwrap_or(from);
        page.head_seq = page.head_seq.max(scanned);
        page.has_more = full && scanned < head.head_seq;
        page.scanned = scanned;
        // A vector at or below `from` misses every event after it: nothing to filter.
        if filter && self.vector.max_seq() > from {
            let vector = &self.vector;
            events.retain(|seq, client_id| vector.is_missing(client_id, seq));
        }
        page.events.extend(events);
        // The vector form scans on until it finds a missing event or reaches the head, so that a
        // page is empty only when it is the last.
        if !page.has_more || !page.events.is_empty() || scanned <= from {
            return Step::Page(page);
        }
        self.state = State::Events {
            head,
            from: scanned,
            filter,
            page,
        };
        Step::Read(Read::Events {
            after: scanned,
            limit: self.limit,
        })
    }
}

/// Runs a catch-up to its page against a log that answers reads at once (the in-memory log, and
/// tests). Asynchronous drivers run the same loop around their store.
pub fn run_sync(
    mut machine: CatchUp,
    first: Read,
    mut read: impl FnMut(Read) -> Result<ReadResult, (ErrorCode, String)>,
) -> Result<Page, (ErrorCode, String)> {
    let mut next = first;
    loop {
        match machine.handle(read(next)?) {
            Step::Read(again) => next = again,
            Step::Page(page) => return Ok(page),
            Step::Refused(code, message) => return Err((code, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, client: &str) -> Event {
        serde_json::from_value(json!({
            "id": format!("e{seq}"), "documentId": "d", "sequenceNum": seq,
            "operation": if seq == 1 { "create" } else { "update" },
            "diff": {"patch": [{"op": "add", "path": if seq == 1 { "" } else { "/n" }, "value": if seq == 1 { json!({}) } else { json!(seq) }}]},
            "clientId": client
        }))
        .unwrap()
    }

    /// A log of `head` events (alternating clients a and b) whose events up to `compacted` are
    /// gone, with a snapshot at `snapshot`.
    struct Log {
        events: Vec<Event>,
        compacted: u64,
        snapshot: Option<u64>,
    }

    impl Log {
        fn new(head: u64, compacted: u64, snapshot: Option<u64>) -> Self {
            let events = (1..=head)
                .map(|s| event(s, if s % 2 == 1 { "a" } else { "b" }))
                .collect();
            Log {
                events,
                compacted,
                snapshot,
            }
        }

        fn read(&self, read: Read) -> Result<ReadResult, (ErrorCode, String)> {
            let head = self.events.len() as u64;
            Ok(match read {
                Read::Head { .. } => {
                    let mut vector = VectorClock::new();
                    for e in &self.events {
                        vector.observe(&e.client_id, e.sequence_num);
                    }
                    ReadResult::Head(LogHead {
                        head_seq: head,
                        first_retained_seq: self.compacted + 1,
                        vector,
                    })
                }
                // As a log that answers a sync with its latest stored snapshot.
                Read::Snapshot | Read::SyncSnapshot => {
                    ReadResult::Snapshot(self.snapshot.map(|seq| Snapshot {
                        document_id: "d".into(),
                        sequence_num: seq,
                        document: Some(json!({"n": seq})),
                        vector_clock: VectorClock::new(),
                    }))
                }
                Read::Events { after, limit } => ReadResult::Events(
                    self.events
                        .iter()
                        .filter(|e| e.sequence_num > after.max(self.compacted))
                        .take(limit)
                        .cloned()
                        .collect(),
                ),
            })
        }

        fn page(
            &self,
            vector: VectorClock,
            after: Option<u64>,
            limit: usize,
            policy: SnapshotPolicy,
        ) -> Result<Page, (ErrorCode, String)> {
            let (machine, first) = CatchUp::new(vector, after, None, limit, policy);
            run_sync(machine, first, |r| self.read(r))
        }
    }

    fn seqs(page: &Page) -> Vec<u64> {
        match &page.events {
            LogEvents::Parsed(events) => events.iter().map(|e| e.sequence_num).collect(),
            LogEvents::Encoded(events) => events.origins().map(|(seq, _)| seq).collect(),
        }
    }

    #[test]
    fn a_sync_answer_asks_for_the_newest_snapshot_and_a_head_one_leaves_no_tail() {
        let log = Log::new(12, 0, Some(10));
        let head = match log.read(Read::Head { fresh: false }).unwrap() {
            ReadResult::Head(head) => head,
            other => panic!("{other:?}"),
        };
        // A log reader (12.2) gets the latest stored snapshot; a sync answer (6.3) the newest.
        for (policy, read) in [
            (SnapshotPolicy::WhenBehind, Read::Snapshot),
            (SnapshotPolicy::WhenBehindOrNew, Read::SyncSnapshot),
        ] {
            let (mut machine, first) = CatchUp::new(VectorClock::new(), None, None, 5, policy);
            assert_eq!(first, Read::Head { fresh: false });
            // Compacted through 3: a new client is behind whatever the policy.
            let behind = LogHead {
                first_retained_seq: 4,
                ..head.clone()
            };
            assert_eq!(machine.handle(ReadResult::Head(behind)), Step::Read(read));
        }
        // The head itself as the snapshot: the page is that snapshot alone, complete.
        let (mut machine, _) = CatchUp::after(0, 5, SnapshotPolicy::WhenBehindOrNew);
        assert_eq!(
            machine.handle(ReadResult::Head(head)),
            Step::Read(Read::SyncSnapshot)
        );
        let at_head = Snapshot {
            document_id: "d".into(),
            sequence_num: 12,
            document: Some(json!({"n": 12})),
            vector_clock: VectorClock::new(),
        };
        let Step::Page(page) = machine.handle(ReadResult::Snapshot(Some(at_head.clone()))) else {
            panic!("a head snapshot needs no events read");
        };
        assert_eq!(page.snapshot, Some(at_head));
        assert_eq!(
            (seqs(&page), page.head_seq, page.has_more),
            (vec![], 12, false)
        );
    }

    #[test]
    fn a_snapshot_comes_first_only_when_the_history_is_gone_or_the_caller_allows_it() {
        // Every event retained, a snapshot at 10: `after=0` reads event 1 (12.2).
        let log = Log::new(12, 0, Some(10));
        let page = log
            .page(VectorClock::new(), Some(0), 5, SnapshotPolicy::WhenBehind)
            .unwrap();
        assert_eq!(page.snapshot, None);
        assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5]);
        assert!(page.has_more);
        // A sync answer may start a new client from the snapshot instead (6.3).
        let page = log
            .page(
                VectorClock::new(),
                Some(0),
                5,
                SnapshotPolicy::WhenBehindOrNew,
            )
            .unwrap();
        assert_eq!(page.snapshot.as_ref().unwrap().sequence_num, 10);
        assert_eq!(seqs(&page), vec![11, 12]);
        // Compacted through 8: a position behind it starts from the snapshot, whatever the policy.
        let log = Log::new(12, 8, Some(10));
        let page = log
            .page(VectorClock::new(), Some(3), 5, SnapshotPolicy::WhenBehind)
            .unwrap();
        assert_eq!(page.snapshot.as_ref().unwrap().sequence_num, 10);
        assert_eq!(
            (seqs(&page), page.scanned, page.has_more),
            (vec![11, 12], 12, false)
        );
        // limit=0 says whether the whole log is retained (12.2).
        let page = log
            .page(VectorClock::new(), Some(0), 0, SnapshotPolicy::WhenBehind)
            .unwrap();
        assert_eq!(page.snapshot.as_ref().unwrap().sequence_num, 10);
        let whole = Log::new(12, 0, Some(10));
        let page = whole
            .page(VectorClock::new(), Some(0), 0, SnapshotPolicy::WhenBehind)
            .unwrap();
        assert_eq!((page.snapshot, page.has_more), (None, true));
    }

    #[test]
    fn positions_ahead_of_the_log_are_refused_after_a_fresh_look() {
        let log = Log::new(4, 0, None);
        let (mut machine, first) = CatchUp::new(
            VectorClock::new(),
            Some(9),
            None,
            10,
            SnapshotPolicy::WhenBehind,
        );
        assert_eq!(first, Read::Head { fresh: false });
        let step = machine.handle(log.read(first).unwrap());
        assert_eq!(step, Step::Read(Read::Head { fresh: true }));
        let Step::Read(read) = step else {
            unreachable!()
        };
        match machine.handle(log.read(read).unwrap()) {
            Step::Refused(ErrorCode::InvalidSequence, message) => {
                assert!(message.contains("ahead of the log"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let vector = VectorClock::from_iter([("a".to_string(), 5)]);
        let err = log
            .page(vector, None, 10, SnapshotPolicy::WhenBehind)
            .unwrap_err();
        assert_eq!(err.0, ErrorCode::InvalidSequence);
    }

    #[test]
    fn the_vector_form_skips_what_the_vector_holds_and_scans_on() {
        let log = Log::new(10, 0, None);
        // b has everything, a only up to 3: a's 5, 7, 9 are missing.
        let vector = VectorClock::from_iter([("a".to_string(), 3), ("b".to_string(), 10)]);
        let page = log
            .page(vector.clone(), None, 2, SnapshotPolicy::WhenBehind)
            .unwrap();
        assert_eq!(seqs(&page), vec![5]);
        assert!(page.has_more);
        let (machine, first) = CatchUp::new(
            vector,
            None,
            Some(page.scanned),
            2,
            SnapshotPolicy::WhenBehind,
        );
        let next = run_sync(machine, first, |r| log.read(r)).unwrap();
        assert_eq!(seqs(&next), vec![7]);
    }

    #[test]
    fn events_kept_as_text_page_and_filter_as_read_ones_do() {
        let log = Log::new(10, 0, None);
        let encoded = |read: Read| match log.read(read)? {
            ReadResult::Events(events) => {
                let mut encoded = EncodedEvents::new();
                events.iter().for_each(|e| encoded.push(e));
                Ok(ReadResult::Encoded(encoded))
            }
            other => Ok(other),
        };
        let vector = VectorClock::from_iter([("a".to_string(), 3), ("b".to_string(), 10)]);
        for (vector, after) in [
            (VectorClock::new(), Some(2)),
            (vector, None),
            (VectorClock::new(), None),
        ] {
            let policy = SnapshotPolicy::WhenBehind;
            let (machine, first) = CatchUp::new(vector.clone(), after, None, 2, policy);
            let read = run_sync(machine, first, |r| log.read(r)).unwrap();
            let (machine, first) = CatchUp::new(vector, after, None, 2, policy);
            let page = run_sync(machine, first, encoded).unwrap();
            assert!(matches!(page.events, LogEvents::Encoded(_)));
            assert_eq!(
                (seqs(&page), page.scanned, page.has_more, page.head_seq),
                (seqs(&read), read.scanned, read.has_more, read.head_seq)
            );
            assert_eq!(
                page.into_events_page("d").unwrap(),
                read.into_events_page("d").unwrap()
            );
        }
    }

    #[test]
    fn a_page_with_a_gap_is_read_again_and_then_refused() {
        // The store claims history from 1 but has lost events 1-4 without a snapshot.
        let log = Log::new(8, 4, None);
        let broken = |read: Read| match log.read(read)? {
            ReadResult::Head(head) => Ok(ReadResult::Head(LogHead {
                first_retained_seq: 1,
                ..head
            })),
            other => Ok(other),
        };
        let (machine, first) = CatchUp::after(0, 10, SnapshotPolicy::WhenBehind);
        let err = run_sync(machine, first, broken).unwrap_err();
        assert_eq!(err.0, ErrorCode::Internal);
    }
}
