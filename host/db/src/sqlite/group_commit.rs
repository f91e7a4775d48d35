//! Group commit on SQLite's single write connection.
//!
//! SQLite has one writer. Instead of one transaction per use case, concurrent use cases take
//! turns on the write connection inside one shared database transaction (a *batch*): each
//! member opens its own savepoint before its first write, and a member that fails or is dropped
//! is rolled back to its savepoint, leaving the others intact. A committer task queues for the
//! connection behind the members waiting for it and commits the batch when its turn comes; every
//! member of the batch waits for that commit before it reports success. Under load one commit
//! covers many writes; alone, a write commits as soon as it ends.
//!
//! A transaction that only queued statements (it never needed an answer from the database
//! before its commit: a move, an update) does not take a turn at all: it submits its statements
//! as a *program*, and the committer sends every program waiting to the write thread at once
//! ([`super::write_thread`]), which runs them back to back, with the batch's `BEGIN` and
//! `COMMIT`. A program whose statement fails is rolled back alone and told why; the others go
//! on. A program's version
//! checks are writes that must change one row ([`Statement::changing_one_row`]).
//!
//! Savepoints cost SQLite a copy of every page a write touches while one is open, so none is
//! left open longer than needed: a member releases its savepoint when its turn ends, and the
//! programs of a request share one savepoint unless one of them fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Row;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot, watch};

use super::write_thread::WriteConnection;
use crate::Statement;
use crate::{DbError, DbResult};

/// Statements of one transaction submitted to run in the committer's batch; answered with
/// their rows once committed.
struct Program {
    statements: Vec<Statement>,
    reply: oneshot::Sender<DbResult<Vec<Row>>>,
}

/// The savepoint statement each member's first write is prefixed with.
const SAVEPOINT: &str = "SAVEPOINT member";
/// Releases it once the member's turn ends well.
const RELEASE: &str = "RELEASE member";
/// Undoes a member that ended without committing, and closes its savepoint.
const UNDO_MEMBER: &str = "ROLLBACK TO member; RELEASE member";

/// Outcome of a batch's commit, broadcast to its members.
type Outcome = Option<Result<(), String>>;

/// The write connection and the batch open on it.
pub(crate) struct Writer {
    connection: Option<WriteConnection>,
    batch: Option<watch::Sender<Outcome>>,
    /// The last member ended without committing after opening (or trying to open) its
    /// savepoint. No other savepoint named `member` exists then: each member releases its own
    /// when its turn ends, so undoing the last member's cannot reach an earlier member.
    rollback_member: bool,
    /// The last id handed out per table (read from the database at first use). Ids are handed
    /// out during a member's turn, so they commit in order; those of rolled-back writes stay
    /// unused.
    last_ids: HashMap<&'static str, i64>,
}

impl Writer {
    /// The write connection (gone once closed).
    pub(crate) fn connection(&self) -> DbResult<&WriteConnection> {
        self.connection.as_ref().ok_or(DbError::Closed)
    }

    /// Undoes what an abandoned member left, before anyone else uses the connection. The flag
    /// is cleared only once the rollback is done, so a caller cancelled meanwhile leaves it for
    /// the next one (which then finds no savepoint: nothing more to undo).
    async fn settle(&mut self) {
        if self.rollback_member {
            let undone = match self.connection() {
                Ok(c) => c.execute(UNDO_MEMBER).await,
                Err(e) => Err(e),
            };
            match undone {
                Ok(()) => {}
                // Its savepoint was never opened (the request failed at it): nothing to undo.
                Err(e) if e.to_string().contains("no such savepoint") => {}
                Err(e) => self.abort(&format!("rolling back a failed write: {e}")).await,
            }
            self.rollback_member = false;
        }
    }

    /// Opens a batch. A transaction found open on the connection belongs to no batch (a caller
    /// cancelled while its `BEGIN` ran: the write thread still runs a request whose caller is
    /// gone), so it holds no write anyone was told about; it is rolled back rather than left to
    /// block every later write.
    async fn begin_batch(&mut self) -> DbResult<()> {
        let connection = self.connection()?;
        if let Err(e) = connection.execute("BEGIN IMMEDIATE").await {
            if !e.to_string().contains("within a transaction") {
                return Err(e);
            }
            tracing::error!("the write connection was in a transaction no batch owns; rolling it back");
            connection.execute("ROLLBACK").await?;
            connection.execute("BEGIN IMMEDIATE").await?;
        }
        self.batch = Some(watch::channel(None).0);
        Ok(())
    }

    /// Rolls the open batch back and tells its members.
    async fn abort(&mut self, why: &str) {
        if let Some(batch) = self.batch.take() {
            if let Ok(c) = self.connection()
                && let Err(e) = c.execute("ROLLBACK").await
            {
                tracing::error!(error = %e, "rolling back a write batch failed");
            }
            tracing::error!(reason = why, "a write batch was rolled back");
            batch.send_replace(Some(Err(format!("the write batch was rolled back: {why}"))));
        }
    }

