//! The eventsync protocol conformance kit.
//!
//! Runs a numbered list of checks against a live server. Each check is written from
//! `docs/PROTOCOL.md` (the section it tests is named with it), uses only the published wire types
//! of `eventsync::protocol`, and works on documents of its own (`conf-<check>-<unique>`), so the
//! kit can run against a server that holds other data.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod checks;
mod client;

pub use checks::{checks, Check};

/// How to reach the server, and what to expect of it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL, `http://host:port` with an optional path prefix.
    pub url: String,
    /// A valid token that may write every document; when given, the auth checks run.
    pub token: Option<String>,
    /// The `clientId` the token names (with a token, every connection uses it).
    pub client_id: String,
    /// Fail, rather than skip, the snapshot check when the server retains the whole history.
    pub expect_snapshots: bool,
    /// The server keeps every event (no compaction): a page must never start with a snapshot.
    pub retains_history: bool,
    /// A valid token that may only read every document, naming `read_client_id`; when given
    /// with `token`, the presence checks run with authentication (two client ids).
    pub read_token: Option<String>,
    /// The `clientId` `read_token` names (another than `client_id`).
    pub read_client_id: String,
    /// The server's presence timeout (18.7); when given, the presence timeout check runs.
    pub presence_timeout: Option<Duration>,
    /// The largest presence state the server takes, in bytes of compact JSON (18.7).
    pub max_presence_bytes: usize,
    /// A top-level member the server's rules refuse in every document (11.1); when given, the
    /// rules check runs.
    pub refused_member: Option<String>,
    /// Bound on every network wait.
    pub timeout: Duration,
    /// Run only these check numbers (all when empty).
    pub only: Vec<u32>,
}

impl Options {
    /// Defaults for `url`: no token, `clientId` `conformance`, no presence timeout, the reference
    /// server's presence limit (4096 bytes), 10 s waits.
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            token: None,
            client_id: "conformance".into(),
            expect_snapshots: false,
            retains_history: false,
            read_token: None,
            read_client_id: "conformance-reader".into(),
            presence_timeout: None,
            max_presence_bytes: eventsync::protocol::MAX_PRESENCE_BYTES,
            refused_member: None,
            timeout: Duration::from_secs(10),
            only: Vec::new(),
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server did what the spec says.
    Pass,
    /// It did not; why.
    Fail(String),
    /// The check could not run; why.
    Skipped(String),
}

impl Outcome {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skipped(_) => "SKIP",
        }
    }

    /// The reason, empty for a pass.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(reason) | Outcome::Skipped(reason) => reason,
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's number.
    pub number: u32,
    /// Its name.
    pub name: &'static str,
    /// The section of `docs/PROTOCOL.md` it tests.
    pub section: &'static str,
    /// What happened.
    pub outcome: Outcome,
}

impl CheckResult {
    /// The row as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "number": self.number,
            "name": self.name,
            "section": self.section,
            "status": self.outcome.label().to_lowercase(),
            "reason": self.outcome.reason(),
        })
    }
}

/// A check's body: `Ok(Pass)`, `Ok(Skipped(..))`, or `Err(reason)` for a failure.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, String>> + Send + 'a>>;

/// Runs the checks (all, or those of `options.only`) one after the other.
pub async fn run(options: &Options) -> Vec<CheckResult> {
    let ctx = client::Ctx::new(options.clone());
    let mut results = Vec::new();
    for check in checks() {
        if !options.only.is_empty() && !options.only.contains(&check.number) {
            continue;
        }
        // Each check bounds its own waits; this bounds the check as a whole (the presence
        // timeout check also waits out the server's presence timeout).
        let budget = options.timeout * 6 + options.presence_timeout.unwrap_or_default();
        let outcome = match tokio::time::timeout(budget, (check.run)(&ctx)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(reason)) => Outcome::Fail(reason),
            Err(_) => Outcome::Fail(format!("did not finish within {budget:?}")),
        };
        results.push(CheckResult {
            number: check.number,
            name: check.name,
            section: check.section,
            outcome,
        });
    }
    results
}

/// The report table, one row per check and a closing summary line.
pub fn render(results: &[CheckResult]) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let line = format!(
            "{:>3}  {}  {:<width$}  ({})  {}",
            r.number,
            r.outcome.label(),
            r.name,
            r.section,
            r.outcome.reason()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&summary(results));
    out.push('\n');
    out
}

/// `conformance: P passed, F failed, S skipped`.
pub fn summary(results: &[CheckResult]) -> String {
    let count = |label: &str| {
        results
            .iter()
            .filter(|r| r.outcome.label() == label)
            .count()
    };
    format!(
        "conformance: {} passed, {} failed, {} skipped",
        count("PASS"),
        count("FAIL"),
        count("SKIP")
    )
}
