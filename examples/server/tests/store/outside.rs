//! Backend-specific behaviour: writes by other programs reported as changes, and the errors of
//! opening a store.

use super::*;

#[tokio::test]
async fn sqlite_bad_path_is_an_open_error() {
    let dir = TempDir::new("bad-path");
    let url = format!(
        "sqlite:{}",
        dir.0
            .join("missing")
            .join("deeper")
            .join("store.db")
            .display()
    );
    match store::open(&url).await {
        Err(StoreError::Open {
            url: reported,
            reason,
        }) => {
            assert_eq!(reported, url);
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected Open, got {other}"),
        Ok(_) => panic!("opened {url}"),
    }
}

/// The next change about `doc` that is not an append.
async fn next_outside_write(rx: &mut mpsc::Receiver<StoreChange>, doc: &str) -> StoreChange {
    loop {
        let change = next_change(rx, doc).await;
        if !matches!(change, StoreChange::Appended { .. }) {
            return change;
        }
    }
}

/// docs/PROTOCOL.md section 17 on both backends: what another program may write to `documents`
/// is reported, and a DELETE of a row leaves the row (the log's head) with no body.
async fn outside_writes_are_reported(backend: Backend) {
    let store = backend.open().await;
    let mut rx = store.changes().await.unwrap().expect("a change feed");
    let doc = unique("outside");
    let written = || StoreChange::DocumentWritten {
        document_id: doc.clone(),
    };
    store
        .append(
            &doc,
            0,
            &[event(&doc, 1, "a", Some(1))],
            Some(&json!({"v": 1})),
        )
        .await
        .unwrap();
    let sql = other_program(&backend.url).await;
    run_sql(
        &sql,
        &format!(r#"UPDATE documents SET body = '{{"x":1}}' WHERE document_id = '{doc}'"#),
    )
    .await
    .unwrap();
    assert_eq!(next_outside_write(&mut rx, &doc).await, written());
    assert_eq!(
        store.head(&doc).await.unwrap().document,
        Some(json!({"x": 1}))
    );
    // DELETE is read as `body = NULL`: the row keeps its head, so the log goes on.
    run_sql(
        &sql,
        &format!("DELETE FROM documents WHERE document_id = '{doc}'"),
    )
    .await
    .unwrap();
    assert_eq!(next_outside_write(&mut rx, &doc).await, written());
    let head = store.head(&doc).await.unwrap();
    assert_eq!((head.head_seq, head.document), (1, None));
    // The server's own appends are not outside writes.
    store
        .append(
            &doc,
            1,
            &[event(&doc, 2, "a", Some(2))],
            Some(&json!({"v": 2})),
        )
        .await
        .unwrap();
    // A new row for a document the log never had, with head 0.
    let fresh = unique("outside-new");
    run_sql(
        &sql,
        &format!(
            r#"INSERT INTO documents (document_id, body, head_seq, vector) VALUES ('{fresh}', '{{"n":1}}', 0, '{{}}')"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        next_outside_write(&mut rx, &fresh).await,
        StoreChange::DocumentWritten {
            document_id: fresh.clone()
        }
    );
    // The append of event 2 came before the insert: nothing else about `doc` was reported.
    assert!(tokio::time::timeout(
        Duration::from_millis(600),
        next_outside_write(&mut rx, &doc)
    )
    .await
    .is_err());
    sql.close().await;
}

#[tokio::test]
async fn sqlite_reports_outside_writes() {
    outside_writes_are_reported(Backend::sqlite("outside")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reports_outside_writes_and_refuses_truncate() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let url = backend.url.clone();
    outside_writes_are_reported(backend).await;
    // TRUNCATE would lose every log's head: refused (in a transaction rolled back anyway).
    let sql = other_program(&url).await;
    let mut tx = sql.begin().await.unwrap();
    let err = sqlx::raw_sql("TRUNCATE documents")
        .execute(&mut *tx)
        .await
        .expect_err("TRUNCATE documents is refused");
    assert!(err.to_string().contains("cannot be truncated"), "{err}");
    drop(tx);
    sql.close().await;
}

#[tokio::test]
async fn unknown_scheme_is_an_open_error() {
    assert!(matches!(
        store::open("mysql://localhost/x").await,
        Err(StoreError::Open { .. })
    ));
}

#[tokio::test]
async fn postgres_closed_port_is_a_quick_open_error() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/eventsync_test");
    let started = Instant::now();
    let result = store::open(&url).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    match result {
        Err(StoreError::Open {
            url: reported,
            reason,
        }) => {
            assert!(!reported.contains("secret"), "{reported}");
            assert!(
                reported.contains(&format!("127.0.0.1:{port}")),
                "{reported}"
            );
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected Open, got {other}"),
        Ok(_) => panic!("opened {url}"),
    }
}
