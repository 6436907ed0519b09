//! Where the SQL store ([`super::sql`]) writes: a [`Writer`], and the transaction its writes run
//! in ([`Tx`]). The SQL and the logic of every write are the store's, written once; a writer only
//! runs statements.
//!
//! - [`Writer::Pool`]: sqlx's pool (PostgreSQL, and an in-memory SQLite database, which its
//!   readers share).
//! - [`Writer::Sqlite`]: a SQLite file's one writing connection (rusqlite), on which a write runs
//!   whole, `BEGIN IMMEDIATE` to `COMMIT`, on the thread of the task that asks for it.
//!
//! Why not sqlx there: through sqlx's SQLite driver every statement is a hand-off to the
//! connection's own thread and back. An append is six of them, and a hand-off to a thread that
//! sleeps (a server between edits) is a wake-up each way; in a busy server (a fan-out to a
//! thousand subscribers) each hand-back also waits for a runtime worker behind the subscribers'
//! tasks. A submit's acknowledgement waited for all of them. Run here, it waits for the
//! statements and the `fsync` only, and the task goes on to publish and acknowledge in the same
//! poll.
//!
//! The write blocks the runtime worker it runs on for that long (the `fsync` included: about
//! 0.2 ms on a quiet disk). What may take longer, waiting for the database's write lock (held by
//! another program, up to `busy_timeout`) or for the connection (held by another write), is
//! waited for in [`tokio::task::block_in_place`], which hands the worker's other tasks to another
//! thread first. Handing them over for every write instead costs a thread wake-up and a worker
//! moving to another thread each time, and in the fan-out the acknowledgement then waits for a
//! core: measured, 3-5 ms at 200 submits a second against 1 ms run here.

use std::borrow::Cow;
use std::future::{ready, Future};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ErrorCode, OptionalExtension, ToSql};
use sqlx::any::AnyArguments;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::StoreError;

/// A statement's parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// An integer (`NULL` for `None`).
    Int(Option<i64>),
    /// Text (`NULL` for `None`); also JSON, which travels as text.
    Text(Option<&'a str>),
}

impl From<i64> for Param<'_> {
    fn from(n: i64) -> Self {
        Param::Int(Some(n))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(n: Option<i64>) -> Self {
        Param::Int(n)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Param::Text(Some(text))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(text: &'a String) -> Self {
        Param::Text(Some(text))
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Param::Text(text.as_deref())
    }
}

/// The parameters of a statement: `params![a, b]` is `&[Param::from(a), Param::from(b)]`.
macro_rules! params {
    ($($param:expr),* $(,)?) => {
        &[$($crate::store::writer::Param::from($param)),*]
    };
}
pub(crate) use params;

/// A transaction, as the store's writes use it.
pub(crate) trait Tx {
    /// Runs a statement; returns how many rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>>;

    /// The first row's integer column `column` (`None`: no row, or `NULL`).
    fn fetch_int(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        column: &str,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>>;

    /// The first row's integer column `int` and text column `text`, if there is a row.
    fn fetch_int_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        int: &str,
        text: &str,
    ) -> impl Future<Output = Result<Option<(i64, String)>, sqlx::Error>>;
}

/// Where the store writes (see the module documentation).
pub(crate) enum Writer {
    /// sqlx's pool.
    Pool(AnyPool),
    /// A SQLite file's one writing connection.
    Sqlite(Mutex<rusqlite::Connection>),
}

/// Runs `$body` (a future using the transaction `$tx`, a `&mut impl Tx`) in one transaction of
/// `$writer` begun with `$begin`, and commits it. A failure before the commit rolls it back; a
/// failed commit is [`StoreError::CommitUnknown`] (a lost answer may come after the database
/// committed). A macro, not a method: the body is a generic future over either transaction.
macro_rules! in_transaction {
    ($writer:expr, $begin:expr, |$tx:ident| $body:expr) => {{
        use $crate::store::writer::{PoolTx, SqliteTx, Writer};
        match $writer {
            Writer::Pool(pool) => {
                let mut transaction = PoolTx(pool.begin_with($begin).await?);
                let $tx = &mut transaction;
                let out = $body.await?;
                transaction
                    .0
                    .commit()
                    .await
                    .map_err($crate::store::StoreError::CommitUnknown)?;
                Ok(out)
            }
            Writer::Sqlite(connection) => {
                let mut connection = SqliteTx::lock(connection);
                let mut transaction = SqliteTx::begin(&mut connection)?;
                let $tx = &mut transaction;
                let out = futures::executor::block_on($body);
                transaction.finish(out)
            }
        }
    }};
}
pub(crate) use in_transaction;

impl Writer {
    /// Runs one statement on its own (its own transaction); returns how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        match self {
            Writer::Pool(pool) => Ok(bind(sqlx::query(sql), params)
                .execute(pool)
                .await?
                .rows_affected()),
            Writer::Sqlite(connection) => {
                let mut connection = SqliteTx::lock(connection);
                let mut transaction = SqliteTx::begin(&mut connection)?;
                // Ready when made (and the connection's guard is not to be held across an await).
                let changed = futures::executor::block_on(transaction.execute(sql, params));
                transaction.finish(changed.map_err(Into::into))
            }
        }
    }
}

