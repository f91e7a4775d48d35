//! HTTP load benchmark of the `voronka` binary: create, move, get and list over the REST API.
//!
//! It starts the real server as a child process and drives it with concurrent HTTP clients
//! from this process, on the same machine, so the load generator and the server share the CPU.
//!
//! ```text
//! cargo bench -p voronka --bench http_load                              # SQLite in a temp dir
//! PG_DURABLE=1 scripts/pg start /tmp/benchpg                            # prints a postgres:// URL
//! BENCH_DATABASE=postgres://postgres@127.0.0.1:PORT/postgres \
//!     cargo bench -p voronka --bench http_load                          # a fresh database on it
//! scripts/pg stop /tmp/benchpg
//! ```
//!
//! Options (environment):
//! - `BENCH_DATABASE`: unset for SQLite in a temporary directory; a `postgres://` URL to create
//!   a fresh database `bench_<random>` on that server (dropped at the end unless `BENCH_KEEP_DB=1`).
//! - `BENCH_SECONDS`: length of each load phase (default 10).
//! - `BENCH_CLIENTS`: concurrent HTTP clients (default 32).
//! - `BENCH_LIST_ITEMS`: deals in the table for the list phase (default 1,000,000).
//! - `BENCH_LIST_SECONDS`: length of each list phase (default 5).
//! - `BENCH_DIR`: parent folder of the temporary data directory (default: the system temp dir).
//!
//! Phases: a 1 s warm-up of creates (not reported); `create` (all clients create deals);
//! `move` (each client moves its own deals between `new` and `in-progress`); `get` while the
//! other clients create, then while they move (one client reads random existing deals); then
//! the server stops, deals are bulk-inserted straight into the database until the table holds
//! `BENCH_LIST_ITEMS` deals spread over the four stages of funnel `default`, the server starts
//! again and lists `stage=won` 50 at a time: the first page, and pages deep in the stage (real
//! cursors collected by walking the stage through the API, each followed for five pages).
//! At the end it prints Markdown tables with the machine, the database, every phase's
//! throughput, latency percentiles, errors and CPU use, and whether each target was met.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use sqlx::Connection;

/// Bearer token of the administrator the server creates.
const TOKEN: &str = "vk_bench_admin_token_0123456789abcdef";
/// Page size of the list phases.
const PAGE: usize = 50;
/// Pages followed from each deep cursor.
const DEEP_PAGES: usize = 5;
/// Error messages kept per phase.
const ERROR_SAMPLES: usize = 3;
/// Cores used by other processes above which the report warns that the run was disturbed.
const OTHER_LOAD_WARNING: f64 = 0.15;

// Targets of the issue.
const TARGET_CREATE_PER_S: f64 = 5_000.0;
const TARGET_MOVE_PER_S: f64 = 5_000.0;
const TARGET_GET_P99_MS: f64 = 5.0;
const TARGET_LIST_P95_MS: f64 = 20.0;

fn main() -> Result<()> {
    let options = Options::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the runtime")?;
    runtime.block_on(run(options))
}

/// Settings read from the environment.
#[derive(Debug, Clone)]
struct Options {
    database: Option<String>,
    seconds: u64,
    clients: usize,
    list_items: u64,
    list_seconds: u64,
    dir: Option<PathBuf>,
    keep_db: bool,
}

