//! The public RFC 6902 conformance suite (npm `json-patch-test-suite` 1.1.0) through
//! `eventsync::diff::apply_patch`.
//!
//! Fetch the suite first with `scripts/fetch-json-patch-suite.sh`; it lands in
//! `.cache/json-patch-test-suite/` (or set `JSON_PATCH_TEST_SUITE` to a directory holding
//! `tests.json` and `spec_tests.json`). Missing files fail the test: conformance is not optional.

use std::path::PathBuf;

use eventsync::diff::apply_patch;
use json_patch::PatchOperation;
use serde_json::Value;

fn suite_dir() -> PathBuf {
    match std::env::var_os("JSON_PATCH_TEST_SUITE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/json-patch-test-suite"),
    }
}

fn load(name: &str) -> Vec<Value> {
    let path = suite_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run scripts/fetch-json-patch-suite.sh \
             (or set JSON_PATCH_TEST_SUITE to a directory holding it)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Default, PartialEq)]
struct Tally {
    run: usize,
    disabled: usize,
    rejected: usize,
    expected: usize,
}

/// Runs every case of `name`; returns the tally and a description of every failing case.
fn run_suite(name: &str) -> (Tally, Vec<String>) {
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for (i, case) in load(name).iter().enumerate() {
        if case.get("disabled") == Some(&Value::Bool(true)) {
            tally.disabled += 1;
            continue;
        }
        tally.run += 1;
        let label = format!(
            "{name}[{i}] {}",
            case.get("comment").and_then(Value::as_str).unwrap_or("")
        );
        let Some(original) = case.get("doc") else {
            failures.push(format!("{label}: no doc"));
            continue;
        };
        let mut doc = original.clone();
        // A patch that does not parse is rejected: it never reaches the document.
        let result = serde_json::from_value::<Vec<PatchOperation>>(case["patch"].clone())
            .map_err(|e| e.to_string())
            .and_then(|ops| apply_patch(&mut doc, &ops).map_err(|e| e.to_string()));
        if let Some(error) = case.get("error") {
            tally.rejected += 1;
            if result.is_ok() {
                failures.push(format!("{label}: accepted, expected error {error}: {doc}"));
            } else if &doc != original {
                failures.push(format!("{label}: rejected but changed the document: {doc}"));
            }
        } else if let Some(expected) = case.get("expected") {
            tally.expected += 1;
            match result {
                Ok(()) if &doc == expected => {}
                Ok(()) => failures.push(format!("{label}: got {doc}, expected {expected}")),
                Err(e) => failures.push(format!("{label}: rejected ({e}), expected {expected}")),
            }
        } else if let Err(e) = result {
            failures.push(format!("{label}: rejected ({e}), expected success"));
        }
    }
    (tally, failures)
}

#[test]
fn json_patch_test_suite_tests_json() {
    let (tally, failures) = run_suite("tests.json");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        tally,
        Tally {
            run: 75,
            disabled: 3,
            rejected: 19,
            expected: 50
        }
    );
}

#[test]
fn json_patch_test_suite_spec_tests_json() {
    let (tally, failures) = run_suite("spec_tests.json");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        tally,
        Tally {
            run: 16,
            disabled: 1,
            rejected: 4,
            expected: 12
        }
    );
}
