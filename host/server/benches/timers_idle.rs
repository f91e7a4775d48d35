//! Pending timers cost nothing while idle: 100,000 deals wait in a stage for a robot delayed by
//! a day, and the server's CPU time is read from /proc over a quiet minute.
//!
//! ```text
//! cargo bench -p voronka --bench timers_idle                  # SQLite in a temp dir
//! BENCH_DATABASE=postgres://... cargo bench -p voronka --bench timers_idle
//! ```
//!
//! Options: `BENCH_TIMERS` (default 100,000), `BENCH_IDLE_SECONDS` (default 60).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::sync::Semaphore;

use common::{Server, env_num};

/// The server's allocator (see `host/src/main.rs`), for this process's own share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("a stat line")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(ticks / per_second)
}

async fn pending_jobs(database: &str) -> anyhow::Result<i64> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(database).await?;
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'pending'").fetch_one(&mut conn).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let timers = env_num("BENCH_TIMERS", 100_000);
    let idle_seconds = env_num("BENCH_IDLE_SECONDS", 60) as u64;
    let server = Arc::new(Server::start("timers", 128).await?);
    let stage = "/types/deal/funnels/default/stages/in-progress";
    server
        .post(
            &format!("{stage}/robots"),
            json!({"plugin":"add-comment","config":{"text":"A day later"},"delay_s":86_400}),
        )
        .await?;

    // Deals created in the stage: each queues a robot run due tomorrow.
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for _ in 0..timers {
        let (server, permit) = (server.clone(), permits.clone().acquire_owned().await?);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            server.post("/items/deal", json!({"title": "waiting", "stage": "in-progress"})).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let pending = pending_jobs(&server.database).await?;
        if pending as usize >= timers {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {pending} of {timers} timers were queued");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let setup = started.elapsed().as_secs_f64();
    // Let the last writes settle, then watch.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cpu_seconds(server.pid())?;
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let used = cpu_seconds(server.pid())? - before;
    let pending = pending_jobs(&server.database).await?;
    println!("| database | pending timers | setup s | idle s | server CPU while idle ms | share of one core |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {pending} | {setup:.0} | {idle_seconds} | {:.0} | {:.3} % |",
        server.kind,
        used * 1000.0,
        used / idle_seconds as f64 * 100.0
    );
    Ok(())
}
