//! The database engine under Voronka's storage: SQLite (embedded, one host) and PostgreSQL
//! (several hosts), behind one API of [`Statement`]s, [`Row`]s and write transactions ([`Tx`]).
//!
//! It owns connections and how a write reaches the disk: SQLite's one write connection on a
//! thread of its own shared by group commit (`sqlite::write_thread`, `sqlite::group_commit`),
//! its checkpoints made by another thread (`sqlite::checkpointer`), reads of single rows by key
//! on the caller's thread (`sqlite::read_connections`), the lock that keeps a second host off a
//! SQLite file (`sqlite::host_lock`); PostgreSQL's pools; the migrations of the top-level
//! `migrations/`; and the few dialect differences ([`Dialect`]). It knows no table but those
//! it is told of, and must not import any other Voronka crate: the repositories of
//! `voronka-store` build on it.
//!
//! SQL is written once with `$n` placeholders and portable types (BIGINT, TEXT). A bound
//! `LIMIT` is written `LIMIT CAST($n AS BIGINT)`: SQLite plans a bare `LIMIT $n` for the value
//! bound at preparation and so prepares the statement again whenever another value is bound
//! (every run of a cached statement); behind a cast the value is read at run time.

mod dialect;
mod row;
mod sqlite;
mod statement;
mod tx;

pub use dialect::{Dialect, JsonCast};
pub use row::{ColumnIndex, Columns, FromValue, Row, Value};
pub use sqlite::read_connections::ReadConnection;
pub use statement::{Arg, Statement};
pub use tx::Tx;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use sqlite::group_commit::WriteGroup;
use sqlite::read_connections::ReadConnections;

/// Settings of every SQLite connection.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
    PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;";

/// Settings of the SQLite write connection: a page cache smaller than the readers', because
/// SQLite scans the whole cache's hash table at every commit, and the write connection commits
/// often; no automatic checkpoints, which the checkpointer thread makes instead.
const WRITER: &str = "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0;";

/// Errors of the database engine.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL is neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// An in-memory SQLite database: the engine opens several connections to its database
    /// (a writer, readers), and each would see a database of its own.
    #[error("in-memory SQLite (`{0}`) is not supported: use sqlite://PATH (a file)")]
    InMemory(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder of the SQLite file named by the database URL.
        path: String,
        /// The file system's error.
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
        /// Path of the lock file: the database file's path plus `-host.lock`.
        path: String,
        /// The file system's error.
        source: std::io::Error,
    },
    /// A call through sqlx (PostgreSQL, SQLite's read pool, migrations' connection) failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A statement on one of the engine's own SQLite connections (the write connection, a
    /// read connection) failed.
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// Running this dialect's migrations (`migrations/sqlite` or `migrations/postgres`) failed.
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
    /// A statement expected to answer a row answered none.
    #[error("the statement answered no row")]
    NoRow,
    /// A column's value is not of the type asked for.
    #[error("column {column}: {message}")]
    Decode {
        /// The column, by name or `#position`.
        column: String,
        /// `expected <type>, found <kind of value>`, or `no such column`.
        message: String,
    },
}

/// Result of engine calls.
pub type DbResult<T> = Result<T, DbError>;

/// What rows are read through: a pool's connection, a write transaction (which sees its own
/// writes), or a connection for reads by key.
pub trait Fetch: Send {
    /// Runs a query that only reads and returns its rows.
    fn fetch(&mut self, statement: Statement) -> impl Future<Output = DbResult<Vec<Row>>> + Send;

    /// Runs a query and answers its first row, if any.
    fn fetch_first(&mut self, statement: Statement) -> impl Future<Output = DbResult<Option<Row>>> + Send {
        async move { Ok(self.fetch(statement).await?.into_iter().next()) }
    }
}

/// Reads that need no transaction, each on a connection of a pool.
#[derive(Clone)]
pub struct Reader(AnyPool);

impl Reader {
    /// Runs a query and answers its rows.
    pub async fn fetch_all(&self, statement: Statement) -> DbResult<Vec<Row>> {
        Row::all_from_any(&statement.into_query().fetch_all(&self.0).await?)
    }

    /// Runs a query and answers its first row, if any.
    pub async fn fetch_optional(&self, statement: Statement) -> DbResult<Option<Row>> {
        Ok(self.fetch_all(statement).await?.into_iter().next())
    }

    /// Runs a query that answers one row; none is an error.
    pub async fn fetch_one(&self, statement: Statement) -> DbResult<Row> {
        self.fetch_optional(statement).await?.ok_or(DbError::NoRow)
    }

