//! The SQLite write connection, owned by a thread of its own.
//!
//! Every write on SQLite goes through one connection. The thread that owns it runs what it is
//! sent statement by statement, each prepared once and kept in the connection's statement cache
//! (keyed by the statement's text, so a request may carry any number of statements without
//! making new texts to parse). A request is one hand-over between threads however many
//! statements it carries: the group committer sends every program waiting at once
//! ([`WriteConnection::run_programs`]), and they run back to back with no thread in between.
//!
//! The programs of a request share one savepoint: a page written while a savepoint is open is
//! copied to SQLite's sub-journal once per savepoint, so a savepoint per program cost more
//! than the programs' own writes. When one of them fails, the request is rolled back to that
//! savepoint and run again with a savepoint per program, so the failed one is undone alone.
//! (Programs are statements with bound values only, so a second run does what the first did.)
//!
//! Rows come back as sqlx [`Row`]s, so the repositories read a row of the write connection
//! as they read one of the read pool.

use std::path::Path;
use std::sync::mpsc;

use crate::Row;
use tokio::sync::oneshot;

use super::checkpointer::Checkpoints;
use super::rows::{self, run_statement};
use crate::Statement;
use crate::{DbError, DbResult};

/// Prepared statements kept per connection (the write path uses a few dozen texts).
const STATEMENT_CACHE: usize = 512;

/// A statement of a request failed: which one, and why. Those before it ran.
#[derive(Debug)]
pub(crate) struct Failed {
    /// Index of the failed statement in its request.
    pub(crate) index: usize,
    /// Why: SQLite's error, `CheckFailed` when a version-checked write changed no row, or
    /// `Commit` when SQLite had already rolled the batch's transaction back.
    pub(crate) error: DbError,
}

/// What the thread is asked to do.
enum Request {
    /// Run statements in order until one fails; answer the rows of all of them. With
    /// `in_batch`, only inside the open transaction: should SQLite have rolled it back (after
    /// an I/O error, a full disk), the statements must not run on their own.
    Run { statements: Vec<Statement>, in_batch: bool, reply: oneshot::Sender<Result<Vec<Row>, Failed>> },
    /// Run the programs (undoing a failed one alone) within a transaction, begun first if
    /// `begin`, and commit it.
    Batch { programs: Vec<Vec<Statement>>, begin: bool, reply: oneshot::Sender<ProgramsDone> },
    /// Close the connection and end the thread.
    Close { reply: oneshot::Sender<()> },
}

/// The outcome of [`WriteConnection::run_batch`]: per program, in order; or why the batch was
/// rolled back whole (undoing a failed program failed, or the commit did).
pub(crate) type ProgramsDone = Result<Vec<DbResult<Vec<Row>>>, DbError>;

/// A handle to the write thread.
pub(crate) struct WriteConnection {
    requests: mpsc::Sender<Request>,
}

impl WriteConnection {
    /// Opens `file` (creating it), applies `pragmas`, and starts the thread, which tells
    /// `checkpoints` (if any) whenever it is between transactions.
    pub(crate) fn open(file: &Path, pragmas: &str, checkpoints: Option<Checkpoints>) -> DbResult<WriteConnection> {
        let connection = rows::open(file, rusqlite::OpenFlags::default(), pragmas, STATEMENT_CACHE)?;
        let (requests, incoming) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(connection, incoming, checkpoints))
            .map_err(DbError::Thread)?;
        Ok(WriteConnection { requests })
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> DbResult<T> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(request(reply)).map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)
    }

    /// Runs statements in order, stopping at the first that fails; returns the rows of all.
    #[cfg(test)]
    async fn run(&self, statements: Vec<Statement>) -> DbResult<Result<Vec<Row>, Failed>> {
        self.ask(|reply| Request::Run { statements, in_batch: false, reply }).await
    }

    /// Runs statements in order in the open transaction (a batch), stopping at the first that
    /// fails; returns the rows of all. With no transaction open, none runs.
    pub(crate) async fn run_in_batch(&self, statements: Vec<Statement>) -> DbResult<Result<Vec<Row>, Failed>> {
        self.ask(|reply| Request::Run { statements, in_batch: true, reply }).await
    }

    /// Runs statements without arguments (transaction control) and fails with their error.
    pub(crate) async fn execute(&self, sql: &'static str) -> DbResult<()> {
        let statements = sql.split(';').map(str::trim).filter(|s| !s.is_empty()).map(Statement::new).collect();
        let ran = self.ask(|reply| Request::Run { statements, in_batch: false, reply }).await?;
        ran.map(drop).map_err(|failed| failed.error)
    }

    /// Sends statements to run in the open transaction before anything sent later, without
    /// waiting for them; a failure is logged.
    pub(crate) fn send_in_batch(&self, statements: Vec<Statement>) {
        let (reply, _) = oneshot::channel();
        if self.requests.send(Request::Run { statements, in_batch: true, reply }).is_err() {
            tracing::warn!("the SQLite write thread is gone");
        }
    }

    /// Runs programs back to back in the open transaction (or one begun first, if `begin`),
    /// each as if in a savepoint of its own, so a program whose statement fails is undone
    /// alone; then commits.
    pub(crate) async fn run_batch(&self, programs: Vec<Vec<Statement>>, begin: bool) -> DbResult<ProgramsDone> {
        self.ask(|reply| Request::Batch { programs, begin, reply }).await
    }

    /// Closes the connection once the requests sent before have run.
    pub(crate) async fn close(&self) {
        let _ = self.ask(|reply| Request::Close { reply }).await;
    }
}

