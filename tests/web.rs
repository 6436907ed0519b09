//! The JavaScript bindings in a real browser (headless Chromium): `scripts/test-web.sh`.
//!
//! No server runs here: clients and connections point at a closed port, so everything below is the offline
//! path (edits apply at once and queue), plus the conversions at the boundary.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use eventsync::web::{JsSyncClient, JsSyncConnection};
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens on port 9 (discard); the client keeps reconnecting, offline.
const NOWHERE: &str = "ws://127.0.0.1:9";

fn js(value: Value) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap()
}

fn rust(value: JsValue) -> Value {
    serde_wasm_bindgen::from_value(value).unwrap()
}

fn options(value: Value) -> JsValue {
    js(value)
}

fn error_message(err: JsValue) -> String {
    let err = err
        .dyn_into::<js_sys::Error>()
        .expect("errors reach JS as Error objects");
    String::from(err.message())
}

#[wasm_bindgen_test]
fn offline_edits_apply_at_once_and_queue() {
    let client = JsSyncClient::new(
        NOWHERE.into(),
        "doc".into(),
        options(json!({"clientId": "alice", "conflictPolicy": "clientWins"})),
    )
    .unwrap();
    assert_eq!(client.client_id(), "alice");
    assert!(client.document().unwrap().is_null());
    assert_eq!(client.create(js(json!({"items": []}))).unwrap(), 1.0);
    let seq = client
        .edit(js(json!([
            {"op": "add", "path": "/items/-", "value": "milk"},
            {"op": "add", "path": "/items/0", "value": "eggs"}
        ])))
        .unwrap();
    assert_eq!(seq, 2.0);
    assert_eq!(
        rust(client.document().unwrap()),
        json!({"items": ["eggs", "milk"]})
    );
    assert_eq!(client.pending_count(), 2);
    assert_eq!(client.applied_seq(), 0.0);
    assert_ne!(client.status(), "online");
    assert_eq!(rust(client.state_vector().unwrap()), json!({}));
    client.update_state_vector("bob", 7.0).unwrap();
    assert_eq!(rust(client.state_vector().unwrap()), json!({"bob": 7}));
    client.close();
}

#[wasm_bindgen_test]
fn errors_are_js_errors_and_change_nothing() {
    let client = JsSyncClient::new(NOWHERE.into(), "doc".into(), JsValue::UNDEFINED).unwrap();
    assert!(client.client_id().starts_with("c-"));
    let message = error_message(
        client
            .edit(js(json!([{"op": "add", "path": "/a", "value": 1}])))
            .unwrap_err(),
    );
    assert!(message.contains("does not exist"), "{message}");
    client.create(js(json!({"a": 1}))).unwrap();
    let message = error_message(
        client
            .edit(js(json!([{"op": "frobnicate", "path": "/a"}])))
            .unwrap_err(),
    );
    assert!(message.contains("invalid patch"), "{message}");
    let message = error_message(
        client
            .edit(js(json!([{"op": "remove", "path": "/b"}])))
            .unwrap_err(),
    );
    assert!(message.contains("does not apply"), "{message}");
    let message = error_message(client.create(js(json!({}))).unwrap_err());
    assert!(message.contains("already exists"), "{message}");
    let message = error_message(client.update_state_vector("x", -1.0).unwrap_err());
    assert!(message.contains("sequenceNum"), "{message}");
    assert_eq!(rust(client.document().unwrap()), json!({"a": 1}));
    assert_eq!(client.pending_count(), 1);
    client.delete().unwrap();
    assert!(client.document().unwrap().is_null());
    client.close();

    let bad = JsSyncClient::new(
        NOWHERE.into(),
        "doc".into(),
        options(json!({"conflictPolicy": "whoever"})),
    );
    let message = error_message(bad.err().unwrap());
    assert!(message.contains("invalid options"), "{message}");
}

#[wasm_bindgen_test]
fn documents_reach_js_as_json_parse_reads_them() {
    let client = JsSyncClient::new(NOWHERE.into(), "doc".into(), JsValue::UNDEFINED).unwrap();
    // An own `__proto__` member stays a member (setting it would change the prototype).
    let text = r#"{"__proto__":{"x":1},"f":0.1,"n":9007199254740991,"s":"\u2028é"}"#;
    client.create(js_sys::JSON::parse(text).unwrap()).unwrap();
    let document = client.document().unwrap();
    let written = String::from(js_sys::JSON::stringify(&document).unwrap());
    assert_eq!(written, text.replace("\\u2028", "\u{2028}"));
    client.close();
}

