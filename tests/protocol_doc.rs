//! Checks every example in `docs/PROTOCOL.md` against the wire types, so the specification and
//! the code cannot drift apart. What is checked is listed in the document's Appendix D.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;

use base64::Engine;
use eventsync::diff::Diff;
use eventsync::protocol::{
    decode_client, decode_client_scoped, decode_server, decode_server_scoped, encode_scoped,
    ClientMessage, Edit, ErrorBody, ErrorCode, Event, EventsPage, ServerMessage, Snapshot,
    StateVector, Version,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reference server's frame limit, used to read the client examples.
const MAX_FRAME: usize = 1 << 20;
/// The brief asks for more than 30 checked JSON examples.
const MIN_JSON_EXAMPLES: usize = 31;
/// Languages a fenced block may have.
const LANGUAGES: [&str; 4] = ["json", "sse", "http", "text"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One fenced block of the document.
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// First word of the info string.
    lang: String,
    /// The remaining words of the info string.
    tags: Vec<String>,
    body: String,
}

impl Block {
    fn is_seed(&self) -> bool {
        self.tags.iter().skip(1).any(|t| t == "seed")
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "docs/PROTOCOL.md, block at line {} (```{} {}): {what}\n{}",
            self.line,
            self.lang,
            self.tags.join(" "),
            self.body
        )
    }
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let mut words = info.split_whitespace().map(str::to_string);
                    open = Some(Block {
                        line: i + 1,
                        lang: words.next().unwrap_or_default(),
                        tags: words.collect(),
                        body: String::new(),
                    });
                }
            }
            Some(block) => {
                if trimmed == "```" {
                    out.push(open.take().expect("a block is open"));
                } else {
                    block.body.push_str(line);
                    block.body.push('\n');
                }
            }
        }
    }
    if let Some(block) = open {
        block.fail("the fence is never closed");
    }
    out
}

/// Members of `original` that re-serialisation lost, as JSON paths. A member whose value is a
/// default (`null`, `false`, `0`, `""`, `{}`, `[]`) may be dropped by `skip_serializing_if`.
fn lost_members(original: &Value, reserialized: &Value, path: &str, lost: &mut Vec<String>) {
    match (original, reserialized) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}/{key}");
                match b.get(key) {
                    Some(other) => lost_members(value, other, &here, lost),
                    None if is_default(value) => {}
                    None => lost.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_members(x, y, &format!("{path}/{i}"), lost);
            }
        }
        (Value::Array(_), _) => lost.push(format!("{path} (array changed length or kind)")),
        _ => {}
    }
}

fn is_default(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_u64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Parses `block` as `T`, checks that it round-trips and (outside seed examples) that no member
/// was silently ignored. Returns the value and the block's JSON.
fn parse<T>(block: &Block) -> (T, Value)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let original: Value =
        serde_json::from_str(&block.body).unwrap_or_else(|e| block.fail(format!("not JSON: {e}")));
    let parsed: T = serde_json::from_str(&block.body).unwrap_or_else(|e| {
        block.fail(format!(
            "does not parse as {}: {e}",
            std::any::type_name::<T>()
        ))
    });
    let reserialized = serde_json::to_value(&parsed).expect("protocol types serialize");
    let again: T = serde_json::from_value(reserialized.clone())
        .unwrap_or_else(|e| block.fail(format!("re-serialised form does not parse: {e}")));
    if again != parsed {
        block.fail(format!("does not round-trip:\n{parsed:?}\n!=\n{again:?}"));
    }
    if !block.is_seed() {
        let mut lost = Vec::new();
        lost_members(&original, &reserialized, "", &mut lost);
        if !lost.is_empty() {
            block.fail(format!(
                "members ignored by {} (misspelt? or mark the block `seed`): {lost:?}",
                std::any::type_name::<T>()
            ));
        }
    }
    (parsed, original)
}

