//! The presence checks' client: a version 2 connection of one client that keeps the presence
//! frames it reads on the way to something else, and checks every one of them (18.7).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use eventsync::protocol::{self, ClientMessage, PresencePeer, PresenceUpdate, ServerMessage};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{describe, short, Conn, Ctx};

pub(super) const NO_PAIR: &str =
    "with --token, presence needs a second clientId: give --read-token (for --read-client-id)";

/// A clientId and the token that names it.
pub(super) struct Who {
    client: String,
    token: Option<String>,
}

/// Two identities with different clientIds: the first may write, the second may only read when
/// the kit has tokens.
pub(super) fn pair(ctx: &Ctx) -> Option<(Who, Who)> {
    let opts = &ctx.opts;
    match (&opts.token, &opts.read_token) {
        (None, _) => Some((
            Who {
                client: ctx.client("alice"),
                token: None,
            },
            Who {
                client: ctx.client("bob"),
                token: None,
            },
        )),
        (Some(write), Some(read)) if opts.read_client_id != opts.client_id => Some((
            Who {
                client: opts.client_id.clone(),
                token: Some(write.clone()),
            },
            Who {
                client: opts.read_client_id.clone(),
                token: Some(read.clone()),
            },
        )),
        _ => None,
    }
}

/// A version 2 connection of one client, keeping the presence frames read on the way to
/// something else (a `pong`, an `opened`) for the checks to look at.
pub(super) struct Peer {
    pub(super) conn: Conn,
    pub(super) client: String,
    /// Documents open on the connection: presence about any other is a leak.
    open: HashSet<String>,
    /// Presence frames read and not yet looked at, with their document.
    pub(super) inbox: VecDeque<(String, PresenceUpdate)>,
    nonce: u64,
    /// Bound on each wait.
    wait: Duration,
}

impl Peer {
    /// Connects to `/sync` and completes a version 2 handshake as `who` (18.1).
    pub(super) async fn connect(ctx: &Ctx, who: &Who, wait: Duration) -> Result<Peer, String> {
        let mut conn = Conn::open(&ctx.ws_connection_url(), wait).await?;
        conn.send(&ClientMessage::Hello {
            protocol_versions: vec![protocol::PROTOCOL_VERSION_2],
            client_id: who.client.clone(),
            token: who.token.clone(),
        })
        .await?;
        match conn.next_scoped().await? {
            (
                None,
                ServerMessage::Welcome {
                    protocol_version: 2,
                    client_id,
                    ..
                },
            ) if client_id == who.client => {}
            (doc, other) => {
                return Err(format!(
                    "hello [2] as {}: {} about {doc:?}, expected welcome (18.1)",
                    who.client,
                    describe(&other)
                ))
            }
        }
        Ok(Peer {
            conn,
            client: who.client.clone(),
            open: HashSet::new(),
            inbox: VecDeque::new(),
            nonce: 0,
            wait,
        })
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.wait
    }

