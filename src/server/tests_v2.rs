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
}

impl Server {
    fn new() -> Self {
        Server {
            heads: HashMap::new(),
            rights: HashMap::new(),
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
                        Read::Snapshot => ReadResult::Snapshot(None),
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
