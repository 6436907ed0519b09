//! [`shape`]: known array indices and object keys, `-`, `move` and `copy`, errors, escaping.

use super::*;

// ---------------------------------------------------------------- shape

#[test]
fn shape_records_array_and_object_parents() {
    let s = json!({"0": "zero", "arr": [10, 20], "obj": {"k": 1}});
    let shaped = sh(
        &s,
        json!([
            {"op": "replace", "path": "/0", "value": "z"},
            {"op": "replace", "path": "/arr/0", "value": 11},
            {"op": "remove", "path": "/arr/1"},
            {"op": "test", "path": "/arr/0", "value": 11},
            {"op": "add", "path": "/obj/n", "value": 2},
            {"op": "add", "path": "/arr/0", "value": 9},
        ]),
    );
    assert_eq!(
        shaped,
        vec![
            op(OpKind::Replace, &["0"], Some(json!("z")), false),
            op(OpKind::Replace, &["arr", "0"], Some(json!(11)), true),
            op(OpKind::Remove, &["arr", "1"], None, true),
            op(OpKind::Test, &["arr", "0"], Some(json!(11)), true),
            op(OpKind::Add, &["obj", "n"], Some(json!(2)), false),
            op(OpKind::Add, &["arr", "0"], Some(json!(9)), true),
        ]
    );
}

#[test]
fn shape_turns_append_dash_into_the_array_length() {
    let s = json!({"arr": [1, 2, 3], "o": {}});
    let shaped = sh(
        &s,
        json!([
            {"op": "add", "path": "/arr/-", "value": 4},
            {"op": "add", "path": "/arr/-", "value": 5},
            {"op": "add", "path": "/o/-", "value": "key named dash"},
        ]),
    );
    assert_eq!(shaped[0].path, vec!["arr", "3"]);
    assert_eq!(shaped[1].path, vec!["arr", "4"]);
    assert!(shaped[0].in_array && shaped[1].in_array);
    // In an object `-` is a plain key.
    assert_eq!(shaped[2].path, vec!["o", "-"]);
    assert!(!shaped[2].in_array);
    assert_eq!(
        apply(&s, &shaped),
        json!({"arr": [1, 2, 3, 4, 5], "o": {"-": "key named dash"}})
    );
}

#[test]
fn shape_decomposes_move_and_copy() {
    let s = json!({"arr": ["a", "b", "c"], "o": {"x": {"deep": 1}}});
    let raw = ops(json!([
        {"op": "move", "from": "/arr/0", "path": "/arr/-"},
        {"op": "move", "from": "/o/x", "path": "/o/y"},
        {"op": "copy", "from": "/o/y", "path": "/arr/1"},
    ]));
    let shaped = shape(&s, &raw).unwrap();
    assert_eq!(
        shaped,
        vec![
            op(OpKind::Remove, &["arr", "0"], None, true),
            // After the removal the array has two elements: append at 2.
            op(OpKind::Add, &["arr", "2"], Some(json!("a")), true),
            op(OpKind::Remove, &["o", "x"], None, false),
            op(OpKind::Add, &["o", "y"], Some(json!({"deep": 1})), false),
            op(OpKind::Add, &["arr", "1"], Some(json!({"deep": 1})), true),
        ]
    );
    let mut expected = s.clone();
    json_patch::patch(&mut expected, &raw).unwrap();
    assert_eq!(apply(&s, &shaped), expected);
}

#[test]
fn shape_fails_with_clear_errors() {
    let s = json!({"a": {"b": 1}, "arr": [1]});
    let err = shape(
        &s,
        &ops(json!([{"op": "add", "path": "/c", "value": 1}, {"op": "remove", "path": "/nope"}])),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ShapeError::DoesNotApply { index: 1, op: "remove", path, .. } if path == "/nope"),
        "{err}"
    );
    assert!(err.to_string().contains("operation 1"));

    let err = shape(
        &s,
        &ops(json!([{"op": "move", "from": "/a", "path": "/a/b/c"}])),
    )
    .unwrap_err();
    assert!(matches!(err, ShapeError::MoveIntoItself { index: 0, .. }));

    for bad in [
        json!([{"op": "remove", "path": "/arr/-"}]),
        json!([{"op": "replace", "path": "/arr/1", "value": 0}]),
        json!([{"op": "add", "path": "/arr/01", "value": 0}]),
        json!([{"op": "test", "path": "/a/b", "value": 2}]),
        json!([{"op": "copy", "from": "/zz", "path": "/y"}]),
        json!([{"op": "remove", "path": ""}]),
    ] {
        let raw = ops(bad.clone());
        assert!(shape(&s, &raw).is_err(), "{bad}");
        assert!(json_patch::patch(&mut s.clone(), &raw).is_err(), "{bad}");
    }
}

#[test]
fn shape_and_to_patch_escape_tokens() {
    let s = json!({"a/b": {"m~n": 1}});
    let shaped = sh(
        &s,
        json!([{"op": "replace", "path": "/a~1b/m~0n", "value": 2}]),
    );
    assert_eq!(shaped[0].path, vec!["a/b", "m~n"]);
    assert_eq!(shaped[0].pointer(), "/a~1b/m~0n");
    let back = serde_json::to_value(to_patch(&shaped)).unwrap();
    assert_eq!(
        back,
        json!([{"op": "replace", "path": "/a~1b/m~0n", "value": 2}])
    );
}

#[test]
fn shape_root_operations() {
    let s = json!({"a": 1});
    let shaped = sh(
        &s,
        json!([{"op": "replace", "path": "", "value": [1]}, {"op": "add", "path": "", "value": {"b": 2}}]),
    );
    assert_eq!(shaped[0], op(OpKind::Replace, &[], Some(json!([1])), false));
    assert_eq!(
        shaped[1],
        op(OpKind::Add, &[], Some(json!({"b": 2})), false)
    );
    assert_eq!(apply(&s, &shaped), json!({"b": 2}));
}

#[test]
fn shaped_op_serializes_in_camel_case() {
    let o = op(OpKind::Add, &["list", "0"], Some(json!(1)), true);
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        json!({"kind": "add", "path": ["list", "0"], "value": 1, "inArray": true})
    );
    assert_eq!(serde_json::from_value::<ShapedOp>(v).unwrap(), o);
    let removed = op(OpKind::Remove, &["k"], None, false);
    let v = serde_json::to_value(&removed).unwrap();
    assert_eq!(
        v,
        json!({"kind": "remove", "path": ["k"], "inArray": false})
    );
    assert_eq!(serde_json::from_value::<ShapedOp>(v).unwrap(), removed);
}