    /// The next frame before `deadline`; a presence frame is checked on the way.
    pub(super) async fn frame(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<(Option<String>, ServerMessage), String> {
        let (doc, message) = match tokio::time::timeout_at(deadline, self.conn.next_scoped()).await
        {
            Err(_) => return Err(format!("{what}: nothing came in time")),
            Ok(next) => next.map_err(|e| format!("{what}: {e}"))?,
        };
        if let ServerMessage::Presence(update) = &message {
            self.check(doc.as_deref(), update)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        Ok((doc, message))
    }

    /// The rules of every `presence` frame (18.7).
    pub(super) fn check(&self, doc: Option<&str>, update: &PresenceUpdate) -> Result<(), String> {
        let text = show(update);
        let Some(doc) = doc.filter(|d| self.open.contains(*d)) else {
            return Err(format!(
                "presence about {doc:?}, a document this connection does not have open: {text}"
            ));
        };
        if update.code.is_some() && !update.peers.is_empty() {
            return Err(format!("a refusal with peers about {doc}: {text}"));
        }
        for peer in &update.peers {
            if peer.client_id == self.client {
                return Err(format!(
                    "{doc}: the server sent {} its own presence (18.7: never its own client \
                     id's): {text}",
                    self.client
                ));
            }
            match (&peer.state, &peer.since) {
                (Value::Null, None) if !update.full => {}
                (Value::Null, _) if update.full => {
                    return Err(format!(
                        "{doc}: a full presence frame with a null state: {text}"
                    ))
                }
                (Value::Null, Some(_)) => {
                    return Err(format!("{doc}: a peer that left, with a since: {text}"))
                }
                (_, Some(since)) if rfc3339(since) => {}
                (_, since) => {
                    return Err(format!(
                        "{doc}: a peer's since is {since:?}, not an RFC 3339 time: {text}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sends a `ping` and reads up to its `pong`, keeping the presence frames that came first
    /// (anything else fails): everything the server answered before it is in.
    pub(super) async fn barrier(&mut self, what: &str) -> Result<(), String> {
        self.nonce += 1;
        let nonce = self.nonce;
        self.conn
            .send(&ClientMessage::Ping { nonce: Some(nonce) })
            .await?;
        let deadline = self.deadline();
        loop {
            match self.frame(deadline, what).await? {
                (None, ServerMessage::Pong { nonce: got, .. }) if got == Some(nonce) => {
                    return Ok(())
                }
                (Some(doc), ServerMessage::Presence(update)) => self.inbox.push_back((doc, update)),
                (doc, other) => {
                    return Err(format!(
                        "{what}: {} about {doc:?}, expected presence or the pong",
                        describe(&other)
                    ))
                }
            }
        }
    }

    /// The next presence frame (kept or read) before `deadline`.
    pub(super) async fn presence(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<(String, PresenceUpdate), String> {
        if let Some(next) = self.inbox.pop_front() {
            return Ok(next);
        }
        match self.frame(deadline, what).await? {
            (Some(doc), ServerMessage::Presence(update)) => Ok((doc, update)),
            (doc, other) => Err(format!(
                "{what}: {} about {doc:?}, expected presence",
                describe(&other)
            )),
        }
    }

    /// Opens `doc`: `opened`, then the others' presence (`full`) if it comes before the pong of
    /// a ping sent after `opened`. Returns the head and that frame's peers.
    pub(super) async fn open(
        &mut self,
        doc: &str,
    ) -> Result<(u64, Option<Vec<PresencePeer>>), String> {
        let what = format!("{} opening {doc}", self.client);
        self.conn.send_about(doc, ClientMessage::Open).await?;
        let head = match self.frame(self.deadline(), &what).await? {
            (Some(d), ServerMessage::Opened { head_seq }) if d == doc => head_seq,
            (d, other) => {
                return Err(format!(
                    "{what}: {} about {d:?}, expected opened (18.2)",
                    describe(&other)
                ))
            }
        };
        self.open.insert(doc.to_owned());
        let before = self.inbox.len();
        self.barrier(&what).await?;
        let Some(at) = (before..self.inbox.len()).find(|&i| self.inbox[i].0 == doc) else {
            return Ok((head, None));
        };
        let (_, update) = self.inbox.remove(at).expect("an index of the inbox");
        if !update.full || update.code.is_some() {
            return Err(format!(
                "{what}: {}, where the first presence about a document just opened has \
                 full: true (18.7)",
                show(&update)
            ));
        }
        Ok((head, Some(update.peers)))
    }

    /// Sends `close` for `doc` and reads up to `closed`.
    pub(super) async fn close(&mut self, doc: &str) -> Result<(), String> {
        let what = format!("{} closing {doc}", self.client);
        self.conn.send_about(doc, ClientMessage::Close).await?;
        let deadline = self.deadline();
        loop {
            match self.frame(deadline, &what).await? {
                (Some(d), ServerMessage::Closed { code: None, .. }) if d == doc => {
                    self.open.remove(doc);
                    return Ok(());
                }
                (Some(d), ServerMessage::Presence(update)) => self.inbox.push_back((d, update)),
                (d, other) => {
                    return Err(format!(
                        "{what}: {} about {d:?}, expected closed (18.2)",
                        describe(&other)
                    ))
                }
            }
        }
    }

    /// Sends `state` as this client's presence on `doc`, without waiting.
    pub(super) async fn send_presence(&mut self, doc: &str, state: &Value) -> Result<(), String> {
        let state = state.clone();
        self.conn
            .send_about(doc, ClientMessage::Presence { state })
            .await
    }

    /// Publishes `state` on `doc` and waits until the server has taken it, unrefused.
    pub(super) async fn publish(&mut self, doc: &str, state: &Value) -> Result<(), String> {
        self.send_presence(doc, state).await?;
        let what = format!("{} publishing {} on {doc}", self.client, brief(state));
        self.barrier(&what).await?;
        if let Some((_, refusal)) = self.inbox.iter().find(|(_, u)| u.code.is_some()) {
            return Err(format!("{what}: refused: {}", show(refusal)));
        }
        Ok(())
    }

    /// Reads presence about `doc` until `client` shows `want` (before `deadline`). A server may
    /// skip intermediate states (18.7): `passing` says which may come first. Any other peer,
    /// document or state fails.
    pub(super) async fn expect_by(
        &mut self,
        deadline: Instant,
        doc: &str,
        client: &str,
        want: &Value,
        mut passing: impl FnMut(&Value) -> bool,
        what: &str,
    ) -> Result<(), String> {
        let wanted = brief(want);
        loop {
            let (d, update) = self
                .presence(
                    deadline,
                    &format!("{what} (waiting for {client}: {wanted})"),
                )
                .await?;
            let text = show(&update);
            if d != doc {
                return Err(format!(
                    "{what}: presence about {d}, expected one about {doc}: {text}"
                ));
            }
            if update.code.is_some() {
                return Err(format!(
                    "{what}: a refusal no update of its asked for: {text}"
                ));
            }
            if let Some(other) = update.peers.iter().find(|p| p.client_id != client) {
                return Err(format!(
                    "{what}: presence of {:?}, which shows nothing on {doc}: {text}",
                    other.client_id
                ));
            }
            // A full frame (a server may send one to a connection that fell behind) lists
            // everyone: a peer it leaves out has no presence.
            static NULL: Value = Value::Null;
            let mut states: Vec<&Value> = update.peers.iter().map(|p| &p.state).collect();
            if update.full && states.is_empty() {
                states.push(&NULL);
            }
            let mut done = false;
            for state in states {
                if state == want {
                    done = true;
                } else if done || !passing(state) {
                    return Err(format!(
                        "{what}: {client} shows {}, expected {wanted}: {text}",
                        brief(state)
                    ));
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    pub(super) async fn expect(&mut self, doc: &str, client: &str, want: &Value, what: &str) -> R0 {
        self.expect_by(self.deadline(), doc, client, want, |_| false, what)
            .await
    }

    /// Nothing came up to a `pong` that was not looked at.
    pub(super) async fn quiet(&mut self, what: &str) -> R0 {
        self.barrier(what).await?;
        match self.inbox.front() {
            None => Ok(()),
            Some((doc, update)) => Err(format!(
                "{what}: presence about {doc} where none was due: {}",
                show(update)
            )),
        }
    }
}

pub(super) type R0 = Result<(), String>;

/// A state in a message: its first 60 characters of JSON.
fn brief(state: &Value) -> String {
    let text = state.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

pub(super) fn show(update: &PresenceUpdate) -> String {
    short(&serde_json::to_string(update).unwrap_or_default())
}

/// `2026-03-02T09:04:12.250Z`, `...+01:00`: the shape of an RFC 3339 time.
pub(super) fn rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with(['Z', 'z']) || matches!(b[b.len() - 6], b'+' | b'-'))
}

/// Nobody was announced on a document just opened: no frame, or an empty `full` one.
pub(super) fn nobody(full: &Option<Vec<PresencePeer>>, what: &str) -> R0 {
    match full {
        Some(peers) if !peers.is_empty() => Err(format!(
            "{what}: a full presence frame of peers no one published: {}",
            short(&serde_json::to_string(peers).unwrap_or_default())
        )),
        _ => Ok(()),
    }
}

/// A `full` frame listing exactly `client` with `state`.
pub(super) fn only(full: Option<Vec<PresencePeer>>, client: &str, state: &Value, what: &str) -> R0 {
    let Some(peers) = full else {
        return Err(format!(
            "{what}: no presence frame with full: true after opened, although {client} has \
             presence there (18.7)"
        ));
    };
    match peers.as_slice() {
        [peer] if peer.client_id == client && &peer.state == state => Ok(()),
        _ => Err(format!(
            "{what}: full presence {}, expected only {client} with {}",
            short(&serde_json::to_string(&peers).unwrap_or_default()),
            brief(state)
        )),
    }
}

/// A state whose compact JSON is exactly `bytes` long (at least 10).
pub(super) fn sized(bytes: usize) -> Value {
    json!({ "pad": "x".repeat(bytes.saturating_sub(10)) })
}
