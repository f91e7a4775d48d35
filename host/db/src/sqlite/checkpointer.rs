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
//! the copy itself between two transactions ([`Checkpoints::between_transactions`]): only the
//! pages written since the thread's last checkpoint are left to copy, and the writer's next
//! transaction starts the log over. Should the log still outgrow [`LOG_LIMIT`] (a long read
//! keeps an old snapshot, so no checkpoint may copy the whole log), the thread tries a
//! `RESTART` checkpoint, which holds the writer while it waits for the readers: it waits at
//! most [`RESTART_WAIT`], so a long read delays writes by that much, not by its own length.
//!
//! When the database closes, the writer stops the thread and empties the log itself
//! ([`Checkpoints::stop`]), so a stopped server leaves its data in the database file alone.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::rows;
use crate::{DbError, DbResult};

/// How long the thread waits after a wake-up, so a checkpoint covers the commits of that time.
const PAUSE: Duration = Duration::from_millis(100);

/// Pages in the write-ahead log from which the writer is asked to finish a checkpoint (16 MiB
/// of 4 KiB pages).
const FINISH_AT: i64 = 4_096;

/// Pages in the write-ahead log above which the thread tries to start the log over (64 MiB of
/// 4 KiB pages).
const LOG_LIMIT: i64 = 16_384;

/// The longest a `RESTART` checkpoint waits for readers, holding the writer meanwhile.
const RESTART_WAIT: &str = "PRAGMA busy_timeout = 50;";

/// How long the checkpointer waits for locks otherwise (it never needs to: a `PASSIVE`
/// checkpoint does not wait).
const PRAGMAS: &str = "PRAGMA busy_timeout = 10000;";

/// The write connection's side of the checkpointer.
pub(crate) struct Checkpoints {
    wake: mpsc::SyncSender<()>,
    finish_wanted: Arc<AtomicBool>,
    changes_seen: u64,
    thread: JoinHandle<()>,
}

impl Checkpoints {
    /// Opens a connection to `file` and starts the checkpointer thread on it.
    pub(crate) fn start(file: &Path) -> DbResult<Checkpoints> {
        // No statements to keep: one pragma text per mode.
        let connection = rows::open(file, rusqlite::OpenFlags::default(), PRAGMAS, 0)?;
        let (wake, wakes) = mpsc::sync_channel(1);
        let finish_wanted = Arc::new(AtomicBool::new(false));
        let asked = finish_wanted.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || serve(connection, wakes, &asked))
            .map_err(DbError::Thread)?;
        Ok(Checkpoints { wake, finish_wanted, changes_seen: 0, thread })
    }

    /// Called by the writer on its connection between transactions: wakes the thread if rows
    /// were written since the last call, and, if the thread asked for it, tries once to finish
    /// a checkpoint (the thread asks again after its next checkpoint if the log is still long).
    pub(crate) fn between_transactions(&mut self, writer: &rusqlite::Connection) {
        let changes = writer.total_changes();
        if changes != self.changes_seen {
            self.changes_seen = changes;
            // Never blocks: one wake-up waiting is enough.
            let _ = self.wake.try_send(());
        }
        if self.finish_wanted.swap(false, Ordering::Relaxed)
            && let Err(e) = checkpoint(writer, "PASSIVE")
        {
            tracing::debug!(error = %e, "finishing a checkpoint on the write connection");
        }
    }

    /// Stops the thread and waits for it, then copies the whole log back with the writer and
    /// empties it (the writer is closing: it waits up to its busy timeout for readers).
    pub(crate) fn stop(self, writer: &rusqlite::Connection) {
        drop(self.wake);
        if self.thread.join().is_err() {
            tracing::error!("the SQLite checkpointer thread panicked");
        }
        match checkpoint(writer, "TRUNCATE") {
            Ok(done) if done.is_whole() => {}
            Ok(done) => tracing::warn!(?done, "a reader kept part of the write-ahead log at close"),
            Err(e) => tracing::warn!(error = %e, "emptying the write-ahead log at close"),
        }
    }
}

/// The thread: a checkpoint after each wake-up and pause, until the writer is gone.
fn serve(connection: rusqlite::Connection, wakes: mpsc::Receiver<()>, finish_wanted: &AtomicBool) {
    while wakes.recv().is_ok() {
        std::thread::sleep(PAUSE);
        match checkpoint(&connection, "PASSIVE") {
            Ok(done) if done.log > LOG_LIMIT => restart(&connection, done.log),
            Ok(done) if done.log >= FINISH_AT => finish_wanted.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpointing the write-ahead log"),
        }
    }
    if let Err((_, e)) = connection.close() {
        tracing::warn!(error = %e, "closing the SQLite checkpointer connection");
    }
}

