//! Protocol version 2 on the server connection, fed by hand: documents opened and closed on one
//! connection, each with the rules of a version 1 connection (`docs/PROTOCOL.md` section 18).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::protocol::{self, ClientMessage, ErrorCode, Event, Scoped, ServerMessage};
use crate::vector_clock::VectorClock;

type Batch = Arc<[Event]>;
type Conn = ServerConnection<Batch>;

fn event(document_id: &str, seq: u64) -> Event {
    serde_json::from_value(json!({
        "id": format!("{document_id}-{seq}"), "documentId": document_id, "sequenceNum": seq,
        "operation": if seq == 1 { "create" } else { "update" },
        "diff": {"patch": [{"op": "add", "path": if seq == 1 { "" } else { "/n" },
                 "value": if seq == 1 { json!({}) } else { json!(seq) }}]},
        "clientId": "bob"
    }))
    .unwrap()
}

fn batch(document_id: &str, seqs: std::ops::RangeInclusive<u64>) -> Batch {
    seqs.map(|s| event(document_id, s))
        .collect::<Vec<_>>()
        .into()
}

/// A version 2 frame about `document_id`.
fn about(document_id: &str, message: ClientMessage) -> String {
    protocol::encode(&Scoped {
        document_id: Some(document_id.to_owned()),
        message,
    })
}

fn hello(versions: Vec<u32>) -> String {
    protocol::encode(&ClientMessage::Hello {
        protocol_versions: versions,
        client_id: "alice".into(),
        token: None,
    })
}

/// Runs the outputs, answering from logs whose heads are `heads` (documents not named have 3
/// events); `rights` overrides what the token may do per document.
struct Server {
    heads: HashMap<String, u64>,
    rights: HashMap<String, Rights>,
    /// Everyone's presence per document, as the driver's table would answer.
    presence: HashMap<String, Vec<crate::protocol::PresencePeer>>,
}

impl Server {
    fn new() -> Self {
        Server {
            heads: HashMap::new(),
            rights: HashMap::new(),
            presence: HashMap::new(),
        }
    }

    fn head(&self, document_id: &str) -> u64 {
        self.heads.get(document_id).copied().unwrap_or(3)
    }

    fn run(&self, conn: &mut Conn) -> Vec<Output<Batch>> {
        let mut sent = Vec::new();
        while let Some(output) = conn.poll_output() {
            let reply = match output {
                Output::Request(Request::Authorize { .. }) => {
                    Reply::Authorized(Ok(Credentials::anyone()))
                }
                Output::Request(Request::Admit { document_id }) => Reply::Admitted(Ok(self
                    .rights
                    .get(&document_id)
                    .copied()
                    .unwrap_or_else(Rights::all))),
                Output::Request(Request::Open { document_id }) => {
                    Reply::Opened(Ok(self.head(&document_id)))
                }
                Output::Request(Request::Read { document_id, read }) => {
                    let head = self.head(&document_id);
                    Reply::Read(Ok(match read {
                        Read::Head { .. } => ReadResult::Head(LogHead {
                            head_seq: head,
                            first_retained_seq: 1,
                            vector: VectorClock::from_iter([("bob".to_string(), head)]),
                        }),
                        Read::Snapshot | Read::SyncSnapshot => ReadResult::Snapshot(None),
                        Read::Events { after, limit } => ReadResult::Events(
                            (after + 1..=head)
                                .take(limit)
                                .map(|s| event(&document_id, s))
                                .collect(),
                        ),
                    }))
                }
                Output::Request(Request::Submit { .. }) => Reply::Submitted(Submitted::Ordered {
                    acks: Vec::new(),
                    rejection: None,
                    last_seq: None,
                }),
                Output::Request(Request::DrainLive { .. }) => Reply::Drained,
                Output::Request(Request::Presence { document_id }) => {
                    Reply::Presence(self.presence.get(&document_id).cloned().unwrap_or_default())
                }
                Output::Record { .. } => continue,
                other => {
                    sent.push(other);
                    continue;
                }
            };
            conn.handle_reply(0, reply);
        }
        sent
    }
}

