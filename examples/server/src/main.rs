//! `eventsync-server`: see `--help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use eventsync_server::app::{self, Config, StartError};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let server = match app::start(&config).await {
        Ok(server) => server,
        Err(err @ (StartError::Store(_) | StartError::Config(_))) => {
            eprintln!("eventsync-server: {err}");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("eventsync-server: {err}");
            return ExitCode::from(3);
        }
    };
    println!("eventsync-server listening on http://{}", server.addr);
    wait_for_signal().await;
    tracing::info!("shutting down: draining connections");
    server.shutdown(Duration::from_secs(10)).await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