/// How long a write waits for the database's write lock (another program's) before failing: the
/// `busy_timeout` of the store's other SQLite connections (`super::sqlite`).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Waits for something (a lock) in [`tokio::task::block_in_place`] on a multi-threaded runtime;
/// on a current-thread runtime (tests), which has no other worker to hand the tasks to, as it is.
fn wait<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn bind<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    params: &[Param<'q>],
) -> Query<'q, Any, AnyArguments<'q>> {
    for param in params {
        query = match *param {
            Param::Int(n) => query.bind(n),
            Param::Text(text) => query.bind(text),
        };
    }
    query
}

/// A transaction of [`Writer::Pool`].
pub(crate) struct PoolTx(pub(crate) Transaction<'static, Any>);

impl Tx for PoolTx {
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, sqlx::Error> {
        let done = bind(sqlx::query(sql), params).execute(&mut *self.0).await?;
        Ok(done.rows_affected())
    }

    async fn fetch_int(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        column: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row = bind(sqlx::query(sql), params)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row
            .map(|row| row.try_get::<Option<i64>, _>(column))
            .transpose()?
            .flatten())
    }

    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        int: &str,
        text: &str,
    ) -> Result<Option<(i64, String)>, sqlx::Error> {
        let row = bind(sqlx::query(sql), params)
            .fetch_optional(&mut *self.0)
            .await?;
        row.map(|row| Ok((row.try_get(int)?, row.try_get(text)?)))
            .transpose()
    }
}

/// A transaction of [`Writer::Sqlite`]. Its futures are ready when made: each statement runs
/// when called.
pub(crate) struct SqliteTx<'c>(&'c mut rusqlite::Connection);

