//! The `EventStore` behaviour suite, run against both backends with real databases:
//!
//! - SQLite: a file in a fresh temporary directory per test;
//! - PostgreSQL: the server `scripts/with-postgres.sh` starts (it exports
//!   `EVENTSYNC_TEST_POSTGRES_URL`). Without that variable the PostgreSQL tests fail, unless
//!   `EVENTSYNC_SKIP_POSTGRES=1` is set (quick local runs only).
//!
//! Every test uses its own document ids, so the PostgreSQL tests share one database and run in
//! parallel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eventsync::protocol::{Event, Operation, Snapshot, StateVector};
use eventsync::VectorClock;
use eventsync_server::store::{self, DocumentHead, EventStore, StoreChange, StoreError};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The longest any test waits for a notification.
const WAIT: Duration = Duration::from_secs(10);

/// A name no other test (nor an earlier run on the same database) uses.
fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(unique(&format!("eventsync-store-{name}")));
        std::fs::create_dir_all(&path).expect("create the temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test's database: every `open` is a new store instance (its own pool) on it.
struct Backend {
    url: String,
    _dir: Option<TempDir>,
}

impl Backend {
    fn sqlite(test: &str) -> Self {
        let dir = TempDir::new(test);
        let url = format!("sqlite:{}", dir.0.join("store.db").display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// `None` when the PostgreSQL tests are skipped on purpose.
    fn postgres() -> Option<Self> {
        match std::env::var("EVENTSYNC_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Self { url, _dir: None }),
            _ if std::env::var("EVENTSYNC_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("PostgreSQL test skipped (EVENTSYNC_SKIP_POSTGRES=1)");
                None
            }
            _ => panic!(
                "EVENTSYNC_TEST_POSTGRES_URL is not set: run the PostgreSQL store tests under \
                 `bash scripts/with-postgres.sh cargo test -p eventsync-server --test store` \
                 (or set EVENTSYNC_SKIP_POSTGRES=1 to skip them)"
            ),
        }
    }

    async fn open(&self) -> Arc<dyn EventStore> {
        match store::open(&self.url).await {
            Ok(store) => store,
            Err(err) => panic!("cannot open {}: {err}", self.url),
        }
    }
}

/// An event as a server would order it: the origin's entry of the vector is the event's own
/// `sequenceNum`.
fn event(document_id: &str, seq: u64, client_id: &str, client_seq: Option<u64>) -> Event {
    let metadata = json!({
        "data": { "n": seq, "text": "nul \u{0} é 😀 \"quoted\"", "float": 0.1, "big": u64::MAX },
    });
    Event {
        id: format!("{seq:024x}"),
        document_id: document_id.to_owned(),
        timestamp: "2026-01-01T00:00:00Z".to_owned(),
        sequence_num: seq,
        operation: if seq == 1 {
            Operation::Create
        } else {
            Operation::Update
        },
        diff: None,
        // As servers order them: no vector (it is written as the event's own entry).
        vector_clock: VectorClock::new(),
        client_id: client_id.to_owned(),
        client_seq,
        server_seq: 0,
        metadata: metadata.as_object().expect("an object").clone(),
    }
}

fn vector(entries: &[(&str, u64)]) -> VectorClock {
    entries
        .iter()
        .map(|(client, seq)| ((*client).to_owned(), *seq))
        .collect()
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence_num).collect()
}

fn assert_head_moved(result: Result<(), StoreError>, expected_head: u64) {
    match result {
        Err(StoreError::HeadMoved { expected, .. }) => assert_eq!(expected, expected_head),
        other => panic!("expected HeadMoved, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The suite: each case runs once per backend.

async fn empty_head(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("empty");
    assert_eq!(
        store.head(&doc).await.unwrap(),
        DocumentHead {
            head_seq: 0,
            document: None,
            vector: VectorClock::new(),
            first_retained_seq: 1,
        }
    );
    assert!(store.events_after(&doc, 0, 10).await.unwrap().is_empty());
    assert_eq!(store.latest_snapshot(&doc).await.unwrap(), None);
    assert!(store.state_vectors(&doc).await.unwrap().is_empty());
    assert_eq!(store.highest_client_seq(&doc, "a").await.unwrap(), 0);
    assert_eq!(store.ordered_edit(&doc, "a", 1).await.unwrap(), None);
}

async fn append_head_and_events_after(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("append");
    let first = vec![
        event(&doc, 1, "a", Some(1)),
        event(&doc, 2, "b", Some(1)),
        event(&doc, 3, "a", Some(2)),
    ];
    let body = json!({"title": "hello", "n": [1, 2, 3]});
    store.append(&doc, 0, &first, Some(&body)).await.unwrap();

    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.head_seq, 3);
    assert_eq!(head.document, Some(body));
    // Every event's origin entry merged into the previous vector (empty here).
    assert_eq!(head.vector, vector(&[("a", 3), ("b", 2)]));
    assert_eq!(head.first_retained_seq, 1);

    let second = vec![event(&doc, 4, "b", Some(2))];
    let body = json!({"title": "hello again"});
    store.append(&doc, 3, &second, Some(&body)).await.unwrap();
    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.head_seq, 4);
    assert_eq!(head.document, Some(body));
    assert_eq!(head.vector, vector(&[("a", 3), ("b", 4)]));

    // The events come back exactly as they went in, in order, paged.
    let all: Vec<Event> = first.iter().chain(&second).cloned().collect();
    assert_eq!(store.events_after(&doc, 0, 100).await.unwrap(), all);
    assert_eq!(seqs(&store.events_after(&doc, 0, 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(&store.events_after(&doc, 2, 2).await.unwrap()), [3, 4]);
    assert_eq!(seqs(&store.events_after(&doc, 3, 2).await.unwrap()), [4]);
    assert!(store.events_after(&doc, 4, 10).await.unwrap().is_empty());
    assert!(store.events_after(&doc, 99, 10).await.unwrap().is_empty());
    assert!(store
        .events_after(&doc, u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.events_after(&doc, 0, 0).await.unwrap().is_empty());
    // Another document is untouched.
    assert!(store
        .events_after(&unique("other"), 0, 10)
        .await
        .unwrap()
        .is_empty());
}

/// A page as text (what a catch-up sends) is the page `events_after` reads, also for rows written
/// before stores kept events compact, and for rows that cannot be handed over one a line.
async fn encoded_pages_are_the_events(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("encoded");
    let mut events: Vec<Event> = (1..=6)
        .map(|seq| event(&doc, seq, if seq % 2 == 0 { "b" } else { "a" }, Some(seq)))
        .collect();
    events[3].operation = Operation::Delete;
    events[4].operation = Operation::Create;
    store
        .append(&doc, 0, &events, Some(&json!({})))
        .await
        .unwrap();
    let read = |after: u64, limit: usize| {
        let (store, doc) = (store.clone(), doc.clone());
        async move {
            let page = store
                .encoded_events_after(&doc, after, limit)
                .await
                .unwrap();
            page.to_events(&doc).unwrap()
        }
    };
    for (after, limit) in [(0, 100), (0, 2), (2, 3), (5, 10), (6, 10), (99, 10), (0, 0)] {
        let expected = store.events_after(&doc, after, limit).await.unwrap();
        assert_eq!(
            read(after, limit).await,
            expected,
            "after {after}, limit {limit}"
        );
    }
    assert!(store
        .encoded_events_after(&doc, u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .encoded_events_after(&unique("other"), 0, 10)
        .await
        .unwrap()
        .is_empty());

    // Rows of another program's making: an older row with `documentId` and a whole vector, and
    // a client id with a line break.
    let pool = other_program(&backend.url).await;
    let mut old = event(&doc, 7, "c", Some(1));
    old.vector_clock = vector(&[("a", 5), ("b", 6), ("c", 7)]);
    let mut odd = event(&doc, 8, "d\ne", None);
    odd.metadata.clear();
    for (event, client_seq) in [(&old, "1"), (&odd, "NULL")] {
        let body = serde_json::to_string(event).unwrap().replace('\'', "''");
        let sql = format!(
            "INSERT INTO events (document_id, seq, client_id, client_seq, body) \
             VALUES ('{doc}', {}, '{}', {client_seq}, '{body}')",
            event.sequence_num, event.client_id
        );
        run_sql(&pool, &sql).await.unwrap();
    }
    let mut expected = store.events_after(&doc, 5, 10).await.unwrap();
    assert_eq!(seqs(&expected), [6, 7, 8]);
    // Texts are compact: a reader derives each event's vector entry (section 2).
    expected[1].vector_clock = VectorClock::new();
    expected[2].vector_clock = VectorClock::new();
    assert_eq!(read(5, 10).await, expected);
    assert_eq!(read(6, 1).await, expected[1..2]);
}

async fn wrong_expected_head_writes_nothing(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("wrong-head");

    // A document that does not exist has head 0.
    assert_head_moved(
        store
            .append(&doc, 3, &[event(&doc, 4, "a", Some(1))], Some(&json!({})))
            .await,
        3,
    );
    assert_eq!(store.head(&doc).await.unwrap().head_seq, 0);
    assert_eq!(store.ordered_edit(&doc, "a", 1).await.unwrap(), None);

    let body = json!({"v": 2});
    store
        .append(
            &doc,
            0,
            &[event(&doc, 1, "a", Some(1)), event(&doc, 2, "a", Some(2))],
            Some(&body),
        )
        .await
        .unwrap();
    for stale in [0, 1, 5] {
        let events = [event(&doc, stale + 1, "b", Some(7))];
        assert_head_moved(
            store
                .append(&doc, stale, &events, Some(&json!({"lost": true})))
                .await,
            stale,
        );
    }
    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.head_seq, 2);
    assert_eq!(head.document, Some(body));
    assert_eq!(
        seqs(&store.events_after(&doc, 0, 10).await.unwrap()),
        [1, 2]
    );
    assert_eq!(store.ordered_edit(&doc, "b", 7).await.unwrap(), None);
    assert_eq!(store.highest_client_seq(&doc, "b").await.unwrap(), 0);
}

async fn concurrent_appends_one_wins(backend: &Backend) {
    let first = backend.open().await;
    let second = backend.open().await;
    let doc = unique("race");
    for round in 0..6u64 {
        let seq = round + 1;
        let from_first = [event(&doc, seq, "first", Some(seq))];
        let from_second = [event(&doc, seq, "second", Some(seq))];
        let first_body = json!({"by": "first", "round": round});
        let second_body = json!({"by": "second", "round": round});
        let (a, b) = tokio::join!(
            first.append(&doc, round, &from_first, Some(&first_body)),
            second.append(&doc, round, &from_second, Some(&second_body)),
        );
        let (winner, body) = match (a, b) {
            (Ok(()), lost) => {
                assert_head_moved(lost, round);
                ("first", first_body)
            }
            (lost, Ok(())) => {
                assert_head_moved(lost, round);
                ("second", second_body)
            }
            (a, b) => panic!("round {round}: both failed: {a:?} / {b:?}"),
        };
        // Both instances see the winner, and only the winner.
        for store in [&first, &second] {
            let head = store.head(&doc).await.unwrap();
            assert_eq!(head.head_seq, seq);
            assert_eq!(head.document.as_ref(), Some(&body));
            let events = store.events_after(&doc, round, 10).await.unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].client_id, winner);
            let loser = if winner == "first" { "second" } else { "first" };
            assert_eq!(store.ordered_edit(&doc, loser, seq).await.unwrap(), None);
            assert_eq!(
                store.ordered_edit(&doc, winner, seq).await.unwrap(),
                Some(seq)
            );
        }
    }
    assert_eq!(
        seqs(&first.events_after(&doc, 0, 100).await.unwrap()),
        [1, 2, 3, 4, 5, 6]
    );
}

async fn ordered_edits_and_highest_client_seq(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("edits");
    store
        .append(
            &doc,
            0,
            &[
                event(&doc, 1, "a", Some(1)),
                event(&doc, 2, "b", Some(1)),
                event(&doc, 3, "a", Some(2)),
                event(&doc, 4, "server", None),
            ],
            Some(&json!({})),
        )
        .await
        .unwrap();
    store
        .append(&doc, 4, &[event(&doc, 5, "a", Some(5))], Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(store.ordered_edit(&doc, "a", 1).await.unwrap(), Some(1));
    assert_eq!(store.ordered_edit(&doc, "b", 1).await.unwrap(), Some(2));
    assert_eq!(store.ordered_edit(&doc, "a", 2).await.unwrap(), Some(3));
    assert_eq!(store.ordered_edit(&doc, "a", 5).await.unwrap(), Some(5));
    assert_eq!(store.ordered_edit(&doc, "a", 3).await.unwrap(), None);
    assert_eq!(store.ordered_edit(&doc, "c", 1).await.unwrap(), None);
    assert_eq!(store.ordered_edit(&doc, "a", u64::MAX).await.unwrap(), None);
    assert_eq!(store.highest_client_seq(&doc, "a").await.unwrap(), 5);
    assert_eq!(store.highest_client_seq(&doc, "b").await.unwrap(), 1);
    assert_eq!(store.highest_client_seq(&doc, "server").await.unwrap(), 0);
    assert_eq!(store.highest_client_seq(&doc, "c").await.unwrap(), 0);
    let other = unique("edits-other");
    assert_eq!(store.ordered_edit(&other, "a", 1).await.unwrap(), None);
    assert_eq!(store.highest_client_seq(&other, "a").await.unwrap(), 0);
}

async fn delete_then_recreate(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("delete");
    store
        .append(
            &doc,
            0,
            &[event(&doc, 1, "a", Some(1))],
            Some(&json!({"v": 1})),
        )
        .await
        .unwrap();
    let mut delete = event(&doc, 2, "a", Some(2));
    delete.operation = Operation::Delete;
    store.append(&doc, 1, &[delete], None).await.unwrap();
    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.head_seq, 2);
    assert_eq!(head.document, None);

    let mut create = event(&doc, 3, "b", Some(1));
    create.operation = Operation::Create;
    store
        .append(&doc, 2, &[create], Some(&json!({"v": 3})))
        .await
        .unwrap();
    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.head_seq, 3);
    assert_eq!(head.document, Some(json!({"v": 3})));
    let operations: Vec<Operation> = store
        .events_after(&doc, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(
        operations,
        [Operation::Create, Operation::Delete, Operation::Create]
    );
}

async fn snapshots_save_load_replace(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("snapshot");
    let at = |seq: u64, document: Option<Value>| Snapshot {
        document_id: doc.clone(),
        sequence_num: seq,
        document,
        vector_clock: vector(&[("a", seq)]),
    };
    assert_eq!(store.latest_snapshot(&doc).await.unwrap(), None);
    store
        .save_snapshot(&at(2, Some(json!({"v": 2}))))
        .await
        .unwrap();
    assert_eq!(
        store.latest_snapshot(&doc).await.unwrap(),
        Some(at(2, Some(json!({"v": 2}))))
    );
    store
        .save_snapshot(&at(4, Some(json!({"v": 4}))))
        .await
        .unwrap();
    assert_eq!(
        store.latest_snapshot(&doc).await.unwrap(),
        Some(at(4, Some(json!({"v": 4}))))
    );
    // A deleted document snapshots as `None`.
    store.save_snapshot(&at(5, None)).await.unwrap();
    assert_eq!(
        store.latest_snapshot(&doc).await.unwrap(),
        Some(at(5, None))
    );
    // An older snapshot does not replace a newer one (compaction may rely on the newer one).
    store
        .save_snapshot(&at(3, Some(json!({"v": 3}))))
        .await
        .unwrap();
    assert_eq!(
        store.latest_snapshot(&doc).await.unwrap(),
        Some(at(5, None))
    );
    assert_eq!(store.latest_snapshot(&unique("none")).await.unwrap(), None);
}

async fn compaction(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("compact");
    let events: Vec<Event> = (1..=5)
        .map(|seq| event(&doc, seq, "a", Some(seq * 10)))
        .collect();
    store
        .append(&doc, 0, &events, Some(&json!({"v": 5})))
        .await
        .unwrap();
    let snapshot = |seq: u64| Snapshot {
        document_id: doc.clone(),
        sequence_num: seq,
        document: Some(json!({"v": seq})),
        vector_clock: vector(&[("a", seq)]),
    };

    // No snapshot, then one that is too old: refused, nothing deleted.
    assert!(store.compact(&doc, 3).await.is_err());
    store.save_snapshot(&snapshot(2)).await.unwrap();
    match store.compact(&doc, 3).await {
        Err(StoreError::HeadMoved { .. }) | Ok(_) => panic!("compact without a covering snapshot"),
        Err(_) => {}
    }
    assert_eq!(store.head(&doc).await.unwrap().first_retained_seq, 1);
    assert_eq!(store.events_after(&doc, 0, 10).await.unwrap().len(), 5);

    store.save_snapshot(&snapshot(3)).await.unwrap();
    assert_eq!(store.compact(&doc, 3).await.unwrap(), 3);
    let head = store.head(&doc).await.unwrap();
    assert_eq!(head.first_retained_seq, 4);
    assert_eq!(head.head_seq, 5);
    assert_eq!(head.document, Some(json!({"v": 5})));
    assert_eq!(
        seqs(&store.events_after(&doc, 0, 10).await.unwrap()),
        [4, 5]
    );
    // The exactly-once index survives compaction.
    assert_eq!(store.ordered_edit(&doc, "a", 10).await.unwrap(), Some(1));
    assert_eq!(store.ordered_edit(&doc, "a", 30).await.unwrap(), Some(3));
    assert_eq!(store.highest_client_seq(&doc, "a").await.unwrap(), 50);
    // Compacting again is a no-op; compacting less never lowers first_retained_seq.
    assert_eq!(store.compact(&doc, 3).await.unwrap(), 0);
    assert_eq!(store.compact(&doc, 2).await.unwrap(), 0);
    assert_eq!(store.head(&doc).await.unwrap().first_retained_seq, 4);

    // Appending goes on after compaction; compacting through the head leaves no events.
    store
        .append(
            &doc,
            5,
            &[event(&doc, 6, "a", Some(60))],
            Some(&json!({"v": 6})),
        )
        .await
        .unwrap();
    store.save_snapshot(&snapshot(6)).await.unwrap();
    assert_eq!(store.compact(&doc, 6).await.unwrap(), 3);
    let head = store.head(&doc).await.unwrap();
    assert_eq!((head.head_seq, head.first_retained_seq), (6, 7));
    assert!(store.events_after(&doc, 0, 10).await.unwrap().is_empty());
    assert_eq!(store.ordered_edit(&doc, "a", 60).await.unwrap(), Some(6));
    // Never past the head.
    store.save_snapshot(&snapshot(9)).await.unwrap();
    assert!(store.compact(&doc, 9).await.is_err());
    assert_eq!(store.head(&doc).await.unwrap().first_retained_seq, 7);
}

async fn state_vectors_save_replace_list(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("vectors");
    let sv = |client: &str, entries: &[(&str, u64)], updated: Option<&str>| StateVector {
        client_id: client.to_owned(),
        document_id: doc.clone(),
        vector_clock: vector(entries),
        last_updated: updated.map(str::to_owned),
    };
    // Two in one call.
    store
        .save_state_vectors(&[
            sv("c2", &[("a", 2), ("b", 1)], Some("2026-01-01T00:00:00Z")),
            sv("c1", &[("a", 1)], None),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.state_vectors(&doc).await.unwrap(),
        [
            sv("c1", &[("a", 1)], None),
            sv("c2", &[("a", 2), ("b", 1)], Some("2026-01-01T00:00:00Z")),
        ]
    );
    // One replaced, one new.
    store
        .save_state_vectors(&[
            sv("c1", &[("a", 3), ("c", 1)], Some("2026-01-02T00:00:00Z")),
            sv("c3", &[], None),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.state_vectors(&doc).await.unwrap(),
        [
            sv("c1", &[("a", 3), ("c", 1)], Some("2026-01-02T00:00:00Z")),
            sv("c2", &[("a", 2), ("b", 1)], Some("2026-01-01T00:00:00Z")),
            sv("c3", &[], None),
        ]
    );
    // More than one statement's worth of rows, and nothing at all.
    let many: Vec<StateVector> = (0..600)
        .map(|i| sv(&format!("m{i:03}"), &[("a", i)], None))
        .collect();
    store.save_state_vectors(&many).await.unwrap();
    store.save_state_vectors(&[]).await.unwrap();
    assert_eq!(store.state_vectors(&doc).await.unwrap().len(), 603);
    assert!(store
        .state_vectors(&unique("vectors-other"))
        .await
        .unwrap()
        .is_empty());
}

async fn survives_reopening(backend: &Backend) {
    let doc = unique("reopen");
    let events: Vec<Event> = (1..=4)
        .map(|seq| event(&doc, seq, "a", Some(seq)))
        .collect();
    let snapshot = Snapshot {
        document_id: doc.clone(),
        sequence_num: 2,
        document: Some(json!({"v": 2})),
        vector_clock: vector(&[("a", 2)]),
    };
    let state_vector = StateVector {
        client_id: "c".to_owned(),
        document_id: doc.clone(),
        vector_clock: vector(&[("a", 4)]),
        last_updated: None,
    };
    {
        let store = backend.open().await;
        store
            .append(&doc, 0, &events, Some(&json!({"v": 4})))
            .await
            .unwrap();
        store.save_snapshot(&snapshot).await.unwrap();
        store.compact(&doc, 2).await.unwrap();
        store
            .save_state_vectors(std::slice::from_ref(&state_vector))
            .await
            .unwrap();
    }
    let store = backend.open().await;
    let head = store.head(&doc).await.unwrap();
    assert_eq!(
        head,
        DocumentHead {
            head_seq: 4,
            document: Some(json!({"v": 4})),
            vector: vector(&[("a", 4)]),
            first_retained_seq: 3,
        }
    );
    assert_eq!(store.events_after(&doc, 0, 10).await.unwrap(), events[2..]);
    assert_eq!(store.latest_snapshot(&doc).await.unwrap(), Some(snapshot));
    assert_eq!(store.state_vectors(&doc).await.unwrap(), [state_vector]);
    assert_eq!(store.ordered_edit(&doc, "a", 1).await.unwrap(), Some(1));
    store
        .append(
            &doc,
            4,
            &[event(&doc, 5, "a", Some(5))],
            Some(&json!({"v": 5})),
        )
        .await
        .unwrap();
    assert_eq!(store.head(&doc).await.unwrap().head_seq, 5);
}

async fn rejects_bad_events(backend: &Backend) {
    let store = backend.open().await;
    let doc = unique("bad-events");
    // Not starting at expected_head + 1, a gap, another document's event: refused, not HeadMoved.
    let cases = [
        vec![event(&doc, 2, "a", None)],
        vec![event(&doc, 1, "a", None), event(&doc, 3, "a", None)],
        vec![event(&unique("elsewhere"), 1, "a", None)],
    ];
    for events in cases {
        match store.append(&doc, 0, &events, Some(&json!({}))).await {
            Err(StoreError::HeadMoved { .. }) | Ok(()) => panic!("accepted {events:?}"),
            Err(_) => {}
        }
    }
    assert_eq!(store.head(&doc).await.unwrap().head_seq, 0);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Backend::sqlite(stringify!($case))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = super::Backend::postgres() else { return };
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

suite!(
    empty_head,
    append_head_and_events_after,
    encoded_pages_are_the_events,
    wrong_expected_head_writes_nothing,
    concurrent_appends_one_wins,
    ordered_edits_and_highest_client_seq,
    delete_then_recreate,
    snapshots_save_load_replace,
    compaction,
    state_vectors_save_replace_list,
    survives_reopening,
    rejects_bad_events,
);

/// Plain SQL, as another program would send it, on a connection of its own.
async fn other_program(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url)
        .await
        .expect("another program connects")
}

async fn run_sql(pool: &sqlx::AnyPool, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(pool).await.map(drop)
}

/// The next change about `doc` (changes about other tests' documents are skipped).
async fn next_change(rx: &mut mpsc::Receiver<StoreChange>, doc: &str) -> StoreChange {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no change about {doc} within {WAIT:?}"))
            .expect("the change feed ended");
        let about = match &change {
            StoreChange::Appended { document_id, .. } => document_id,
            StoreChange::DocumentWritten { document_id } => document_id,
            StoreChange::Presence(_) => continue,
        };
        if about == doc {
            return change;
        }
    }
}

// Backend-specific behaviour: `outside.rs` (writes by other programs, open errors) and
// `change_feed.rs` (PostgreSQL's change feed).
mod change_feed;
mod outside;