    /// Commits the open batch, if any, and tells its members; returns the outcome.
    async fn commit(&mut self) -> Result<(), String> {
        self.settle().await;
        let Some(batch) = self.batch.take() else { return Ok(()) };
        let result = match self.connection() {
            Ok(c) => c.execute("COMMIT").await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "committing a write batch failed");
            if let Ok(c) = self.connection() {
                let _ = c.execute("ROLLBACK").await;
            }
        }
        batch.send_replace(Some(result.clone()));
        result
    }

    /// Runs programs in one request to the write thread, together with the batch's `BEGIN`
    /// (unless a member opened it) and its `COMMIT` (a program that fails is undone alone);
    /// answers every program, and the members of the batch.
    async fn run_programs(&mut self, programs: Vec<Program>) {
        let begin = self.batch.is_none();
        let batch = self.batch.take();
        let (statements, replies): (Vec<_>, Vec<_>) =
            programs.into_iter().map(|program| (program.statements, program.reply)).unzip();
        let done = match self.connection() {
            Ok(c) => c.run_batch(statements, begin).await.and_then(|done| done),
            Err(e) => Err(e),
        };
        match done {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
                if let Some(batch) = batch {
                    batch.send_replace(Some(Ok(())));
                }
            }
            Err(e) => {
                let why = format!("the write batch was rolled back: {e}");
                tracing::error!(error = %e, "a write batch was rolled back");
                for reply in replies {
                    let _ = reply.send(Err(DbError::Commit(why.clone())));
                }
                if let Some(batch) = batch {
                    batch.send_replace(Some(Err(why)));
                }
            }
        }
    }
}

/// Wakes the committer task.
struct Signal {
    commit_wanted: Notify,
    closed: AtomicBool,
}

impl Signal {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.commit_wanted.notify_one();
    }
}

/// The SQLite write connection shared by all write transactions of this process.
pub(crate) struct WriteGroup {
    writer: Arc<Mutex<Writer>>,
    signal: Arc<Signal>,
    programs: Arc<std::sync::Mutex<Vec<Program>>>,
}

impl Drop for WriteGroup {
    fn drop(&mut self) {
        self.signal.close();
    }
}

impl WriteGroup {
    /// Takes over `connection` and starts the committer on a thread of its own, so that
    /// between its requests to the write thread it does not queue behind the server's other
    /// tasks (plugin runs, requests) for a turn on the runtime's threads.
    pub(crate) fn start(connection: WriteConnection) -> DbResult<Arc<WriteGroup>> {
        let writer = Arc::new(Mutex::new(Writer {
            connection: Some(connection),
            batch: None,
            rollback_member: false,
            last_ids: HashMap::new(),
        }));
        let signal = Arc::new(Signal { commit_wanted: Notify::new(), closed: AtomicBool::new(false) });
        let programs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let committing = committer(writer.clone(), signal.clone(), programs.clone());
        let (started, start) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-committer".into())
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let _ = started.send(Ok(()));
                    runtime.block_on(committing);
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .map_err(DbError::Thread)?;
        // The thread answers at once, before it runs anything.
        start.recv().map_err(|e| DbError::Thread(std::io::Error::other(e)))?.map_err(DbError::Thread)?;
        Ok(Arc::new(WriteGroup { writer, signal, programs }))
    }

    /// Joins the open batch (opening one if none is) once the connection is free.
    pub(crate) async fn begin(self: &Arc<Self>) -> DbResult<Member> {
        let mut writer = self.writer.clone().lock_owned().await;
        writer.settle().await;
        if writer.batch.is_none() {
            writer.begin_batch().await?;
        }
        let outcome = writer.batch.as_ref().map(watch::Sender::subscribe).ok_or(DbError::Closed)?;
        Ok(Member { writer: Some(writer), savepoint: false, outcome, group: self.clone() })
    }

    /// Runs `statements` as one program in the next batch and waits for its commit; returns
    /// the rows they produced.
    pub(crate) async fn submit(&self, statements: Vec<Statement>) -> DbResult<Vec<Row>> {
        let (reply, answer) = oneshot::channel();
        match self.programs.lock() {
            Ok(mut programs) => programs.push(Program { statements, reply }),
            Err(_) => return Err(DbError::Closed),
        }
        self.signal.commit_wanted.notify_one();
        answer.await.map_err(|_| DbError::Closed)?
    }

    /// The connection with no batch open, for migrations.
    pub(crate) async fn exclusive(&self) -> OwnedMutexGuard<Writer> {
        let mut writer = self.writer.clone().lock_owned().await;
        let _ = writer.commit().await;
        writer
    }

    /// Commits what is open and closes the connection.
    pub(crate) async fn close(&self) {
        self.signal.close();
        let mut writer = self.writer.lock().await;
        run_and_commit(&mut writer, &self.programs).await;
        if let Some(connection) = writer.connection.take() {
            connection.close().await;
        }
    }
}

