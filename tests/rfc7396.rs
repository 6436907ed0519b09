//! Every example of RFC 7396 Appendix A through `eventsync::diff::apply_diff`, with `mergePatch`
//! as JSON and as base64 (the seed's Go server form).

use base64::Engine as _;
use eventsync::diff::{apply_diff, Diff, MergePatch};
use serde_json::{json, Value};

/// RFC 7396 Appendix A: (original, patch, result).
fn examples() -> Vec<(Value, Value, Value)> {
    vec![
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ]
}

fn merge_diff(patch: MergePatch) -> Diff {
    Diff {
        merge_patch: Some(patch),
        ..Diff::default()
    }
}

#[test]
fn appendix_a_has_fifteen_examples() {
    assert_eq!(examples().len(), 15);
}

#[test]
fn appendix_a_with_the_merge_patch_as_json() {
    for (original, patch, result) in examples() {
        let diff = merge_diff(MergePatch::Json(patch.clone()));
        assert_eq!(
            apply_diff(&original, &diff).unwrap(),
            result,
            "{original} + {patch}"
        );
        // Over the wire too, except the two patches JSON cannot carry as themselves: `null` means
        // "no mergePatch" and a string is read as base64.
        if !patch.is_null() && !patch.is_string() {
            let wire: Diff = serde_json::from_value(json!({ "mergePatch": patch })).unwrap();
            assert_eq!(wire, diff);
            assert_eq!(
                apply_diff(&original, &wire).unwrap(),
                result,
                "{original} + {patch}"
            );
        }
    }
}

#[test]
fn appendix_a_with_the_merge_patch_as_base64() {
    for (original, patch, result) in examples() {
        let text = serde_json::to_string(&patch).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        let wire: Diff = serde_json::from_value(json!({ "mergePatch": encoded })).unwrap();
        assert_eq!(wire.merge_patch, Some(MergePatch::Base64(encoded)));
        assert_eq!(
            apply_diff(&original, &wire).unwrap(),
            result,
            "{original} + {patch}"
        );
    }
}
