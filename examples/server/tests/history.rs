//! Document history against a real server on SQLite (`docs/PROTOCOL.md` 3.9, 12.4, 18.8): the
//! document as of any position over HTTP and version 2, positions compaction removed, and
//! paging. The same scenario runs on PostgreSQL in `postgres_history.rs`.

mod support;

use support::{history, unique, TestServer};

#[tokio::test]
async fn versions_and_history_pages_over_http_and_websocket() {
    let server = TestServer::start_with(history::configure).await;
    history::check(&server, &unique("history")).await;
}