/// Fails when re-serialisation dropped a member the example has (a misspelt field).
fn check_nothing_lost(block: &Block, original: &Value, reserialized: &Value) {
    let mut lost = Vec::new();
    lost_members(original, reserialized, "", &mut lost);
    if !lost.is_empty() {
        block.fail(format!("members ignored (misspelt?): {lost:?}"));
    }
}

/// Section 2 and 3.2 rules every example event obeys. `original` is the event's JSON as written.
fn check_event(block: &Block, original: &Value) {
    let event: Event = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| block.fail(format!("event does not parse: {e}")));
    let seq = event.sequence_num;
    if seq == 0 {
        block.fail("sequenceNum starts at 1");
    }
    if !event
        .vector_clock
        .iter()
        .any(|(origin, n)| origin == event.client_id && n == seq)
    {
        block.fail(format!(
            "event {seq}: vectorClock[clientId] must be its sequenceNum"
        ));
    }
    if event.vector_clock.iter().map(|(_, n)| n).max() != Some(seq) {
        block.fail(format!(
            "event {seq}: the vectorClock's largest value must be its sequenceNum"
        ));
    }
    if event.client_seq == Some(0) {
        block.fail(format!("event {seq}: clientSeq starts at 1"));
    }
    match &original["diff"] {
        Value::Null if event.operation != eventsync::Operation::Delete => {
            let data = event
                .metadata
                .get("data")
                .or_else(|| event.metadata.get("created_doc"))
                .unwrap_or_else(|| {
                    block.fail(format!("event {seq}: diff null without metadata.data"))
                });
            if let Value::String(text) = data {
                serde_json::from_str::<Value>(text).unwrap_or_else(|e| {
                    block.fail(format!("event {seq}: metadata.data is not JSON text: {e}"))
                });
            }
        }
        Value::Null => {}
        diff => check_diff(block, diff),
    }
}

fn check_diff(block: &Block, diff: &Value) {
    const FORMATS: [&str; 4] = ["patch", "jsonPatch", "mergePatch", "bsonPatch"];
    if !FORMATS.iter().any(|f| diff.get(f).is_some()) {
        block.fail("a diff needs at least one known format");
    }
    for key in ["patch", "jsonPatch"] {
        if let Some(ops) = diff.get(key) {
            serde_json::from_value::<Vec<json_patch::PatchOperation>>(ops.clone())
                .unwrap_or_else(|e| block.fail(format!("{key} is not RFC 6902: {e}")));
        }
    }
    match diff.get("mergePatch") {
        Some(Value::String(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_else(|e| block.fail(format!("mergePatch is not base64: {e}")));
            let patch: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| block.fail(format!("mergePatch is not base64 JSON: {e}")));
            if !patch.is_object() {
                block.fail("a base64 mergePatch must hold a JSON object");
            }
        }
        Some(Value::Object(_)) | None => {}
        Some(other) => block.fail(format!("mergePatch must be an object or a string: {other}")),
    }
}

/// Checks each event of a list and that the list is in increasing `sequenceNum` order.
fn check_events(block: &Block, events: &Value) {
    let events = events
        .as_array()
        .unwrap_or_else(|| block.fail("events must be an array"));
    let mut last = 0;
    for event in events {
        check_event(block, event);
        let seq = event["sequenceNum"]
            .as_u64()
            .expect("checked by check_event");
        if seq <= last {
            block.fail(format!("events out of order: {seq} after {last}"));
        }
        last = seq;
    }
}

fn check_snapshot(block: &Block, snapshot: &Snapshot) {
    let max = snapshot.vector_clock.max_seq();
    if max != snapshot.sequence_num {
        block.fail("a snapshot's vectorClock's largest value must be its sequenceNum");
    }
    if snapshot.sequence_num == 0 && snapshot.document.is_some() {
        block.fail("before the first event the document is absent");
    }
}

/// The `data` of the SSE `connected` event (no type in `eventsync::protocol`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Connected {
    document_id: String,
    head_seq: u64,
}

/// What the examples cover.
#[derive(Default)]
struct Catalog {
    json_examples: usize,
    invalid_client: usize,
    sse_events: usize,
    client_types: BTreeSet<String>,
    server_types: BTreeSet<String>,
    error_frame_codes: BTreeSet<String>,
}

