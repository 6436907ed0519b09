//! Presence (`docs/PROTOCOL.md` 18.7) end to end: native `SyncConnection` documents on the real
//! server see each other appear, move and leave; nothing of it reaches another document or the
//! log; a peer whose socket is cut leaves and comes back with its state; a silent connection's
//! presence times out.

mod support;

use std::time::Duration;

use eventsync::multiplex::PresenceError;
use eventsync::protocol::{self, ClientMessage, PresencePeer, Scoped, ServerMessage};
use eventsync::{ClientError, SyncClient, SyncConnection};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::presence::state_of;
use support::proxy::{FaultMix, FaultProxy};
use support::{TestServer, WAIT};
use tokio_tungstenite::tungstenite::Message;

fn connect(ws: &str, client: &str) -> SyncConnection {
    SyncConnection::builder(ws)
        .client_id(client)
        .connect()
        .expect("the connection starts")
}

async fn opened(connection: &SyncConnection, document: &str) -> SyncClient {
    let handle = connection.open(document).expect("opens");
    tokio::time::timeout(WAIT, handle.sync_state())
        .await
        .expect("caught up in time")
        .expect("caught up");
    handle
}

/// Waits until `handle.others()` satisfies `wanted`, for at most [`WAIT`].
async fn until_others(handle: &SyncClient, what: &str, wanted: impl Fn(&[PresencePeer]) -> bool) {
    support::presence::until_others(handle, WAIT, what, wanted).await
}

#[tokio::test]
async fn peers_see_each_other_appear_move_and_leave() {
    let server = TestServer::start().await;
    let (alice, bob) = (connect(&server.ws, "alice"), connect(&server.ws, "bob"));
    let at_alice = opened(&alice, "board").await;
    let at_bob = opened(&bob, "board").await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<PresencePeer>>::new()));
    let log = seen.clone();
    at_bob.on_presence(move |others| log.lock().unwrap().push(others.to_vec()));

    at_alice.set_presence(json!({"cursor": 1})).unwrap();
    until_others(&at_bob, "alice appears", |o| {
        state_of(o, "alice") == Some(json!({"cursor": 1}))
    })
    .await;
    let alice_seen = at_bob.others()[0].clone();
    assert!(alice_seen.since.is_some(), "since when: {alice_seen:?}");
    assert!(at_alice.others().is_empty(), "bob has published nothing");

    // A cursor moving fast: the latest state arrives, in fewer frames than moves.
    for x in 2..=60 {
        at_alice.set_presence(json!({"cursor": x})).unwrap();
    }
    until_others(&at_bob, "alice's latest cursor", |o| {
        state_of(o, "alice") == Some(json!({"cursor": 60}))
    })
    .await;
    let updates = seen.lock().unwrap().len();
    assert!(updates < 30, "60 moves reached bob as {updates} updates");
    assert_eq!(
        at_bob.others()[0].since,
        alice_seen.since,
        "since is when alice joined"
    );

    // Both ways.
    at_bob.set_presence(json!({"name": "Bob"})).unwrap();
    until_others(&at_alice, "bob appears", |o| {
        state_of(o, "bob") == Some(json!({"name": "Bob"}))
    })
    .await;

    at_alice.clear_presence().unwrap();
    until_others(&at_bob, "alice cleared", |o| o.is_empty()).await;
    at_alice.set_presence(json!("back")).unwrap();
    until_others(&at_bob, "alice back", |o| {
        state_of(o, "alice") == Some(json!("back"))
    })
    .await;
    // Closing the document, then the connection: gone at once each time.
    at_alice.close().await;
    until_others(&at_bob, "alice closed the document", |o| o.is_empty()).await;
    let again = opened(&alice, "board").await;
    again.set_presence(json!("again")).unwrap();
    until_others(&at_bob, "alice reopened", |o| {
        state_of(o, "alice") == Some(json!("again"))
    })
    .await;
    alice.close().await;
    until_others(&at_bob, "alice's connection closed", |o| o.is_empty()).await;
    let last = seen.lock().unwrap().last().cloned().unwrap_or_default();
    assert!(last.is_empty(), "the last update bob saw: {last:?}");
}

