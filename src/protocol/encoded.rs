//! Events kept as their text: a page of the log a server sends without reading each event and
//! writing it again.
//!
//! Stores keep events compact ([`CompactEvent`]: no `documentId`, no `vectorClock`), which is
//! exactly how a version 2 frame carries them (18.3). [`EncodedEvents`] holds such texts with the
//! two fields a server routes by (`sequenceNum`, `clientId`), and writes them into a frame as
//! they are (version 2) or with the members the full form adds (version 1 and SSE: `documentId`,
//! the event's own `vectorClock` entry, and `operation` when it is `update`), by splicing text.
//! Nothing is parsed on the way: the cost of a page is its bytes, not its events.
//!
//! A text is taken as it is only when it is laid out the way [`CompactEvent`] writes it (checked
//! on its first members, which that writer puts in a fixed order). Any other text of an event (a
//! row written before stores kept events compact, with `documentId` and a whole vector) is read
//! and written compact once, when it is added.

use serde::de::Error as _;

use super::{encode, CompactEvent, Event, ServerMessage, PROTOCOL_VERSION_2};

/// Events in `sequenceNum` order, each kept as its compact JSON text (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedEvents {
    /// The events' texts, one after the other (with whatever separated them when they were
    /// handed over whole: [`EncodedEvents::from_lines`]).
    text: String,
    /// The events' `clientId`s, one after the other.
    ids: String,
    events: Vec<Entry>,
}

/// Where one event is.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    sequence_num: u64,
    /// Its text: `text[start..end]`.
    start: usize,
    end: usize,
    /// Where, in `text`, its `sequenceNum` member ends: the full form's members go there.
    split: usize,
    /// Whether its text has `operation` (compact texts leave out `update`, the default).
    operation: bool,
    /// Its `clientId`: `ids[id_start..id_end]`.
    id_start: usize,
    id_end: usize,
}