fn welcomed(server: &Server) -> Conn {
    let mut conn = Conn::websocket(None, limits::Limits::default(), None, 0);
    conn.handle_text(0, hello(vec![1, 2]));
    let sent = server.run(&mut conn);
    assert!(
        matches!(&sent[..], [Output::Send(ServerMessage::Welcome { protocol_version: 2, head_seq: None, document_id, .. })] if document_id.is_empty()),
        "{sent:?}"
    );
    conn
}

/// The document and kind of each frame sent.
fn shapes(sent: &[Output<Batch>]) -> Vec<(String, &'static str)> {
    sent.iter()
        .map(|output| match output {
            Output::SendTo(doc, message) => (doc.clone(), kind(message)),
            Output::Send(message) => (String::new(), kind(message)),
            Output::SendLive(batch) => (batch[0].document_id.clone(), "live"),
            Output::Unsubscribe(doc) => (doc.clone(), "unsubscribe"),
            other => (
                String::new(),
                if matches!(other, Output::Close { .. }) {
                    "close"
                } else {
                    "other"
                },
            ),
        })
        .collect()
}

fn kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Opened { .. } => "opened",
        ServerMessage::Closed { code: None, .. } => "closed",
        ServerMessage::Closed { code: Some(_), .. } => "refused",
        ServerMessage::Events { .. } => "events",
        ServerMessage::Event { .. } => "event",
        ServerMessage::Ack { .. } => "ack",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Pong { .. } => "pong",
        _ => "other",
    }
}

fn s(doc: &str, kind: &'static str) -> (String, &'static str) {
    (doc.to_owned(), kind)
}

#[test]
fn each_url_speaks_its_version() {
    let server = Server::new();
    let mut v1_only = Conn::websocket(None, limits::Limits::default(), None, 0);
    v1_only.handle_text(0, hello(vec![1]));
    let sent = server.run(&mut v1_only);
    assert!(matches!(
        &sent[0],
        Output::Send(ServerMessage::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        })
    ));
    assert!(matches!(sent[1], Output::Close { code: 1002, .. }));
    let mut v2_only = Conn::websocket(Some("doc".into()), limits::Limits::default(), None, 0);
    v2_only.handle_text(0, hello(vec![2]));
    let sent = server.run(&mut v2_only);
    assert!(matches!(
        &sent[0],
        Output::Send(ServerMessage::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        })
    ));
    // Both offered on a document's URL: version 1.
    let mut both = Conn::websocket(Some("doc".into()), limits::Limits::default(), None, 0);
    both.handle_text(0, hello(vec![1, 2]));
    let sent = server.run(&mut both);
    assert!(matches!(
        &sent[0],
        Output::Send(ServerMessage::Welcome {
            protocol_version: 1,
            head_seq: Some(3),
            ..
        })
    ));
}

