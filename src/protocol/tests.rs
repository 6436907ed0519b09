//! Round trips and edge cases of the wire format.

use super::frame::scoped;
use super::read::read_events;
use super::*;
use serde_json::{json, Value};

fn round_trip_server(msg: ServerMessage) {
    let text = encode(&msg);
    assert_eq!(decode_server(&text).unwrap(), msg, "{text}");
}

fn round_trip_client(msg: ClientMessage) {
    let text = encode(&msg);
    assert_eq!(decode_client(&text, 1 << 20).unwrap(), msg, "{text}");
}

fn sample_event() -> Event {
    serde_json::from_value(json!({
        "id": "e1", "documentId": "doc", "timestamp": "2026-01-01T00:00:00Z",
        "sequenceNum": 3, "operation": "update",
        "diff": {"patch": [{"op": "add", "path": "/a", "value": 1}]},
        "vectorClock": {"alice": 3}, "clientId": "alice", "clientSeq": 7
    }))
    .unwrap()
}

#[test]
fn every_client_message_round_trips() {
    round_trip_client(ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: "alice".into(),
        token: Some("t".into()),
    });
    round_trip_client(ClientMessage::Sync {
        vector_clock: VectorClock::from_iter([("alice".to_string(), 4)]),
        after: Some(4),
    });
    round_trip_client(ClientMessage::Submit {
        edits: vec![Edit {
            client_seq: 1,
            base_seq: 0,
            operation: Operation::Create,
            patch: serde_json::from_value(json!([{"op": "add", "path": "", "value": {}}])).unwrap(),
            shape: None,
        }],
    });
    round_trip_client(ClientMessage::Ping { nonce: Some(9) });
}

#[test]
fn every_server_message_round_trips() {
    round_trip_server(ServerMessage::Welcome {
        protocol_version: 1,
        document_id: "doc".into(),
        client_id: "alice".into(),
        head_seq: Some(3),
    });
    round_trip_server(ServerMessage::Events {
        events: vec![sample_event()],
        head_seq: Some(3),
        has_more: true,
    });
    round_trip_server(ServerMessage::Event {
        events: vec![sample_event()],
    });
    round_trip_server(ServerMessage::Snapshot {
        snapshot: Snapshot {
            document_id: "doc".into(),
            sequence_num: 3,
            document: Some(json!({"a": 1})),
            vector_clock: VectorClock::default(),
        },
    });
    round_trip_server(ServerMessage::Ack {
        edits: vec![Ack {
            client_seq: 7,
            sequence_num: 3,
            duplicate: true,
        }],
    });
    round_trip_server(ServerMessage::Reject {
        client_seq: 8,
        code: ErrorCode::Conflict,
        message: "x".into(),
        head_seq: 4,
    });
    round_trip_server(ServerMessage::Error {
        code: ErrorCode::MalformedFrame,
        message: "bad".into(),
    });
    round_trip_server(ServerMessage::Pong {
        nonce: None,
        head_seq: Some(3),
        heads: None,
    });
}

/// Events are moved through the client's queues and buffers by value: the rarely used
/// parts (the seed's MongoDB operators) are boxed so that every move stays small.
#[test]
fn an_event_stays_small() {
    let size = std::mem::size_of::<Event>();
    eprintln!("Event: {size} bytes");
    assert!(size <= 320, "Event is {size} bytes");
}

