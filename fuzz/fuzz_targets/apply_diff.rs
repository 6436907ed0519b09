//! Every diff format applied to any document: no panic, application is atomic (on error the
//! document is unchanged), and what succeeds stays within the depth limit.
//!
//! Input: one selector byte, then the JSON text `[document, payload]`. The selector picks how the
//! payload is read: RFC 6902 operations, a whole `Diff` (every format, by precedence), a merge
//! patch (a string is base64), a `bsonPatch`, or a whole event (snapshots in `metadata`).
#![no_main]

use eventsync::diff::{self, apply_diff, apply_event, apply_patch, BsonPatch, Diff, MergePatch};
use eventsync::protocol::Event;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn within_limits(doc: &Value) {
    diff::check_depth(doc, diff::MAX_DEPTH).expect("a result within the depth limit");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok((document, payload)) = serde_json::from_slice::<(Value, Value)>(rest) else {
        return;
    };
    match selector % 5 {
        0 => {
            let Ok(ops) = serde_json::from_value::<Vec<json_patch::PatchOperation>>(payload) else {
                return;
            };
            let mut doc = document.clone();
            match apply_patch(&mut doc, &ops) {
                Ok(()) => within_limits(&doc),
                Err(_) => assert_eq!(doc, document, "a failed patch changed the document"),
            }
        }
        1 => {
            if let Ok(diff) = serde_json::from_value::<Diff>(payload) {
                if let Ok(after) = apply_diff(&document, &diff) {
                    within_limits(&after);
                }
            }
        }
        2 => {
            if let Ok(merge) = serde_json::from_value::<MergePatch>(payload) {
                let _ = merge.apply(&document);
            }
        }
        3 => {
            if let Ok(bson) = serde_json::from_value::<BsonPatch>(payload) {
                let _ = bson.apply(&document, selector & 8 != 0);
            }
        }
        _ => {
            if let Ok(event) = serde_json::from_value::<Event>(payload) {
                for before in [Some(&document), None] {
                    if let Ok(change) = apply_event(before, &event) {
                        if let Some(after) = &change.document {
                            within_limits(after);
                        }
                    }
                }
            }
        }
    }
});