#[test]
fn documents_open_catch_up_and_go_live_side_by_side() {
    let mut server = Server::new();
    server.heads.insert("b".into(), 5);
    let mut conn = welcomed(&server);
    // Pipelined: open, sync of two documents back to back.
    for doc in ["a", "b"] {
        conn.handle_text(0, about(doc, ClientMessage::Open));
        conn.handle_text(
            0,
            about(
                doc,
                ClientMessage::Sync {
                    vector_clock: VectorClock::new(),
                    after: None,
                },
            ),
        );
    }
    let sent = server.run(&mut conn);
    assert_eq!(
        shapes(&sent),
        vec![
            s("a", "opened"),
            s("a", "events"),
            s("b", "opened"),
            s("b", "events")
        ]
    );
    let mut docs: Vec<&str> = conn.documents().collect();
    docs.sort();
    assert_eq!(docs, vec!["a", "b"]);
    // Live batches go to their document and continue what it was delivered (7.1).
    conn.handle_live(0, batch("b", 6..=6));
    conn.handle_live(0, batch("a", 3..=4));
    conn.handle_live(0, batch("zzz", 1..=1));
    let sent = server.run(&mut conn);
    assert_eq!(shapes(&sent), vec![s("b", "live"), s("a", "event")]);
    assert_eq!(
        (conn.delivered("a"), conn.delivered("b")),
        (Some(4), Some(6))
    );
    // The pong names every open document's head.
    conn.handle_text(0, protocol::encode(&ClientMessage::Ping { nonce: Some(1) }));
    match &server.run(&mut conn)[..] {
        [Output::Send(ServerMessage::Pong {
            heads: Some(heads),
            head_seq: None,
            ..
        })] => {
            assert_eq!(heads.get("a"), Some(&4));
            assert_eq!(heads.get("b"), Some(&6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_documents_refusal_leaves_the_connection_and_the_others() {
    let mut server = Server::new();
    server.rights.insert(
        "secret".into(),
        Rights {
            read: false,
            write: false,
        },
    );
    let mut conn = welcomed(&server);
    conn.handle_text(0, about("open", ClientMessage::Open));
    conn.handle_text(0, about("secret", ClientMessage::Open));
    conn.handle_text(0, about("a b", ClientMessage::Open));
    conn.handle_text(0, about("open", ClientMessage::Open));
    conn.handle_text(
        0,
        about("never", ClientMessage::Submit { edits: Vec::new() }),
    );
    // Version 2 messages about a document need its documentId.
    conn.handle_text(
        0,
        protocol::encode(&ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: None,
        }),
    );
    let sent = server.run(&mut conn);
    assert_eq!(
        shapes(&sent),
        vec![
            s("open", "opened"),
            s("secret", "refused"),
            s("a b", "refused"),
            s("open", "error"),
            s("never", "error"),
            s("", "error"),
        ]
    );
    let codes: Vec<ErrorCode> = sent
        .iter()
        .filter_map(|o| match o {
            Output::SendTo(
                _,
                ServerMessage::Closed {
                    code: Some(code), ..
                },
            ) => Some(*code),
            Output::SendTo(_, ServerMessage::Error { code, .. }) => Some(*code),
            Output::Send(ServerMessage::Error { code, .. }) => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::Forbidden,
            ErrorCode::UnknownDocument,
            ErrorCode::UnexpectedMessage,
            ErrorCode::UnexpectedMessage,
            ErrorCode::MalformedFrame,
        ]
    );
    assert!(!conn.is_closed());
    assert_eq!(conn.documents().collect::<Vec<_>>(), vec!["open"]);
}

#[test]
fn closing_a_document_stops_its_events_and_a_limit_bounds_how_many_are_open() {
    let server = Server::new();
    let limits = limits::Limits {
        max_documents: 2,
        ..limits::Limits::default()
    };
    let mut conn = Conn::websocket(None, limits, None, 0);
    conn.handle_text(0, hello(vec![2]));
    server.run(&mut conn);
    for doc in ["a", "b", "c"] {
        conn.handle_text(0, about(doc, ClientMessage::Open));
    }
    conn.handle_text(0, about("a", ClientMessage::Close));
    conn.handle_text(0, about("a", ClientMessage::Close));
    conn.handle_text(0, about("c", ClientMessage::Open));
    let sent = server.run(&mut conn);
    assert_eq!(
        shapes(&sent),
        vec![
            s("a", "opened"),
            s("b", "opened"),
            s("c", "refused"),
            s("a", "unsubscribe"),
            s("a", "closed"),
            s("a", "error"),
            s("c", "opened"),
        ]
    );
    assert!(matches!(
        &sent[2],
        Output::SendTo(
            _,
            ServerMessage::Closed {
                code: Some(ErrorCode::TooLarge),
                ..
            }
        )
    ));
    conn.handle_live(0, batch("a", 4..=4));
    assert!(
        server.run(&mut conn).is_empty(),
        "a closed document gets nothing"
    );
}

#[test]
fn opening_too_fast_refuses_the_open_alone_with_rate_limited() {
    let server = Server::new();
    // Room for three document frames, never refilled; edits have a bucket of their own.
    let limits = limits::Limits {
        max_documents: 3,
        burst: 1,
        messages_per_second: 0,
        ..limits::Limits::default()
    };
    let mut conn = Conn::websocket(None, limits, None, 0);
    conn.handle_text(0, hello(vec![2]));
    server.run(&mut conn);
    for doc in ["a", "b", "c", "d"] {
        conn.handle_text(0, about(doc, ClientMessage::Open));
    }
    let sent = server.run(&mut conn);
    assert_eq!(
        shapes(&sent),
        vec![
            s("a", "opened"),
            s("b", "opened"),
            s("c", "opened"),
            s("d", "refused"),
        ]
    );
    assert!(matches!(
        &sent[3],
        Output::SendTo(
            _,
            ServerMessage::Closed {
                code: Some(ErrorCode::RateLimited),
                ..
            }
        )
    ));
}

mod presence {
    use super::*;
    use crate::protocol::{PresencePeer, PresenceUpdate};
    use serde_json::{json, Value};

    fn peer(client: &str, state: Value) -> PresencePeer {
        PresencePeer {
            client_id: client.into(),
            state,
            since: Some("2026-01-01T00:00:00Z".into()),
        }
    }

    fn presence(doc: &str, state: Value) -> String {
        about(doc, ClientMessage::Presence { state })
    }

    fn update(sent: &Output<Batch>) -> &PresenceUpdate {
        match sent {
            Output::SendTo(_, ServerMessage::Presence(update)) => update,
            other => panic!("expected a presence frame, got {other:?}"),
        }
    }

    #[test]
    fn opening_sends_the_others_but_never_the_client_itself() {
        let mut server = Server::new();
        server.presence.insert(
            "a".into(),
            vec![peer("alice", json!("me")), peer("bob", json!({"x": 1}))],
        );
        server
            .presence
            .insert("b".into(), vec![peer("alice", json!("me"))]);
        let mut conn = welcomed(&server);
        conn.handle_text(0, about("a", ClientMessage::Open));
        conn.handle_text(0, about("b", ClientMessage::Open));
        let sent = server.run(&mut conn);
        assert_eq!(
            shapes(&sent),
            vec![s("a", "opened"), s("a", "other"), s("b", "opened")]
        );
        let full = update(&sent[1]);
        assert!(full.full);
        assert_eq!(full.peers, vec![peer("bob", json!({"x": 1}))]);
        // Changes: the client's own and those of documents it does not have open are dropped.
        conn.handle_presence(0, "a", &[peer("alice", json!(2))], false);
        conn.handle_presence(0, "c", &[peer("bob", json!(2))], false);
        assert!(server.run(&mut conn).is_empty());
        conn.handle_presence(0, "b", &[peer("carol", Value::Null)], false);
        let sent = server.run(&mut conn);
        assert_eq!(update(&sent[0]).peers, vec![peer("carol", Value::Null)]);
    }

    #[test]
    fn the_clients_presence_is_checked_and_handed_to_the_driver() {
        let server = Server::new();
        let mut conn = welcomed(&server);
        conn.handle_text(0, presence("a", json!(1)));
        let sent = server.run(&mut conn);
        assert_eq!(shapes(&sent), vec![s("a", "error")], "not open yet");
        conn.handle_text(0, about("a", ClientMessage::Open));
        conn.handle_text(0, presence("a", json!({"cursor": 3})));
        let big = json!("x".repeat(crate::protocol::MAX_PRESENCE_BYTES));
        conn.handle_text(0, presence("a", big));
        let sent = server.run(&mut conn);
        assert!(matches!(
            &sent[1],
            Output::Presence { document_id, state } if document_id == "a" && *state == json!({"cursor": 3})
        ));
        let refused = update(&sent[2]);
        assert_eq!(refused.code, Some(ErrorCode::TooLarge));
        assert!(refused.peers.is_empty());
        assert_eq!(sent.len(), 3, "{sent:?}");
        // Closing the document clears it.
        conn.handle_text(0, about("a", ClientMessage::Close));
        let sent = server.run(&mut conn);
        assert!(matches!(
            &sent[0],
            Output::Presence { document_id, state } if document_id == "a" && state.is_null()
        ));
    }

    #[test]
    fn a_silent_client_loses_its_presence_after_the_timeout() {
        let server = Server::new();
        let limits = limits::Limits {
            presence_timeout_ms: 1000,
            ..limits::Limits::default()
        };
        let mut conn = Conn::websocket(None, limits, None, 0);
        conn.handle_text(0, hello(vec![2]));
        conn.handle_text(0, about("a", ClientMessage::Open));
        conn.handle_text(0, about("b", ClientMessage::Open));
        server.run(&mut conn);
        assert_eq!(conn.poll_timeout(), None, "no presence, no timer");
        conn.handle_text(100, presence("a", json!(1)));
        conn.handle_text(200, presence("b", json!(2)));
        server.run(&mut conn);
        assert_eq!(conn.poll_timeout(), Some(1200));
        conn.handle_text(700, r#"{"type":"ping"}"#);
        server.run(&mut conn);
        conn.handle_timeout(1200);
        assert!(server.run(&mut conn).is_empty(), "it spoke at 700");
        assert_eq!(conn.poll_timeout(), Some(1700));
        conn.handle_timeout(1700);
        let sent = server.run(&mut conn);
        let cleared: Vec<&str> = sent
            .iter()
            .map(|o| match o {
                Output::Presence { document_id, state } if state.is_null() => document_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(cleared, ["a", "b"]);
        assert_eq!(conn.poll_timeout(), None);
        assert!(!conn.is_closed(), "the connection stays");
    }

    #[test]
    fn version_1_has_no_presence() {
        let mut conn = Conn::websocket(Some("a".into()), limits::Limits::default(), None, 0);
        conn.handle_text(0, hello(vec![1]));
        let server = Server::new();
        server.run(&mut conn);
        conn.handle_text(0, r#"{"type":"presence","state":1}"#);
        let sent = server.run(&mut conn);
        assert!(
            matches!(
                &sent[..],
                [Output::Send(ServerMessage::Error {
                    code: ErrorCode::MalformedFrame,
                    ..
                })]
            ),
            "{sent:?}"
        );
    }
}

#[test]
fn history_and_version_requests_are_answered_with_their_request_id() {
    use crate::protocol::{HistoryRequest, VersionRequest};
    let server = Server::new();
    let mut conn = welcomed(&server);
    // Not open: answered with the request's id and a code, not an `error`.
    conn.handle_text(
        0,
        about(
            "doc",
            ClientMessage::Version(VersionRequest {
                request_id: 1,
                at: 1,
            }),
        ),
    );
    let sent = server.run(&mut conn);
    assert!(
        matches!(&sent[..], [Output::SendTo(_, ServerMessage::Version(a))] if a.request_id == 1 && a.code == Some(ErrorCode::UnexpectedMessage)),
        "{sent:?}"
    );
    conn.handle_text(0, about("doc", ClientMessage::Open));
    server.run(&mut conn);
    let history = HistoryRequest {
        request_id: 2,
        after: 1,
        limit: Some(1),
    };
    conn.handle_text(0, about("doc", ClientMessage::History(history)));
    conn.handle_text(
        0,
        about(
            "doc",
            ClientMessage::Version(VersionRequest {
                request_id: 3,
                at: 2,
            }),
        ),
    );
    conn.handle_text(
        0,
        about(
            "doc",
            ClientMessage::Version(VersionRequest {
                request_id: 4,
                at: 9,
            }),
        ),
    );
    let sent = server.run(&mut conn);
    let [Output::SendTo(_, ServerMessage::History(page)), Output::SendTo(_, ServerMessage::Version(two)), Output::SendTo(_, ServerMessage::Version(nine))] =
        &sent[..]
    else {
        panic!("{sent:?}");
    };
    assert_eq!(
        (page.request_id, page.events.len(), page.has_more),
        (2, 1, true)
    );
    assert_eq!(page.events[0].sequence_num, 2);
    let version = two.version.as_ref().expect("a version");
    assert_eq!(version.document, Some(json!({"n": 2})));
    assert_eq!(version.client_id.as_deref(), Some("bob"));
    assert_eq!(
        (nine.request_id, nine.code),
        (4, Some(ErrorCode::InvalidSequence))
    );
}