fn type_tag(block: &Block, message: &impl Serialize) -> String {
    match serde_json::to_value(message).expect("messages serialize")["type"].as_str() {
        Some(tag) => tag.to_string(),
        None => block.fail("serialised message has no string `type`"),
    }
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .expect("codes serialize")
        .as_str()
        .expect("codes are strings")
        .to_string()
}

fn check_json(block: &Block, catalog: &mut Catalog) {
    let Some(kind) = block.tags.first() else {
        block.fail("a json block must name what it is, e.g. ```json server");
    };
    if let Some(extra) = block.tags.iter().skip(1).find(|t| *t != "seed") {
        block.fail(format!("unknown flag `{extra}` (only `seed` is known)"));
    }
    if kind != "invalid-client" {
        catalog.json_examples += 1;
    }
    match kind.as_str() {
        "client" => {
            let (message, _) = parse::<ClientMessage>(block);
            let decoded = decode_client(&block.body, MAX_FRAME)
                .unwrap_or_else(|e| block.fail(format!("decode_client refuses it: {e}")));
            assert_eq!(decoded, message, "line {}", block.line);
            catalog.client_types.insert(type_tag(block, &message));
        }
        "server" => {
            let (message, original) = parse::<ServerMessage>(block);
            let decoded = decode_server(&block.body)
                .unwrap_or_else(|e| block.fail(format!("decode_server refuses it: {e}")));
            assert_eq!(decoded, message, "line {}", block.line);
            match &message {
                ServerMessage::Events { .. } | ServerMessage::Event { .. } => {
                    check_events(block, &original["events"])
                }
                ServerMessage::Snapshot { snapshot } => check_snapshot(block, snapshot),
                ServerMessage::Error { code, .. } => {
                    catalog.error_frame_codes.insert(code_name(*code));
                }
                _ => {}
            }
            catalog.server_types.insert(type_tag(block, &message));
        }
        "client-v2" => {
            let original: Value = serde_json::from_str(&block.body)
                .unwrap_or_else(|e| block.fail(format!("not JSON: {e}")));
            let scoped = decode_client_scoped(&block.body, MAX_FRAME)
                .unwrap_or_else(|e| block.fail(format!("decode_client_scoped refuses it: {e}")));
            let again = serde_json::to_value(&scoped).expect("protocol types serialize");
            let back = decode_client_scoped(&again.to_string(), MAX_FRAME)
                .unwrap_or_else(|e| block.fail(format!("re-serialised form does not parse: {e}")));
            assert_eq!(back, scoped, "line {}", block.line);
            check_nothing_lost(block, &original, &again);
            catalog
                .client_types
                .insert(type_tag(block, &scoped.message));
        }
        "server-v2" => {
            let original: Value = serde_json::from_str(&block.body)
                .unwrap_or_else(|e| block.fail(format!("not JSON: {e}")));
            let scoped = decode_server_scoped(&block.body)
                .unwrap_or_else(|e| block.fail(format!("decode_server_scoped refuses it: {e}")));
            let text = encode_scoped(scoped.document_id.as_deref(), &scoped.message);
            let back = decode_server_scoped(&text)
                .unwrap_or_else(|e| block.fail(format!("re-encoded form does not parse: {e}")));
            assert_eq!(back, scoped, "line {}", block.line);
            let again: Value = serde_json::from_str(&text).expect("encode_scoped writes JSON");
            check_nothing_lost(block, &original, &again);
            // Version 2 events are compact: the frame names their document, nothing its vector.
            for event in original["events"].as_array().into_iter().flatten() {
                if event.get("documentId").is_some() || event.get("vectorClock").is_some() {
                    block.fail("a version 2 event carries documentId or vectorClock (18.3)");
                }
            }
            if let ServerMessage::Error { code, .. } = &scoped.message {
                catalog.error_frame_codes.insert(code_name(*code));
            }
            catalog
                .server_types
                .insert(type_tag(block, &scoped.message));
        }
        "server-unknown" => {
            let original: Value = serde_json::from_str(&block.body)
                .unwrap_or_else(|e| block.fail(format!("not JSON: {e}")));
            if !original["type"].is_string() {
                block.fail("an unknown message still has a string `type`");
            }
            match decode_server(&block.body) {
                Ok(ServerMessage::Unknown) => {}
                other => block.fail(format!(
                    "decode_server must read this as ServerMessage::Unknown, not {other:?}"
                )),
            }
        }
        "event" => {
            let (_, original) = parse::<Event>(block);
            check_event(block, &original);
        }
        "state-vector" => {
            parse::<StateVector>(block);
        }
        "events-page" => {
            let (page, original) = parse::<EventsPage>(block);
            check_events(block, &original["events"]);
            if let Some(snapshot) = &page.snapshot {
                check_snapshot(block, snapshot);
            }
        }
        "error-body" => {
            parse::<ErrorBody>(block);
        }
        "version" => {
            parse::<Version>(block);
        }
        "snapshot" => {
            let (snapshot, _) = parse::<Snapshot>(block);
            check_snapshot(block, &snapshot);
        }
        "edit" => {
            parse::<Edit>(block);
        }
        "diff" => {
            let (_, original) = parse::<Diff>(block);
            check_diff(block, &original);
        }
        "document" => {
            parse::<Value>(block);
        }
        "invalid-client" => {
            catalog.invalid_client += 1;
            if let Ok(message) = decode_client(&block.body, MAX_FRAME) {
                block.fail(format!("decode_client accepts this frame: {message:?}"));
            }
        }
        other => block.fail(format!("unknown json kind `{other}`")),
    }
}

