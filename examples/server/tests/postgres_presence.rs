//! Presence across server processes on one PostgreSQL database (`docs/PROTOCOL.md` 18.7): peers
//! on two servers see each other appear, move and leave, and the peers of a server process that
//! is SIGKILLed leave the others within its presence timeout.
//!
//! Needs `EVENTSYNC_TEST_POSTGRES_URL` (run under `scripts/with-postgres.sh`), unless
//! `EVENTSYNC_SKIP_POSTGRES=1` is set (quick local runs only).

mod support;

use std::time::Duration;

use eventsync::{SyncClient, SyncConnection};
use serde_json::json;
use support::presence::{state_of, until_others};
use support::process::ServerProcess;
use support::{unique, TempDir, TestServer, WAIT};

async fn opened(ws: &str, client: &str, document: &str) -> (SyncConnection, SyncClient) {
    let connection = SyncConnection::builder(ws)
        .client_id(client)
        .connect()
        .expect("the connection starts");
    let handle = connection.open(document).expect("opens");
    tokio::time::timeout(WAIT, handle.sync_state())
        .await
        .expect("caught up in time")
        .expect("caught up");
    (connection, handle)
}

#[tokio::test]
async fn peers_on_two_servers_see_each_other_and_a_killed_servers_peers_leave() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let document = unique("pg-presence");
    let a = TestServer::start_on(&url, |_| {}).await;
    let b = TestServer::start_on(&url, |_| {}).await;
    let (_alice, at_alice) = opened(&a.ws, "alice", &document).await;
    let (_bob, at_bob) = opened(&b.ws, "bob", &document).await;

    at_alice.set_presence(json!({"cursor": 1})).unwrap();
    until_others(&at_bob, WAIT, "alice (server A) appears on B", |o| {
        state_of(o, "alice") == Some(json!({"cursor": 1}))
    })
    .await;
    at_bob.set_presence(json!("bob")).unwrap();
    until_others(&at_alice, WAIT, "bob (server B) appears on A", |o| {
        state_of(o, "bob") == Some(json!("bob"))
    })
    .await;
    for x in 2..=20 {
        at_alice.set_presence(json!({"cursor": x})).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until_others(&at_bob, WAIT, "alice's latest cursor crosses", |o| {
        state_of(o, "alice") == Some(json!({"cursor": 20}))
    })
    .await;
    at_alice.clear_presence().unwrap();
    until_others(&at_bob, WAIT, "alice's clear crosses", |o| o.is_empty()).await;

    // A process that started later learns the peers already there.
    let logs = TempDir::new("pg-presence");
    let mut c =
        ServerProcess::start_with_args(&url, &logs.0, "c", &["--presence-timeout", "2"]).await;
    let (_dave, at_dave) = opened(&c.ws, "dave", &document).await;
    until_others(&at_dave, WAIT, "bob, from server B, seen on C", |o| {
        state_of(o, "bob") == Some(json!("bob"))
    })
    .await;
    at_dave.set_presence(json!("dave")).unwrap();
    until_others(&at_bob, WAIT, "dave (server C) appears on B", |o| {
        state_of(o, "dave") == Some(json!("dave"))
    })
    .await;

    // SIGKILL: no close reaches anyone; B drops C's peers once C's timeout (2 s) passes quietly.
    let killed = tokio::time::Instant::now();
    c.kill();
    until_others(
        &at_bob,
        Duration::from_secs(10),
        "dave left with server C",
        |o| state_of(o, "dave").is_none(),
    )
    .await;
    let after = killed.elapsed();
    assert!(
        after <= Duration::from_secs(4),
        "gone within the timeout (2 s, checked every second): {after:?}"
    );
    assert_eq!(state_of(&at_bob.others(), "alice"), None);
}