/// The browser build reads JSON with its own reader and the browser's `parseFloat`: the same
/// values, number by number, as serde_json's exact reader (`protocol::text` compares the rest
/// natively).
#[wasm_bindgen_test]
fn the_browsers_json_reader_reads_as_serde_json_does() {
    let numbers = [
        "0",
        "-0",
        "-0.0",
        "0.1",
        "0.30000000000000004",
        "1e22",
        "1e23",
        "5e-324",
        "4.9e-324",
        "2.2250738585072011e-308",
        "1.7976931348623157e308",
        "9007199254740993",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "3.141592653589793",
        "1.00000000000000011102230246251565404236316680908203125",
        "7.038531e-26",
    ];
    for text in numbers {
        let ours = eventsync::protocol::parse_json(text).unwrap();
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs, "{text}");
        assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
    }
    let text = r#"{"a":[1,-2.5e3,"\u00e9\ud83d\ude00\n",true,null,{}],"b":{"c":[]}}"#;
    assert_eq!(
        eventsync::protocol::parse_json(text).unwrap(),
        serde_json::from_str::<Value>(text).unwrap()
    );
    for bad in ["1e400", "[1,]", r#""\ud83d""#, "01", "", r#"{"a" 1}"#] {
        assert!(eventsync::protocol::parse_json(bad).is_err(), "{bad}");
    }
}

#[wasm_bindgen_test]
async fn events_are_plain_objects_and_close_rejects_waiters() {
    let client = JsSyncClient::new(
        NOWHERE.into(),
        "doc".into(),
        options(json!({"reconnectInitialMs": 10, "reconnectMaxMs": 20})),
    )
    .unwrap();
    let seen: Rc<RefCell<Vec<Value>>> = Rc::default();
    let sink = seen.clone();
    let callback = Closure::<dyn Fn(JsValue)>::new(move |event: JsValue| {
        sink.borrow_mut().push(rust(event));
    });
    client.on_event(
        callback
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    );
    callback.forget();

    // The connection fails: the driver reports that it is reconnecting, and why.
    let deadline = js_sys::Date::now() + 5_000.0;
    while !seen.borrow().iter().any(|e| {
        e["type"] == "status"
            && e["status"] == "reconnecting"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("cannot connect"))
            && e["retryInMs"].is_u64()
    }) {
        assert!(
            js_sys::Date::now() < deadline,
            "no reconnecting status: {:?}",
            seen.borrow()
        );
        gloo_sleep(20).await;
    }

    let waiting = wasm_bindgen_futures::JsFuture::from(client.sync_state(JsValue::UNDEFINED));
    client.close();
    let message = error_message(waiting.await.unwrap_err());
    assert!(message.contains("closed"), "{message}");
}

async fn gloo_sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys_set_timeout(&resolve, ms);
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn web_sys_set_timeout(callback: &js_sys::Function, ms: i32);
}

/// A database name of its own per test, so that tests do not share records.
fn persisted(database: &str, extra: Value) -> JsValue {
    let mut value = json!({"persist": true, "database": database, "reconnectInitialMs": 10});
    value
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    options(value)
}

/// Waits until IndexedDB has what the client sent to it (saves finish asynchronously).
async fn reopen_until(database: &str, expected_pending: usize) -> JsSyncClient {
    let deadline = js_sys::Date::now() + 5_000.0;
    loop {
        let client =
            JsSyncClient::open(NOWHERE.into(), "doc".into(), persisted(database, json!({})))
                .await
                .unwrap();
        if client.pending_count() == expected_pending {
            return client;
        }
        assert!(
            js_sys::Date::now() < deadline,
            "the reopened client has {} pending edits, not {expected_pending}",
            client.pending_count()
        );
        client.close();
        gloo_sleep(20).await;
    }
}