impl<'c> SqliteTx<'c> {
    /// The connection, out of any transaction (one left open by a write that panicked is
    /// rolled back). Waited for (see the module documentation) while another write holds it.
    pub(crate) fn lock(
        connection: &Mutex<rusqlite::Connection>,
    ) -> MutexGuard<'_, rusqlite::Connection> {
        let connection = match connection.try_lock() {
            Ok(connection) => connection,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                wait(|| connection.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
            }
        };
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        connection
    }

    /// `BEGIN IMMEDIATE`: the database's write lock at once, or, when another program holds
    /// it, once it is free (waited for up to [`LOCK_WAIT`], see the module documentation).
    pub(crate) fn begin(connection: &'c mut rusqlite::Connection) -> Result<Self, StoreError> {
        let begin = |connection: &rusqlite::Connection| {
            let mut begin = connection.prepare_cached("BEGIN IMMEDIATE")?;
            begin.execute([]).map(drop)
        };
        // The connection's busy timeout is zero but while waiting here.
        let began = match begin(connection) {
            Err(rusqlite::Error::SqliteFailure(err, _)) if err.code == ErrorCode::DatabaseBusy => {
                wait(|| {
                    connection.busy_timeout(LOCK_WAIT)?;
                    let began = begin(connection);
                    connection.busy_timeout(Duration::ZERO)?;
                    began
                })
            }
            began => began,
        };
        began.map_err(sqlite_error)?;
        Ok(SqliteTx(connection))
    }

    /// Commits after `out` succeeded; rolls back otherwise.
    pub(crate) fn finish<T>(self, out: Result<T, StoreError>) -> Result<T, StoreError> {
        let out = out.and_then(|out| {
            let committed = self
                .0
                .prepare_cached("COMMIT")
                .and_then(|mut c| c.execute([]));
            committed.map_err(|err| StoreError::CommitUnknown(sqlite_error(err)))?;
            Ok(out)
        });
        // After a failed statement or commit: nothing of it stays (no-op when SQLite ended the
        // transaction itself).
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
        out
    }
}

impl Tx for SqliteTx<'_> {
    fn execute(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> {
        ready(run(self.0, sql, params).map_err(sqlite_error))
    }

    fn fetch_int(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        column: &str,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> {
        let row = self.0.prepare_cached(sql).and_then(|mut statement| {
            let params = rusqlite::params_from_iter(params.iter());
            statement
                .query_row(params, |row| row.get::<_, Option<i64>>(column))
                .optional()
        });
        ready(row.map(Option::flatten).map_err(sqlite_error))
    }

    fn fetch_int_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        int: &str,
        text: &str,
    ) -> impl Future<Output = Result<Option<(i64, String)>, sqlx::Error>> {
        let row = self.0.prepare_cached(sql).and_then(|mut statement| {
            let params = rusqlite::params_from_iter(params.iter());
            statement
                .query_row(params, |row| Ok((row.get(int)?, row.get(text)?)))
                .optional()
        });
        ready(row.map_err(sqlite_error))
    }
}