    /// Runs a query that answers one value (an aggregate: `COUNT`, `MIN`...) and reads it.
    pub async fn scalar<T: FromValue>(&self, statement: Statement) -> DbResult<T> {
        self.fetch_one(statement).await?.get(0)
    }

    /// Runs a query and reads the first column of its first row, if any.
    pub async fn scalar_optional<T: FromValue>(&self, statement: Statement) -> DbResult<Option<T>> {
        self.fetch_optional(statement).await?.map(|row| row.get(0)).transpose()
    }

    /// Runs a query and reads the first column of every row.
    pub async fn scalars<T: FromValue>(&self, statement: Statement) -> DbResult<Vec<T>> {
        self.fetch_all(statement).await?.iter().map(|row| row.get(0)).collect()
    }
}

impl Fetch for Reader {
    async fn fetch(&mut self, statement: Statement) -> DbResult<Vec<Row>> {
        self.fetch_all(statement).await
    }
}

/// Where write transactions come from.
#[derive(Clone)]
enum Writes {
    /// PostgreSQL: a pool; each transaction on its own connection.
    Pool(AnyPool),
    /// SQLite: the one write connection, shared by group commit.
    Group(Arc<WriteGroup>),
}

/// Handle to the database: its connections and its dialect. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    write: Writes,
    read: Reader,
    meta: Reader,
    dialect: Dialect,
    /// SQLite: how to open a connection of sqlx's own (the migrations run on one).
    sqlite_options: Option<AnyConnectOptions>,
    /// SQLite: the connections for reads by key, used on the caller's thread.
    key_reads: Option<Arc<ReadConnections>>,
    /// SQLite: this host's hold on the database, released at close.
    host_lock: Option<Arc<sqlite::host_lock::HostLock>>,
}

/// A connection for reads of rows by key (see [`Database::key_reader`]).
pub enum KeyReader {
    /// SQLite: a connection used on the caller's thread.
    Inline(ReadConnection),
    /// PostgreSQL: the read pool.
    Pooled(Reader),
}

impl Fetch for KeyReader {
    async fn fetch(&mut self, statement: Statement) -> DbResult<Vec<Row>> {
        match self {
            KeyReader::Inline(connection) => connection.fetch(&statement),
            KeyReader::Pooled(reader) => reader.fetch_all(statement).await,
        }
    }
}

