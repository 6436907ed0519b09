//! The server connection step by step, fed by hand: each rule of `docs/PROTOCOL.md` it holds.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::protocol::{ClientMessage, Edit, ErrorCode, Event, ServerMessage};
use crate::vector_clock::VectorClock;

type Batch = Arc<[Event]>;
type Conn = ServerConnection<Batch>;

fn event(seq: u64) -> Event {
    serde_json::from_value(json!({
        "id": format!("e{seq}"), "documentId": "doc", "sequenceNum": seq,
        "operation": if seq == 1 { "create" } else { "update" },
        "diff": {"patch": [{"op": "add", "path": if seq == 1 { "" } else { "/n" },
                 "value": if seq == 1 { json!({}) } else { json!(seq) }}]},
        "clientId": "bob"
    }))
    .unwrap()
}

fn batch(seqs: std::ops::RangeInclusive<u64>) -> Batch {
    seqs.map(event).collect::<Vec<_>>().into()
}

fn frame(message: ClientMessage) -> String {
    crate::protocol::encode(&message)
}

fn hello(client: &str) -> String {
    frame(ClientMessage::Hello {
        protocol_versions: vec![1],
        client_id: client.into(),
        token: None,
    })
}

fn drain(conn: &mut Conn) -> Vec<Output<Batch>> {
    std::iter::from_fn(|| conn.poll_output()).collect()
}

/// The log of `head` events, answering reads.
fn read(head: u64, read: Read) -> ReadResult {
    match read {
        Read::Head { .. } => ReadResult::Head(LogHead {
            head_seq: head,
            first_retained_seq: 1,
            vector: VectorClock::from_iter([("bob".to_string(), head)]),
        }),
        Read::Snapshot | Read::SyncSnapshot => ReadResult::Snapshot(None),
        Read::Events { after, limit } => {
            ReadResult::Events((after + 1..=head).take(limit).map(event).collect())
        }
    }
}

/// Runs the connection's outputs, answering reads from a log of `head` events; returns what it
/// sent (live batches as their sequence numbers).
fn run(conn: &mut Conn, head: u64) -> Vec<Output<Batch>> {
    let mut sent = Vec::new();
    while let Some(output) = conn.poll_output() {
        match output {
            Output::Request(Request::Read { read: r, .. }) => {
                conn.handle_reply(0, Reply::Read(Ok(read(head, r))))
            }
            Output::Request(Request::Authorize { .. }) => {
                conn.handle_reply(0, Reply::Authorized(Ok(Credentials::anyone())))
            }
            Output::Request(Request::Admit { .. }) => {
                conn.handle_reply(0, Reply::Admitted(Ok(Rights::all())))
            }
            Output::Request(Request::Open { .. }) => conn.handle_reply(0, Reply::Opened(Ok(head))),
            Output::Request(Request::DrainLive { .. }) => conn.handle_reply(0, Reply::Drained),
            Output::Record { .. } | Output::Unsubscribe(_) => {}
            other => sent.push(other),
        }
    }
    sent
}

fn welcomed(head: u64) -> Conn {
    let mut conn = Conn::websocket(Some("doc".into()), limits::Limits::default(), None, 0);
    conn.handle_text(0, hello("alice"));
    let sent = run(&mut conn, head);
    assert!(
        matches!(&sent[..], [Output::Send(ServerMessage::Welcome { head_seq, .. })] if *head_seq == Some(head)),
        "{sent:?}"
    );
    conn
}

