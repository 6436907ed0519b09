//! Event-level tests: every format through `apply_event`/`apply_diff`, snapshots, lifecycle, and
//! bad input.

use super::*;
use crate::protocol::Event;
use serde_json::json;

/// An event in the seed's exact shape (ORIGIN.md), with the given operation, diff and metadata.
fn event(operation: &str, diff: Value, metadata: Value) -> Event {
    serde_json::from_value(json!({
        "id": "64b7f0c2a1b2c3d4e5f60718", "documentId": "64b7f0c2a1b2c3d4e5f60719",
        "timestamp": "2024-01-01T00:00:00Z", "sequenceNum": 5, "operation": operation,
        "diff": diff, "vectorClock": {"server": 5}, "clientId": "server", "serverSeq": 0,
        "metadata": metadata
    }))
    .unwrap()
}

fn update(diff: Value) -> Event {
    event("update", diff, json!({}))
}

fn b64(v: Value) -> String {
    match MergePatch::encode_base64(&v) {
        MergePatch::Base64(s) => s,
        MergePatch::Json(_) => unreachable!(),
    }
}

fn ops(v: Value) -> Vec<PatchOperation> {
    serde_json::from_value(v).unwrap()
}

/// Applies `event` to `before` and checks the invariants every change must keep: the input is
/// untouched and `ops` turn `before` into `document`.
fn apply_checked(before: Option<&Value>, event: &Event) -> Result<Change, DiffError> {
    let text = before.map(|b| serde_json::to_string(b).unwrap());
    let result = apply_event(before, event);
    assert_eq!(before.map(|b| serde_json::to_string(b).unwrap()), text);
    if let Ok(change) = &result {
        if let Some(doc) = &change.document {
            let mut replay = before.cloned().unwrap_or(Value::Null);
            apply_patch(&mut replay, &change.ops).unwrap();
            assert_eq!(
                &replay, doc,
                "ops must turn the document before into the one after"
            );
        } else {
            assert!(change.ops.is_empty());
        }
    }
    result
}

#[test]
fn the_seed_event_of_origin_md_parses_and_applies() {
    let ev: Event = serde_json::from_str(
        r#"{"id": "64b7f0c2a1b2c3d4e5f60718", "documentId": "64b7f0c2a1b2c3d4e5f60719",
            "timestamp": "2024-01-01T00:00:00Z", "sequenceNum": 5, "operation": "update",
            "diff": {"hasChanges": true, "version": 6, "mergePatch": "eyJhIjoxfQ==",
                     "bsonPatch": {"set": {"a": 1}, "unset": {"c": ""}, "inc": {"version": 1}}},
            "vectorClock": {"server": 5}, "clientId": "server", "serverSeq": 0, "metadata": {}}"#,
    )
    .unwrap();
    let diff = ev.diff.as_ref().unwrap();
    assert_eq!(diff.version, Some(6));
    assert_eq!(diff.has_changes, Some(true));
    assert!(diff.other.is_empty(), "{:?}", diff.other);
    let before = json!({"a": 0, "c": true});
    let change = apply_checked(Some(&before), &ev).unwrap();
    // mergePatch wins: it does not remove "c" (bsonPatch would).
    assert_eq!(change.document, Some(json!({"a": 1, "c": true})));
    assert_eq!(
        change.ops,
        ops(json!([{"op": "replace", "path": "/a", "value": 1}]))
    );
}

#[test]
fn diff_serializes_only_present_members() {
    let d = Diff::from_patch(ops(json!([{"op": "remove", "path": "/a"}])));
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"patch": [{"op": "remove", "path": "/a"}]})
    );
    let text = r#"{"hasChanges":false,"version":3,"jsonPatch":[],"mergePatch":{"a":null},"bsonPatch":{"set":{"a":1}},"zz":1}"#;
    let d: Diff = serde_json::from_str(text).unwrap();
    assert_eq!(d.other.keys().collect::<Vec<_>>(), ["zz"]);
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::from_str::<Value>(text).unwrap()
    );
}