#[tokio::test]
async fn presence_stays_on_its_document_and_out_of_the_log() {
    let server = TestServer::start().await;
    let (alice, carol) = (connect(&server.ws, "alice"), connect(&server.ws, "carol"));
    let at_alice = opened(&alice, "doc-a").await;
    at_alice.create(json!({"title": "a"})).unwrap();
    tokio::time::timeout(WAIT, at_alice.flush())
        .await
        .unwrap()
        .unwrap();
    let elsewhere = opened(&carol, "doc-b").await;
    let watcher = opened(&carol, "doc-a").await;
    at_alice
        .set_presence(json!({"secret": "only doc-a"}))
        .unwrap();
    until_others(&watcher, "alice on doc-a", |o| o.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(elsewhere.others().is_empty(), "nothing on doc-b");
    // The log has the creation and nothing else; the document is untouched.
    let events: Value = reqwest::get(server.url("/api/events/doc-a?after=0"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert!(!events.to_string().contains("only doc-a"));
    assert_eq!(at_alice.applied_seq(), 1);
    assert_eq!(watcher.document(), Some(json!({"title": "a"})));
}

#[tokio::test]
async fn a_cut_peer_leaves_and_comes_back_with_its_state() {
    let server = TestServer::start().await;
    let target = server.http.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(target, 7, FaultMix::clean()).await;
    let alice = SyncConnection::builder(proxy.ws())
        .client_id("alice")
        .backoff(eventsync::Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        })
        .connect()
        .unwrap();
    let bob = connect(&server.ws, "bob");
    let at_alice = opened(&alice, "board").await;
    let at_bob = opened(&bob, "board").await;
    at_bob.set_presence(json!("bob")).unwrap();
    at_alice.set_presence(json!({"editing": "card-7"})).unwrap();
    until_others(&at_bob, "alice appears", |o| o.len() == 1).await;
    until_others(&at_alice, "bob appears", |o| o.len() == 1).await;

    proxy.cut_all();
    // The server notices the cut socket: alice leaves bob's list; alice forgets the others.
    until_others(&at_bob, "alice left", |o| o.is_empty()).await;
    // Reconnected, alice publishes again and learns bob again.
    until_others(&at_bob, "alice is back", |o| {
        state_of(o, "alice") == Some(json!({"editing": "card-7"}))
    })
    .await;
    until_others(&at_alice, "bob again", |o| {
        state_of(o, "bob") == Some(json!("bob"))
    })
    .await;
}

#[tokio::test]
async fn refusals_are_loud() {
    let server = TestServer::start().await;
    let alice = connect(&server.ws, "alice");
    let handle = opened(&alice, "board").await;
    let big = json!({ "blob": "x".repeat(protocol::MAX_PRESENCE_BYTES) });
    match handle.set_presence(big) {
        Err(ClientError::Presence(PresenceError::TooLarge { limit, .. })) => {
            assert_eq!(limit, 4096)
        }
        other => panic!("a state over 4 KiB is refused, not {other:?}"),
    }
    match handle.set_presence(json!({ "id": 9_007_199_254_740_993u64 })) {
        Err(ClientError::Presence(err @ PresenceError::UnsafeInteger(_))) => {
            assert_eq!(err.code(), protocol::ErrorCode::TooLarge);
            assert!(err.to_string().contains("9007199254740993"), "{err}");
        }
        other => panic!("a state holding 2^53 + 1 is refused, not {other:?}"),
    }
    let own = SyncClient::builder(&server.ws, "board")
        .client_id("solo")
        .connect()
        .unwrap();
    match own.set_presence(json!(1)) {
        Err(ClientError::Presence(PresenceError::NeedsConnection)) => {}
        other => panic!("a client of its own has no presence: {other:?}"),
    }
    handle.close().await;
    assert!(matches!(
        handle.set_presence(json!(1)),
        Err(ClientError::Closed)
    ));
}

/// A raw version 2 connection that opens one document, publishes, then says nothing more.
async fn silent_peer(
    server: &TestServer,
    client: &str,
    document: &str,
    state: Value,
) -> impl Sized {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/sync", server.ws))
        .await
        .expect("connects");
    let frames = [
        protocol::encode(&ClientMessage::Hello {
            protocol_versions: vec![2],
            client_id: client.into(),
            token: None,
        }),
        protocol::encode(&Scoped {
            document_id: Some(document.into()),
            message: ClientMessage::Open,
        }),
        protocol::encode(&Scoped {
            document_id: Some(document.into()),
            message: ClientMessage::Presence { state },
        }),
    ];
    for frame in frames {
        ws.send(Message::Text(frame.into())).await.unwrap();
    }
    // Read until `opened`, so that the presence was taken.
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        if let Some(Ok(Message::Text(text))) = next {
            let scoped = protocol::decode_server_scoped(&text).unwrap();
            if matches!(scoped.message, ServerMessage::Opened { .. }) {
                break;
            }
        }
    }
    ws
}

#[tokio::test]
async fn a_silent_connection_loses_its_presence_after_the_timeout() {
    let server = TestServer::start_with(|config| config.presence_timeout = 1).await;
    let bob = connect(&server.ws, "bob");
    let at_bob = opened(&bob, "board").await;
    let started = tokio::time::Instant::now();
    let _held = silent_peer(&server, "mallory", "board", json!("here")).await;
    until_others(&at_bob, "mallory appears", |o| o.len() == 1).await;
    until_others(&at_bob, "mallory timed out", |o| o.is_empty()).await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "not before the timeout: {after:?}"
    );
}