fn live_seqs(sent: &[Output<Batch>]) -> Vec<u64> {
    sent.iter()
        .flat_map(|o| match o {
            Output::SendLive(b) => b.iter().map(|e| e.sequence_num).collect(),
            Output::Send(ServerMessage::Event { events }) => {
                events.iter().map(|e| e.sequence_num).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

fn error_code(output: &Output<Batch>) -> Option<ErrorCode> {
    match output {
        Output::Send(ServerMessage::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn hello_checks_come_in_the_order_of_5_2_and_refusals_close_with_their_code() {
    let refused = |document: &str, text: String, credentials: Credentials, rights: Rights| {
        let mut conn = Conn::websocket(Some(document.into()), limits::Limits::default(), None, 0);
        conn.handle_text(0, text);
        let mut out = drain(&mut conn);
        if let Some(Output::Request(Request::Authorize { .. })) = out.first() {
            conn.handle_reply(0, Reply::Authorized(Ok(credentials)));
            out = drain(&mut conn);
        }
        if let Some(Output::Request(Request::Admit { .. })) = out.first() {
            conn.handle_reply(0, Reply::Admitted(Ok(rights)));
            out = drain(&mut conn);
        }
        assert!(conn.is_closed(), "{out:?}");
        match &out[..] {
            [Output::Send(ServerMessage::Error { code, .. }), Output::Close { code: close, .. }] => {
                (*code, *close)
            }
            other => panic!("{other:?}"),
        }
    };
    let anyone = Credentials::anyone;
    // The documentId first, even before the version.
    let bad_version = frame(ClientMessage::Hello {
        protocol_versions: vec![7],
        client_id: "alice".into(),
        token: None,
    });
    assert_eq!(
        refused("a b", bad_version.clone(), anyone(), Rights::all()),
        (ErrorCode::UnknownDocument, 1002)
    );
    assert_eq!(
        refused("doc", bad_version, anyone(), Rights::all()),
        (ErrorCode::UnsupportedVersion, 1002)
    );
    assert_eq!(
        refused("doc", hello("a/b"), anyone(), Rights::all()),
        (ErrorCode::MalformedFrame, 1002)
    );
    let bob_only = Credentials {
        client_id: Some("bob".into()),
        ..anyone()
    };
    assert_eq!(
        refused("doc", hello("alice"), bob_only, Rights::all()),
        (ErrorCode::ClientMismatch, 1008)
    );
    assert_eq!(
        refused("doc", hello("server"), anyone(), Rights::all()),
        (ErrorCode::Forbidden, 1008)
    );
    let no_read = Rights {
        read: false,
        write: false,
    };
    assert_eq!(
        refused("doc", hello("alice"), anyone(), no_read),
        (ErrorCode::Forbidden, 1008)
    );
}

#[test]
fn frames_before_hello_are_answered_and_the_connection_waits() {
    let mut conn = Conn::websocket(Some("doc".into()), limits::Limits::default(), None, 0);
    conn.handle_text(0, frame(ClientMessage::Ping { nonce: Some(1) }));
    conn.handle_text(0, "not json");
    conn.handle_binary(0);
    let out = drain(&mut conn);
    let codes: Vec<_> = out.iter().filter_map(error_code).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::UnexpectedMessage,
            ErrorCode::MalformedFrame,
            ErrorCode::MalformedFrame
        ]
    );
    assert!(!conn.is_closed());
    // The hello deadline.
    assert_eq!(conn.poll_timeout(), Some(10_000));
    conn.handle_timeout(10_000);
    let out = drain(&mut conn);
    assert_eq!(error_code(&out[0]), Some(ErrorCode::UnexpectedMessage));
    assert!(matches!(out[1], Output::Close { code: 1000, .. }));
}

#[test]
fn pipelined_frames_wait_for_the_welcome_and_are_answered_in_order() {
    let mut conn = Conn::websocket(
        Some("doc".into()),
        limits::Limits::default(),
        Some("url".into()),
        0,
    );
    conn.handle_text(0, hello("alice"));
    conn.handle_text(
        0,
        frame(ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: None,
        }),
    );
    conn.handle_text(0, frame(ClientMessage::Ping { nonce: Some(4) }));
    // The URL's token is used when hello carries none (5.3).
    assert_eq!(
        conn.poll_output(),
        Some(Output::Request(Request::Authorize {
            token: Some("url".into())
        }))
    );
    conn.handle_reply(0, Reply::Authorized(Ok(Credentials::anyone())));
    let sent = run(&mut conn, 3);
    let kinds: Vec<&str> = sent
        .iter()
        .map(|o| match o {
            Output::Send(ServerMessage::Welcome { .. }) => "welcome",
            Output::Send(ServerMessage::Events { .. }) => "events",
            Output::Send(ServerMessage::Pong {
                head_seq: Some(3),
                nonce: Some(4),
                ..
            }) => "pong",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["welcome", "events", "pong"]);
}

#[test]
fn the_live_stream_continues_what_the_connection_was_sent_without_repeats_or_gaps() {
    // 7.1: welcomed at 1; events 2 and 3 are ordered while the sync answer is read, so the
    // answer carries them; their live batches are not sent again; 4 follows.
    let mut conn = welcomed(1);
    conn.handle_text(
        0,
        frame(ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: None,
        }),
    );
    let answer = run(&mut conn, 3);
    assert!(
        matches!(&answer[..], [Output::Send(ServerMessage::Events { events, head_seq: Some(3), .. })] if events.len() == 3)
    );
    conn.handle_live(0, batch(2..=2));
    conn.handle_live(0, batch(3..=3));
    conn.handle_live(0, batch(3..=4));
    let sent = run(&mut conn, 4);
    assert_eq!(live_seqs(&sent), vec![4]);
    assert_eq!(conn.delivered("doc"), Some(4));
    // A batch that skips ahead is repaired from the log first.
    conn.handle_live(0, batch(7..=7));
    let sent = run(&mut conn, 7);
    assert_eq!(live_seqs(&sent), vec![5, 6, 7]);
}

#[test]
fn a_gap_that_history_no_longer_holds_closes_the_connection() {
    let mut conn = welcomed(1);
    conn.handle_lagged(0, "doc");
    let Some(Output::Request(Request::Read {
        read: Read::Events { after: 1, .. },
        ..
    })) = conn.poll_output()
    else {
        panic!("a repair read");
    };
    // Events 2-5 were compacted: the log starts at 6.
    conn.handle_reply(0, Reply::Read(Ok(ReadResult::Events(vec![event(6)]))));
    let out = drain(&mut conn);
    assert!(
        matches!(&out[..], [Output::Close { code: 1000, .. }]),
        "{out:?}"
    );
}

#[test]
fn a_submits_events_precede_its_ack_and_a_reject_follows_every_event_up_to_its_head() {
    let mut conn = welcomed(1);
    let edit = Edit {
        client_seq: 1,
        base_seq: 1,
        operation: crate::Operation::Update,
        patch: Vec::new(),
        shape: None,
    };
    conn.handle_text(
        0,
        frame(ClientMessage::Submit {
            edits: vec![edit.clone()],
        }),
    );
    let Some(Output::Request(Request::Submit {
        may_write: true, ..
    })) = conn.poll_output()
    else {
        panic!("a submit request");
    };
    conn.handle_reply(
        0,
        Reply::Submitted(Submitted::Ordered {
            acks: vec![crate::protocol::Ack {
                client_seq: 1,
                sequence_num: 3,
                duplicate: false,
            }],
            rejection: None,
            last_seq: Some(3),
        }),
    );
    assert!(matches!(
        conn.poll_output(),
        Some(Output::Request(Request::DrainLive { .. }))
    ));
    // Only event 2 was published so far: 3 is read from the log.
    conn.handle_live(0, batch(2..=2));
    conn.handle_reply(0, Reply::Drained);
    let sent = run(&mut conn, 3);
    assert_eq!(live_seqs(&sent), vec![2, 3]);
    assert!(matches!(
        sent.last(),
        Some(Output::Send(ServerMessage::Ack { .. }))
    ));
    // A store that failed before anything was stored: a retryable reject at the known head.
    conn.handle_text(
        0,
        frame(ClientMessage::Submit {
            edits: vec![Edit {
                client_seq: 2,
                ..edit.clone()
            }],
        }),
    );
    let _ = conn.poll_output();
    conn.handle_reply(
        0,
        Reply::Submitted(Submitted::Refused(ErrorCode::Internal, "down".into())),
    );
    let sent = run(&mut conn, 3);
    assert!(
        matches!(
            &sent[..],
            [Output::Send(ServerMessage::Reject {
                client_seq: 2,
                code: ErrorCode::Internal,
                head_seq: 3,
                ..
            })]
        ),
        "{sent:?}"
    );
    // A store that may have stored the event: no answer, a close (8.3).
    conn.handle_text(
        0,
        frame(ClientMessage::Submit {
            edits: vec![Edit {
                client_seq: 3,
                ..edit
            }],
        }),
    );
    let _ = conn.poll_output();
    conn.handle_reply(
        0,
        Reply::Submitted(Submitted::Unknown("commit lost".into())),
    );
    assert_eq!(
        drain(&mut conn),
        vec![Output::Close {
            code: 1011,
            reason: "storage failed during a submit"
        }]
    );
}

#[test]
fn rate_limited_submits_are_rejects_and_other_frames_errors() {
    let limits = limits::Limits {
        messages_per_second: 0,
        burst: 2,
        ..limits::Limits::default()
    };
    let mut conn = Conn::websocket(Some("doc".into()), limits, None, 0);
    conn.handle_text(0, hello("alice"));
    run(&mut conn, 1);
    conn.handle_text(0, frame(ClientMessage::Ping { nonce: None }));
    conn.handle_text(0, frame(ClientMessage::Ping { nonce: None }));
    let edit = Edit {
        client_seq: 5,
        base_seq: 1,
        operation: crate::Operation::Update,
        patch: Vec::new(),
        shape: None,
    };
    conn.handle_text(0, frame(ClientMessage::Submit { edits: vec![edit] }));
    let sent = run(&mut conn, 1);
    // hello and the first ping took the burst.
    assert!(matches!(&sent[0], Output::Send(ServerMessage::Pong { .. })));
    assert_eq!(error_code(&sent[1]), Some(ErrorCode::RateLimited));
    assert!(matches!(
        &sent[2],
        Output::Send(ServerMessage::Reject {
            client_seq: 5,
            code: ErrorCode::RateLimited,
            ..
        })
    ));
}

#[test]
fn invalid_utf8_closes_with_1007_and_binary_frames_do_not_close() {
    let mut conn = welcomed(1);
    conn.handle_binary(0);
    assert_eq!(
        error_code(&drain(&mut conn)[0]),
        Some(ErrorCode::MalformedFrame)
    );
    conn.handle_invalid_utf8(0);
    let out = drain(&mut conn);
    assert!(
        matches!(out.last(), Some(Output::Close { code: 1007, .. })),
        "{out:?}"
    );
}

#[test]
fn an_expired_token_ends_the_connection() {
    let mut conn = Conn::websocket(Some("doc".into()), limits::Limits::default(), None, 0);
    conn.handle_text(0, hello("alice"));
    let _ = conn.poll_output();
    conn.handle_reply(
        0,
        Reply::Authorized(Ok(Credentials {
            expires_at: Some(5_000),
            ..Credentials::anyone()
        })),
    );
    run(&mut conn, 1);
    assert_eq!(conn.poll_timeout(), Some(5_000));
    conn.handle_timeout(5_000);
    let out = drain(&mut conn);
    assert_eq!(error_code(&out[0]), Some(ErrorCode::Unauthorized));
    assert!(matches!(out[1], Output::Close { code: 1008, .. }));
}

#[test]
fn an_event_stream_starts_with_connected_and_refuses_a_position_ahead_of_the_log() {
    let mut sse = Conn::event_stream("doc", limits::Limits::default(), 1, None, 0);
    let sent = run(&mut sse, 3);
    assert!(matches!(sent[0], Output::Connected { head_seq: 3 }));
    assert!(
        matches!(&sent[1], Output::Send(ServerMessage::Events { events, .. }) if events.len() == 2)
    );
    sse.handle_live(0, batch(3..=4));
    assert_eq!(live_seqs(&run(&mut sse, 4)), vec![4]);
    // Ahead of the log: an error before anything is streamed (the driver answers HTTP 400).
    let mut ahead = Conn::event_stream("doc", limits::Limits::default(), 9, None, 0);
    let sent = run(&mut ahead, 3);
    assert_eq!(error_code(&sent[0]), Some(ErrorCode::InvalidSequence));
    assert!(ahead.is_closed());
}

#[test]
fn a_memory_log_serves_connections_like_a_server() {
    let mut log = MemoryLog::new("doc");
    let alice = log.connect(0);
    let bob = log.connect(0);
    let create = Edit {
        client_seq: 1,
        base_seq: 0,
        operation: crate::Operation::Create,
        patch: serde_json::from_value(json!([{"op": "add", "path": "", "value": {"n": 0}}]))
            .unwrap(),
        shape: None,
    };
    log.receive(bob, 0, &hello("bob"));
    log.receive(alice, 0, &hello("alice"));
    let out = log.receive_message(
        alice,
        0,
        &ClientMessage::Submit {
            edits: vec![create],
        },
    );
    // Alice's event, then her ack, then bob's live event.
    let to: Vec<(ConnectionId, &str)> = out
        .iter()
        .map(|d| match d {
            Delivery::Message(id, ServerMessage::Event { .. }) => (*id, "event"),
            Delivery::Message(id, ServerMessage::Ack { .. }) => (*id, "ack"),
            Delivery::Message(id, _) => (*id, "other"),
            Delivery::Closed(id, _) => (*id, "closed"),
        })
        .collect();
    assert_eq!(to, vec![(alice, "event"), (alice, "ack"), (bob, "event")]);
    assert_eq!(log.client_of(alice), Some("alice"));
}
