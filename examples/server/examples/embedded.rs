//! An application that embeds the eventsync server: its own axum routes beside eventsync's, its
//! own login (a header its reverse proxy sets), and its own rule on what may enter a document.
//!
//! It takes every flag of `eventsync-server` (`--listen`, `--database`, `--schema`, ...):
//!
//! ```text
//! cargo run -p eventsync-server --example embedded -- --listen 127.0.0.1:8090
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use clap::Parser;
use eventsync::protocol::Event;
use eventsync_server::auth::{Claims, Rights};
use eventsync_server::{
    Authentication, Config, EditContext, Hooks, Refusal, SchemaRule, ServerBuilder,
};
use serde_json::{json, Value};

/// The application's rules.
struct TodoRules;

#[eventsync_server::async_trait]
impl Hooks for TodoRules {
    /// The reverse proxy in front of the app sets `x-user` after its own login; requests
    /// without it fall back to eventsync's tokens (or to anyone, without `--auth-secret`).
    async fn authenticate(&self, request: &Authentication<'_>) -> Result<Option<Claims>, Refusal> {
        let Some(user) = request.headers.get("x-user") else {
            return Ok(None);
        };
        let user = user
            .to_str()
            .map_err(|_| Refusal::unauthorized("x-user is not text"))?;
        Ok(Some(Claims {
            document_id: format!("{user}-*"),
            client_id: user.to_owned(),
            rights: Rights::Write,
            exp: u64::MAX / 2000,
        }))
    }

    /// At most 100 items per list, checked before anything is appended.
    fn check_edit(&self, edit: &EditContext<'_>) -> Result<(), Refusal> {
        let items = edit.after.and_then(|doc| doc["items"].as_array());
        match items {
            Some(items) if items.len() > 100 => {
                Err(Refusal::invalid("a list holds 100 items at most"))
            }
            _ => Ok(()),
        }
    }

    /// Every committed event, for the app's own audit log.
    fn committed(&self, event: &Event) {
        tracing::info!(document = %event.document_id, seq = event.sequence_num, by = %event.client_id, "committed");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let config = Config::parse();
    let schema: Value = json!({
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["text"]}}}
    });
    let server = ServerBuilder::new(config.clone())
        .hooks(TodoRules)
        .schema(SchemaRule::new("*", &schema)?)
        .build()
        .await?;
    // eventsync's routes (`/sync`, `/api/...`) beside the application's own.
    let app = Router::new()
        .route("/app/version", get(|| async { "todo app 1.0" }))
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    println!("todo app listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    server.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
