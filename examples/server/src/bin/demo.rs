//! `eventsync-demo`: the reference server on its embedded SQLite default, and two native
//! clients that edit one document online and offline and converge.
//!
//! `cargo run -p eventsync-server --bin eventsync-demo` (add `-- --keep-serving` to leave the
//! server running afterwards, for `eventsync-cli` or your own clients, and `--static-dir
//! examples/web-demo` to serve the browser demo too: `scripts/run.sh` does both, and keeps serving).

use std::time::Duration;

use clap::Parser;
use eventsync::native::Backoff;
use eventsync::{SessionEvent, SyncClient};
use eventsync_server::app::{self, Config};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Starts the reference server and shows two clients converging")]
struct Args {
    /// Where the server listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The server's database.
    #[arg(long, default_value = "sqlite:./eventsync-demo.db")]
    database: String,
    /// Keep the server running after the demo (Ctrl-C stops it).
    #[arg(long)]
    keep_serving: bool,
    /// Serve this folder at `/` (the web demo: `examples/web-demo`, after `scripts/build-wasm.sh`).
    #[arg(long)]
    static_dir: Option<std::path::PathBuf>,
}

fn patch(v: Value) -> Vec<json_patch::PatchOperation> {
    serde_json::from_value(v).expect("valid patch")
}

fn show(label: &str, alice: &SyncClient, bob: &SyncClient) {
    println!("\n{label}");
    for (name, client) in [("alice", alice), ("bob", bob)] {
        println!(
            "  {name:<5} {} (pending {}, at sequenceNum {})",
            client.document().unwrap_or(Value::Null),
            client.pending_count(),
            client.applied_seq()
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = Config::for_database(args.database.clone());
    config.listen = args.listen;
    config.static_dir = args.static_dir.clone();
    let server = app::start(&config).await?;
    let url = format!("ws://{}", server.addr);
    println!(
        "eventsync-server on http://{} ({})",
        server.addr, args.database
    );
    let document = format!("demo-{}", std::process::id());
    let fast = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    let alice = SyncClient::builder(&url, &document)
        .client_id("alice")
        .backoff(fast)
        .connect()?;
    // Bob keeps his offline queue in a store, so that it survives his app being closed.
    let bob_store = eventsync::queue::MemoryStore::new();
    let bob = SyncClient::builder(&url, &document)
        .client_id("bob")
        .store(bob_store.clone())
        .backoff(fast)
        .connect()?;
    bob.on_event(|event| {
        if let SessionEvent::Conflict { conflict, .. } = event {
            println!(
                "  bob resolves a conflict: {:?} at {}",
                conflict.kind, conflict.path
            );
        }
    });
    alice.create(json!({"title": "groceries", "items": ["milk"]}))?;
    alice.flush().await?;
    bob.sync_state().await?;
    show("alice created the list; bob caught up:", &alice, &bob);

    // Both edit at once: two inserts at the front, and the same field.
    alice.edit(patch(
        json!([{"op": "add", "path": "/items/0", "value": "eggs"}]),
    ))?;
    bob.edit(patch(
        json!([{"op": "add", "path": "/items/0", "value": "bread"}]),
    ))?;
    alice.update(|doc| doc["title"] = json!("alice's groceries"))?;
    bob.update(|doc| doc["title"] = json!("bob's groceries"))?;
    show(
        "both edited at once (before the server answered):",
        &alice,
        &bob,
    );
    for client in [&alice, &bob] {
        client.flush().await?;
        client.sync_state().await?;
    }
    show(
        "after sync: both inserts kept, one title by the conflict policy:",
        &alice,
        &bob,
    );

    // Bob goes offline and edits; his app closes; alice edits meanwhile.
    bob.close().await;
    bob.edit(patch(json!([{"op": "remove", "path": "/items/0"}])))?;
    bob.edit(patch(
        json!([{"op": "add", "path": "/items/-", "value": "apples"}]),
    ))?;
    drop(bob);
    alice.edit(patch(
        json!([{"op": "add", "path": "/items/-", "value": "tea"}]),
    ))?;
    alice.flush().await?;
    // Bob's app starts again: his offline edits come back from the store and are sent.
    let bob = SyncClient::builder(&url, &document)
        .store(bob_store)
        .backoff(fast)
        .connect()?;
    println!(
        "
bob restarts with {} offline edits from his store",
        bob.pending_count()
    );
    for client in [&alice, &bob] {
        client.flush().await?;
        client.sync_state().await?;
    }
    show(
        "after bob's offline edits and alice's online one:",
        &alice,
        &bob,
    );
    let converged = alice.document() == bob.document();
    println!("\nconverged: {converged}");
    alice.close().await;
    bob.close().await;
    let web_demo = format!("http://{}/?doc=todo", server.addr);
    if args.keep_serving {
        println!(
            "serving on ws://{}/sync/{{documentId}}; Ctrl-C to stop",
            server.addr
        );
        if args.static_dir.is_some() {
            println!("\nthe web demo: open {web_demo} in two browser windows");
        }
        tokio::signal::ctrl_c().await?;
    } else if args.static_dir.is_some() {
        println!("\nthe web demo ({web_demo}) needs the server running: add --keep-serving");
    }
    server.shutdown(Duration::from_secs(5)).await;
    if converged {
        Ok(())
    } else {
        Err("the clients did not converge".into())
    }
}
