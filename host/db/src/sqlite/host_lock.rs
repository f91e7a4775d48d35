//! The lock that makes a host the only one on a SQLite database. On SQLite the host is the
//! database's one writer and keeps what only a sole writer may keep in memory (the next item
//! id, the configuration generation, its wake-ups); a second host on the same file would run
//! robots twice and hand out ids twice. So the store holds an exclusive lock on a file beside
//! the database (`<database>-host.lock`) while it is open: the operating system releases it
//! when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{DbError, DbResult};

/// The held lock, until [`HostLock::release`] or the process's end.
pub(crate) struct HostLock(Mutex<Option<File>>);

impl HostLock {
    /// Takes the lock of the database `file`, or says another host holds it.
    pub(crate) fn take(file: &Path) -> DbResult<HostLock> {
        let path = PathBuf::from(format!("{}-host.lock", file.display()));
        let failed = |source| DbError::HostLock { path: path.display().to_string(), source };
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(failed)?;
        match lock.try_lock() {
            Ok(()) => Ok(HostLock(Mutex::new(Some(lock)))),
            Err(TryLockError::WouldBlock) => Err(DbError::InUse(file.display().to_string())),
            Err(TryLockError::Error(source)) => Err(failed(source)),
        }
    }

    /// Lets another host open the database (the store is closed).
    pub(crate) fn release(&self) {
        if let Ok(mut lock) = self.0.lock() {
            lock.take();
        }
    }
}
