//! `eventsync-conformance --url http://host:port [--token T --client-id C] [--read-token R]
//! [--presence-timeout-ms N] [--refused-member NAME] [--json]`

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use eventsync_conformance::{render, run, Options, Outcome};

/// Checks a live eventsync server against docs/PROTOCOL.md.
#[derive(Debug, Parser)]
#[command(name = "eventsync-conformance", version, about)]
struct Args {
    /// The server's base URL (`http://host:port`, optionally with a path prefix).
    #[arg(long, env = "EVENTSYNC_CONFORMANCE_URL")]
    url: String,
    /// A valid token that may write every document. Turns the authentication checks on.
    #[arg(long, env = "EVENTSYNC_CONFORMANCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The clientId the token names (every connection then uses it).
    #[arg(long, default_value = "conformance")]
    client_id: String,
    /// Fail, rather than skip, the snapshot check when the server keeps its whole history
    /// (start the server so that it compacts after a few dozen events).
    #[arg(long)]
    expect_snapshots: bool,
    /// The server keeps every event (the reference server's default): a page of events must
    /// never start with a snapshot (12.2).
    #[arg(long, conflicts_with = "expect_snapshots")]
    retains_history: bool,
    /// A valid token that may only read every document and names `--read-client-id`: with
    /// `--token`, the presence checks get a second clientId and the read-only check runs.
    #[arg(long, env = "EVENTSYNC_CONFORMANCE_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// The clientId `--read-token` names.
    #[arg(long, default_value = "conformance-reader")]
    read_client_id: String,
    /// The server's presence timeout, in milliseconds (the reference server's
    /// `--presence-timeout` times 1000). Turns the presence timeout check on.
    #[arg(long)]
    presence_timeout_ms: Option<u64>,
    /// The largest presence state the server takes, in bytes of compact JSON.
    #[arg(long, default_value_t = eventsync::protocol::MAX_PRESENCE_BYTES)]
    max_presence_bytes: usize,
    /// A top-level member the server's rules refuse in every document (PROTOCOL.md 11.1; the
    /// reference server with `--schema '*=F'`, F `{"not": {"required": ["NAME"]}}`). Turns the
    /// rules check on.
    #[arg(long)]
    refused_member: Option<String>,
    /// Bound on every network wait, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Run only these check numbers (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
    /// Print a JSON array of results instead of the table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        url: args.url,
        token: args.token,
        client_id: args.client_id,
        expect_snapshots: args.expect_snapshots,
        retains_history: args.retains_history,
        read_token: args.read_token,
        read_client_id: args.read_client_id,
        presence_timeout: args.presence_timeout_ms.map(Duration::from_millis),
        max_presence_bytes: args.max_presence_bytes,
        refused_member: args.refused_member,
        timeout: Duration::from_secs(args.timeout.max(1)),
        only: args.only,
    };
    let results = run(&options).await;
    if args.json {
        let rows: Vec<_> = results.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        print!("{}", render(&results));
    }
    if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Fail(_)))
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
