//! SQLite's WAL checkpoints, mostly on a thread and connection of their own.
//!
//! SQLite checkpoints automatically on the connection that commits, once the write-ahead log
//! holds 1,000 pages: the commit that crosses the mark copies the log back into the database
//! file and waits for its flush to disk, and every write waits behind it on the one write
//! connection. The write connection therefore turns automatic checkpoints off and wakes this
//! thread after its commits; the thread waits [`PAUSE`] so one checkpoint covers many commits,
//! then checkpoints in SQLite's `PASSIVE` mode, which copies what it can without blocking the
//! writer or the readers. While no one writes, nothing wakes it.
//!
//! The log starts over from its beginning only when the writer begins a transaction just after
//! a checkpoint that copied all of it, which a checkpoint running beside a busy writer almost
//! never does. So once the log holds [`FINISH_AT`] pages, the thread asks the writer to finish
//! the copy itself between two transactions ([`Checkpoints::finish`]): only the pages written
//! since the thread's last checkpoint are left to copy, and the writer's next transaction
//! starts the log over. Should the log still outgrow [`LOG_LIMIT`] (readers holding old
//! snapshots keep it from being copied whole), the thread runs a `RESTART` checkpoint, which
//! waits for the writer and the readers and starts the log over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{StoreError, StoreResult};

/// How long the thread waits after a wake-up, so a checkpoint covers the commits of that time.
const PAUSE: Duration = Duration::from_millis(100);

/// Pages in the write-ahead log from which the writer is asked to finish a checkpoint (16 MiB
/// of 4 KiB pages).
const FINISH_AT: i64 = 4_096;

/// Pages in the write-ahead log above which the thread starts the log over itself (64 MiB of
/// 4 KiB pages).
const LOG_LIMIT: i64 = 16_384;

/// Settings of the checkpointer's connection: it waits for the locks a `RESTART` checkpoint
/// needs rather than failing at once.
const PRAGMAS: &str = "PRAGMA busy_timeout = 10000;";

/// The write connection's side of the checkpointer; the thread ends when this is dropped.
pub(super) struct Checkpoints {
    wake: mpsc::SyncSender<()>,
    finish_wanted: Arc<AtomicBool>,
    changes_seen: u64,
}

impl Checkpoints {
    /// Opens a connection to `file` and starts the checkpointer thread on it.
    pub(super) fn start(file: &str) -> StoreResult<Checkpoints> {
        let connection = rusqlite::Connection::open(file).map_err(StoreError::Sqlite)?;
        connection.execute_batch(PRAGMAS).map_err(StoreError::Sqlite)?;
        let (wake, wakes) = mpsc::sync_channel(1);
        let finish_wanted = Arc::new(AtomicBool::new(false));
        let asked = finish_wanted.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || serve(connection, wakes, &asked))
            .map_err(StoreError::Thread)?;
        Ok(Checkpoints { wake, finish_wanted, changes_seen: 0 })
    }

    /// Called by the writer on its connection between transactions: wakes the thread if rows
    /// were written since the last call, and finishes a checkpoint if the thread asked for it.
    pub(super) fn between_transactions(&mut self, writer: &rusqlite::Connection) {
        let changes = writer.total_changes();
        if changes != self.changes_seen {
            self.changes_seen = changes;
            // Never blocks: one wake-up waiting is enough.
            let _ = self.wake.try_send(());
        }
        if self.finish_wanted.load(Ordering::Relaxed) {
            match checkpoint(writer, "PASSIVE") {
                // Copied whole: the writer's next transaction starts the log over.
                Ok(Checkpointed { log, copied }) if log == copied => self.finish_wanted.store(false, Ordering::Relaxed),
                // A reader still needs part of the log: tried again after the next transaction.
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "finishing a checkpoint on the write connection"),
            }
        }
    }
}

/// The thread: a checkpoint after each wake-up and pause, until the writer is gone.
fn serve(connection: rusqlite::Connection, wakes: mpsc::Receiver<()>, finish_wanted: &AtomicBool) {
    while wakes.recv().is_ok() {
        std::thread::sleep(PAUSE);
        match checkpoint(&connection, "PASSIVE") {
            Ok(Checkpointed { log, .. }) if log > LOG_LIMIT => {
                tracing::info!(pages = log, "the write-ahead log outgrew its limit; restarting it");
                if let Err(e) = checkpoint(&connection, "RESTART") {
                    tracing::warn!(error = %e, "restarting the write-ahead log");
                }
            }
            Ok(Checkpointed { log, .. }) if log >= FINISH_AT => finish_wanted.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpointing the write-ahead log"),
        }
    }
    // The last connection to close checkpoints the whole log and removes it.
    if let Err((_, e)) = connection.close() {
        tracing::warn!(error = %e, "closing the SQLite checkpointer connection");
    }
}

/// What a checkpoint reports: pages in the log, and how many of them are copied back.
#[derive(Debug, PartialEq)]
struct Checkpointed {
    log: i64,
    copied: i64,
}

/// Runs a checkpoint in `mode`.
fn checkpoint(connection: &rusqlite::Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpointed { log: row.get(1)?, copied: row.get(2)? })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A write connection as the store opens it, with `rows` rows of 4,000 bytes written.
    fn writer(file: &str, rows: usize) -> rusqlite::Connection {
        let writer = rusqlite::Connection::open(file).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v TEXT)")
            .unwrap();
        write(&writer, rows);
        writer
    }

    fn write(writer: &rusqlite::Connection, rows: usize) {
        for _ in 0..rows {
            writer.execute("INSERT INTO t VALUES (?1)", [&"x".repeat(4000)]).unwrap();
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "waited 20 s for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn commits_are_copied_back_by_the_thread_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db").display().to_string();
        let writer = writer(&file, 200);
        let file_pages = || std::fs::metadata(&file).map(|m| m.len()).unwrap() / 4096;
        assert!(file_pages() < 10, "the database file grew without a checkpoint");

        let mut checkpoints = Checkpoints::start(&file).unwrap();
        checkpoints.between_transactions(&writer);
        wait_for("the thread to copy the log back", || file_pages() >= 200);
        let state = checkpoint(&writer, "PASSIVE").unwrap();
        assert_eq!(state.log, state.copied, "the whole log is copied back");
    }

    #[test]
    fn a_long_log_is_finished_by_the_writer_and_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db").display().to_string();
        let writer = writer(&file, FINISH_AT as usize + 100);
        let mut checkpoints = Checkpoints::start(&file).unwrap();
        checkpoints.between_transactions(&writer);
        wait_for("the thread to ask the writer to finish", || checkpoints.finish_wanted.load(Ordering::Relaxed));

        write(&writer, 10);
        checkpoints.between_transactions(&writer);
        assert!(!checkpoints.finish_wanted.load(Ordering::Relaxed), "the writer finished the checkpoint");
        write(&writer, 1);
        let state = checkpoint(&writer, "PASSIVE").unwrap();
        assert!(state.log < 10, "the log started over: {state:?}");
    }
}