/// One statement on a SQLite connection (prepared once per connection and kept).
fn run(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, rusqlite::Error> {
    let mut statement = connection.prepare_cached(sql)?;
    let changed = statement.execute(rusqlite::params_from_iter(params.iter()))?;
    Ok(changed as u64)
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Int(Some(n)) => ToSqlOutput::Borrowed(ValueRef::Integer(n)),
            Param::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Param::Int(None) | Param::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// Opens a SQLite file's writing connection with `pragmas` (those of the store's other
/// connections: WAL, `synchronous=FULL`; not their `busy_timeout`, see `SqliteTx::begin`).
pub(crate) fn open_sqlite(
    path: &std::path::Path,
    read_only: bool,
    pragmas: &str,
) -> Result<Writer, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let access = match read_only {
        true => OpenFlags::SQLITE_OPEN_READ_ONLY,
        false => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    let connection =
        rusqlite::Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    connection.execute_batch(pragmas)?;
    // Waiting for the write lock is `SqliteTx::begin`'s.
    connection.busy_timeout(Duration::ZERO)?;
    // Every statement of the store, with room to spare (an append's inserts vary with the
    // number of rows).
    connection.set_prepared_statement_cache_capacity(64);
    Ok(Writer::Sqlite(Mutex::new(connection)))
}

/// A SQLite error as sqlx reports one, so that the store reads both alike (a primary key taken
/// is a unique violation).
pub(crate) fn sqlite_error(err: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(SqliteError(err)))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqliteError(rusqlite::Error);

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        match &self.0 {
            rusqlite::Error::SqliteFailure(_, Some(message)) => message,
            _ => "SQLite failed",
        }
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        match &self.0 {
            rusqlite::Error::SqliteFailure(err, _) => Some(err.extended_code.to_string().into()),
            _ => None,
        }
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match &self.0 {
            rusqlite::Error::SqliteFailure(err, _)
                if err.code == ErrorCode::ConstraintViolation =>
            {
                match err.extended_code {
                    ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE => {
                        ErrorKind::UniqueViolation
                    }
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
                    ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
                    ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
                    _ => ErrorKind::Other,
                }
            }
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// A SQLite file's writer in a directory of its own, removed when dropped.
    struct File(std::path::PathBuf, Writer);

    impl File {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("eventsync-writer-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let writer = open_sqlite(&dir.join("w.db"), false, "PRAGMA journal_mode = WAL;")
                .expect("the writer");
            File(dir, writer)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn count(writer: &Writer) -> Result<Option<i64>, StoreError> {
        in_transaction!(writer, "BEGIN IMMEDIATE", |tx| async move {
            let n = tx
                .fetch_int("SELECT COUNT(*) AS n FROM t", params![], "n")
                .await?;
            Ok::<_, StoreError>(n)
        })
    }

    async fn insert_2_and_1_again(writer: &Writer) -> Result<(), StoreError> {
        in_transaction!(writer, "BEGIN IMMEDIATE", |tx| async move {
            tx.execute("INSERT INTO t VALUES (?, ?)", params![2, "b"])
                .await?;
            let none = None::<String>;
            tx.execute("INSERT INTO t VALUES (?, ?)", params![1, &none])
                .await?;
            Ok::<_, StoreError>(())
        })
    }

    async fn row_1(writer: &Writer) -> Result<Option<(i64, String)>, StoreError> {
        in_transaction!(writer, "BEGIN IMMEDIATE", |tx| async move {
            let sql = "SELECT k, v FROM t WHERE k = ?";
            let row = tx.fetch_int_text(sql, params![1], "k", "v").await?;
            Ok::<_, StoreError>(row)
        })
    }

    /// A taken primary key reads as sqlx's unique violation (what `append` turns into
    /// `HeadMoved`), and a failed transaction leaves nothing of itself, the connection usable.
    async fn failed_transaction_rolls_back(file: &File) {
        let writer = &file.1;
        writer
            .execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", params![])
            .await
            .expect("create");
        assert_eq!(
            writer
                .execute("INSERT INTO t VALUES (?, ?)", params![1, "a"])
                .await
                .ok(),
            Some(1)
        );
        match insert_2_and_1_again(writer).await {
            Err(StoreError::Database(err)) => assert!(
                err.as_database_error()
                    .is_some_and(|db| db.is_unique_violation()),
                "{err}"
            ),
            other => panic!("a unique violation, not {other:?}"),
        }
        assert_eq!(count(writer).await.ok(), Some(Some(1)), "row 2 rolled back");
        assert_eq!(row_1(writer).await.ok(), Some(Some((1, "a".to_owned()))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_on_a_worker() {
        failed_transaction_rolls_back(&File::new("multi")).await;
    }

    #[tokio::test]
    async fn rolls_back_on_a_current_thread_runtime() {
        failed_transaction_rolls_back(&File::new("current")).await;
    }

    /// A write while another program holds the database's write lock waits for it (it does not
    /// fail at once, although the connection's own busy timeout is zero).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_for_another_programs_lock() {
        let file = File::new("lock");
        let writer = &file.1;
        writer
            .execute("CREATE TABLE t (k INTEGER PRIMARY KEY)", params![])
            .await
            .expect("create");
        let other = rusqlite::Connection::open(file.0.join("w.db")).expect("another connection");
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .expect("its lock");
        let (locked, release) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _ = release.recv_timeout(Duration::from_millis(300));
            other.execute_batch("COMMIT").expect("its commit");
        });
        let params = params![2];
        let write = writer.execute("INSERT INTO t VALUES (?)", params);
        let written = tokio::time::timeout(Duration::from_secs(20), write).await;
        drop(locked);
        holder.join().expect("the other program");
        assert_eq!(
            written.ok().map(|n| n.ok()),
            Some(Some(1)),
            "written once the lock was free"
        );
        assert_eq!(count(writer).await.ok(), Some(Some(2)));
    }
}
