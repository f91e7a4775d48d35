//! Storage: one repository layer over SQLite (embedded default) and PostgreSQL (shared by
//! several hosts), through sqlx's `Any` driver, except SQLite's one write connection, which a
//! thread of its own drives directly (`write_thread`), with its checkpoints made by another
//! (`checkpointer`), and SQLite's reads of single rows by key, made on the caller's thread
//! (`read_connections`); both run statements through `sqlite_rows`. SQL is written once with
//! `$n` placeholders and portable types (BIGINT, TEXT); the few dialect differences go through
//! [`Dialect`].
//!
//! A bound `LIMIT` is written `LIMIT CAST($n AS BIGINT)`: SQLite plans a bare `LIMIT $n` for
//! the value bound at preparation and so prepares the statement again whenever another value
//! is bound (every run of a cached statement); behind a cast the value is read at run time.

pub mod catalog;
mod checkpointer;
pub mod files;
mod group_commit;
mod host_lock;
pub mod idempotency;
pub mod items;
pub mod jobs;
pub mod journal;
pub mod notifications;
pub mod outbox;
pub mod people;
pub mod plugins;
pub mod processes;
mod read_connections;
pub mod robots;
pub mod schedules;
mod sqlite_rows;
pub mod tasks;
pub mod triggers;
mod tx;
pub mod webhooks;
mod write_thread;

pub use tx::Tx;
pub(crate) use tx::{Fetch, Statement};

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// Settings of every SQLite connection.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
    PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;";

/// Settings of the SQLite write connection: a page cache smaller than the readers', because
/// SQLite scans the whole cache's hash table at every commit, and the write connection commits
/// often; no automatic checkpoints, which the checkpointer thread makes instead.
const WRITER: &str = "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0;";

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// An in-memory SQLite database: the store opens several connections to its database
    /// (a writer, readers), and each would see a database of its own.
    #[error("in-memory SQLite (`{0}`) is not supported: use sqlite://PATH (a file)")]
    InMemory(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another host has the SQLite database open (one host per SQLite database).
    #[error(
        "the database {0} is in use by another Voronka host (a SQLite database has one host; share PostgreSQL instead)"
    )]
    InUse(String),
    /// The lock file beside the SQLite database could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    HostLock {
        /// The lock file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A database call failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A statement on one of the store's own SQLite connections (the write connection, a
    /// read connection) failed.
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// A file of the file store could not be read or written.
    #[error("file store: {path}: {source}")]
    File {
        /// The file or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A thread of the SQLite write path could not be started.
    #[error("cannot start the SQLite write thread: {0}")]
    Thread(std::io::Error),
    /// The write connection is closed (the server is stopping).
    #[error("the database is closing")]
    Closed,
    /// A write checked a version that another writer had changed since it was read: nothing of
    /// the transaction was stored; run the use case again.
    #[error("the row changed since it was read")]
    CheckFailed,
    /// A group commit failed: the write was not stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A stored row could not be read back.
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Result of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database product behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (one host).
    Sqlite,
    /// PostgreSQL (one or more hosts).
    Postgres,
}

/// Where write transactions come from.
#[derive(Clone)]
enum Writes {
    /// PostgreSQL: a pool; each transaction on its own connection.
    Pool(AnyPool),
    /// SQLite: the one write connection, shared by group commit.
    Group(Arc<group_commit::WriteGroup>),
}

/// Handle to the database: pools, dialect and the configuration generation.
#[derive(Clone)]
pub struct Store {
    write: Writes,
    read: AnyPool,
    meta: AnyPool,
    dialect: Dialect,
    local_generation: Arc<AtomicI64>,
    /// SQLite: how to open a connection of sqlx's own (the migrations run on one).
    sqlite_options: Option<AnyConnectOptions>,
    /// SQLite: the connections for reads by key, used on the caller's thread.
    key_reads: Option<Arc<read_connections::ReadConnections>>,
    /// SQLite: this host's hold on the database, released at close.
    host_lock: Option<Arc<host_lock::HostLock>>,
}