impl Database {
    /// Connects to `url` (`sqlite://path` creates the file and its folder; `postgres://...`).
    pub async fn connect(url: &str) -> DbResult<Database> {
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
            Ok(Database {
                write: Writes::Pool(write),
                read: Reader(read),
                meta: Reader(meta),
                dialect: Dialect::Postgres,
                sqlite_options: None,
                key_reads: None,
                host_lock: None,
            })
        } else {
            Err(DbError::UnsupportedUrl(url.to_string()))
        }
    }

    async fn connect_sqlite(url: &str, path: &str) -> DbResult<Database> {
        let (database, params) = path.split_once('?').unwrap_or((path, ""));
        if database.is_empty() || database == ":memory:" || params.split('&').any(|param| param == "mode=memory") {
            return Err(DbError::InMemory(url.to_string()));
        }
        // The file as sqlx reads the URL (percent-decoded), so the engine's own connections and
        // sqlx's open the same one.
        let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf();
        let file = file.as_path();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| DbError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let url = if url.contains("mode=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let host_lock = sqlite::host_lock::HostLock::take(file)?;
        // SQLite has one writer at a time: a single write connection, on a thread of its own and
        // shared by group commit, instead of writers spinning on SQLITE_BUSY; readers use their
        // own pool.
        let checkpoints = sqlite::checkpointer::Checkpoints::start(file)?;
        let write =
            sqlite::write_thread::WriteConnection::open(file, &format!("{PRAGMAS} {WRITER}"), Some(checkpoints))?;
        let write = Writes::Group(WriteGroup::start(write)?);
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
        Ok(Database {
            write,
            meta: Reader(read.clone()),
            read: Reader(read),
            dialect: Dialect::Sqlite,
            sqlite_options: Some(options),
            key_reads: Some(ReadConnections::new(file)),
            host_lock: Some(Arc::new(host_lock)),
        })
    }

    /// Runs the migrations of this dialect (the top-level `migrations/`).
    pub async fn migrate(&self) -> DbResult<()> {
        match &self.write {
            Writes::Group(group) => {
                // sqlx runs the migrations on a connection of its own, while the write
                // connection waits with no transaction open.
                let _writer = group.exclusive().await;
                let options = self.sqlite_options.as_ref().ok_or(DbError::Closed)?;
                let mut connection = AnyConnection::connect_with(options).await?;
                connection.execute(PRAGMAS).await?;
                let migrated = sqlx::migrate!("../../migrations/sqlite").run(&mut connection).await;
                connection.close().await?;
                migrated?;
            }
            Writes::Pool(pool) => sqlx::migrate!("../../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Which database this is (SQLite or PostgreSQL), for SQL that differs between them.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Reads that need no transaction.
    pub fn reader(&self) -> &Reader {
        &self.read
    }

    /// A connection for reads of single rows by key: on SQLite, one used on the caller's thread
    /// (no hand-over to another thread, see `sqlite::read_connections`); on PostgreSQL, the read
    /// pool. Reads that scan use [`Database::reader`].
    pub async fn key_reader(&self) -> DbResult<KeyReader> {
        match &self.key_reads {
            Some(reads) => Ok(KeyReader::Inline(reads.take()?)),
            None => Ok(KeyReader::Pooled(self.read.clone())),
        }
    }

    /// Reads of configuration, which may happen inside a write transaction (a separate pool on
    /// PostgreSQL, so they never wait for the transaction's own pool).
    pub fn meta(&self) -> &Reader {
        &self.meta
    }

    /// Starts a write transaction (it takes its turn on the database at its first statement).
    pub fn begin(&self) -> Tx {
        match &self.write {
            Writes::Pool(pool) => Tx::pooled(pool.clone()),
            Writes::Group(group) => Tx::grouped(group.clone()),
        }
    }

    /// Closes the connections, waiting for those in use.
    pub async fn close(&self) {
        // Readers first, so the SQLite writer, closing last, can empty the write-ahead log.
        if let Some(reads) = &self.key_reads {
            reads.close();
        }
        self.read.0.close().await;
        self.meta.0.close().await;
        match &self.write {
            Writes::Pool(pool) => pool.close().await,
            Writes::Group(group) => group.close().await,
        }
        if let Some(lock) = &self.host_lock {
            lock.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn in_memory_sqlite_is_refused_with_a_clear_error() {
        for url in ["sqlite://:memory:", "sqlite://?mode=memory", "sqlite://data.db?mode=memory&cache=shared"] {
            let refused = Database::connect(url).await.err();
            assert!(matches!(refused, Some(DbError::InMemory(_))), "{url}: {refused:?}");
            assert!(refused.is_some_and(|e| e.to_string().contains("use sqlite://PATH")));
        }
        assert!(!Path::new("data.db").exists(), "nothing was created");
    }

    async fn generation(reader: &Reader) -> i64 {
        reader.scalar(Statement::new("SELECT value FROM generations WHERE id = 1")).await.expect("select")
    }

    #[tokio::test]
    async fn a_sqlite_database_has_one_host_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("one.db").display());
        let first = Database::connect(&url).await.expect("connect");
        first.migrate().await.expect("migrate");
        let refused = Database::connect(&url).await.err();
        assert!(matches!(refused, Some(DbError::InUse(_))), "{refused:?}");
        assert!(refused.is_some_and(|e| e.to_string().contains("in use by another Voronka host")));
        // The first is untouched by the refused attempt; once it closes, another opens.
        let mut tx = first.begin();
        tx.execute(Statement::new("UPDATE generations SET value = 7 WHERE id = 1")).await.expect("update");
        tx.commit().await.expect("commit");
        first.close().await;
        let second = Database::connect(&url).await.expect("connect again");
        assert_eq!(generation(second.reader()).await, 7);
        second.close().await;
    }

    #[tokio::test]
    async fn a_percent_encoded_path_is_one_file_for_every_connection() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/two%20words.db", dir.path().display());
        let database = Database::connect(&url).await.expect("connect");
        database.migrate().await.expect("migrate");
        let mut tx = database.begin();
        tx.execute(Statement::new("UPDATE generations SET value = 41 WHERE id = 1")).await.expect("update");
        tx.commit().await.expect("commit");

        // sqlx's read pool and the engine's own read connections see the write thread's commit.
        let pooled = generation(database.reader()).await;
        let mut key_reader = database.key_reader().await.expect("key reader");
        let rows = key_reader.fetch(Statement::new("SELECT value FROM generations WHERE id = 1")).await.expect("read");
        let inline: i64 = rows[0].get("value").expect("value");
        assert_eq!((pooled, inline), (41, 41));
        assert!(dir.path().join("two words.db").exists());
        assert!(!dir.path().join("two%20words.db").exists(), "the writer opened the undecoded name");

        database.close().await;
        let wal = std::fs::metadata(dir.path().join("two words.db-wal")).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal, 0, "a closed database leaves its data in the database file");
        assert!(matches!(database.key_reader().await.err(), Some(DbError::Closed)));
    }
}
