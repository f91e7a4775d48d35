// Each benchmark uses a part of this module.
#![allow(dead_code)]

//! What the end-to-end benchmarks share: a `voronka serve` child process on a fresh database
//! (SQLite in a temp dir, or a new database on the PostgreSQL server in `BENCH_DATABASE`), an
//! authenticated HTTP client, the event stream, percentiles.

use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The administrator token the benchmarks start the server with.
pub const TOKEN: &str = "vk_bench_automation";

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://host:port/api/v1`.
    pub api: String,
    /// Client with the token.
    pub http: reqwest::Client,
    /// The database kind, for the report.
    pub kind: &'static str,
    /// The database URL.
    pub database: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An integer from the environment, or `default`.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn database(dir: &std::path::Path, name: &str) -> anyhow::Result<(String, &'static str)> {
    match std::env::var("BENCH_DATABASE") {
        Ok(server) => {
            sqlx::any::install_default_drivers();
            let name = format!("bench_{name}_{}", std::process::id());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await?;
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
            let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(server);
            Ok((format!("{base}/{name}"), "PostgreSQL"))
        }
        Err(_) => Ok((format!("sqlite://{}", dir.join("voronka.db").display()), "SQLite")),
    }
}

impl Server {
    /// Starts `voronka serve` on a fresh database named after the benchmark.
    pub async fn start(name: &str, connections: usize) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let (url, kind) = database(dir.path(), name).await?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_voronka"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--database", &url])
            .env("VORONKA_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting voronka")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let base = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        })
        .await?;
        let Some(base) = base else {
            let _ = child.kill();
            bail!("the server did not start");
        };
        let http = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
        Ok(Server { child, api: format!("{base}/api/v1"), http, kind, database: url, _dir: dir })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a JSON request under `/api/v1`; a non-2xx answer is an error.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.api)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        Ok(body)
    }

    /// POST.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// The whole event stream after `cursor`, oldest first; returns the events and the new cursor.
    pub async fn events_after(&self, mut cursor: i64) -> anyhow::Result<(Vec<Value>, i64)> {
        let mut all = Vec::new();
        loop {
            let page = self.send(reqwest::Method::GET, &format!("/events?limit=500&cursor={cursor}"), None).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if let Some(last) = items.last().and_then(|e| e["id"].as_i64()) {
                cursor = last;
            }
            all.extend(items);
            if page["next_cursor"].is_null() {
                return Ok((all, cursor));
            }
        }
    }
}

/// An event's time in microseconds.
pub fn event_at(event: &Value) -> i64 {
    event["at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp_micros())
}
