//! Document history against a real server on PostgreSQL: the scenario of `history.rs`.
//!
//! Needs `EVENTSYNC_TEST_POSTGRES_URL` (run under `scripts/with-postgres.sh`), unless
//! `EVENTSYNC_SKIP_POSTGRES=1` is set (quick local runs only).

mod support;

use support::{history, unique, TestServer};

#[tokio::test]
async fn versions_and_history_pages_over_http_and_websocket_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let server = TestServer::start_on(&url, history::configure).await;
    history::check(&server, &unique("pg-history")).await;
}
