//! PostgreSQL's change feed: what other servers on the same database append reaches this one,
//! and the feed recovers from a lost connection.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let listening = backend.open().await;
    let writer = backend.open().await;
    let doc = unique("feed");
    let mut rx = listening
        .changes()
        .await
        .unwrap()
        .expect("PostgreSQL has a change feed");

    writer
        .append(
            &doc,
            0,
            &[event(&doc, 1, "a", Some(1))],
            Some(&json!({"v": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx, &doc).await,
        StoreChange::Appended {
            document_id: doc.clone(),
            head_seq: 1,
        }
    );

    // Appends (also of several events, also deletes), snapshots and compaction are not
    // "written directly": the next change about the document is the next append.
    writer
        .append(
            &doc,
            1,
            &[event(&doc, 2, "a", Some(2)), event(&doc, 3, "b", Some(1))],
            None,
        )
        .await
        .unwrap();
    writer
        .save_snapshot(&Snapshot {
            document_id: doc.clone(),
            sequence_num: 3,
            document: None,
            vector_clock: vector(&[("a", 2), ("b", 3)]),
        })
        .await
        .unwrap();
    writer.compact(&doc, 3).await.unwrap();
    writer
        .append(
            &doc,
            3,
            &[event(&doc, 4, "a", Some(3))],
            Some(&json!({"v": 4})),
        )
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx, &doc).await,
        StoreChange::Appended {
            document_id: doc.clone(),
            head_seq: 3,
        }
    );
    assert_eq!(
        next_change(&mut rx, &doc).await,
        StoreChange::Appended {
            document_id: doc.clone(),
            head_seq: 4,
        }
    );

    // Plain SQL from another program: DocumentWritten (notifications arrive in commit order,
    // so nothing else about the document came between).
    let pool = sqlx::PgPool::connect(&backend.url).await.unwrap();
    sqlx::query(r#"UPDATE documents SET body = '{"x":1}' WHERE document_id = $1"#)
        .bind(&doc)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx, &doc).await,
        StoreChange::DocumentWritten {
            document_id: doc.clone(),
        }
    );
    assert_eq!(
        listening.head(&doc).await.unwrap().document,
        Some(json!({"x": 1}))
    );
    // Writing the same body again changes nothing: no notification; the append after it is
    // the next change.
    sqlx::query(r#"UPDATE documents SET body = '{"x":1}' WHERE document_id = $1"#)
        .bind(&doc)
        .execute(&pool)
        .await
        .unwrap();
    writer
        .append(
            &doc,
            4,
            &[event(&doc, 5, "a", Some(4))],
            Some(&json!({"v": 5})),
        )
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx, &doc).await,
        StoreChange::Appended {
            document_id: doc.clone(),
            head_seq: 5,
        }
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_survives_a_lost_connection() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    // A database of its own, so that killing its listener disturbs no other test.
    let admin = sqlx::PgPool::connect(&backend.url).await.unwrap();
    let database = unique("feed_reconnect").replace('-', "_");
    sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = backend.url.rsplit_once('/').expect("a database in the URL");
    let own = Backend {
        url: format!("{base}/{database}"),
        _dir: None,
    };
    let store = own.open().await;
    let doc = unique("feed-reconnect");
    let mut rx = store.changes().await.unwrap().expect("a change feed");

    let killed: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&database)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "one listener connection");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(killed[0])
        .execute(&admin)
        .await
        .unwrap();

    // Appends made while the feed reconnects are missed; keep appending until one arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut head = 0;
    loop {
        assert!(Instant::now() < deadline, "the change feed did not recover");
        store
            .append(
                &doc,
                head,
                &[event(&doc, head + 1, "a", None)],
                Some(&json!({})),
            )
            .await
            .unwrap();
        head += 1;
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(StoreChange::Appended {
                document_id,
                head_seq,
            })) => {
                assert_eq!(document_id, doc);
                assert!(head_seq <= head);
                break;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => continue,
        }
    }
    drop(rx);
    drop(store);
    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
}