impl EncodedEvents {
    /// No events.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The first event's `sequenceNum`.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|e| e.sequence_num)
    }

    /// The last event's `sequenceNum`.
    pub fn last_seq(&self) -> Option<u64> {
        self.events.last().map(|e| e.sequence_num)
    }

    /// Every event's `sequenceNum` and `clientId`, in order.
    pub fn origins(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.events
            .iter()
            .map(|e| (e.sequence_num, &self.ids[e.id_start..e.id_end]))
    }

    /// Adds an event (written compact).
    pub fn push(&mut self, event: &Event) {
        let text = encode(&CompactEvent(event));
        let start = self.text.len();
        self.text.push_str(&text);
        self.add(event.sequence_num, &event.client_id, start, true)
            .expect("a compact event's own text");
    }

    /// Adds an event of `sequence_num` from `client_id` as a store keeps it: `text` is taken as
    /// it is when [`CompactEvent`] wrote it, else read (as an [`Event`]) and written compact.
    /// Fails when `text` is not an event, or one of another `sequenceNum`.
    pub fn push_text(
        &mut self,
        sequence_num: u64,
        client_id: &str,
        text: &str,
    ) -> Result<(), serde_json::Error> {
        let start = self.text.len();
        self.text.push_str(text);
        if self.add(sequence_num, client_id, start, false).is_some() {
            return Ok(());
        }
        self.text.truncate(start);
        self.push_read(sequence_num, client_id, text)
    }

    /// The events of a page as a store can hand them over whole: `lines` holds their texts one
    /// a line (compact JSON never holds a raw line break), `ids` their `clientId`s one a line,
    /// and their `sequenceNum`s are `count` consecutive ones from `first_seq`. Each text is taken
    /// as [`EncodedEvents::push_text`] takes it. Fails when there are not `count` texts and
    /// client ids, or a text is not the event it should be.
    pub fn from_lines(
        lines: String,
        ids: String,
        first_seq: u64,
        count: usize,
    ) -> Result<EncodedEvents, serde_json::Error> {
        let lines_in = |text: &str| match text.is_empty() {
            true => 0,
            false => memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1,
        };
        let (texts, clients) = (lines_in(&lines), lines_in(&ids));
        if texts != count || clients != count {
            return Err(serde_json::Error::custom(format!(
                "a page of {count} events with {texts} texts and {clients} client ids"
            )));
        }
        let mut page = EncodedEvents {
            text: lines,
            ids,
            events: Vec::with_capacity(count),
        };
        let total = page.text.len();
        let (mut start, mut id_start) = (0, 0);
        let mut rewritten: Vec<(u64, usize, usize, usize, usize)> = Vec::new();
        for sequence_num in (first_seq..).take(count) {
            let end = memchr::memchr(b'\n', &page.text.as_bytes()[start..])
                .map_or(total, |at| start + at);
            let id_end = memchr::memchr(b'\n', &page.ids.as_bytes()[id_start..])
                .map_or(page.ids.len(), |at| id_start + at);
            match layout(&page.text[start..end], sequence_num) {
                Some((split, operation)) => page.events.push(Entry {
                    sequence_num,
                    start,
                    end,
                    split: start + split,
                    operation,
                    id_start,
                    id_end,
                }),
                None => rewritten.push((sequence_num, start, end, id_start, id_end)),
            }
            start = end + 1;
            id_start = id_end + 1;
        }
        if !rewritten.is_empty() {
            // Rare (rows written before stores kept events compact): read and write those again,
            // after the others' texts, and put them back in order.
            for (sequence_num, start, end, id_start, id_end) in rewritten {
                let text = page.text[start..end].to_owned();
                let client_id = page.ids[id_start..id_end].to_owned();
                page.push_read(sequence_num, &client_id, &text)?;
            }
            page.events.sort_by_key(|e| e.sequence_num);
        }
        Ok(page)
    }

    /// Keeps the events `keep` says yes to (given each one's `sequenceNum` and `clientId`).
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &str) -> bool) {
        let ids = &self.ids;
        self.events
            .retain(|e| keep(e.sequence_num, &ids[e.id_start..e.id_end]));
    }

    /// Adds `other`'s events after these.
    pub fn append(&mut self, other: &EncodedEvents) {
        let (text, ids) = (self.text.len(), self.ids.len());
        self.text.push_str(&other.text);
        self.ids.push_str(&other.ids);
        self.events.extend(other.events.iter().map(|e| Entry {
            start: e.start + text,
            end: e.end + text,
            split: e.split + text,
            id_start: e.id_start + ids,
            id_end: e.id_end + ids,
            ..*e
        }));
    }

    /// The events read back, with `document_id` as their document.
    pub fn to_events(&self, document_id: &str) -> Result<Vec<Event>, serde_json::Error> {
        self.events
            .iter()
            .map(|e| {
                let mut event: Event = serde_json::from_str(&self.text[e.start..e.end])?;
                if event.document_id.is_empty() {
                    event.document_id = document_id.to_owned();
                }
                Ok(event)
            })
            .collect()
    }

    /// Writes the events as a JSON array: compact (version 2), or in the full form of 3.1 with
    /// `document_id`.
    pub fn write_array(&self, out: &mut String, full: Option<&str>) {
        out.reserve(self.text.len() + full.map_or(0, |d| self.len() * (64 + d.len())));
        out.push('[');
        let document = full.map(quoted);
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match &document {
                None => out.push_str(&self.text[e.start..e.end]),
                Some(document) => self.write_full(e, document, out),
            }
        }
        out.push(']');
    }

    /// Each event in the full form of 3.1 (with `document_id`), with its `sequenceNum`: what an
    /// SSE `event` message carries.
    pub fn full_texts<'a>(&'a self, document_id: &str) -> impl Iterator<Item = (u64, String)> + 'a {
        let document = quoted(document_id);
        self.events.iter().map(move |e| {
            let mut out = String::with_capacity(e.end - e.start + 64 + document.len());
            self.write_full(e, &document, &mut out);
            (e.sequence_num, out)
        })
    }

    /// One event in the full form: its compact text with `documentId`, `operation` (when left
    /// out, as `update`) and `vectorClock` (its own entry, section 2) after `sequenceNum`.
    fn write_full(&self, e: &Entry, document: &str, out: &mut String) {
        out.push_str(&self.text[e.start..e.split]);
        out.push_str(",\"documentId\":");
        out.push_str(document);
        if !e.operation {
            out.push_str(",\"operation\":\"update\"");
        }
        out.push_str(",\"vectorClock\":{");
        push_quoted(out, &self.ids[e.id_start..e.id_end]);
        out.push(':');
        push_number(out, e.sequence_num);
        out.push('}');
        out.push_str(&self.text[e.split..e.end]);
    }

    /// Records the event whose text starts at `start` (and runs to the end of `self.text`),
    /// when it is laid out as [`CompactEvent`] writes it (or `trusted`: it was just written so).
    fn add(
        &mut self,
        sequence_num: u64,
        client_id: &str,
        start: usize,
        trusted: bool,
    ) -> Option<()> {
        let end = self.text.len();
        let text = &self.text[start..end];
        let (split, operation) = match layout(text, sequence_num) {
            Some(found) => found,
            None if trusted => compact_layout(text)?,
            None => return None,
        };
        let id_start = self.ids.len();
        self.ids.push_str(client_id);
        self.events.push(Entry {
            sequence_num,
            start,
            end,
            split: start + split,
            operation,
            id_start,
            id_end: self.ids.len(),
        });
        Some(())
    }

    /// Reads `text` as an event and adds it written compact.
    fn push_read(
        &mut self,
        sequence_num: u64,
        client_id: &str,
        text: &str,
    ) -> Result<(), serde_json::Error> {
        let event: Event = serde_json::from_str(text)?;
        if event.sequence_num != sequence_num {
            return Err(serde_json::Error::custom(format!(
                "event {sequence_num} says it is event {}",
                event.sequence_num
            )));
        }
        let start = self.text.len();
        self.text.push_str(&encode(&CompactEvent(&event)));
        self.add(sequence_num, client_id, start, true)
            .ok_or_else(|| serde_json::Error::custom("an event this crate wrote is not compact"))
    }
}