#[test]
fn canonical_patch_and_legacy_json_patch() {
    let before = json!({"a": 1, "l": [1]});
    for field in ["patch", "jsonPatch"] {
        let p = json!([{"op": "add", "path": "/b", "value": 2}, {"op": "add", "path": "/l/-", "value": 2}]);
        let change = apply_checked(Some(&before), &update(json!({ field: p }))).unwrap();
        assert_eq!(change.document, Some(json!({"a": 1, "b": 2, "l": [1, 2]})));
        assert_eq!(change.ops, ops(p), "the event's own operations");
    }
}

#[test]
fn merge_patch_as_base64_and_as_object() {
    let before = json!({"a": 1, "b": {"c": 2, "d": 3}});
    let patch = json!({"a": null, "b": {"c": 9}, "e": [1]});
    let expected = json!({"b": {"c": 9, "d": 3}, "e": [1]});
    for mp in [json!(b64(patch.clone())), patch.clone()] {
        let change = apply_checked(Some(&before), &update(json!({ "mergePatch": mp }))).unwrap();
        assert_eq!(change.document, Some(expected.clone()));
        assert_eq!(change.ops, json_patch::diff(&before, &expected).0);
    }
}

#[test]
fn bson_patch_alone_skips_the_database_version_counter() {
    let before = json!({"players": {"p1": {"level": 1}}, "old": true});
    let bson = json!({"set": {"players.p1.level": 2}, "unset": {"old": ""}, "inc": {"version": 1}});
    let change = apply_checked(
        Some(&before),
        &update(json!({"hasChanges": true, "version": 6, "bsonPatch": bson.clone()})),
    )
    .unwrap();
    assert_eq!(
        change.document,
        Some(json!({"players": {"p1": {"level": 2}}}))
    );
    // Without a top-level version the increment is part of the document.
    let change = apply_checked(Some(&before), &update(json!({"bsonPatch": bson}))).unwrap();
    assert_eq!(
        change.document,
        Some(json!({"players": {"p1": {"level": 2}}, "version": 1}))
    );
}

#[test]
fn formats_are_used_by_precedence() {
    let before = json!({});
    let all = json!({
        "patch": [{"op": "add", "path": "/from", "value": "patch"}],
        "jsonPatch": [{"op": "add", "path": "/from", "value": "jsonPatch"}],
        "mergePatch": {"from": "mergePatch"},
        "bsonPatch": {"set": {"from": "bsonPatch"}},
    });
    for (drop, expected) in [
        (None, "patch"),
        (Some("patch"), "jsonPatch"),
        (Some("jsonPatch"), "mergePatch"),
        (Some("mergePatch"), "bsonPatch"),
    ] {
        let mut diff = all.clone();
        let map = diff.as_object_mut().unwrap();
        // Drop every format before `expected`.
        if let Some(d) = drop {
            for f in ["patch", "jsonPatch", "mergePatch"] {
                map.remove(f);
                if f == d {
                    break;
                }
            }
        }
        let change = apply_checked(Some(&before), &update(diff)).unwrap();
        assert_eq!(change.document, Some(json!({"from": expected})));
    }
}

#[test]
fn has_changes_false_changes_nothing() {
    let before = json!({"a": 1});
    for diff in [
        json!({"hasChanges": false}),
        json!({"hasChanges": false, "version": 4}),
    ] {
        let change = apply_checked(Some(&before), &update(diff)).unwrap();
        assert_eq!(change.document, Some(before.clone()));
        assert!(change.ops.is_empty());
    }
    // A format present is applied even so.
    let change = apply_checked(
        Some(&before),
        &update(json!({"hasChanges": false, "mergePatch": {"a": 2}})),
    )
    .unwrap();
    assert_eq!(change.document, Some(json!({"a": 2})));
    assert_eq!(
        apply_diff(
            &before,
            &serde_json::from_value(json!({"hasChanges": false})).unwrap()
        )
        .unwrap(),
        before
    );
}