impl Options {
    fn from_env() -> Result<Options> {
        fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    v.trim().replace('_', "").parse().map_err(|_| anyhow::anyhow!("{name}={v} is not a number"))
                }
                _ => Ok(default),
            }
        }
        let options = Options {
            database: std::env::var("BENCH_DATABASE").ok().filter(|v| !v.trim().is_empty()),
            seconds: number("BENCH_SECONDS", 10)?,
            clients: number("BENCH_CLIENTS", 32)?,
            list_items: number("BENCH_LIST_ITEMS", 1_000_000)?,
            list_seconds: number("BENCH_LIST_SECONDS", 5)?,
            dir: std::env::var_os("BENCH_DIR").map(PathBuf::from),
            keep_db: std::env::var("BENCH_KEEP_DB").as_deref() == Ok("1"),
        };
        if options.clients < 2 {
            bail!("BENCH_CLIENTS must be at least 2 (one reader runs beside the writers)");
        }
        if options.seconds == 0 || options.list_seconds == 0 {
            bail!("BENCH_SECONDS and BENCH_LIST_SECONDS must be positive");
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------------------------
// The database under test

/// The database the server runs on.
enum Database {
    Sqlite { url: String, path: PathBuf },
    Postgres { server_url: String, url: String, name: String },
}

impl Database {
    async fn prepare(options: &Options, dir: &Path) -> Result<Database> {
        let Some(server_url) = options.database.clone() else {
            let path = dir.join("voronka.db");
            return Ok(Database::Sqlite { url: format!("sqlite://{}", path.display()), path });
        };
        if !(server_url.starts_with("postgres://") || server_url.starts_with("postgresql://")) {
            bail!("BENCH_DATABASE must be a postgres:// URL (unset it for SQLite)");
        }
        let name = format!("bench_{:016x}", Rng::seeded().next());
        let mut conn = sqlx::PgConnection::connect(&server_url).await.context("connecting to BENCH_DATABASE")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await.ok();
        let url = with_database_name(&server_url, &name)?;
        Ok(Database::Postgres { server_url, url, name })
    }

    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres { url, .. } => url,
        }
    }

    /// The pid of the PostgreSQL postmaster, when it runs on this machine (the parent of our
    /// backend, as seen in /proc).
    async fn postmaster(&self) -> Option<u32> {
        let Database::Postgres { url, .. } = self else { return None };
        let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{backend}/comm")).ok();
        let postmaster = parent_pid(&backend.to_string()).filter(|_| comm.is_some_and(|c| c.trim() == "postgres"));
        conn.close().await.ok();
        postmaster
    }

    /// Product and version, for the report.
    async fn describe(&self) -> Result<String> {
        match self {
            Database::Sqlite { path, .. } => {
                let mut conn = self.sqlite().await?;
                let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(&mut conn)
                    .await
                    .context("sqlite_version")?;
                conn.close().await.ok();
                Ok(format!("SQLite {version} (WAL, synchronous=NORMAL), file {}", path.display()))
            }
            Database::Postgres { url, name, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to the bench database")?;
                let version: String =
                    sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await.context("server_version")?;
                let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut conn).await.context("fsync")?;
                let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(&mut conn)
                    .await
                    .context("synchronous_commit")?;
                conn.close().await.ok();
                Ok(format!("PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync}), database {name}"))
            }
        }
    }

    async fn sqlite(&self) -> Result<sqlx::SqliteConnection> {
        let Database::Sqlite { path, .. } = self else { bail!("not SQLite") };
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-262144");
        sqlx::SqliteConnection::connect_with(&options).await.with_context(|| format!("opening {}", path.display()))
    }

    /// Number of deals, and of deals in stage `won`.
    async fn count_deals(&self) -> Result<(u64, u64)> {
        const SQL: &str = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN stage_key = 'won' THEN 1 ELSE 0 END), 0) \
                           FROM items WHERE type_key = 'deal'";
        let (all, won): (i64, i64) = match self {
            Database::Sqlite { .. } => {
                let mut conn = self.sqlite().await?;
                let row = sqlx::query_as(SQL).fetch_one(&mut conn).await.context("counting deals")?;
                conn.close().await.ok();
                row
            }
            Database::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to the bench database")?;
                let row = sqlx::query_as(
                    "SELECT COUNT(*)::BIGINT, COALESCE(SUM(CASE WHEN stage_key = 'won' THEN 1 ELSE 0 END), 0)::BIGINT \
                     FROM items WHERE type_key = 'deal'",
                )
                .fetch_one(&mut conn)
                .await
                .context("counting deals")?;
                conn.close().await.ok();
                row
            }
        };
        Ok((u64::try_from(all).unwrap_or(0), u64::try_from(won).unwrap_or(0)))
    }

    /// Inserts `count` deals in one statement, round-robin over the four stages.
    async fn bulk_insert(&self, count: u64) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let count = i64::try_from(count).context("BENCH_LIST_ITEMS is too large")?;
        let now = now_micros();
        match self {
            Database::Sqlite { .. } => {
                let mut conn = self.sqlite().await?;
                let mut tx = conn.begin().await.context("BEGIN")?;
                let admin: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM users")
                    .fetch_one(&mut *tx)
                    .await
                    .context("reading the admin id")?;
                sqlx::query(
                    "INSERT INTO items (type_key, funnel_key, stage_key, title, amount_value, amount_currency,
                        responsible_id, fields, version, created_by, created_at, updated_by, updated_at)
                     WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $1)
                     SELECT 'deal', 'default',
                        CASE n % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'in-progress' WHEN 2 THEN 'won' ELSE 'lost' END,
                        'Bulk deal ' || n, CAST(100 + n % 1000 AS TEXT) || '.00', 'RUB',
                        $2, '{}', 1, $2, $3 + n, $2, $3 + n
                     FROM seq",
                )
                .bind(count)
                .bind(admin)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context("bulk insert into items")?;
                tx.commit().await.context("COMMIT")?;
                conn.close().await.ok();
            }
            Database::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to the bench database")?;
                sqlx::query(
                    "INSERT INTO items (type_key, funnel_key, stage_key, title, amount_value, amount_currency,
                        responsible_id, fields, version, created_by, created_at, updated_by, updated_at)
                     SELECT 'deal', 'default',
                        (ARRAY['new', 'in-progress', 'won', 'lost'])[n % 4 + 1],
                        'Bulk deal ' || n, (100 + n % 1000)::TEXT || '.00', 'RUB',
                        a.id, '{}', 1, a.id, $2 + n, a.id, $2 + n
                     FROM generate_series(0::BIGINT, $1 - 1) AS n,
                        (SELECT MIN(id) AS id FROM users) AS a",
                )
                .bind(count)
                .bind(now)
                .execute(&mut conn)
                .await
                .context("bulk insert into items")?;
                // Autovacuum would analyze the grown table shortly after such a load.
                sqlx::query("ANALYZE items").execute(&mut conn).await.context("ANALYZE items")?;
                conn.close().await.ok();
            }
        }
        Ok(())
    }

    /// Drops the PostgreSQL bench database.
    async fn cleanup(&self, keep: bool) -> Result<()> {
        if let Database::Postgres { server_url, name, .. } = self {
            if keep {
                eprintln!("keeping database {name} (BENCH_KEEP_DB=1)");
                return Ok(());
            }
            let mut conn = sqlx::PgConnection::connect(server_url).await.context("connecting to BENCH_DATABASE")?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .with_context(|| format!("dropping database {name}"))?;
            conn.close().await.ok();
        }
        Ok(())
    }
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The URL with its database (path) replaced by `name`, keeping any query string.
fn with_database_name(url: &str, name: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority = base.find("://").context("BENCH_DATABASE has no scheme")? + 3;
    let root = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    })
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A running `voronka serve`; killed on drop.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    async fn start(data_dir: &Path, database: &str, http: &reqwest::Client) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log_path = data_dir.join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log_err = log.try_clone().context("cloning the log handle")?;
        let child = Command::new(env!("CARGO_BIN_EXE_voronka"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(["--database", database])
            .env("VORONKA_ADMIN_TOKEN", TOKEN)
            .env_remove("VORONKA_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .context("starting voronka")?;
        let mut server = Server { child: Some(child), base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait().context("polling voronka")?
            {
                server.child = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("voronka exited with {status} before answering /healthz:\n{log}");
            }
            let health = http.get(format!("{}/healthz", server.base)).timeout(Duration::from_secs(2)).send().await;
            if matches!(health, Ok(ref r) if r.status() == StatusCode::OK) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("voronka did not answer /healthz within 120 s (log: {})", log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops with SIGTERM (graceful: pools closed, WAL checkpointed), SIGKILL after 30 s.
    async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if !matches!(status, Ok(s) if s.success()) {
            child.kill().ok();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().context("waiting for voronka")? {
                if !status.success() {
                    eprintln!("warning: voronka exited with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                bail!("voronka did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// What every client task shares.
struct Ctx {
    http: reqwest::Client,
    base: String,
    auth: String,
}

/// A small xorshift generator: per-task randomness without locks.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Rng::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Latencies (µs) of successful requests, completions per second, and errors, of one task.
#[derive(Default)]
struct Recorder {
    latencies_us: Vec<u64>,
    per_second: Vec<u64>,
    errors: u64,
    samples: Vec<String>,
}

impl Recorder {
    fn ok(&mut self, phase_start: Instant, started: Instant) {
        let now = Instant::now();
        self.latencies_us.push(now.duration_since(started).as_micros() as u64);
        let second = now.duration_since(phase_start).as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += 1;
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&message) {
            self.samples.push(message);
        }
    }

    fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (total, n) in self.per_second.iter_mut().zip(other.per_second) {
            *total += n;
        }
        self.errors += other.errors;
        for s in other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

/// Sends a request and reads the whole body; an unexpected status is an error.
async fn send(request: reqwest::RequestBuilder, expect: StatusCode) -> Result<impl AsRef<[u8]>, String> {
    let response = request.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("reading body: {e}"))?;
    if status != expect {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(200).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body)
}

fn id_of(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?.get("id")?.as_i64()
}

/// Deals owned by one client, with the stage each is in (true: `in-progress`).
#[derive(Default)]
struct Owned {
    ids: Vec<i64>,
    in_progress: Vec<bool>,
    next: usize,
}

async fn create_loop(ctx: Arc<Ctx>, start: Instant, deadline: Instant, client: usize) -> (Recorder, Vec<i64>) {
    let mut rec = Recorder::default();
    let mut ids = Vec::new();
    let url = format!("{}/api/v1/items/deal", ctx.base);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let body = format!(
            r#"{{"title":"Bench deal {client}-{n}","funnel":"default","stage":"new","amount":{{"value":"{}.00","currency":"RUB"}}}}"#,
            100 + n % 1000
        );
        let request = ctx
            .http
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, &ctx.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let started = Instant::now();
        match send(request, StatusCode::CREATED).await {
            Ok(body) => {
                rec.ok(start, started);
                match id_of(body.as_ref()) {
                    Some(id) => ids.push(id),
                    None => rec.error("201 without an id".into()),
                }
            }
            Err(e) => rec.error(e),
        }
    }
    (rec, ids)
}

async fn move_loop(ctx: Arc<Ctx>, start: Instant, deadline: Instant, mut owned: Owned) -> (Recorder, Owned) {
    let mut rec = Recorder::default();
    if owned.ids.is_empty() {
        rec.error("this client has no deals to move (its creates failed)".into());
        return (rec, owned);
    }
    while Instant::now() < deadline {
        let i = owned.next % owned.ids.len();
        owned.next += 1;
        let to = if owned.in_progress[i] { "new" } else { "in-progress" };
        let request = ctx
            .http
            .post(format!("{}/api/v1/items/deal/{}/move", ctx.base, owned.ids[i]))
            .header(reqwest::header::AUTHORIZATION, &ctx.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(format!(r#"{{"stage":"{to}"}}"#));
        let started = Instant::now();
        match send(request, StatusCode::OK).await {
            Ok(_) => {
                rec.ok(start, started);
                owned.in_progress[i] = !owned.in_progress[i];
            }
            Err(e) => rec.error(e),
        }
    }
    (rec, owned)
}

async fn get_loop(ctx: Arc<Ctx>, start: Instant, deadline: Instant, ids: Arc<Vec<i64>>, seed: u64) -> Recorder {
    let mut rec = Recorder::default();
    let mut rng = Rng::new(seed);
    if ids.is_empty() {
        rec.error("no deals to read".into());
        return rec;
    }
    while Instant::now() < deadline {
        let id = ids[rng.below(ids.len())];
        let request = ctx
            .http
            .get(format!("{}/api/v1/items/deal/{id}", ctx.base))
            .header(reqwest::header::AUTHORIZATION, &ctx.auth);
        let started = Instant::now();
        match send(request, StatusCode::OK).await {
            Ok(body) if id_of(body.as_ref()) == Some(id) => rec.ok(start, started),
            Ok(_) => rec.error(format!("GET {id} answered another item")),
            Err(e) => rec.error(e),
        }
    }
    rec
}

/// Where list requests start.
#[derive(Clone, Copy, PartialEq)]
enum ListMode {
    /// The first page of the stage.
    First,
    /// A random cursor deep in the stage, followed for [`DEEP_PAGES`] pages.
    Deep,
    /// Half first pages, half deep.
    Mixed,
}

/// One `stage=won` page: checks it is full and returns its `next_cursor`.
async fn list_page(ctx: &Ctx, rec: &mut Recorder, start: Instant, cursor: Option<&str>) -> Option<String> {
    let mut url = format!("{}/api/v1/items/deal?funnel=default&stage=won&limit={PAGE}", ctx.base);
    if let Some(c) = cursor {
        url.push_str("&cursor=");
        url.push_str(c);
    }
    let request = ctx.http.get(url).header(reqwest::header::AUTHORIZATION, &ctx.auth);
    let started = Instant::now();
    match send(request, StatusCode::OK).await {
        Ok(body) => {
            let page: serde_json::Value = match serde_json::from_slice(body.as_ref()) {
                Ok(v) => v,
                Err(e) => {
                    rec.error(format!("list body is not JSON: {e}"));
                    return None;
                }
            };
            let items = page.get("items").and_then(|v| v.as_array());
            let all_won =
                items.is_some_and(|items| items.iter().all(|i| i.get("stage").and_then(|s| s.as_str()) == Some("won")));
            match items.map(Vec::len) {
                Some(PAGE) if all_won => rec.ok(start, started),
                Some(n) => rec.error(format!("page of {n} items (expected {PAGE}, all `won`)")),
                None => rec.error("list body has no items".into()),
            }
            page.get("next_cursor").and_then(|c| c.as_str()).map(str::to_string)
        }
        Err(e) => {
            rec.error(e);
            None
        }
    }
}

async fn list_loop(
    ctx: Arc<Ctx>,
    start: Instant,
    deadline: Instant,
    mode: ListMode,
    cursors: Arc<Vec<String>>,
    seed: u64,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut rng = Rng::new(seed);
    while Instant::now() < deadline {
        let deep = match mode {
            ListMode::First => false,
            ListMode::Deep => true,
            ListMode::Mixed => rng.next().is_multiple_of(2),
        };
        if !deep || cursors.is_empty() {
            list_page(&ctx, &mut rec, start, None).await;
            continue;
        }
        let mut cursor = Some(cursors[rng.below(cursors.len())].clone());
        for _ in 0..DEEP_PAGES {
            let Some(c) = cursor.take() else { break };
            if Instant::now() >= deadline {
                break;
            }
            cursor = list_page(&ctx, &mut rec, start, Some(&c)).await;
        }
    }
    rec
}

/// Walks `stage=won` through the API, 500 at a time, to its middle; returns the cursors met in
/// the second quarter of the stage (real cursors from deep inside it).
async fn collect_deep_cursors(ctx: &Ctx, won: u64) -> Result<Vec<String>> {
    const WALK: u64 = 500;
    let mut cursors = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = 0u64;
    while seen < won / 2 {
        let mut url = format!("{}/api/v1/items/deal?funnel=default&stage=won&limit={WALK}", ctx.base);
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let response = ctx
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, &ctx.auth)
            .send()
            .await
            .context("walking stage won")?;
        let status = response.status();
        let body = response.bytes().await.context("reading a page of stage won")?;
        if status != StatusCode::OK {
            bail!("walking stage won: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        let page: serde_json::Value = serde_json::from_slice(&body).context("a page of stage won is not JSON")?;
        seen += page.get("items").and_then(|v| v.as_array()).map_or(0, |v| v.len() as u64);
        match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(c) => {
                if seen >= won / 4 {
                    cursors.push(c.to_string());
                }
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    Ok(cursors)
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc

/// CPU time counters at one moment.
#[derive(Clone, Copy, Default)]
struct CpuSnapshot {
    at: Option<Instant>,
    server: u64,
    bench: u64,
    postgres: u64,
    machine_busy: u64,
    machine_total: u64,
}

/// utime + stime of a process, in clock ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Parent pid of a process.
fn parent_pid(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
}

/// CPU ticks of a PostgreSQL cluster: its postmaster and the postmaster's children (backends,
/// checkpointer, WAL writer...).
fn postgres_ticks(postmaster: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| pid.parse() == Ok(postmaster) || parent_pid(pid) == Some(postmaster))
        .filter_map(|pid| process_ticks(&pid))
        .sum()
}

/// (busy, total) ticks of the whole machine from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

fn cpu_snapshot(server_pid: Option<u32>, postmaster: Option<u32>) -> CpuSnapshot {
    let (machine_busy, machine_total) = machine_ticks();
    CpuSnapshot {
        at: Some(Instant::now()),
        server: server_pid.and_then(|p| process_ticks(&p.to_string())).unwrap_or(0),
        bench: process_ticks("self").unwrap_or(0),
        postgres: postmaster.map_or(0, postgres_ticks),
        machine_busy,
        machine_total,
    }
}

/// CPU used between two snapshots, in cores (1.0 = one core busy all the time).
#[derive(Clone, Copy, Default)]
struct CpuUse {
    server: f64,
    bench: f64,
    postgres: Option<f64>,
    machine: f64,
}

impl CpuUse {
    /// CPU of processes other than the server, PostgreSQL and this benchmark.
    fn other(&self) -> f64 {
        (self.machine - self.server - self.bench - self.postgres.unwrap_or(0.0)).max(0.0)
    }
}

fn cpu_use(before: CpuSnapshot, after: CpuSnapshot, tick_hz: f64, cores: f64, with_postgres: bool) -> CpuUse {
    let seconds = match (before.at, after.at) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(1e-3),
        _ => return CpuUse::default(),
    };
    let cores_of = |a: u64, b: u64| b.saturating_sub(a) as f64 / tick_hz / seconds;
    let total = after.machine_total.saturating_sub(before.machine_total).max(1) as f64;
    CpuUse {
        server: cores_of(before.server, after.server),
        bench: cores_of(before.bench, after.bench),
        postgres: with_postgres.then(|| cores_of(before.postgres, after.postgres)),
        machine: after.machine_busy.saturating_sub(before.machine_busy) as f64 / total * cores,
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// Results

/// Whether a phase has a target from the issue.
#[derive(Clone, Copy)]
enum Target {
    None,
    MinThroughput(f64),
    MaxP99Ms(f64),
    MaxP95Ms(f64),
}

/// One measured phase.
struct PhaseResult {
    name: String,
    clients: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Sorted latencies in µs.
    latencies_us: Vec<u64>,
    /// Completions in each full second of the phase.
    full_seconds: Vec<u64>,
    samples: Vec<String>,
    cpu: CpuUse,
    target: Target,
}

impl PhaseResult {
    fn new(name: &str, clients: usize, mut rec: Recorder, elapsed: Duration, cpu: CpuUse, target: Target) -> Self {
        rec.latencies_us.sort_unstable();
        let full = elapsed.as_secs() as usize;
        rec.per_second.truncate(full);
        PhaseResult {
            name: name.to_string(),
            clients,
            ok: rec.latencies_us.len() as u64,
            errors: rec.errors,
            elapsed,
            latencies_us: rec.latencies_us,
            full_seconds: rec.per_second,
            samples: rec.samples,
            cpu,
            target,
        }
    }

    fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Worst full second, when the phase lasted at least one.
    fn worst_second(&self) -> Option<u64> {
        self.full_seconds.iter().copied().min()
    }

    /// Nearest-rank percentile in milliseconds.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.latencies_us[rank.clamp(1, n) - 1] as f64 / 1000.0)
    }

    /// "met" / "MISSED" / "" with the target text.
    fn verdict(&self) -> (String, &'static str) {
        let (text, met) = match self.target {
            Target::None => return (String::new(), ""),
            Target::MinThroughput(t) => (format!("≥ {} req/s", thousands(t)), self.throughput() >= t),
            Target::MaxP99Ms(t) => (format!("p99 < {t} ms"), self.percentile_ms(99.0).is_some_and(|v| v < t)),
            Target::MaxP95Ms(t) => (format!("p95 < {t} ms"), self.percentile_ms(95.0).is_some_and(|v| v < t)),
        };
        // Errors make a result untrustworthy: a phase with errors does not meet its target.
        (text, if met && self.errors == 0 { "met" } else { "**MISSED**" })
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

/// Facts about the machine for the report.
fn machine_facts() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get()).to_string());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or_else(|| "unknown".to_string(), |kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0));
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().into());
    vec![("nproc".into(), nproc), ("CPU".into(), model), ("Memory".into(), mem), ("Kernel".into(), kernel)]
}

struct Report {
    machine: Vec<(String, String)>,
    database: String,
    options: Options,
    bulk: Option<(u64, u64, u64, Duration)>,
    /// Cores busy in the second before the run (other processes).
    busy_before: f64,
    phases: Vec<PhaseResult>,
}

impl Report {
    fn render(&self) -> String {
        let mut out = String::new();
        let kind = if self.options.database.is_some() { "PostgreSQL" } else { "SQLite" };
        let _ = writeln!(out, "### HTTP load: {kind}\n");
        for (k, v) in &self.machine {
            let _ = writeln!(out, "- {k}: {v}");
        }
        let _ = writeln!(out, "- Database: {}", self.database);
        let _ = writeln!(
            out,
            "- Load: {} HTTP/1.1 clients in the same process as the measurement, {} s per load phase, \
             {} s per list phase; server and load generator share the machine",
            self.options.clients, self.options.seconds, self.options.list_seconds
        );
        if let Some((before, inserted, total, took)) = self.bulk {
            let _ = writeln!(
                out,
                "- List table: {} deals ({} created over HTTP + {} bulk-inserted in {:.1} s), `won` holds about a quarter",
                thousands(total as f64),
                thousands(before as f64),
                thousands(inserted as f64),
                took.as_secs_f64()
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| Phase | Clients | OK | Errors | Throughput (req/s) | Worst 1 s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | Target | Result |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
        for p in &self.phases {
            let (target, verdict) = p.verdict();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                p.clients,
                thousands(p.ok as f64),
                thousands(p.errors as f64),
                thousands(p.throughput()),
                p.worst_second().map_or_else(|| "–".into(), |v| thousands(v as f64)),
                ms(p.percentile_ms(50.0)),
                ms(p.percentile_ms(95.0)),
                ms(p.percentile_ms(99.0)),
                ms(p.percentile_ms(99.9)),
                ms(p.latencies_us.last().map(|v| *v as f64 / 1000.0)),
                target,
                verdict
            );
        }
        let _ = writeln!(out);
        let pg = self.phases.iter().any(|p| p.cpu.postgres.is_some());
        let _ = writeln!(
            out,
            "CPU during each phase, in cores (of {}): the `voronka` server, {}this load generator, \
             other processes (machine minus those), the whole machine. \
             Before the run the machine was {:.2} cores busy.\n",
            self.machine.first().map_or("?", |(_, v)| v.as_str()),
            if pg { "the PostgreSQL cluster (postmaster and its children), " } else { "" },
            self.busy_before
        );
        if pg {
            let _ = writeln!(out, "| Phase | voronka | PostgreSQL | load generator | other | machine |");
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
        } else {
            let _ = writeln!(out, "| Phase | voronka | load generator | other | machine |");
            let _ = writeln!(out, "|---|--:|--:|--:|--:|");
        }
        for p in &self.phases {
            let c = p.cpu;
            let pg_cell = c.postgres.map(|v| format!(" {v:.2} |")).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {:.2} |{pg_cell} {:.2} | {:.2} | {:.2} |",
                p.name,
                c.server,
                c.bench,
                c.other(),
                c.machine
            );
        }
        let worst_other = self.phases.iter().map(|p| p.cpu.other()).fold(self.busy_before, f64::max);
        if worst_other > OTHER_LOAD_WARNING {
            let _ = writeln!(
                out,
                "\n**Warning:** other processes used up to {worst_other:.2} cores during the run; \
                 these numbers are disturbed and understate the server. Rerun on a quiet machine."
            );
        }
        let errors: Vec<&PhaseResult> = self.phases.iter().filter(|p| !p.samples.is_empty()).collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nErrors (first distinct messages per phase):\n");
            for p in errors {
                for s in &p.samples {
                    let _ = writeln!(out, "- {}: {}", p.name, s.replace('\n', " "));
                }
            }
        }
        let missed: Vec<&str> =
            self.phases.iter().filter(|p| p.verdict().1 == "**MISSED**").map(|p| p.name.as_str()).collect();
        let _ = writeln!(out);
        if missed.is_empty() {
            let _ = writeln!(out, "All targets met.");
        } else {
            let _ = writeln!(out, "Targets missed: {}.", missed.join(", "));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// Measures one phase: CPU before and after, wall time until every client finished.
struct Meter {
    server_pid: Option<u32>,
    /// The local PostgreSQL postmaster, when its processes can be seen in /proc.
    postmaster: Option<u32>,
    tick_hz: f64,
    cores: f64,
}

impl Meter {
    fn begin(&self) -> (Instant, CpuSnapshot) {
        (Instant::now(), cpu_snapshot(self.server_pid, self.postmaster))
    }

    fn end(&self, started: Instant, cpu_before: CpuSnapshot) -> (Duration, CpuUse) {
        let elapsed = started.elapsed();
        let after = cpu_snapshot(self.server_pid, self.postmaster);
        (elapsed, cpu_use(cpu_before, after, self.tick_hz, self.cores, self.postmaster.is_some()))
    }
}

async fn join_all<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("a client task failed")?);
    }
    Ok(out)
}

async fn run(options: Options) -> Result<()> {
    let temp = match &options.dir {
        Some(dir) => tempfile::Builder::new().prefix("voronka-bench-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("voronka-bench-").tempdir(),
    }
    .context("creating the data directory")?;
    let data_dir = temp.path().to_path_buf();
    let database = Database::prepare(&options, &data_dir).await?;
    let result = run_on(&options, &database, &data_dir).await;
    let cleanup = database.cleanup(options.keep_db).await;
    let report = result?;
    cleanup?;
    println!("\n{}", report.render());
    Ok(())
}

async fn run_on(options: &Options, database: &Database, data_dir: &Path) -> Result<Report> {
    let machine = machine_facts();
    let cores: f64 = machine[0].1.parse().unwrap_or(1.0);
    let busy_before = {
        let (busy0, total0) = machine_ticks();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (busy1, total1) = machine_ticks();
        busy1.saturating_sub(busy0) as f64 / total1.saturating_sub(total0).max(1) as f64 * cores
    };
    if busy_before > OTHER_LOAD_WARNING {
        eprintln!("warning: the machine is already {busy_before:.2} cores busy before the run");
    }
    let tick_hz = clock_ticks_per_second();
    let phase = Duration::from_secs(options.seconds);
    let list_phase = Duration::from_secs(options.list_seconds);
    let clients = options.clients;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    eprintln!("data directory: {}", data_dir.display());
    let mut server = Server::start(data_dir, database.url(), &http).await?;
    let describe = database.describe().await?;
    eprintln!("database: {describe}");
    let ctx = Arc::new(Ctx { http: http.clone(), base: server.base.clone(), auth: format!("Bearer {TOKEN}") });
    let mut meter = Meter { server_pid: server.pid(), postmaster: database.postmaster().await, tick_hz, cores };
    let mut phases = Vec::new();
    let mut owned: Vec<Owned> = (0..clients).map(|_| Owned::default()).collect();

    // Warm-up: HTTP and database connections, caches. Not reported.
    eprintln!("warm-up: {clients} clients create for 1 s");
    {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(1);
        let tasks = (0..clients).map(|c| tokio::spawn(create_loop(ctx.clone(), start, deadline, c))).collect();
        for (c, (_, ids)) in join_all(tasks).await?.into_iter().enumerate() {
            owned[c].in_progress.extend(std::iter::repeat_n(false, ids.len()));
            owned[c].ids.extend(ids);
        }
    }

    // 1. create
    eprintln!("create: {clients} clients for {} s", options.seconds);
    {
        let (start, cpu) = meter.begin();
        let deadline = start + phase;
        let tasks = (0..clients).map(|c| tokio::spawn(create_loop(ctx.clone(), start, deadline, c))).collect();
        let mut rec = Recorder::default();
        for (c, (r, ids)) in join_all(tasks).await?.into_iter().enumerate() {
            rec.merge(r);
            owned[c].in_progress.extend(std::iter::repeat_n(false, ids.len()));
            owned[c].ids.extend(ids);
        }
        let (elapsed, cpu) = meter.end(start, cpu);
        phases.push(PhaseResult::new("create", clients, rec, elapsed, cpu, Target::MinThroughput(TARGET_CREATE_PER_S)));
    }
    let all_ids: Arc<Vec<i64>> = Arc::new(owned.iter().flat_map(|o| o.ids.iter().copied()).collect());

    // 2. move
    eprintln!("move: {clients} clients for {} s", options.seconds);
    {
        let (start, cpu) = meter.begin();
        let deadline = start + phase;
        let tasks = std::mem::take(&mut owned)
            .into_iter()
            .map(|o| tokio::spawn(move_loop(ctx.clone(), start, deadline, o)))
            .collect();
        let mut rec = Recorder::default();
        for (r, o) in join_all(tasks).await? {
            rec.merge(r);
            owned.push(o);
        }
        let (elapsed, cpu) = meter.end(start, cpu);
        phases.push(PhaseResult::new("move", clients, rec, elapsed, cpu, Target::MinThroughput(TARGET_MOVE_PER_S)));
    }

    // 3. get under load: one reader beside clients - 1 writers (creates, then moves).
    let writers = clients - 1;
    for under in ["create", "move"] {
        eprintln!("get under {under} load: 1 reader + {writers} writers for {} s", options.seconds);
        let (start, cpu) = meter.begin();
        let deadline = start + phase;
        let reader = tokio::spawn(get_loop(ctx.clone(), start, deadline, all_ids.clone(), 0x5EED ^ writers as u64));
        let mut writer_rec = Recorder::default();
        if under == "create" {
            let tasks = (0..writers).map(|c| tokio::spawn(create_loop(ctx.clone(), start, deadline, c))).collect();
            for (c, (r, ids)) in join_all(tasks).await?.into_iter().enumerate() {
                writer_rec.merge(r);
                owned[c].in_progress.extend(std::iter::repeat_n(false, ids.len()));
                owned[c].ids.extend(ids);
            }
        } else {
            let mut moving = std::mem::take(&mut owned);
            let idle = moving.split_off(writers);
            let tasks = moving.into_iter().map(|o| tokio::spawn(move_loop(ctx.clone(), start, deadline, o))).collect();
            for (r, o) in join_all(tasks).await? {
                writer_rec.merge(r);
                owned.push(o);
            }
            owned.extend(idle);
        }
        let get_rec = reader.await.context("the reader task failed")?;
        let (elapsed, cpu) = meter.end(start, cpu);
        phases.push(PhaseResult::new(
            &format!("get (beside {under})"),
            1,
            get_rec,
            elapsed,
            cpu,
            Target::MaxP99Ms(TARGET_GET_P99_MS),
        ));
        phases.push(PhaseResult::new(
            &format!("{under} (beside get)"),
            writers,
            writer_rec,
            elapsed,
            cpu,
            Target::None,
        ));
    }

    // 4. list: fill the table to BENCH_LIST_ITEMS deals with the server stopped.
    eprintln!("list: stopping the server to bulk-insert deals");
    server.stop().await?;
    let (before, _) = database.count_deals().await?;
    let missing = options.list_items.saturating_sub(before);
    eprintln!("bulk insert: {before} deals exist, inserting {missing}");
    let bulk_started = Instant::now();
    database.bulk_insert(missing).await?;
    let bulk_took = bulk_started.elapsed();
    let (total, won) = database.count_deals().await?;
    eprintln!("bulk insert took {:.1} s: {total} deals, {won} in stage won", bulk_took.as_secs_f64());
    if won < PAGE as u64 {
        bail!("stage won holds {won} deals, fewer than a page; raise BENCH_LIST_ITEMS");
    }

    let mut server = Server::start(data_dir, database.url(), &http).await?;
    meter.server_pid = server.pid();
    let ctx = Arc::new(Ctx { http: http.clone(), base: server.base.clone(), auth: format!("Bearer {TOKEN}") });
    let walk_started = Instant::now();
    let cursors = Arc::new(collect_deep_cursors(&ctx, won).await?);
    eprintln!(
        "collected {} cursors between 25% and 50% of stage won in {:.1} s",
        cursors.len(),
        walk_started.elapsed().as_secs_f64()
    );
    if cursors.is_empty() {
        bail!("no cursor found deep in stage won");
    }

    let list_runs = [
        ("list first page", 1, ListMode::First, Target::MaxP95Ms(TARGET_LIST_P95_MS)),
        ("list deep cursor", 1, ListMode::Deep, Target::MaxP95Ms(TARGET_LIST_P95_MS)),
        ("list first + deep", clients, ListMode::Mixed, Target::None),
    ];
    for (name, n, mode, target) in list_runs {
        eprintln!("{name}: {n} clients for {} s", options.list_seconds);
        let (start, cpu) = meter.begin();
        let deadline = start + list_phase;
        let tasks = (0..n)
            .map(|c| tokio::spawn(list_loop(ctx.clone(), start, deadline, mode, cursors.clone(), 0xC0FFEE + c as u64)))
            .collect();
        let mut rec = Recorder::default();
        for r in join_all(tasks).await? {
            rec.merge(r);
        }
        let (elapsed, cpu) = meter.end(start, cpu);
        phases.push(PhaseResult::new(name, n, rec, elapsed, cpu, target));
    }
    server.stop().await?;

    Ok(Report {
        machine,
        database: describe,
        options: options.clone(),
        bulk: Some((before, missing, total, bulk_took)),
        busy_before,
        phases,
    })
}