/// An `events` or `event` frame whose events are [`EncodedEvents`]: written for a connection's
/// protocol version without reading the events.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFrame {
    /// The document.
    pub document_id: String,
    /// The events.
    pub events: EncodedEvents,
    /// Which frame.
    pub kind: FrameKind,
}

/// The frames [`EncodedFrame`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `events`: a page of a catch-up (6.2).
    Events {
        /// The document's `headSeq` when the page was made.
        head_seq: u64,
        /// More pages follow.
        has_more: bool,
    },
    /// `event`: events sent live (7.1).
    Event,
}

impl EncodedFrame {
    /// The frame for a connection of `version`: version 2 names the document in the frame and
    /// keeps the events compact (18.3); version 1 writes each event whole (3.1). The same frame
    /// as [`encode`] (version 1) or [`super::encode_scoped`] (version 2) of
    /// [`EncodedFrame::to_message`], up to the order of each event's members.
    pub fn encode(&self, version: u32) -> String {
        let v2 = version == PROTOCOL_VERSION_2;
        let mut out = String::new();
        out.push_str(match self.kind {
            FrameKind::Events { .. } => "{\"type\":\"events\"",
            FrameKind::Event => "{\"type\":\"event\"",
        });
        if v2 {
            out.push_str(",\"documentId\":");
            push_quoted(&mut out, &self.document_id);
        }
        out.push_str(",\"events\":");
        let full = (!v2).then_some(self.document_id.as_str());
        self.events.write_array(&mut out, full);
        if let FrameKind::Events { head_seq, has_more } = self.kind {
            out.push_str(",\"headSeq\":");
            push_number(&mut out, head_seq);
            if has_more {
                out.push_str(",\"hasMore\":true");
            }
        }
        out.push('}');
        out
    }

