//! Voronka's storage: one repository per aggregate (items, catalog, people, tasks, processes,
//! plugins, robots, triggers, schedules, webhooks, files, notifications), the event outbox
//! written in the same transaction as every change, the job queue of robot runs, and the
//! configuration generation that tells caches when to reload. Repositories write SQL once for
//! both databases over `voronka-db`'s statements and rows.
//!
//! It builds on `voronka-model` and `voronka-db` only, and must not import the plugin runtime,
//! the use cases (`voronka-core`) or HTTP.

pub mod catalog;
pub mod files;
pub mod idempotency;
pub mod items;
pub mod jobs;
pub mod journal;
pub mod lease;
pub mod notifications;
pub mod outbox;
pub mod people;
pub mod plugins;
pub mod processes;
pub mod robots;
pub mod schedules;
pub mod tasks;
pub mod triggers;
pub mod webhooks;

pub use voronka_db::{Database, DbError, Dialect, Fetch, JsonCast, KeyReader, Reader, Row, Statement, Tx};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed, refused a write (see [`DbError::CheckFailed`]) or is closing.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A file of the file store could not be read or written.
    #[error("file store: {path}: {source}")]
    File {
        /// The file or folder.
        path: String,
        /// The file system's error.
        source: std::io::Error,
    },
    /// A stored row could not be read back.
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table the row is in, e.g. `events`.
        table: &'static str,
        /// What could not be read: a JSON error, an unknown name, ...
        message: String,
    },
}

impl StoreError {
    /// Whether a version-checked write found its row changed: nothing of the transaction was
    /// stored, and the use case may run again.
    pub fn is_check_failed(&self) -> bool {
        matches!(self, StoreError::Db(DbError::CheckFailed))
    }
}

/// Result of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the storage: the database and the configuration generation. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    database: Database,
    local_generation: Arc<AtomicI64>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` creates the file and its folder; `postgres://...`).
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Ok(Store { database: Database::connect(url).await?, local_generation: Arc::default() })
    }

    /// Runs the migrations of this dialect.
    pub async fn migrate(&self) -> StoreResult<()> {
        Ok(self.database.migrate().await?)
    }

    /// Which database the store runs on (SQLite or PostgreSQL).
    pub fn dialect(&self) -> Dialect {
        self.database.dialect()
    }

    /// Reads that need no transaction.
    pub fn reader(&self) -> &Reader {
        self.database.reader()
    }

    /// A connection for reads of single rows by key (see [`Database::key_reader`]).
    pub async fn key_reader(&self) -> StoreResult<KeyReader> {
        Ok(self.database.key_reader().await?)
    }

    /// Catalog and generation reads, which may happen inside a write transaction.
    pub fn meta(&self) -> &Reader {
        self.database.meta()
    }

    /// Starts a write transaction (it takes its turn on the database at its first statement).
    pub fn begin(&self) -> Tx {
        self.database.begin()
    }

    /// Closes the database, waiting for connections in use.
    pub async fn close(&self) {
        self.database.close().await
    }

    /// The configuration generation: bumped by every change to types, fields, funnels, users,
    /// roles or tokens, so caches know when to reload. SQLite is owned by this process, so the
    /// counter lives in memory; on PostgreSQL another host may have changed it, so it is read.
    pub async fn generation(&self) -> StoreResult<i64> {
        match self.dialect() {
            Dialect::Sqlite => Ok(self.local_generation.load(Ordering::Acquire)),
            Dialect::Postgres => {
                Ok(self.meta().scalar(Statement::new("SELECT value FROM generations WHERE id = 1")).await?)
            }
        }
    }

    /// Bumps the configuration generation inside `tx`; call [`Store::generation_committed`]
    /// after the commit.
    pub fn bump_generation(&self, tx: &mut Tx) {
        tx.defer(Statement::new("UPDATE generations SET value = value + 1 WHERE id = 1"));
    }

    /// Tells local caches that a configuration change committed.
    pub fn generation_committed(&self) {
        self.local_generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// A migrated SQLite store in a folder of its own, for tests (the folder goes with the guard).
#[cfg(any(test, feature = "test-support"))]
pub async fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.expect("connect");
    store.migrate().await.expect("migrate");
    (dir, store)
}

/// Reads a JSON text column, naming the table when it is corrupt.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(table: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { table, message: e.to_string() })
}