/// Parses an SSE block as an event stream and checks each event's data against its name.
fn check_sse(block: &Block, catalog: &mut Catalog) {
    let mut name = String::new();
    let mut id: Option<u64> = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.body.lines().chain([""]) {
        if line.is_empty() {
            if !data.is_empty() {
                check_sse_event(block, &name, id, &data.join("\n"), catalog);
            } else if !name.is_empty() {
                block.fail(format!("SSE event `{name}` has no data"));
            }
            (name, id, data) = (String::new(), None, Vec::new());
        } else if line.starts_with(':') {
            // A comment (keep-alive).
        } else if let Some(value) = line.strip_prefix("event: ") {
            name = value.to_string();
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push(value);
        } else if let Some(value) = line.strip_prefix("id: ") {
            id = Some(
                value
                    .parse()
                    .unwrap_or_else(|_| block.fail("SSE id must be a sequenceNum")),
            );
        } else if line.strip_prefix("retry: ").is_none() {
            block.fail(format!("not an SSE line: {line}"));
        }
    }
}

fn check_sse_event(block: &Block, name: &str, id: Option<u64>, data: &str, catalog: &mut Catalog) {
    catalog.sse_events += 1;
    let sub = Block {
        line: block.line,
        lang: "sse".into(),
        tags: vec![format!("event: {name}")],
        body: data.to_string(),
    };
    match name {
        "connected" => {
            parse::<Connected>(&sub);
        }
        "snapshot" => {
            let (snapshot, _) = parse::<Snapshot>(&sub);
            check_snapshot(&sub, &snapshot);
            if id.is_some_and(|id| id != snapshot.sequence_num) {
                sub.fail("a snapshot's id: is its sequenceNum");
            }
        }
        "events" => {
            let (events, original) = parse::<Vec<Event>>(&sub);
            check_events(&sub, &original);
            if id.is_some() && id != events.last().map(|e| e.sequence_num) {
                sub.fail("an events batch's id: is its last sequenceNum");
            }
        }
        "event" => {
            let (event, original) = parse::<Event>(&sub);
            check_event(&sub, &original);
            if id != Some(event.sequence_num) {
                sub.fail("a live event's id: must be its sequenceNum");
            }
        }
        "error" => {
            parse::<ErrorBody>(&sub);
        }
        other => sub.fail(format!("unknown SSE event name `{other}`")),
    }
}