/// A connection for reads of rows by key (see [`Store::key_reader`]).
pub(crate) enum KeyReader {
    /// SQLite: a connection used on the caller's thread.
    Inline(read_connections::ReadConnection),
    /// PostgreSQL: a connection of the read pool.
    Pooled(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl Fetch for KeyReader {
    async fn fetch(&mut self, statement: Statement) -> StoreResult<Vec<sqlx::any::AnyRow>> {
        match self {
            KeyReader::Inline(connection) => connection.fetch(&statement),
            KeyReader::Pooled(connection) => connection.fetch(statement).await,
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path` creates the file and its folder; `postgres://...`).
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            Self::connect_sqlite(url, path).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = |size: u32| {
                AnyPoolOptions::new().max_connections(size).acquire_timeout(Duration::from_secs(10)).connect(url)
            };
            // Three pools, so no kind of work waits for connections another kind holds: write
            // transactions; reads (a GET never queues behind writers); catalog and generation
            // reads, which happen while a write transaction holds its connection.
            let write = pool(16).await?;
            let read = pool(8).await?;
            let meta = pool(4).await?;
            Ok(Store {
                write: Writes::Pool(write),
                read,
                meta,
                dialect: Dialect::Postgres,
                local_generation: Arc::default(),
                sqlite_options: None,
                key_reads: None,
                host_lock: None,
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    async fn connect_sqlite(url: &str, path: &str) -> StoreResult<Store> {
        let (database, params) = path.split_once('?').unwrap_or((path, ""));
        if database.is_empty() || database == ":memory:" || params.split('&').any(|param| param == "mode=memory") {
            return Err(StoreError::InMemory(url.to_string()));
        }
        // The file as sqlx reads the URL (percent-decoded), so the store's own connections and
        // sqlx's open the same one.
        let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf();
        let file = file.as_path();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let url = if url.contains("mode=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let host_lock = host_lock::HostLock::take(file)?;
        // SQLite has one writer at a time: a single write connection, on a thread of its own and
        // shared by group commit, instead of writers spinning on SQLITE_BUSY; readers use their
        // own pool.
        let checkpoints = checkpointer::Checkpoints::start(file)?;
        let write = write_thread::WriteConnection::open(file, &format!("{PRAGMAS} {WRITER}"), Some(checkpoints))?;
        let write = Writes::Group(group_commit::WriteGroup::start(write)?);
        let pragmas = |options: AnyPoolOptions| {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(PRAGMAS).await?;
                    Ok(())
                })
            })
        };
        // A local file's connection does not go stale: no round trip to check it when taken.
        let read = pragmas(AnyPoolOptions::new().max_connections(8).test_before_acquire(false))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        Ok(Store {
            write,
            meta: read.clone(),
            read,
            dialect: Dialect::Sqlite,
            local_generation: Arc::default(),
            sqlite_options: Some(options),
            key_reads: Some(read_connections::ReadConnections::new(file)),
            host_lock: Some(Arc::new(host_lock)),
        })
    }

    /// Runs the migrations of this dialect.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.write {
            Writes::Group(group) => {
                // sqlx runs the migrations on a connection of its own, while the write
                // connection waits with no transaction open.
                let _writer = group.exclusive().await;
                let options = self.sqlite_options.as_ref().ok_or(StoreError::Closed)?;
                let mut connection = AnyConnection::connect_with(options).await?;
                connection.execute(PRAGMAS).await?;
                let migrated = sqlx::migrate!("../migrations/sqlite").run(&mut connection).await;
                connection.close().await?;
                migrated?;
            }
            Writes::Pool(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// The database product.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Pool for reads that need no transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// A connection for reads of single rows by key: on SQLite, one used on the caller's thread
    /// (no hand-over to another thread, see `read_connections`); on PostgreSQL, one of the read
    /// pool. Reads that scan use [`Store::reader`].
    pub(crate) async fn key_reader(&self) -> StoreResult<KeyReader> {
        match &self.key_reads {
            Some(reads) => Ok(KeyReader::Inline(reads.take()?)),
            None => Ok(KeyReader::Pooled(self.read.acquire().await?)),
        }
    }

    /// Pool for catalog and generation reads, which may happen inside a write transaction
    /// (a separate pool on PostgreSQL, so they never wait for the transaction's own pool).
    pub fn meta(&self) -> &AnyPool {
        &self.meta
    }

    /// Starts a write transaction (it takes its turn on the database at its first statement).
    pub async fn begin(&self) -> StoreResult<Tx> {
        match &self.write {
            Writes::Pool(pool) => Ok(Tx::pooled(pool.clone())),
            Writes::Group(group) => Ok(Tx::grouped(group.clone())),
        }
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        // Readers first, so the SQLite writer, closing last, can empty the write-ahead log.
        if let Some(reads) = &self.key_reads {
            reads.close();
        }
        self.read.close().await;
        self.meta.close().await;
        match &self.write {
            Writes::Pool(pool) => pool.close().await,
            Writes::Group(group) => group.close().await,
        }
        if let Some(lock) = &self.host_lock {
            lock.release();
        }
    }

    /// The configuration generation: bumped by every change to types, fields, funnels, users,
    /// roles or tokens, so caches know when to reload. SQLite is owned by this process, so the
    /// counter lives in memory; on PostgreSQL another host may have changed it, so it is read.
    pub async fn generation(&self) -> StoreResult<i64> {
        match self.dialect {
            Dialect::Sqlite => Ok(self.local_generation.load(Ordering::Acquire)),
            Dialect::Postgres => {
                let value: i64 =
                    sqlx::query_scalar("SELECT value FROM generations WHERE id = 1").fetch_one(&self.meta).await?;
                Ok(value)
            }
        }
    }

    /// Bumps the configuration generation inside `tx`; call [`Store::generation_committed`]
    /// after the commit.
    pub async fn bump_generation(&self, tx: &mut Tx) -> StoreResult<()> {
        tx.defer(Statement::new("UPDATE generations SET value = value + 1 WHERE id = 1"));
        Ok(())
    }

    /// Tells local caches that a configuration change committed.
    pub fn generation_committed(&self) {
        self.local_generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// On PostgreSQL, takes the transaction-scoped lock that orders id-allocating writers (items,
/// events): identity values are handed out before commit, and holding this lock until commit
/// makes ids commit in order, so keyset pagination and the event dispatcher never skip a row
/// that commits late. SQLite has a single writer already.
pub(crate) async fn lock_id_order(tx: &mut Tx) -> StoreResult<()> {
    if tx.dialect() == Dialect::Postgres {
        tx.fetch_all(Statement::new("SELECT pg_advisory_xact_lock(7001)")).await?;
    }
    Ok(())
}

/// A migrated SQLite store in a folder of its own, for tests (the folder goes with the guard).
#[cfg(test)]
pub(crate) async fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.expect("connect");
    store.migrate().await.expect("migrate");
    (dir, store)
}

/// Reads a JSON text column, naming the table when it is corrupt.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(table: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { table, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn in_memory_sqlite_is_refused_with_a_clear_error() {
        for url in ["sqlite://:memory:", "sqlite://?mode=memory", "sqlite://data.db?mode=memory&cache=shared"] {
            let refused = Store::connect(url).await.err();
            assert!(matches!(refused, Some(StoreError::InMemory(_))), "{url}: {refused:?}");
            assert!(refused.is_some_and(|e| e.to_string().contains("use sqlite://PATH")));
        }
        assert!(!Path::new("data.db").exists(), "nothing was created");
    }

    #[tokio::test]
    async fn a_sqlite_database_has_one_host_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("one.db").display());
        let first = Store::connect(&url).await.unwrap();
        first.migrate().await.unwrap();
        let refused = Store::connect(&url).await.err();
        assert!(matches!(refused, Some(StoreError::InUse(_))), "{refused:?}");
        assert!(refused.is_some_and(|e| e.to_string().contains("in use by another Voronka host")));
        // The first store is untouched by the refused attempt; once it closes, another opens.
        let mut tx = first.begin().await.unwrap();
        tx.execute(Statement::new("UPDATE generations SET value = 7 WHERE id = 1")).await.unwrap();
        tx.commit().await.unwrap();
        first.close().await;
        let second = Store::connect(&url).await.unwrap();
        let value: i64 =
            sqlx::query_scalar("SELECT value FROM generations WHERE id = 1").fetch_one(second.reader()).await.unwrap();
        assert_eq!(value, 7);
        second.close().await;
    }

    #[tokio::test]
    async fn a_percent_encoded_path_is_one_file_for_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/two%20words.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.execute(Statement::new("UPDATE generations SET value = 41 WHERE id = 1")).await.unwrap();
        tx.commit().await.unwrap();

        // sqlx's read pool and the store's own read connections see the write thread's commit.
        let pooled: i64 =
            sqlx::query_scalar("SELECT value FROM generations WHERE id = 1").fetch_one(store.reader()).await.unwrap();
        let mut key_reader = store.key_reader().await.unwrap();
        let rows = key_reader.fetch(Statement::new("SELECT value FROM generations WHERE id = 1")).await.unwrap();
        let inline: i64 = sqlx::Row::try_get(&rows[0], "value").unwrap();
        assert_eq!((pooled, inline), (41, 41));
        assert!(dir.path().join("two words.db").exists());
        assert!(!dir.path().join("two%20words.db").exists(), "the writer opened the undecoded name");

        store.close().await;
        let wal = std::fs::metadata(dir.path().join("two words.db-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal, 0, "a closed store leaves its data in the database file");
        assert!(matches!(store.key_reader().await.err(), Some(StoreError::Closed)));
    }
}