#[test]
fn frames_read_the_same_type_first_or_not() {
    let events = vec![sample_event()];
    let page = ServerMessage::Events {
        events: events.clone(),
        head_seq: Some(3),
        has_more: true,
    };
    let live = ServerMessage::Event { events };
    let welcome = r#"{"type":"welcome","protocolVersion":1,"documentId":"d","clientId":"a"}"#;
    let other = r#"{"type":"events","events":[],"headSeq":null,"x":1}"#;
    for text in [encode(&page), encode(&live), welcome.into(), other.into()] {
        if text != welcome {
            assert!(read_events(&text, false).is_ok(), "{text}");
        }
        let value: Value = serde_json::from_str(&text).unwrap();
        let general = ServerMessage::from_value(value.clone()).unwrap();
        assert_eq!(decode_server(&text).unwrap(), general, "{text}");
        // The same members in serde_json's order (`type` is not first: read the other way).
        let sorted = value.to_string();
        assert!(!sorted.starts_with(r#"{"type""#), "{sorted}");
        assert_eq!(decode_server(&sorted).unwrap(), general, "{sorted}");
    }
    for message in [page, live] {
        let text = encode_scoped(Some("doc"), &message);
        assert!(read_events(&text, true).is_ok(), "{text}");
        let mut general: Scoped<ServerMessage> = scoped(&text, ServerMessage::from_value).unwrap();
        if let ServerMessage::Events { events, .. } | ServerMessage::Event { events } =
            &mut general.message
        {
            events.iter_mut().for_each(|e| e.document_id = "doc".into());
        }
        assert_eq!(decode_server_scoped(&text).unwrap(), general, "{text}");
        let sorted = serde_json::from_str::<Value>(&text).unwrap().to_string();
        assert_eq!(decode_server_scoped(&sorted).unwrap(), general, "{sorted}");
    }
    // What the quick way cannot read goes the general way, with its answer.
    for bad in [
        r#"{"type":"events","events":null}"#,
        r#"{"type":"events","documentId":7,"events":[]}"#,
        r#"{"type":"event","documentId":"d","events":[{}]}"#,
    ] {
        assert!(read_events(bad, true).is_err(), "{bad}");
        assert!(decode_server_scoped(bad).is_err(), "{bad}");
    }
    assert_eq!(
        decode_server(r#"{"type":"events","documentId":7,"events":[]}"#).unwrap(),
        ServerMessage::Events {
            events: Vec::new(),
            head_seq: None,
            has_more: false
        }
    );
}

#[test]
fn unknown_server_message_types_are_readable_and_deep_frames_are_too_large() {
    let msg = decode_server(r#"{"type":"notice","who":["bob"]}"#).unwrap();
    assert_eq!(msg, ServerMessage::Unknown);
    let deep = format!(
        r#"{{"type":"ping","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(
        decode_client(&deep, 1 << 20).unwrap_err().code(),
        ErrorCode::TooLarge
    );
}

#[test]
fn server_messages_read_as_the_internally_tagged_derive_would() {
    // What `#[serde(tag = "type")]` derived for `ServerMessage` read; `from_value` reads the
    // same (the messages of errors may differ).
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    enum Tags {
        Welcome,
        Opened,
        Closed,
        Events,
        Event,
        Snapshot,
        Ack,
        Reject,
        Error,
        Pong,
        Presence,
        History,
        Version,
        #[serde(other)]
        Unknown,
    }
    for text in [
        r#"{"type":"welcome","protocolVersion":2,"clientId":"a","extra":[1]}"#,
        r#"{"type":"opened","headSeq":4}"#,
        r#"{"type":"closed"}"#,
        r#"{"type":"closed","code":"forbidden","message":"no"}"#,
        r#"{"type":"events","events":[],"hasMore":true}"#,
        r#"{"type":"event","events":[{"id":"e","sequenceNum":1,"clientId":"a"}]}"#,
        r#"{"type":"snapshot","snapshot":{"documentId":"d","sequenceNum":2,"document":null}}"#,
        r#"{"type":"ack","edits":[{"clientSeq":1,"sequenceNum":2}]}"#,
        r#"{"type":"reject","clientSeq":1,"code":"conflict","headSeq":3}"#,
        r#"{"type":"error","error":"boom"}"#,
        r#"{"type":"pong","heads":{"d":3}}"#,
        r#"{"type":"presence","peers":[{"clientId":"b","state":{"x":1}}],"full":true}"#,
        r#"{"type":"history","requestId":1,"events":[],"headSeq":0}"#,
        r#"{"type":"version","requestId":1,"version":{"sequenceNum":0,"document":null}}"#,
        r#"{"type":"unknown","x":1}"#,
        r#"{"type":"somethingNew"}"#,
        r#"{"headSeq":4,"type":"opened"}"#,
    ] {
        let tag: Tags = serde_json::from_str(text).unwrap();
        let read = decode_server(text);
        assert!(read.is_ok(), "{text}: {read:?}");
        if let Ok(message) = read {
            let name = serde_json::to_value(&message).unwrap()["type"].clone();
            let expected = serde_json::to_value(format!("{tag:?}")).unwrap();
            let expected = expected.as_str().unwrap();
            let expected = expected[..1].to_lowercase() + &expected[1..];
            if tag == Tags::Unknown {
                assert_eq!(message, ServerMessage::Unknown, "{text}");
            } else {
                assert_eq!(name, expected, "{text}");
            }
        }
    }
    for not_a_message in [
        r#"{"type":"opened"}"#,
        r#"{"type":"reject","clientSeq":"1","code":"conflict","headSeq":3}"#,
        r#"{"type":7}"#,
        r#"{"headSeq":4}"#,
        r#"[]"#,
        r#""welcome""#,
    ] {
        let err = decode_server(not_a_message).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedFrame, "{not_a_message}");
    }
}

#[test]
fn seed_error_frame_parses_with_unknown_code() {
    let msg = decode_server(r#"{"type":"error","error":"boom"}"#).unwrap();
    assert_eq!(
        msg,
        ServerMessage::Error {
            code: ErrorCode::Unknown,
            message: "boom".into()
        }
    );
}

#[test]
fn unknown_error_codes_from_newer_servers_parse() {
    let msg = decode_server(r#"{"type":"error","code":"brand_new","message":"m"}"#).unwrap();
    assert!(matches!(
        msg,
        ServerMessage::Error {
            code: ErrorCode::Unknown,
            ..
        }
    ));
}

#[test]
fn bad_frames_are_clear_errors() {
    for bad in [
        "",
        "{",
        "[]",
        r#"{"type":"nope"}"#,
        r#"{"type":"submit"}"#,
        r#"{"type":"submit","edits":[{"clientSeq":-1,"baseSeq":0}]}"#,
        r#"{"type":"submit","edits":[{"clientSeq":"1","baseSeq":0}]}"#,
        r#"{"type":"hello","protocolVersions":[1]}"#,
    ] {
        let err = decode_client(bad, 1 << 20).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedFrame, "{bad}");
    }
    let err = decode_client(&"x".repeat(100), 10).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
}

#[test]
fn seed_event_with_merge_patch_and_server_seq_parses() {
    let ev: Event = serde_json::from_value(json!({
        "id": "64b7f0c2a1b2c3d4e5f60718", "documentId": "64b7f0c2a1b2c3d4e5f60719",
        "timestamp": "2024-01-01T00:00:00Z", "sequenceNum": 5, "operation": "update",
        "diff": {"hasChanges": true, "version": 6, "mergePatch": "eyJhIjoxfQ==",
                 "bsonPatch": {"set": {"a": 1}, "inc": {"version": 1}}},
        "vectorClock": {"server": 5}, "clientId": "server", "serverSeq": 0, "metadata": {}
    }))
    .unwrap();
    assert_eq!(ev.sequence_num, 5);
    assert_eq!(ev.client_id, SERVER_CLIENT_ID);
    assert!(ev.diff.is_some());
}

#[test]
fn counters_above_2_53_minus_1_make_a_client_frame_malformed() {
    for bad in [
        r#"{"type":"ping","nonce":9007199254740992}"#,
        r#"{"type":"sync","after":9007199254740992}"#,
        r#"{"type":"sync","vectorClock":{"a":18446744073709551615}}"#,
        r#"{"type":"submit","edits":[{"clientSeq":9007199254740992,"baseSeq":0}]}"#,
        r#"{"type":"submit","edits":[{"clientSeq":1,"baseSeq":9007199254740992}]}"#,
    ] {
        let err = decode_client(bad, 1 << 20).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedFrame, "{bad}");
        assert!(err.to_string().contains("2^53"), "{err}");
    }
    let ok = r#"{"type":"ping","nonce":9007199254740991}"#;
    assert_eq!(
        decode_client(ok, 1 << 20).unwrap(),
        ClientMessage::Ping {
            nonce: Some(MAX_COUNTER)
        }
    );
    // null still reads as absent where section 1 says so.
    let null = r#"{"type":"sync","after":null,"vectorClock":{}}"#;
    assert!(decode_client(null, 1 << 20).is_ok());
}

/// The browser's events (`ToJson`) are what serde writes, for every member an event can have.
#[test]
fn events_as_values_are_what_serde_writes() {
    use members::{FromJson, ToJson};
    let events = [
        json!({"id": "e1", "sequenceNum": 1, "clientId": "a", "diff": null}),
        json!({
            "id": "e2", "documentId": "doc", "timestamp": "2026-01-01T00:00:00Z",
            "sequenceNum": 2, "operation": "create", "clientId": "a", "clientSeq": 4,
            "diff": {"patch": [
                {"op": "add", "path": "/a~1b", "value": {"x": [1, 2.5, null]}},
                {"op": "move", "from": "/a", "path": "/b"},
                {"op": "copy", "from": "/b", "path": "/c"},
                {"op": "remove", "path": "/c"},
                {"op": "replace", "path": "/b", "value": "s"},
                {"op": "test", "path": "/b", "value": "s"}
            ], "hasChanges": true, "version": -3, "extra": {"kept": 1}},
            "vectorClock": {"a": 2, "b": 9}, "serverSeq": 11,
            "metadata": {"data": {"whole": true}}
        }),
        json!({
            "id": "e3", "sequenceNum": 3, "clientId": "server", "operation": "update",
            "diff": {"mergePatch": "eyJhIjoxfQ==", "bsonPatch": {
                "set": {"a.b": 1}, "unset": {"c": ""}, "inc": {"n": 2}, "push": {"l": 1},
                "pull": {"l": 2}, "addToSet": {"l": 3}, "pullAll": {"l": [4]},
                "arrayFilters": [], "rename": {"x": "y"}
            }}
        }),
        json!({"id": "e4", "sequenceNum": 4, "clientId": "a", "operation": "delete",
               "diff": {"jsonPatch": [], "mergePatch": {"a": null}}}),
    ];
    for value in events {
        let event = Event::from_json(value.clone()).unwrap();
        let written = serde_json::to_value(&event).unwrap();
        assert_eq!(event.to_json(), written, "{value}");
        // Nothing is lost: what was written reads back and is written the same again (an event
        // without a vector reads back with its own entry, which it was written with).
        let again = Event::from_json(written.clone()).unwrap();
        assert_eq!(again.to_json(), written, "{written}");
        // The diff is written as it was read.
        assert_eq!(written["diff"], value["diff"], "{value}");
    }
}

#[test]
fn a_documentid_that_is_not_a_string_is_refused_alike_by_both_readers() {
    // Client frames on the server, server frames on the client: one rule, one message.
    for id in ["5", "null", "{\"a\":1}", "[\"doc\"]"] {
        let client = format!(r#"{{"type":"sync","documentId":{id},"vectorClock":{{}}}}"#);
        let server = format!(r#"{{"type":"pong","documentId":{id}}}"#);
        let expected = format!("invalid type: {id}, expected a documentId string");
        let client = decode_client_scoped(&client, 1 << 20)
            .unwrap_err()
            .to_string();
        let server = decode_server_scoped(&server).unwrap_err().to_string();
        assert!(client.contains(&expected), "{client}");
        assert!(server.contains(&expected), "{server}");
    }
}