    /// The message this frame is, its events read back.
    pub fn to_message(&self) -> Result<ServerMessage, serde_json::Error> {
        let events = self.events.to_events(&self.document_id)?;
        Ok(match self.kind {
            FrameKind::Events { head_seq, has_more } => ServerMessage::Events {
                events,
                head_seq: Some(head_seq),
                has_more,
            },
            FrameKind::Event => ServerMessage::Event { events },
        })
    }
}

/// Where the `sequenceNum` member of `text` ends and whether `operation` follows it, when `text`
/// is an event of `sequence_num` laid out as [`CompactEvent`] writes it: `{"id":..`, optionally
/// `"timestamp":..`, then `"sequenceNum"`, then `"operation"` or `"diff"`, and neither
/// `documentId` nor `vectorClock` anywhere. `None` for anything else (which is then read).
fn layout(text: &str, sequence_num: u64) -> Option<(usize, bool)> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static DOCUMENT_ID: LazyLock<Finder> = LazyLock::new(|| Finder::new("\"documentId\""));
    static VECTOR_CLOCK: LazyLock<Finder> = LazyLock::new(|| Finder::new("\"vectorClock\""));
    let bytes = text.as_bytes();
    if DOCUMENT_ID.find(bytes).is_some() || VECTOR_CLOCK.find(bytes).is_some() {
        return None;
    }
    let (split, operation, found) = members(text)?;
    (found == sequence_num).then_some((split, operation))
}

/// [`layout`] of a text [`CompactEvent`] just wrote (whose patch may hold anything).
fn compact_layout(text: &str) -> Option<(usize, bool)> {
    members(text).map(|(split, operation, _)| (split, operation))
}

fn members(text: &str) -> Option<(usize, bool, u64)> {
    let b = text.as_bytes();
    if b.last() != Some(&b'}') {
        return None;
    }
    let mut at = after(b, 0, b"{\"id\":")?;
    at = string_end(b, at)?;
    if let Some(timestamp) = after(b, at, b",\"timestamp\":") {
        at = string_end(b, timestamp)?;
    }
    at = after(b, at, b",\"sequenceNum\":")?;
    let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || (digits > 1 && b[at] == b'0') {
        return None;
    }
    let found: u64 = text[at..at + digits].parse().ok()?;
    at += digits;
    let operation = if after(b, at, b",\"operation\":").is_some() {
        true
    } else if after(b, at, b",\"diff\":").is_some() {
        false
    } else {
        return None;
    };
    Some((at, operation, found))
}

/// The position after `expected` when `b[at..]` starts with it.
fn after(b: &[u8], at: usize, expected: &[u8]) -> Option<usize> {
    b.get(at..)?
        .starts_with(expected)
        .then_some(at + expected.len())
}

/// The position after the JSON string that starts at `at`.
fn string_end(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        match b[i] {
            b'"' => return Some(i + 1),
            _ => i += 2,
        }
    }
}

/// A string as JSON.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

fn push_quoted(out: &mut String, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&encode(&s));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

