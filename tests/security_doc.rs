//! Keeps `docs/SECURITY.md` honest: every test its threat table names exists (a `#[test]` or
//! `#[tokio::test]` function of that name in that file), and every threat names one.

use std::path::Path;

/// The rows of the table under `## Threats considered`, as their cells.
fn threat_rows(markdown: &str) -> Vec<Vec<String>> {
    let section = markdown
        .split("## Threats considered")
        .nth(1)
        .expect("a Threats considered section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and its separator
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

/// Whether `source` defines a test function `name`.
fn defines_test(source: &str, name: &str) -> bool {
    let signature = format!("fn {name}(");
    source.match_indices(&signature).any(|(at, _)| {
        let before = &source[..at];
        let attributes = &before[before.len().saturating_sub(200)..];
        attributes.contains("#[test]") || attributes.contains("#[tokio::test")
    })
}

#[test]
fn every_test_the_threat_table_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).expect("docs/SECURITY.md");
    let rows = threat_rows(&doc);
    assert!(rows.len() >= 25, "only {} threats in the table", rows.len());
    let mut named = 0;
    let mut missing = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), 4, "a row has 4 cells: {row:?}");
        let tests: Vec<&str> = row[3]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| s.contains("::"))
            .collect();
        assert!(!tests.is_empty(), "threat without a test: {}", row[0]);
        for test in tests {
            let (file, name) = test.rsplit_once("::").unwrap();
            named += 1;
            match std::fs::read_to_string(root.join(file)) {
                Ok(source) if defines_test(&source, name) => {}
                Ok(_) => missing.push(format!("{file} has no test {name}")),
                Err(e) => missing.push(format!("{file}: {e}")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/SECURITY.md names tests that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(named >= 40, "only {named} tests named");
}