/// Tries a `RESTART` checkpoint, waiting at most [`RESTART_WAIT`] for readers.
fn restart(connection: &rusqlite::Connection, pages: i64) {
    let restarted = connection
        .execute_batch(RESTART_WAIT)
        .and_then(|()| checkpoint(connection, "RESTART"))
        .and_then(|done| connection.execute_batch(PRAGMAS).map(|()| done));
    match restarted {
        Ok(done) if done.is_whole() => tracing::info!(pages, "the write-ahead log outgrew its limit and was restarted"),
        Ok(done) => tracing::info!(pages, ?done, "the write-ahead log outgrew its limit; a reader keeps it"),
        Err(e) => tracing::warn!(error = %e, "restarting the write-ahead log"),
    }
}

/// What a checkpoint reports (`PRAGMA wal_checkpoint`'s row).
#[derive(Debug, PartialEq)]
struct Checkpointed {
    /// The checkpoint could not take a lock it needed (another checkpoint runs, or a reader or
    /// the writer kept it from finishing).
    busy: bool,
    /// Pages in the log (-1 when the checkpoint did not run).
    log: i64,
    /// Pages of the log copied back (-1 when the checkpoint did not run).
    copied: i64,
}

impl Checkpointed {
    /// Whether the whole log is copied back.
    fn is_whole(&self) -> bool {
        !self.busy && self.log >= 0 && self.log == self.copied
    }
}

/// Runs a checkpoint in `mode`.
fn checkpoint(connection: &rusqlite::Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpointed { busy: row.get::<_, i64>(0)? != 0, log: row.get(1)?, copied: row.get(2)? })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A write connection as the engine opens it, with `rows` rows of 4,000 bytes written.
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

        let mut checkpoints = Checkpoints::start(Path::new(&file)).unwrap();
        checkpoints.between_transactions(&writer);
        // Watched in the WAL index, without a checkpoint of the test's own.
        wait_for("the thread to copy the whole log back", || {
            let (last, copied) = log_frames(&file);
            last >= 200 && copied == last
        });
        assert!(file_pages() >= 200, "the database file holds the copied pages");
    }

    /// The log's last frame and how many frames checkpoints have copied back, read from the
    /// WAL index file (`mxFrame` at byte 16 of its header, `nBackfill` at byte 96, native order).
    fn log_frames(file: &str) -> (u32, u32) {
        let index = std::fs::read(format!("{file}-shm")).unwrap();
        let word = |at: usize| u32::from_ne_bytes(index[at..at + 4].try_into().unwrap());
        (word(16), word(96))
    }

    #[test]
    fn a_long_log_is_finished_by_the_writer_and_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db").display().to_string();
        let writer = writer(&file, FINISH_AT as usize + 100);
        let mut checkpoints = Checkpoints::start(Path::new(&file)).unwrap();
        checkpoints.between_transactions(&writer);
        wait_for("the thread to ask the writer to finish", || checkpoints.finish_wanted.load(Ordering::Relaxed));

        write(&writer, 10);
        checkpoints.between_transactions(&writer);
        assert!(!checkpoints.finish_wanted.load(Ordering::Relaxed), "the writer finished the checkpoint");
        write(&writer, 1);
        let state = checkpoint(&writer, "PASSIVE").unwrap();
        assert!((1..10).contains(&state.log), "the log started over: {state:?}");
    }

    #[test]
    fn stopping_ends_the_thread_and_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db").display().to_string();
        let writer = writer(&file, 200);
        let checkpoints = Checkpoints::start(Path::new(&file)).unwrap();
        checkpoints.stop(&writer);
        let wal = std::fs::metadata(format!("{file}-wal")).map(|m| m.len()).unwrap();
        assert_eq!(wal, 0, "the log is emptied");
        let in_file = std::fs::metadata(&file).map(|m| m.len()).unwrap() / 4096;
        assert!(in_file >= 200, "the rows are in the database file ({in_file} pages)");
    }

    #[test]
    fn a_busy_checkpoint_is_not_taken_for_a_whole_one() {
        let busy = Checkpointed { busy: true, log: -1, copied: -1 };
        assert!(!busy.is_whole());
        assert!(!Checkpointed { busy: false, log: -1, copied: -1 }.is_whole());
        assert!(Checkpointed { busy: false, log: 7, copied: 7 }.is_whole());
    }
}