#[test]
fn unknown_formats_are_errors_and_unknown_extras_are_ignored() {
    let before = json!({"a": 1});
    let err = apply_checked(
        Some(&before),
        &update(json!({"hasChanges": true, "yamlPatch": "a: 2", "xmlPatch": 1})),
    )
    .unwrap_err();
    match &err {
        DiffError::UnknownFormat(keys) => assert_eq!(keys, &["xmlPatch", "yamlPatch"]),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("yamlPatch"), "{err}");
    let d: Diff = serde_json::from_value(json!({"yamlPatch": "a: 2"})).unwrap();
    assert!(matches!(
        apply_diff(&before, &d),
        Err(DiffError::UnknownFormat(_))
    ));
    // Next to a known format, unknown members are ignored.
    let change = apply_checked(
        Some(&before),
        &update(json!({"mergePatch": {"a": 2}, "yamlPatch": "a: 3"})),
    )
    .unwrap();
    assert_eq!(change.document, Some(json!({"a": 2})));
    // A diff with no member at all, or none and no snapshot: nothing to apply.
    for diff in [
        json!({}),
        json!({"hasChanges": true, "version": 2}),
        Value::Null,
    ] {
        assert!(
            matches!(
                apply_checked(Some(&before), &update(diff.clone())),
                Err(DiffError::NoChange)
            ),
            "{diff}"
        );
    }
}

#[test]
fn snapshots_from_metadata() {
    let before = json!({"a": 1, "gone": true});
    let after = json!({"a": 2, "l": [1]});
    // The seed's change-stream events: the document as a JSON string in metadata.data.
    let text = serde_json::to_string(&after).unwrap();
    for data in [json!(text), after.clone()] {
        let ev = event("update", Value::Null, json!({ "data": data }));
        let change = apply_checked(Some(&before), &ev).unwrap();
        assert_eq!(change.document, Some(after.clone()));
        assert_eq!(change.ops, json_patch::diff(&before, &after).0);
    }
    // A diff without a known format also falls back to the snapshot.
    let ev = event("update", json!({"yamlPatch": 1}), json!({ "data": text }));
    assert_eq!(
        apply_checked(Some(&before), &ev).unwrap().document,
        Some(after.clone())
    );
    // created_doc counts for a create only.
    let ev = event("create", Value::Null, json!({"created_doc": text}));
    let change = apply_checked(None, &ev).unwrap();
    assert_eq!(change.document, Some(after.clone()));
    let ev = event("update", Value::Null, json!({"created_doc": text}));
    assert!(matches!(
        apply_checked(Some(&before), &ev),
        Err(DiffError::NoChange)
    ));
    // data wins over created_doc.
    let ev = event(
        "create",
        Value::Null,
        json!({"data": {"from": "data"}, "created_doc": text}),
    );
    assert_eq!(
        apply_checked(None, &ev).unwrap().document,
        Some(json!({"from": "data"}))
    );
}

#[test]
fn bad_snapshots_are_errors() {
    let before = json!({"a": 1});
    for data in [json!("{not json"), json!(""), json!(5), json!(true)] {
        let ev = event("update", Value::Null, json!({ "data": data }));
        let err = apply_checked(Some(&before), &ev).unwrap_err();
        assert!(
            matches!(err, DiffError::InvalidSnapshot(_)),
            "{data}: {err:?}"
        );
        assert!(err.to_string().contains("metadata.data"), "{err}");
    }
}

#[test]
fn create_update_delete_and_recreate() {
    let create = event(
        "create",
        json!({"patch": [{"op": "add", "path": "", "value": {"n": 1}}, {"op": "add", "path": "/m", "value": 2}]}),
        json!({}),
    );
    let change = apply_checked(None, &create).unwrap();
    let doc = json!({"n": 1, "m": 2});
    assert_eq!(change.document, Some(doc.clone()));
    assert_eq!(
        change.ops,
        ops(json!([{"op": "add", "path": "", "value": doc}])),
        "a create is exactly one add at the root"
    );

    let upd = update(json!({"patch": [{"op": "replace", "path": "/n", "value": 5}]}));
    let doc = apply_checked(Some(&doc), &upd).unwrap().document.unwrap();
    assert_eq!(doc, json!({"n": 5, "m": 2}));
    assert!(matches!(
        apply_checked(None, &upd),
        Err(DiffError::DocumentMissing)
    ));

    let delete = event("delete", Value::Null, json!({"deleted_doc": "{}"}));
    for before in [Some(&doc), None] {
        let change = apply_checked(before, &delete).unwrap();
        assert_eq!(change, Change::default());
    }

    // A re-create replaces whatever was there, existing or not.
    let recreate = event("create", json!({"mergePatch": {"fresh": true}}), json!({}));
    for before in [Some(&doc), None] {
        let change = apply_checked(before, &recreate).unwrap();
        assert_eq!(change.document, Some(json!({"fresh": true})));
        assert_eq!(
            change.ops,
            ops(json!([{"op": "add", "path": "", "value": {"fresh": true}}]))
        );
    }
    let err = apply_checked(Some(&doc), &event("create", Value::Null, json!({}))).unwrap_err();
    assert!(matches!(err, DiffError::NoChange));
}

