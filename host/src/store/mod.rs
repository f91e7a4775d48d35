//! Storage: one repository layer over SQLite (embedded default) and PostgreSQL (shared by
//! several hosts), through sqlx's `Any` driver. SQL is written once with `$n` placeholders and
//! portable types (BIGINT, TEXT); the few dialect differences go through [`Dialect`].

pub mod catalog;
pub mod idempotency;
pub mod items;
pub mod jobs;
pub mod journal;
pub mod outbox;
pub mod people;
pub mod plugins;
pub mod robots;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A database call failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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

/// A write transaction. Every state change runs in one, together with its history and events.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Handle to the database: pools, dialect and the configuration generation.
#[derive(Clone)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    meta: AnyPool,
    dialect: Dialect,
    local_generation: Arc<AtomicI64>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` creates the file and its folder; `postgres://...`).
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            Self::connect_sqlite(url, path).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool =
                AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            // Catalog and generation reads happen while a write transaction holds a connection
            // of the main pool; their own small pool keeps them from waiting on it.
            let meta =
                AnyPoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            Ok(Store {
                write: pool.clone(),
                read: pool,
                meta,
                dialect: Dialect::Postgres,
                local_generation: Arc::default(),
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    async fn connect_sqlite(url: &str, path: &str) -> StoreResult<Store> {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
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
        let pragmas = |options: AnyPoolOptions| {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                    Ok(())
                })
            })
        };
        // SQLite has one writer at a time: a single write connection queues writers fairly in
        // process instead of letting them spin on SQLITE_BUSY; readers use their own pool.
        let write = pragmas(AnyPoolOptions::new().max_connections(1).min_connections(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let read = pragmas(AnyPoolOptions::new().max_connections(8))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Store { write, meta: read.clone(), read, dialect: Dialect::Sqlite, local_generation: Arc::default() })
    }

    /// Runs the migrations of this dialect.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&self.write).await?,
            Dialect::Postgres => sqlx::migrate!("../migrations/postgres").run(&self.write).await?,
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

    /// Pool for catalog and generation reads, which may happen inside a write transaction
    /// (a separate pool on PostgreSQL, so they never wait for the transaction's own pool).
    pub fn meta(&self) -> &AnyPool {
        &self.meta
    }

    /// Pool for single write statements outside a transaction (the one write connection on
    /// SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.write.begin().await?)
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.meta.close().await;
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
        sqlx::query("UPDATE generations SET value = value + 1 WHERE id = 1").execute(&mut **tx).await?;
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
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(7001)").execute(&mut **tx).await?;
    }
    Ok(())
}

/// Reads a JSON text column, naming the table when it is corrupt.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(table: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { table, message: e.to_string() })
}