fn catalog() -> Catalog {
    let doc = read("docs/PROTOCOL.md");
    let mut catalog = Catalog::default();
    for block in blocks(&doc) {
        if !LANGUAGES.contains(&block.lang.as_str()) {
            block.fail(format!("the language must be one of {LANGUAGES:?}"));
        }
        match block.lang.as_str() {
            "json" => check_json(&block, &mut catalog),
            "sse" => check_sse(&block, &mut catalog),
            _ => {
                let json_line = block
                    .body
                    .lines()
                    .find(|l| l.trim_start().starts_with(['{', '[']));
                if let Some(line) = json_line {
                    block.fail(format!(
                        "JSON belongs in a tagged ```json block, not here: {line}"
                    ));
                }
            }
        }
    }
    catalog
}

/// Variant names of `pub enum {name}` in `src/protocol.rs`: the lines indented by exactly four
/// spaces that start with an upper-case identifier. `cargo fmt` keeps this layout stable.
fn variants(name: &str) -> Vec<String> {
    let src = read("src/protocol.rs");
    let start = src
        .find(&format!("pub enum {name} {{"))
        .unwrap_or_else(|| panic!("src/protocol.rs has no `pub enum {name}`"));
    let found: Vec<String> = src[start..]
        .lines()
        .skip(1)
        .take_while(|line| *line != "}")
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect()
        })
        .collect();
    assert!(!found.is_empty(), "no variants found in {name}");
    found
}

fn camel(variant: &str) -> String {
    let mut chars = variant.chars();
    let first = chars.next().expect("variants are not empty");
    first.to_ascii_lowercase().to_string() + chars.as_str()
}

