//! SQLite reads made on the caller's thread.
//!
//! A read through sqlx's SQLite driver crosses between threads: the query runs on the
//! connection's own thread, and the pool checks the connection (a round trip to that thread)
//! as it goes back, and, unless told not to, as it is taken. On a busy machine every
//! crossing waits for the scheduler to run the other thread, which costs more than the read:
//! SQLite finds an item by its key in some ten microseconds. So the reads of single rows by key
//! that every request makes (the item a GET returns, the item a move changes) run here, on the
//! calling thread, on a connection of this small pool; the reads that scan (lists, reports)
//! keep to sqlx's pool, where they do not hold up the async runtime's threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::Row;
use rusqlite::OpenFlags;

use super::rows::{self, run_statement};
use crate::Statement;
use crate::{DbError, DbResult};

/// Connections kept open between reads (more are opened when more reads run at once).
const KEEP_IDLE: usize = 8;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Settings of a read connection: reads by key touch few pages, so a small cache.
const PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;";

/// The pool of read connections to one SQLite file.
pub(crate) struct ReadConnections {
    file: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    closed: AtomicBool,
}

impl ReadConnections {
    /// A pool for `file`, which must exist; connections open when first needed.
    pub(crate) fn new(file: &Path) -> Arc<ReadConnections> {
        Arc::new(ReadConnections {
            file: file.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// An idle connection, or a new one; none once closed.
    pub(crate) fn take(self: &Arc<Self>) -> DbResult<ReadConnection> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DbError::Closed);
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => self.open()?,
        };
        Ok(ReadConnection { connection: Some(connection), home: self.clone() })
    }

    /// Closes the idle connections; those in use close when given back.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    fn open(&self) -> DbResult<rusqlite::Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        rows::open(&self.file, flags, PRAGMAS, STATEMENT_CACHE)
    }
}

/// A read connection of the SQLite database, used on the caller's thread; it goes back to its pool
/// when dropped.
pub struct ReadConnection {
    connection: Option<rusqlite::Connection>,
    home: Arc<ReadConnections>,
}

impl ReadConnection {
    /// Runs a statement that only reads, on this thread, and returns its rows.
    pub(crate) fn fetch(&mut self, statement: &Statement) -> DbResult<Vec<Row>> {
        let connection = self.connection.as_ref().ok_or(DbError::Closed)?;
        let mut rows = Vec::new();
        run_statement(connection, statement, &mut rows)?;
        Ok(rows)
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.home.idle.lock())
            && idle.len() < KEEP_IDLE
            && !self.home.closed.load(Ordering::Acquire)
        {
            idle.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_every_commit_and_never_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.db").display().to_string();
        let writer = rusqlite::Connection::open(&file).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)")
            .unwrap();
        let reads = ReadConnections::new(Path::new(&file));
        let count = || {
            let rows = reads.take().unwrap().fetch(&Statement::new("SELECT count(*) AS n FROM t")).unwrap();
            rows[0].get::<i64>("n").unwrap()
        };
        assert_eq!(count(), 1);
        writer.execute_batch("INSERT INTO t VALUES (2)").unwrap();
        assert_eq!(count(), 2, "a connection back from the pool sees the later commit");

        let refused = reads.take().unwrap().fetch(&Statement::new("INSERT INTO t VALUES (3)"));
        assert!(matches!(refused, Err(DbError::Sqlite(_))), "{:?}", refused.err());
        assert_eq!(count(), 2);
    }

    #[test]
    fn connections_are_reused_and_kept_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.db").display().to_string();
        rusqlite::Connection::open(&file).unwrap().execute_batch("PRAGMA journal_mode = WAL").unwrap();
        let reads = ReadConnections::new(Path::new(&file));
        let many: Vec<_> = (0..KEEP_IDLE + 3).map(|_| reads.take().unwrap()).collect();
        drop(many);
        assert_eq!(reads.idle.lock().unwrap().len(), KEEP_IDLE);
        drop(reads.take().unwrap());
        assert_eq!(reads.idle.lock().unwrap().len(), KEEP_IDLE, "a connection taken is given back");

        let in_use = reads.take().unwrap();
        reads.close();
        assert!(reads.idle.lock().unwrap().is_empty());
        assert!(matches!(reads.take().err(), Some(DbError::Closed)), "no reads after close");
        drop(in_use);
        assert!(reads.idle.lock().unwrap().is_empty(), "a connection given back after close is closed");
    }
}
