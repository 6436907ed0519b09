//! The native client's callbacks, offline: nothing listens on the server's port, so the driver
//! reports each failed attempt as a `Reconnecting` event, a steady source of events for a
//! client of its own and for every document of a connection alike.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Backoff, Subscription, SyncClient, SyncConnection};

/// Nothing listens on port 9 (discard).
const NOWHERE: &str = "ws://127.0.0.1:9";

fn fast() -> Backoff {
    Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(10),
    }
}

/// Waits until `done()` holds; fails after 10 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn counter() -> (Arc<AtomicUsize>, impl Fn() -> usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let read = count.clone();
    (count, move || read.load(Ordering::SeqCst))
}

/// A cancelled callback is not called again; cancelling twice is harmless; the others go on;
/// and a callback may call the client and cancel itself (callbacks run outside its lock).
async fn cancelling(client: Arc<SyncClient>) {
    let (events, event_calls) = counter();
    let (batches, batch_calls) = counter();
    let one = client.on_event(move |_| {
        events.fetch_add(1, Ordering::SeqCst);
    });
    let kept = client.on_events(move |_| {
        batches.fetch_add(1, Ordering::SeqCst);
    });
    until("both callbacks called", || {
        event_calls() > 0 && batch_calls() > 0
    })
    .await;

    one.cancel();
    assert!(!one.is_active());
    one.cancel();
    let frozen = event_calls();
    let from = batch_calls();
    until("three more steps", || batch_calls() >= from + 3).await;
    assert_eq!(event_calls(), frozen, "a cancelled callback was called");
    assert!(kept.is_active());

    // The slot is filled before the callback can read it: it waits on the slot's lock.
    let (own, own_calls) = counter();
    let slot: Arc<Mutex<Option<Subscription>>> = Arc::default();
    {
        let mut filling = slot.lock().unwrap();
        *filling = Some(client.on_events({
            let client = client.clone();
            let slot = slot.clone();
            move |_| {
                own.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    client.document(),
                    None,
                    "the client answers from a callback"
                );
                if let Some(subscription) = slot.lock().unwrap().as_ref() {
                    subscription.cancel();
                }
            }
        }));
    }
    until("the self-cancelling callback called", || own_calls() > 0).await;
    let from = batch_calls();
    until("three more steps", || batch_calls() >= from + 3).await;
    assert_eq!(
        own_calls(),
        1,
        "a callback that cancelled itself was called again"
    );
    kept.cancel();
}

#[tokio::test]
async fn a_cancelled_callback_of_a_client_is_not_called_again() {
    let client = SyncClient::builder(NOWHERE, "doc")
        .backoff(fast())
        .connect()
        .unwrap();
    let client = Arc::new(client);
    cancelling(client.clone()).await;
    client.close().await;
}

#[tokio::test]
async fn a_cancelled_callback_of_a_document_is_not_called_again() {
    let connection = SyncConnection::builder(NOWHERE)
        .backoff(fast())
        .connect()
        .unwrap();
    let doc = Arc::new(connection.open("doc").unwrap());
    cancelling(doc).await;
    connection.close().await;
}

#[tokio::test]
async fn a_subscription_outlives_its_client() {
    let client = SyncClient::builder(NOWHERE, "doc")
        .backoff(fast())
        .connect()
        .unwrap();
    let subscription = client.on_event(|_| {});
    drop(client);
    subscription.cancel();
    assert!(!subscription.is_active());
}
