//! A small command-line client: read, edit or watch a document on an eventsync server.
//!
//! ```sh
//! cargo run -p eventsync-server --bin eventsync-demo -- --keep-serving   # a server, in another terminal
//! cargo run --example cli -- --document shopping create '{"items": []}'
//! cargo run --example cli -- --document shopping set /items/- '{"id": "milk", "text": "milk", "done": false}'
//! cargo run --example cli -- --document shopping show
//! cargo run --example cli -- --document shopping watch
//! ```

use std::time::Duration;

use clap::{Parser, Subcommand};
use eventsync::{SessionEvent, SyncClient};
use futures::StreamExt;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Reads, edits or watches one eventsync document")]
struct Args {
    /// The server's WebSocket base URL.
    #[arg(long, env = "EVENTSYNC_SERVER", default_value = "ws://127.0.0.1:8080")]
    server: String,
    /// The document.
    #[arg(long)]
    document: String,
    /// This client's id (default: a new random one).
    #[arg(long)]
    client: Option<String>,
    /// An access token, when the server requires one.
    #[arg(long, env = "EVENTSYNC_TOKEN")]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the document.
    Show,
    /// Creates the document with this JSON.
    Create { json: String },
    /// Sets the value at a JSON Pointer (`-` appends to an array).
    Set { pointer: String, json: String },
    /// Removes the value at a JSON Pointer.
    Remove { pointer: String },
    /// Applies an RFC 6902 patch.
    Patch { json: String },
    /// Deletes the document.
    Delete,
    /// Prints every change until Ctrl-C.
    Watch,
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}: {text}"))
}

/// Errors print as the sentences they are (`Display`), not as Rust values.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = SyncClient::builder(&args.server, &args.document);
    if let Some(client) = &args.client {
        builder = builder.client_id(client);
    }
    if let Some(token) = &args.token {
        builder = builder.token(token);
    }
    let client = builder.connect()?;
    tokio::time::timeout(Duration::from_secs(10), client.sync_state())
        .await
        .map_err(|_| format!("no answer from {} within 10 s", args.server))??;
    let patch = |v: Value| -> Result<Vec<json_patch::PatchOperation>, String> {
        serde_json::from_value(v).map_err(|e| format!("not an RFC 6902 patch: {e}"))
    };
    match args.command {
        Command::Show => {}
        Command::Create { json } => {
            client.create(parse(&json)?)?;
        }
        Command::Set { pointer, json } => {
            client.edit(patch(
                json!([{"op": "add", "path": pointer, "value": parse(&json)?}]),
            )?)?;
        }
        Command::Remove { pointer } => {
            client.edit(patch(json!([{"op": "remove", "path": pointer}]))?)?;
        }
        Command::Patch { json } => {
            client.edit(patch(parse(&json)?)?)?;
        }
        Command::Delete => {
            client.delete()?;
        }
        Command::Watch => {
            println!("{}", client.document().unwrap_or(Value::Null));
            let mut events = client.events();
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(SessionEvent::Applied { event, .. }) => {
                            println!("#{} by {}: {}", event.sequence_num, event.client_id, client.document().unwrap_or(Value::Null));
                        }
                        Some(SessionEvent::Status(status)) => eprintln!("({status:?})"),
                        Some(SessionEvent::Reconnecting { reason, retry_in_ms }) => {
                            eprintln!("(reconnecting in {} ms: {reason})", retry_in_ms)
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(10), client.flush())
        .await
        .map_err(|_| "the server did not acknowledge the edit within 10 s")??;
    println!("{}", client.document().unwrap_or(Value::Null));
    client.close().await;
    Ok(())
}