fn snake(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn every_example_parses_round_trips_and_is_counted() {
    let catalog = catalog();
    assert!(
        catalog.json_examples >= MIN_JSON_EXAMPLES,
        "only {} checked JSON examples; at least {MIN_JSON_EXAMPLES} expected",
        catalog.json_examples
    );
    assert!(
        catalog.invalid_client > 0,
        "no ```json invalid-client example"
    );
    assert!(catalog.sse_events > 0, "no ```sse example");
}

#[test]
fn every_client_message_type_has_an_example() {
    let catalog = catalog();
    let expected: BTreeSet<String> = variants("ClientMessage").iter().map(|v| camel(v)).collect();
    assert!(
        expected.contains("hello"),
        "variant scan is broken: {expected:?}"
    );
    assert_eq!(
        catalog.client_types, expected,
        "client message types with examples vs ClientMessage"
    );
}

#[test]
fn every_server_message_type_has_an_example() {
    let catalog = catalog();
    // `Unknown` is the catch-all for types of newer versions, not a message of its own.
    let expected: BTreeSet<String> = variants("ServerMessage")
        .iter()
        .filter(|v| *v != "Unknown")
        .map(|v| camel(v))
        .collect();
    assert!(
        expected.contains("welcome"),
        "variant scan is broken: {expected:?}"
    );
    assert_eq!(
        catalog.server_types, expected,
        "server message types with examples vs ServerMessage"
    );
}

fn error_codes() -> Vec<(String, ErrorCode)> {
    variants("ErrorCode")
        .iter()
        .map(|variant| {
            let name = snake(variant);
            let code: ErrorCode = serde_json::from_value(Value::String(name.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                code_name(code),
                name,
                "ErrorCode::{variant} is not `{name}` on the wire"
            );
            (name, code)
        })
        .collect()
}

#[test]
fn every_error_code_has_an_error_frame_example() {
    let catalog = catalog();
    let expected: BTreeSet<String> = error_codes().into_iter().map(|(name, _)| name).collect();
    assert!(
        expected.contains("malformed_frame"),
        "variant scan is broken"
    );
    let missing: Vec<_> = expected.difference(&catalog.error_frame_codes).collect();
    assert!(
        missing.is_empty(),
        "error codes without an `error` frame example: {missing:?}"
    );
}

#[test]
fn error_code_table_matches_error_code() {
    let doc = read("docs/PROTOCOL.md");
    let header = doc
        .lines()
        .position(|l| l.starts_with("| Code | HTTP | Retryable |"))
        .expect("the error code table of section 10.2");
    let rows: Vec<Vec<String>> = doc
        .lines()
        .skip(header + 2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(|cell| cell.trim().to_string()).collect())
        .collect();
    for (name, code) in error_codes() {
        let row = rows
            .iter()
            .find(|cells| cells[1] == format!("`{name}`"))
            .unwrap_or_else(|| panic!("no row for `{name}` in the error code table"));
        let retryable = if code.is_retryable() { "yes" } else { "no" };
        assert_eq!(row[3], retryable, "retryable column of `{name}`");
        let status_ok = if code == ErrorCode::Unknown {
            row[2] == "—"
        } else {
            row[2].len() == 3 && row[2].parse::<u16>().is_ok()
        };
        assert!(status_ok, "HTTP status column of `{name}`: {}", row[2]);
    }
    assert_eq!(
        rows.len(),
        error_codes().len(),
        "the table has rows for codes ErrorCode lacks"
    );
}

/// The document with every run of whitespace (line breaks included) made one space.
fn flat_doc() -> String {
    read("docs/PROTOCOL.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `depth` nested arrays, the outermost at level 1.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn frame_nesting_limit_matches_section_11() {
    let doc = flat_doc();
    assert!(
        doc.contains("frames nested 128 levels or more (so a frame may nest at most 127 levels)"),
        "section 11 no longer states the frame nesting limit this test checks"
    );
    // The frame's own object is level 1, so `x` holds `depth - 1` levels.
    let client = |depth: usize| format!(r#"{{"type":"ping","x":{}}}"#, nested(depth - 1));
    let server = |depth: usize| format!(r#"{{"type":"pong","x":{}}}"#, nested(depth - 1));
    assert!(decode_client(&client(127), MAX_FRAME).is_ok());
    assert!(decode_server(&server(127)).is_ok());
    for depth in [128, 129, 200] {
        let err = decode_client(&client(depth), MAX_FRAME).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::TooLarge,
            "client frame of depth {depth}"
        );
        let err = decode_server(&server(depth)).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::TooLarge,
            "server frame of depth {depth}"
        );
    }
}

#[test]
fn document_depth_that_reaches_clients_matches_section_11() {
    let doc = flat_doc();
    assert!(
        doc.contains("a document deeper than 121 levels cannot be"),
        "section 11 no longer states the deliverable document depth this test checks"
    );
    let submit = |depth: usize| {
        format!(
            r#"{{"type":"submit","edits":[{{"clientSeq":1,"baseSeq":0,"operation":"create","patch":[{{"op":"add","path":"","value":{}}}]}}]}}"#,
            nested(depth)
        )
    };
    let event = |depth: usize| {
        format!(
            r#"{{"type":"event","events":[{{"id":"e1","documentId":"d","sequenceNum":1,"operation":"create","diff":{{"patch":[{{"op":"add","path":"","value":{}}}]}},"vectorClock":{{"a":1}},"clientId":"a","clientSeq":1}}]}}"#,
            nested(depth)
        )
    };
    assert!(decode_client(&submit(122), MAX_FRAME).is_ok());
    assert!(decode_client(&submit(123), MAX_FRAME).is_err());
    assert!(decode_server(&event(121)).is_ok());
    assert!(decode_server(&event(122)).is_err());
}

#[test]
fn client_timer_defaults_match_section_9() {
    let doc = flat_doc();
    let config = eventsync::session::SessionConfig::new("board-42", "alice");
    for (name, ms) in [
        ("Ping interval", config.ping_interval_ms),
        ("Idle timeout", config.idle_timeout_ms),
        ("Request timeout", config.request_timeout_ms),
    ] {
        assert_eq!(ms % 1000, 0, "{name} is not a whole number of seconds");
        let stated = format!("**{name}, {} s.**", ms / 1000);
        assert!(
            doc.contains(&stated),
            "section 9 does not state the default `{stated}`"
        );
    }
}