fn push_number(out: &mut String, n: u64) {
    use std::fmt::Write;
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_server, decode_server_scoped, encode_scoped, Operation};
    use serde_json::{json, Value};

    fn event(seq: u64, client: &str, operation: Operation) -> Event {
        serde_json::from_value(json!({
            "id": format!("e\"{seq}"), "documentId": "doc", "timestamp": "2026-01-01T00:00:00Z",
            "sequenceNum": seq, "operation": operation,
            "diff": {"patch": [{"op": "add", "path": "/documentId", "value": "vectorClock\n"}]},
            "metadata": if seq == 2 { json!({"documentId": "x", "vectorClock": {}}) } else { json!({}) },
            "clientId": client, "clientSeq": seq
        }))
        .unwrap()
    }

    fn events() -> Vec<Event> {
        vec![
            event(1, "alice", Operation::Create),
            event(2, "bob", Operation::Update),
            event(3, "alice", Operation::Delete),
        ]
    }

    fn encoded(events: &[Event]) -> EncodedEvents {
        let mut encoded = EncodedEvents::new();
        for e in events {
            encoded.push(e);
        }
        encoded
    }

    /// The frames are the messages' own encodings, up to member order.
    #[test]
    fn frames_are_what_the_messages_encode_to() {
        let events = events();
        for kind in [
            FrameKind::Events {
                head_seq: 7,
                has_more: true,
            },
            FrameKind::Events {
                head_seq: 3,
                has_more: false,
            },
            FrameKind::Event,
        ] {
            let frame = EncodedFrame {
                document_id: "doc".into(),
                events: encoded(&events),
                kind,
            };
            let message = frame.to_message().unwrap();
            let v1: Value = serde_json::from_str(&frame.encode(1)).unwrap();
            let expected: Value = serde_json::from_str(&encode(&message)).unwrap();
            assert_eq!(v1, expected);
            let v2: Value = serde_json::from_str(&frame.encode(2)).unwrap();
            let expected: Value =
                serde_json::from_str(&encode_scoped(Some("doc"), &message)).unwrap();
            assert_eq!(v2, expected);
            assert_eq!(
                decode_server(&frame.encode(1)).unwrap(),
                decode_server(&encode(&message)).unwrap()
            );
            assert_eq!(
                decode_server_scoped(&frame.encode(2)).unwrap().message,
                message
            );
        }
    }

    #[test]
    fn stored_texts_are_taken_as_they_are_or_read_once() {
        let events = events();
        let compact: Vec<String> = events.iter().map(|e| encode(&CompactEvent(e))).collect();
        // Rows written before stores kept events compact, whole vector included.
        let mut old = events[1].clone();
        old.vector_clock = [("alice".to_string(), 1), ("bob".to_string(), 2)]
            .into_iter()
            .collect();
        let old = encode(&old);
        let lines = format!("{}\n{}\n{}", compact[0], old, compact[2]);
        let page = EncodedEvents::from_lines(lines, "alice\nbob\nalice".into(), 1, 3).unwrap();
        assert_eq!(page.to_events("doc").unwrap(), events);
        let seqs: Vec<(u64, &str)> = page.origins().collect();
        assert_eq!(seqs, [(1, "alice"), (2, "bob"), (3, "alice")]);
        let mut one = EncodedEvents::new();
        one.push_text(2, "bob", &old).unwrap();
        one.push_text(3, "alice", &compact[2]).unwrap();
        assert_eq!(one.to_events("doc").unwrap(), events[1..]);
        // Counts that disagree, a text of another event, and one that is no event, fail.
        assert!(EncodedEvents::from_lines(compact[0].clone(), String::new(), 1, 1).is_err());
        let two = format!("{}\n{}", compact[0], compact[2]);
        assert!(EncodedEvents::from_lines(two, "alice\nalice".into(), 1, 2).is_err());
        assert!(EncodedEvents::new()
            .push_text(5, "alice", &compact[0])
            .is_err());
        assert!(EncodedEvents::new().push_text(1, "alice", "{}").is_err());
        assert!(
            EncodedEvents::from_lines(String::new(), String::new(), 1, 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn retain_and_append_keep_the_texts() {
        let events = events();
        let mut page = encoded(&events);
        page.retain(|seq, client| seq > 1 && client == "alice");
        assert_eq!(page.to_events("doc").unwrap(), events[2..]);
        let mut first = encoded(&events[..1]);
        first.append(&page);
        assert_eq!(first.len(), 2);
        assert_eq!((first.first_seq(), first.last_seq()), (Some(1), Some(3)));
        let full: Vec<Value> = first
            .full_texts("doc")
            .map(|(_, text)| serde_json::from_str(&text).unwrap())
            .collect();
        assert_eq!(full[1], serde_json::to_value(&events[2]).unwrap());
    }
}