/// The thread: answers requests in the order they come until closed.
fn serve(connection: rusqlite::Connection, requests: mpsc::Receiver<Request>, mut checkpoints: Option<Checkpoints>) {
    while let Ok(request) = requests.recv() {
        match request {
            Request::Run { statements, in_batch, reply } => {
                let ran = if in_batch && connection.is_autocommit() {
                    Err(Failed { index: 0, error: lost_transaction() })
                } else {
                    run(&connection, &statements)
                };
                if let Err(Err(failed)) = reply.send(ran) {
                    tracing::error!(error = %failed.error, "a write nobody waited for failed");
                }
            }
            Request::Batch { programs, begin, reply } => {
                let _ = reply.send(run_batch(&connection, &programs, begin));
            }
            Request::Close { reply } => {
                if let Some(checkpoints) = checkpoints.take() {
                    checkpoints.stop(&connection);
                }
                if let Err((_, e)) = connection.close() {
                    tracing::warn!(error = %e, "closing the SQLite write connection");
                }
                let _ = reply.send(());
                return;
            }
        }
        // After the reply: the caller does not wait for the checkpoint.
        if let Some(checkpoints) = checkpoints.as_mut().filter(|_| connection.is_autocommit()) {
            checkpoints.between_transactions(&connection);
        }
    }
}

fn run(connection: &rusqlite::Connection, statements: &[Statement]) -> Result<Vec<Row>, Failed> {
    let mut rows = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        run_statement(connection, statement, &mut rows).map_err(|error| Failed { index, error })?;
    }
    Ok(rows)
}

/// The error of a write that found its batch's transaction gone.
fn lost_transaction() -> DbError {
    DbError::Commit("the write batch's transaction was rolled back by the database".into())
}

fn run_batch(connection: &rusqlite::Connection, programs: &[Vec<Statement>], begin: bool) -> ProgramsDone {
    let sql = |text: &str| connection.execute_batch(text).map_err(DbError::Sqlite);
    if !begin && connection.is_autocommit() {
        return Err(lost_transaction());
    }
    if begin {
        match connection.execute_batch("BEGIN IMMEDIATE") {
            // A transaction no batch owns: a `BEGIN` whose caller was cancelled. It holds no
            // write anyone was told about; it is rolled back rather than left to block writes.
            Err(e) if e.to_string().contains("within a transaction") => {
                tracing::error!("the write connection was in a transaction no batch owns; rolling it back");
                sql("ROLLBACK; BEGIN IMMEDIATE")?;
            }
            other => other.map_err(DbError::Sqlite)?,
        }
    }
    let committed = run_programs(connection, programs).and_then(|outcomes| sql("COMMIT").map(|()| outcomes));
    if committed.is_err()
        && let Err(e) = sql("ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a failed write batch");
    }
    committed
}