#[test]
fn failures_leave_the_document_unchanged_in_every_format() {
    let before = json!({"a": 1, "s": "text", "l": [1, 2], "o": {"k": "v"}});
    let text = serde_json::to_string(&before).unwrap();
    let cases = [
        // A failing operation in the middle of a patch.
        json!({"patch": [
            {"op": "add", "path": "/x", "value": 1},
            {"op": "remove", "path": "/l/0"},
            {"op": "test", "path": "/a", "value": 2},
            {"op": "add", "path": "/y", "value": 1}]}),
        json!({"jsonPatch": [
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "move", "from": "/o", "path": "/missing/deep"},
            {"op": "add", "path": "/y", "value": 1}]}),
        json!({"mergePatch": "%%%"}),
        json!({"mergePatch": &b64(json!(null))[..3]}),
        json!({"bsonPatch": {"set": {"a": 2, "n.m": 1}, "unset": {"o": ""}, "inc": {"s": 1}}}),
        json!({"bsonPatch": {"set": {"a": 2}, "push": {"l": 3}, "pull": {"s": 1}}}),
        json!({"bsonPatch": {"set": {"a": 2}, "max": {"a": 3}}}),
    ];
    for diff in cases {
        let mut doc = before.clone();
        let parsed: Diff = serde_json::from_value(diff.clone()).unwrap();
        assert!(
            apply_checked(Some(&doc), &update(diff.clone())).is_err(),
            "{diff}"
        );
        assert!(apply_diff(&doc, &parsed).is_err(), "{diff}");
        if let Some(p) = parsed.patch.as_ref().or(parsed.json_patch.as_ref()) {
            assert!(apply_patch(&mut doc, p).is_err(), "{diff}");
        }
        assert_eq!(serde_json::to_string(&doc).unwrap(), text, "{diff}");
    }
    // The error names the failing operation.
    let err = apply_checked(
        Some(&before),
        &update(json!({"patch": [
            {"op": "add", "path": "/x", "value": 1},
            {"op": "remove", "path": "/nope"}]})),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid patch: operation 1 at `/nope`: path is invalid"
    );
    assert_eq!(err.code(), ErrorCode::InvalidPatch);
}

