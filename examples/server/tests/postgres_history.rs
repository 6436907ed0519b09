//! Document history against a real server on PostgreSQL: the scenario of `history.rs`.
//!
//! Needs `EVENTSYNC_TEST_POSTGRES_URL` (run under `scripts/with-postgres.sh`), unless
//! `EVENTSYNC_SKIP_POSTGRES=1` is set (quick local runs only).

mod support;

use support::{history, unique, TestServer};

fn postgres_url() -> Option<String> {
    match std::env::var("EVENTSYNC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("EVENTSYNC_SKIP_POSTGRES").as_deref() == Ok("1") => None,
        _ => panic!(
            "EVENTSYNC_TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh, or set \
             EVENTSYNC_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    }
}

#[tokio::test]
async fn versions_and_history_pages_over_http_and_websocket_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let server = TestServer::start_on(&url, history::configure).await;
    history::check(&server, &unique("pg-history")).await;
}