fn run_programs(connection: &rusqlite::Connection, programs: &[Vec<Statement>]) -> ProgramsDone {
    let sql = |text: &str| connection.execute_batch(text).map_err(DbError::Sqlite);
    let run = |program: &Vec<Statement>| -> DbResult<Vec<Row>> {
        let mut rows = Vec::new();
        program.iter().try_for_each(|statement| run_statement(connection, statement, &mut rows))?;
        Ok(rows)
    };
    sql("SAVEPOINT programs")?;
    let together: DbResult<Vec<Vec<Row>>> = programs.iter().map(run).collect();
    if let Ok(rows) = together {
        sql("RELEASE programs")?;
        return Ok(rows.into_iter().map(Ok).collect());
    }
    sql("ROLLBACK TO programs; RELEASE programs")?;
    let mut outcomes = Vec::with_capacity(programs.len());
    for program in programs {
        sql("SAVEPOINT program")?;
        let ran = run(program);
        match ran {
            Ok(_) => sql("RELEASE program")?,
            Err(_) => sql("ROLLBACK TO program; RELEASE program")?,
        }
        outcomes.push(ran);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {

    use super::*;

    async fn table() -> (tempfile::TempDir, WriteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let writer = WriteConnection::open(&dir.path().join("w.db"), "", None).unwrap();
        writer.execute("CREATE TABLE t (x INTEGER UNIQUE)").await.unwrap();
        (dir, writer)
    }

    async fn values(writer: &WriteConnection) -> Vec<i64> {
        let rows = writer.run(vec![Statement::new("SELECT x FROM t ORDER BY x")]).await.unwrap().unwrap();
        rows.iter().map(|r| r.get(0).unwrap()).collect()
    }

    fn insert(x: i64) -> Statement {
        Statement::new("INSERT INTO t VALUES ($1)").bind(x)
    }

    /// Each program's outcome in words: `ok` or the error's variant.
    fn outcomes(done: &[DbResult<Vec<Row>>]) -> Vec<&'static str> {
        done.iter()
            .map(|outcome| match outcome {
                Ok(_) => "ok",
                Err(DbError::Sqlite(_)) => "sqlite",
                Err(DbError::CheckFailed) => "check",
                Err(_) => "other",
            })
            .collect()
    }

    #[tokio::test]
    async fn rows_read_like_those_of_the_read_pool() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.db");
        let writer = WriteConnection::open(&file, "PRAGMA journal_mode = WAL;", None).unwrap();
        let rows = writer
            .run(vec![
                Statement::new("CREATE TABLE t (i INTEGER, s TEXT, r REAL, b INTEGER)"),
                Statement::new("INSERT INTO t VALUES ($2, $1, 1.5, $3)").bind("text").bind(7).bind(true),
                Statement::new("INSERT INTO t (i) VALUES (NULL) RETURNING i"),
                Statement::new("SELECT i, s, r, b FROM t ORDER BY i NULLS LAST"),
            ])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows.len(), 3, "the RETURNING row, then the two selected");
        let first = &rows[1];
        assert_eq!(first.get::<i64>("i").unwrap(), 7);
        assert_eq!(first.get::<String>("s").unwrap(), "text");
        assert_eq!(first.get::<f64>("r").unwrap(), 1.5);
        assert_eq!(first.get::<i64>(3).unwrap(), 1, "a bool is stored as 1");
        assert_eq!(rows[2].get::<Option<String>>("s").unwrap(), None);
        assert!(rows[2].get::<String>("s").is_err(), "NULL is not a string");
        let failed = writer
            .run(vec![Statement::new("INSERT INTO t (i) VALUES (1)"), Statement::new("INSERT INTO nowhere VALUES (1)")])
            .await
            .unwrap();
        let Err(failed) = failed else { panic!("the insert into a missing table fails") };
        assert_eq!(failed.index, 1, "{failed:?}");
        writer.close().await;
    }

    #[tokio::test]
    async fn a_failed_program_is_undone_alone() {
        let (_dir, writer) = table().await;
        let done = writer
            .run_batch(vec![vec![insert(1)], vec![insert(2), insert(1)], vec![insert(3)]], true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcomes(&done), ["ok", "sqlite", "ok"]);
        assert_eq!(values(&writer).await, [1, 3]);
        let done = writer.run_batch(vec![vec![insert(4)], vec![insert(5)]], true).await.unwrap().unwrap();
        assert_eq!(outcomes(&done), ["ok", "ok"]);
        assert_eq!(values(&writer).await, [1, 3, 4, 5], "programs that all succeed run together");
        writer.close().await;
    }

    #[tokio::test]
    async fn a_check_fails_unless_its_write_changed_one_row() {
        let (_dir, writer) = table().await;
        let update = |from: i64, to: i64| Statement::new("UPDATE t SET x = $1 WHERE x = $2").bind(to).bind(from);
        let done = writer
            .run_batch(
                vec![
                    vec![insert(1)],
                    vec![update(1, 2).changing_one_row(), insert(10)],
                    vec![update(1, 3).changing_one_row(), insert(20)],
                ],
                true,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcomes(&done), ["ok", "ok", "check"], "row 1 was gone for the third");
        assert_eq!(values(&writer).await, [2, 10], "the failed check took its program's insert along");
        writer.close().await;
    }
}