#[wasm_bindgen_test]
async fn offline_edits_survive_a_reload_in_indexed_db() {
    let database = "eventsync-test-reload";
    let client = JsSyncClient::open(NOWHERE.into(), "doc".into(), persisted(database, json!({})))
        .await
        .unwrap();
    let client_id = client.client_id();
    client.create(js(json!({"items": []}))).unwrap();
    client
        .edit(js(
            json!([{"op": "add", "path": "/items/-", "value": "milk"}]),
        ))
        .unwrap();
    // The edits are committed to IndexedDB a moment after edit() returns.
    wasm_bindgen_futures::JsFuture::from(client.saved(JsValue::UNDEFINED))
        .await
        .unwrap();
    // A reload: the page's client goes away (its lock with it) and a new one opens.
    client.close();
    let reopened = reopen_until(database, 2).await;
    assert_eq!(reopened.client_id(), client_id, "the same client resumes");
    assert_eq!(
        rust(reopened.document().unwrap()),
        json!({"items": ["milk"]})
    );
    // The next edit continues the clientSeq sequence instead of reusing a number.
    let seq = reopened
        .edit(js(
            json!([{"op": "add", "path": "/items/-", "value": "eggs"}]),
        ))
        .unwrap();
    assert_eq!(seq, 3.0);
    reopened.close();
}

#[wasm_bindgen_test]
async fn two_tabs_never_share_a_client_id() {
    let database = "eventsync-test-tabs";
    let first = JsSyncClient::open(NOWHERE.into(), "doc".into(), persisted(database, json!({})))
        .await
        .unwrap();
    first.create(js(json!({"from": "first"}))).unwrap();
    // While the first holds its record, a second client gets a new id (and record).
    let second = JsSyncClient::open(NOWHERE.into(), "doc".into(), persisted(database, json!({})))
        .await
        .unwrap();
    assert_ne!(second.client_id(), first.client_id());
    assert!(second.document().unwrap().is_null());
    assert_eq!(second.pending_count(), 0);
    // Naming a held client id is refused with a clear error.
    let taken = JsSyncClient::open(
        NOWHERE.into(),
        "doc".into(),
        persisted(database, json!({"clientId": first.client_id()})),
    )
    .await;
    let message = error_message(taken.err().unwrap());
    assert!(message.contains("another tab"), "{message}");
    // Once the first goes away, a new client takes over its record, pending edits and all.
    let first_id = first.client_id();
    first.close();
    let third = reopen_until(database, 1).await;
    assert_eq!(third.client_id(), first_id);
    assert_eq!(rust(third.document().unwrap()), json!({"from": "first"}));
    second.close();
    third.close();
}

#[wasm_bindgen_test]
fn persistence_needs_open() {
    let message = error_message(
        JsSyncClient::new(
            NOWHERE.into(),
            "doc".into(),
            options(json!({"persist": true})),
        )
        .err()
        .unwrap(),
    );
    assert!(message.contains("SyncClient.open"), "{message}");
}

/// A `SyncClient` from a connection's `open(documentId)` promise.
async fn open_on(connection: &JsSyncConnection, document_id: &str) -> JsSyncClient {
    let client = wasm_bindgen_futures::JsFuture::from(connection.open(document_id.into()))
        .await
        .unwrap();
    // The promise resolves to the exported class; take it back as a Rust handle.
    JsSyncClient::try_from_js_value(client).unwrap()
}

#[wasm_bindgen_test]
async fn one_connection_holds_many_documents_offline() {
    let connection = JsSyncConnection::new(
        NOWHERE.into(),
        options(json!({"clientId": "carol", "reconnectInitialMs": 10})),
    )
    .unwrap();
    assert_eq!(connection.client_id(), "carol");
    let first = open_on(&connection, "first").await;
    let second = open_on(&connection, "second").await;
    assert_eq!(first.client_id(), "carol");
    assert_eq!(first.create(js(json!({"n": 1}))).unwrap(), 1.0);
    assert_eq!(second.create(js(json!({"n": 2}))).unwrap(), 1.0);
    first
        .edit(js(json!([{"op": "replace", "path": "/n", "value": 10}])))
        .unwrap();
    // Each document has its own state and queue.
    assert_eq!(rust(first.document().unwrap()), json!({"n": 10}));
    assert_eq!(rust(second.document().unwrap()), json!({"n": 2}));
    assert_eq!(first.pending_count(), 2);
    assert_eq!(second.pending_count(), 1);
    // Opening an open document again gives another handle to the same one.
    let again = open_on(&connection, "first").await;
    assert_eq!(rust(again.document().unwrap()), json!({"n": 10}));
    // Closing one document leaves the others working; its handles refuse from then on.
    first.close();
    let message = error_message(
        again
            .edit(js(json!([{"op": "replace", "path": "/n", "value": 11}])))
            .unwrap_err(),
    );
    assert!(message.contains("closed"), "{message}");
    second
        .edit(js(json!([{"op": "replace", "path": "/n", "value": 3}])))
        .unwrap();
    assert_eq!(rust(second.document().unwrap()), json!({"n": 3}));
    // Closing the connection closes every document on it, and opening refuses.
    connection.close();
    let message = error_message(
        second
            .edit(js(json!([{"op": "replace", "path": "/n", "value": 4}])))
            .unwrap_err(),
    );
    assert!(message.contains("closed"), "{message}");
    let refused = wasm_bindgen_futures::JsFuture::from(connection.open("third".into())).await;
    assert!(error_message(refused.unwrap_err()).contains("closed"));
}

