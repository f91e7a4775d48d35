//! Business processes under load, over HTTP against a `voronka serve` child process.
//!
//! 1. Step transitions: `BENCH_INSTANCES` processes (default 2,000) are started on as many deals;
//!    each runs eight steps without waiting (set-fields, a condition and its branch, notify, a
//!    parallel step with two branches, set-fields). Reported: steps per second from the first
//!    start to the last completion.
//! 2. Completing assignments: `BENCH_ASSIGNMENTS` processes (default 1,000) each wait for one
//!    approval; the approvals are then completed, `BENCH_IN_FLIGHT` (default 16) at a time.
//!    Reported: the answer time of `POST /assignments/{id}/complete`, p50 / p99.
//!
//! ```text
//! cargo bench -p voronka --bench processes_load                  # SQLite in a temp dir
//! BENCH_DATABASE=postgres://... cargo bench -p voronka --bench processes_load
//! ```

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::sync::Semaphore;

use common::{Server, env_num, percentile};

/// The server's allocator (see `host/src/main.rs`), for this process's own share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Steps each throughput process runs.
const STEPS: usize = 8;

/// Runs `make(i)` for `0..n`, at most `in_flight` at once; returns each result.
async fn fan_out<F, Fut, T>(n: usize, in_flight: usize, make: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let future = make(i);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            future.await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Whether any process is still running.
async fn any_running(server: &Server) -> anyhow::Result<bool> {
    let page = server.send(reqwest::Method::GET, "/processes?status=running&limit=1", None).await?;
    Ok(page["items"].as_array().is_some_and(|a| !a.is_empty()))
}

async fn wait_until_idle(server: &Server) -> anyhow::Result<()> {
    let started = Instant::now();
    while any_running(server).await? {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("processes did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let instances = env_num("BENCH_INSTANCES", 2_000);
    let assignments = env_num("BENCH_ASSIGNMENTS", 1_000);
    let in_flight = env_num("BENCH_IN_FLIGHT", 16);
    let server = Arc::new(Server::start("processes", 64).await?);
    server.post("/types/deal/fields", json!({"key": "n", "title": "n", "kind": "number"})).await?;
    server.post("/types/deal/fields", json!({"key": "a", "title": "a", "kind": "string"})).await?;
    server
        .post(
            "/processes/templates",
            json!({"key": "quick", "type": "deal", "steps": [
                {"id": "s1", "kind": "set-fields", "fields": {"n": 1}},
                {"id": "c", "kind": "condition", "when": "vars.x == 1",
                 "then": [{"id": "s2", "kind": "set-fields", "fields": {"n": 2}}],
                 "else": [{"id": "s2b", "kind": "set-fields", "fields": {"n": -2}}]},
                {"id": "tell", "kind": "notify", "to": {"user": 1}, "text": "step"},
                {"id": "p", "kind": "parallel", "branches": [
                    [{"id": "b1", "kind": "set-fields", "fields": {"a": "x"}}],
                    [{"id": "b2", "kind": "notify", "to": {"user": 1}, "text": "branch"}]]},
                {"id": "s3", "kind": "set-fields", "fields": {"n": 3}}
            ]}),
        )
        .await?;
    server
        .post(
            "/processes/templates",
            json!({"key": "approve", "type": "deal", "steps": [
                {"id": "ok", "kind": "approval", "assignees": [{"user": 1}]}]}),
        )
        .await?;

    // The deals first, so the measurement is of processes only.
    let total = instances + assignments;
    let deals: Vec<i64> = fan_out(total, 32, |i| {
        let server = server.clone();
        async move {
            let deal = server.post("/items/deal", json!({"title": format!("Deal {i}")})).await?;
            deal["id"].as_i64().context("a deal id")
        }
    })
    .await?;

    // 1. Step transitions.
    let started = Instant::now();
    fan_out(instances, 32, |i| {
        let (server, deal) = (server.clone(), deals[i]);
        async move {
            server
                .post(
                    "/processes",
                    json!({"template": "quick", "item": {"type": "deal", "id": deal}, "params": {"x": 1}}),
                )
                .await
        }
    })
    .await?;
    let started_all = started.elapsed().as_secs_f64();
    wait_until_idle(&server).await?;
    let seconds = started.elapsed().as_secs_f64();
    let failed = server.send(reqwest::Method::GET, "/processes?status=failed&limit=1", None).await?;
    if failed["items"].as_array().is_some_and(|a| !a.is_empty()) {
        bail!("a process failed: {}", failed["items"][0]);
    }
    let steps = (instances * STEPS) as f64;

    // 2. Completing assignments.
    fan_out(assignments, 32, |i| {
        let (server, deal) = (server.clone(), deals[instances + i]);
        async move { server.post("/processes", json!({"template": "approve", "item": {"type": "deal", "id": deal}})).await }
    })
    .await?;
    let mut open: Vec<i64> = Vec::new();
    let waited = Instant::now();
    while open.len() < assignments {
        open.clear();
        let mut cursor = String::new();
        loop {
            let page = server.send(reqwest::Method::GET, &format!("/assignments?limit=500{cursor}"), None).await?;
            open.extend(page["items"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_i64()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        if waited.elapsed() > Duration::from_secs(300) {
            bail!("only {} of {assignments} assignments opened", open.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<f64> = fan_out(open.len(), in_flight, |i| {
        let (server, id) = (server.clone(), open[i]);
        async move {
            let sent = Instant::now();
            server.post(&format!("/assignments/{id}/complete"), json!({"decision": "approve"})).await?;
            Ok(sent.elapsed().as_secs_f64() * 1000.0)
        }
    })
    .await?;
    wait_until_idle(&server).await?;
    latencies.sort_by(|a, b| a.total_cmp(b));

    println!(
        "| database | processes | steps | start all s | steps/s | assignments | in flight | complete p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {instances} | {} | {started_all:.1} | {:.0} | {} | {in_flight} | {:.1} / {:.1} |",
        server.kind,
        steps,
        steps / seconds,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    Ok(())
}