/// Runs submitted programs and commits batches when members ask, queueing for the connection
/// like a member does.
async fn committer(writer: Arc<Mutex<Writer>>, signal: Arc<Signal>, programs: Arc<std::sync::Mutex<Vec<Program>>>) {
    loop {
        signal.commit_wanted.notified().await;
        if signal.closed.load(Ordering::Acquire) {
            return;
        }
        let mut writer = writer.lock().await;
        run_and_commit(&mut writer, &programs).await;
    }
}

/// Runs the programs waiting (and those arriving meanwhile), a batch and a commit per request,
/// and commits what members left open.
async fn run_and_commit(writer: &mut Writer, programs: &std::sync::Mutex<Vec<Program>>) {
    writer.settle().await;
    loop {
        let taken: Vec<Program> = match programs.lock() {
            Ok(mut queue) => std::mem::take(&mut *queue),
            Err(_) => Vec::new(),
        };
        if taken.is_empty() {
            break;
        }
        writer.run_programs(taken).await;
    }
    let _ = writer.commit().await;
}

/// One write transaction's turn on the SQLite write connection, within a batch.
pub(crate) struct Member {
    writer: Option<OwnedMutexGuard<Writer>>,
    /// This member's savepoint is open, or may be: a request opening it was sent and its
    /// answer not seen (the caller was cancelled). Undoing a savepoint that turns out not to
    /// exist undoes nothing.
    savepoint: bool,
    outcome: watch::Receiver<Outcome>,
    group: Arc<WriteGroup>,
}

impl Member {
    /// Runs `statements` in order and returns the rows of all of them; a `write` opens this
    /// member's savepoint first (once), so a failure later undoes only this member.
    pub(crate) async fn run(&mut self, mut statements: Vec<Statement>, write: bool) -> DbResult<Vec<Row>> {
        let opening = write && !self.savepoint;
        if opening {
            statements.insert(0, Statement::new(SAVEPOINT));
            self.savepoint = true;
        }
        let ran = self.writer.as_ref().ok_or(DbError::Closed)?.connection()?.run_in_batch(statements).await?;
        ran.map_err(|failed| {
            if opening && failed.index == 0 {
                // The savepoint itself failed: it does not exist, and nothing else ran.
                self.savepoint = false;
            }
            failed.error
        })
    }

    /// A new id for a row of `table`.
    pub(crate) async fn allocate_id(&mut self, table: &'static str) -> DbResult<i64> {
        let writer = self.writer.as_mut().ok_or(DbError::Closed)?;
        let last = match writer.last_ids.get(table) {
            Some(last) => *last,
            None => {
                let seed = Statement::new(format!(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),
                                COALESCE((SELECT MAX(id) FROM {table}), 0))"
                ));
                let rows = writer.connection()?.run_in_batch(vec![seed]).await?.map_err(|failed| failed.error)?;
                rows.first().ok_or(DbError::NoRow)?.get(0)?
            }
        };
        writer.last_ids.insert(table, last + 1);
        Ok(last + 1)
    }

    /// Ends this member's turn and waits for the commit of its batch. Its savepoint is
    /// released first (without waiting: the thread runs it before anything sent later).
    pub(crate) async fn commit(mut self) -> DbResult<()> {
        if let Some(writer) = self.writer.take() {
            if self.savepoint {
                writer.connection()?.send_in_batch(vec![Statement::new(RELEASE)]);
            }
            drop(writer);
        }
        self.group.signal.commit_wanted.notify_one();
        let mut outcome = self.outcome.clone();
        let result = outcome.wait_for(Option::is_some).await.map_err(|_| DbError::Closed)?.clone();
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(message)) => Err(DbError::Commit(message)),
            None => Err(DbError::Closed),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            if self.savepoint {
                writer.rollback_member = true;
            }
            drop(writer);
            self.group.signal.commit_wanted.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Database, DbError, Statement};

    fn insert(name: &str) -> Statement {
        Statement::new("INSERT INTO cursors (name, position) VALUES ($1, 0)").bind(name)
    }

    #[tokio::test]
    async fn a_failing_program_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Database::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        // Three programs in one batch; the second writes a row, then fails on a duplicate.
        let programs = [vec![insert("a")], vec![insert("b"), insert("a")], vec![insert("c")]].map(|statements| {
            let store = store.clone();
            async move {
                let mut tx = store.begin();
                for statement in statements {
                    tx.defer(statement);
                }
                tx.commit().await
            }
        });
        let [a, b, c] = futures::future::join_all(programs).await.try_into().unwrap();
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(matches!(b, Err(DbError::Sqlite(_))), "{b:?}");
        let rows = store
            .reader()
            .fetch_all(Statement::new("SELECT name FROM cursors WHERE name IN ('a', 'b', 'c') ORDER BY name"))
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|row| row.get(0).unwrap()).collect();
        assert_eq!(names, ["a", "c"], "the failed program left nothing, the others committed");
    }
}