/// A chain of `depth` nested one-element arrays, built without recursion.
fn nested(depth: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// Drops a chain from `nested` without recursion (dropping it whole would recurse).
fn dismantle(mut v: Value) {
    while let Value::Array(mut a) = v {
        v = a.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn depth_is_checked_without_recursion() {
    assert!(check_depth(&json!(1), 0).is_ok());
    assert!(check_depth(&json!([]), 0).is_err());
    assert!(check_depth(&json!({"a": [1, {"b": []}]}), 4).is_ok());
    assert!(check_depth(&json!({"a": [1, {"b": []}]}), 3).is_err());
    assert!(check_depth(&nested(MAX_DEPTH), MAX_DEPTH).is_ok());
    let err = check_depth(&nested(MAX_DEPTH + 1), MAX_DEPTH).unwrap_err();
    assert!(matches!(err, DiffError::TooDeep { limit: MAX_DEPTH }));
    assert_eq!(err.code(), ErrorCode::TooLarge);
    // Far deeper than any stack could recurse.
    let hostile = nested(1_000_000);
    assert!(check_depth(&hostile, MAX_DEPTH).is_err());
    dismantle(hostile);
    // Everything serde_json parses from text is within the limit.
    let text = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let parsed: Value = serde_json::from_str(&text(MAX_DEPTH - 1)).unwrap();
    assert!(check_depth(&parsed, MAX_DEPTH).is_ok());
    assert!(serde_json::from_str::<Value>(&text(MAX_DEPTH)).is_err());
}

#[test]
fn documents_nested_too_deep_are_refused() {
    let before = json!({});
    let deep = nested(MAX_DEPTH);
    // A snapshot, a merge patch and a bson value that would nest the document too deep.
    let snapshot = event("update", Value::Null, json!({ "data": [deep.clone()] }));
    let merge = Diff {
        merge_patch: Some(MergePatch::Json(json!({ "a": deep.clone() }))),
        ..Diff::default()
    };
    let bson = Diff {
        bson_patch: Some(Box::new(BsonPatch {
            set: Some(Map::from_iter([("a".to_string(), deep.clone())])),
            ..BsonPatch::default()
        })),
        ..Diff::default()
    };
    let patch = Diff::from_patch(vec![PatchOperation::Add(json_patch::AddOperation {
        path: "/a".parse().unwrap(),
        value: deep.clone(),
    })]);
    assert!(matches!(
        apply_checked(Some(&before), &snapshot),
        Err(DiffError::TooDeep { .. })
    ));
    for diff in [merge, bson] {
        assert!(matches!(
            apply_diff(&before, &diff),
            Err(DiffError::TooDeep { .. })
        ));
    }
    assert!(matches!(
        apply_diff(&before, &patch),
        Err(DiffError::InvalidPatch { index: 0, .. })
    ));
    // A document already too deep is refused as a start.
    assert!(matches!(
        apply_diff(&json!([deep]), &Diff::from_patch(vec![])),
        Err(DiffError::TooDeep { .. })
    ));
}

#[test]
fn a_null_diff_member_counts_as_absent() {
    // Section 1: the seed's Go server writes nil members as null (a nil []byte mergePatch beside a
    // bsonPatch): each member of a Diff that is null is read as absent.
    let before = json!({"a": 0});
    let with_bson = update(json!({"mergePatch": null, "bsonPatch": {"set": {"a": 1}}}));
    assert_eq!(
        apply_checked(Some(&before), &with_bson).unwrap().document,
        Some(json!({"a": 1}))
    );
    let with_json_patch =
        update(json!({"patch": null, "jsonPatch": [{"op": "replace", "path": "/a", "value": 2}]}));
    assert_eq!(
        apply_checked(Some(&before), &with_json_patch)
            .unwrap()
            .document,
        Some(json!({"a": 2}))
    );
    // Every member null: no known format, so the whole document must be in the metadata.
    let all_null = event(
        "update",
        json!({"patch": null, "jsonPatch": null, "mergePatch": null, "bsonPatch": null, "hasChanges": null}),
        json!({"data": "{\"a\": 3}"}),
    );
    assert_eq!(
        apply_checked(Some(&before), &all_null).unwrap().document,
        Some(json!({"a": 3}))
    );
}

#[test]
fn diffs_read_the_same_from_text_and_from_values() {
    for text in [
        r#"{"patch":[{"op":"add","path":"/a","value":{"b":[1,null]}},{"op":"move","from":"/a","path":"/c"}],"zz":[1]}"#,
        r#"{"patch":null,"jsonPatch":[{"op":"remove","path":"/x"}],"hasChanges":true}"#,
        r#"{"patch":[],"patch":[{"op":"test","path":"","value":1}]}"#,
        r#"{"mergePatch":{"a":null},"version":2,"bsonPatch":null}"#,
        r#"{}"#,
    ] {
        let from_text: Diff = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        let from_value: Diff = serde_json::from_value(value).unwrap();
        assert_eq!(from_text, from_value, "{text}");
    }
    for bad in [
        r#"{"patch":[{"op":"nope","path":"/a"}]}"#,
        r#"{"patch":{}}"#,
        r#"{"jsonPatch":[{"op":"add","path":"a","value":1}]}"#,
        r#"{"hasChanges":1}"#,
        r#"[]"#,
    ] {
        assert!(serde_json::from_str::<Diff>(bad).is_err(), "{bad}");
        let value: Value = serde_json::from_str(bad).unwrap();
        assert!(serde_json::from_value::<Diff>(value).is_err(), "{bad}");
    }
}