#[wasm_bindgen_test]
async fn a_connection_keeps_its_client_id_and_documents_across_a_reload() {
    let database = "eventsync-test-connection";
    let connection = JsSyncConnection::connect(NOWHERE.into(), persisted(database, json!({})))
        .await
        .unwrap();
    let client_id = connection.client_id();
    let notes = open_on(&connection, "notes").await;
    let todo = open_on(&connection, "todo").await;
    notes.create(js(json!({"text": "hello"}))).unwrap();
    todo.create(js(json!({"items": []}))).unwrap();
    todo.edit(js(
        json!([{"op": "add", "path": "/items/-", "value": "milk"}]),
    ))
    .unwrap();
    for client in [&notes, &todo] {
        wasm_bindgen_futures::JsFuture::from(client.saved(JsValue::UNDEFINED))
            .await
            .unwrap();
    }
    // While this page holds the connection's record, another gets a client id of its own.
    let other = JsSyncConnection::connect(NOWHERE.into(), persisted(database, json!({})))
        .await
        .unwrap();
    assert_ne!(other.client_id(), client_id);
    assert!(open_on(&other, "todo").await.document().unwrap().is_null());
    // A reload (the other page still open): the next page takes the record back, with every
    // document's pending edits.
    connection.close();
    let deadline = js_sys::Date::now() + 5_000.0;
    let reopened = loop {
        let reopened = JsSyncConnection::connect(NOWHERE.into(), persisted(database, json!({})))
            .await
            .unwrap();
        if reopened.client_id() == client_id || js_sys::Date::now() > deadline {
            break reopened;
        }
        reopened.close();
        gloo_sleep(20).await;
    };
    assert_eq!(reopened.client_id(), client_id, "the same client resumes");
    let todo = open_on(&reopened, "todo").await;
    assert_eq!(rust(todo.document().unwrap()), json!({"items": ["milk"]}));
    assert_eq!(todo.pending_count(), 2);
    let notes = open_on(&reopened, "notes").await;
    assert_eq!(rust(notes.document().unwrap()), json!({"text": "hello"}));
    other.close();
    // clientSeq continues per document.
    let seq = todo
        .edit(js(
            json!([{"op": "add", "path": "/items/-", "value": "eggs"}]),
        ))
        .unwrap();
    assert_eq!(seq, 3.0);
    reopened.close();
}

/// The `code` property of a thrown `EventsyncError`.
fn error_code(err: &JsValue) -> Option<String> {
    js_sys::Reflect::get(err, &"code".into())
        .ok()
        .and_then(|code| code.as_string())
}

#[wasm_bindgen_test]
async fn presence_belongs_to_a_connections_documents_and_refuses_with_a_code() {
    // A client of its own (protocol version 1) has no presence: a coded, explained error.
    let single = JsSyncClient::new(NOWHERE.into(), "doc".into(), JsValue::UNDEFINED).unwrap();
    let refused = single
        .set_presence(js(json!({"editing": "a"})))
        .unwrap_err();
    assert_eq!(error_code(&refused).as_deref(), Some("unexpected_message"));
    let error = refused.dyn_ref::<js_sys::Error>().unwrap();
    assert_eq!(String::from(error.name()), "EventsyncError");
    let message = error_message(refused);
    assert!(message.contains("SyncConnection"), "{message}");
    assert!(single.clear_presence().is_err());
    assert_eq!(rust(single.others().unwrap()), json!([]));
    single.close();

    // A document of a connection keeps its presence while offline; nobody else is known yet.
    let connection = JsSyncConnection::new(
        NOWHERE.into(),
        options(json!({"clientId": "dana", "reconnectInitialMs": 10})),
    )
    .unwrap();
    let doc = open_on(&connection, "presence").await;
    let calls: Rc<RefCell<Vec<Value>>> = Rc::default();
    let sink = calls.clone();
    let callback = Closure::<dyn Fn(JsValue)>::new(move |others: JsValue| {
        sink.borrow_mut().push(rust(others));
    });
    doc.on_presence(
        callback
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    );
    callback.forget();
    doc.set_presence(js(json!({"editing": "item-1"}))).unwrap();
    doc.set_presence(js(json!({"editing": "item-2", "at": [1, 2.5]})))
        .unwrap();
    assert_eq!(rust(doc.others().unwrap()), json!([]));
    doc.clear_presence().unwrap();
    doc.set_presence(JsValue::NULL).unwrap();

    // Over 4096 bytes of JSON: `too_large`, and the state before it stays.
    let refused = doc
        .set_presence(js(json!({"text": "x".repeat(5000)})))
        .unwrap_err();
    assert_eq!(error_code(&refused).as_deref(), Some("too_large"));
    let message = error_message(refused);
    assert!(message.contains("4096"), "{message}");
    let refused = doc.set_presence(JsValue::UNDEFINED);
    assert!(refused.is_ok(), "undefined clears, as null does");
    assert!(
        calls.borrow().is_empty(),
        "no others offline: {:?}",
        calls.borrow()
    );

    // A closed document, and a closed connection, refuse.
    doc.close();
    let message = error_message(doc.set_presence(js(json!(1))).unwrap_err());
    assert!(message.contains("closed"), "{message}");
    let other = open_on(&connection, "presence-2").await;
    connection.close();
    let message = error_message(other.set_presence(js(json!(1))).unwrap_err());
    assert!(message.contains("closed"), "{message}");
    assert_eq!(rust(other.others().unwrap()), json!([]));
}

/// A JavaScript callback that counts its calls.
fn counting() -> (js_sys::Function, Rc<RefCell<usize>>) {
    let calls: Rc<RefCell<usize>> = Rc::default();
    let sink = calls.clone();
    let callback = Closure::<dyn Fn(JsValue)>::new(move |_: JsValue| *sink.borrow_mut() += 1);
    (callback.into_js_value().unchecked_into(), calls)
}

/// Waits until `done()` holds; fails after 5 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = js_sys::Date::now() + 5_000.0;
    while !done() {
        assert!(js_sys::Date::now() < deadline, "timed out: {what}");
        gloo_sleep(10).await;
    }
}

#[wasm_bindgen_test]
async fn the_function_on_event_returns_unsubscribes() {
    let check = |client: JsSyncClient| async move {
        let (one, one_calls) = counting();
        let (batch, batch_calls) = counting();
        let unsubscribe = client.on_event(one);
        let _kept = client.on_events(batch);
        // Offline, every failed attempt to connect is a `reconnecting` status event.
        wait_until("both callbacks called", || {
            *one_calls.borrow() > 0 && *batch_calls.borrow() > 0
        })
        .await;
        unsubscribe.call0(&JsValue::NULL).unwrap();
        unsubscribe.call0(&JsValue::NULL).unwrap();
        let frozen = *one_calls.borrow();
        let from = *batch_calls.borrow();
        wait_until("three more steps", || *batch_calls.borrow() >= from + 3).await;
        assert_eq!(*one_calls.borrow(), frozen, "called after unsubscribing");
        client.close();
    };
    let fast = json!({"reconnectInitialMs": 5, "reconnectMaxMs": 10});
    check(JsSyncClient::new(NOWHERE.into(), "doc".into(), options(fast.clone())).unwrap()).await;
    let connection = JsSyncConnection::new(NOWHERE.into(), options(fast)).unwrap();
    check(open_on(&connection, "doc").await).await;
    connection.close();
}

#[wasm_bindgen_test]
fn conflict_policy_is_a_name_or_a_function() {
    let resolver = js_sys::Function::new_with_args("conflict", "return 'local'");
    let accepted = [
        js(json!("serverWins")),
        js(json!("clientWins")),
        JsValue::NULL,
        resolver.into(),
    ];
    for policy in accepted {
        let options = js_sys::Object::new();
        js_sys::Reflect::set(&options, &"conflictPolicy".into(), &policy).unwrap();
        let client = JsSyncClient::new(NOWHERE.into(), "doc".into(), options.into());
        client.expect("accepted").close();
    }
    for policy in [json!("whoever"), json!(42), json!({"value": 1})] {
        let refused = JsSyncClient::new(
            NOWHERE.into(),
            "doc".into(),
            options(json!({ "conflictPolicy": policy })),
        )
        .err()
        .expect("refused");
        assert_eq!(error_code(&refused).as_deref(), Some("invalid_argument"));
        let message = error_message(refused);
        assert!(
            message.contains("invalid options") && message.contains("conflictPolicy"),
            "{message}"
        );
    }
}
