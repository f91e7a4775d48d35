//! Triggers under load, end to end over HTTP: clients set `paid` on deals at a fixed rate (one
//! `item.updated` event each); a field-changed trigger moves each deal to `won`, where a robot
//! (`set-field`, a built-in Wasm component) sets `welcomed`. Reported: the event rate reached,
//! and the latency from the change's event to the trigger's move and to the robot's effect,
//! from the event stream; every deal is checked.
//!
//! ```text
//! cargo bench -p voronka --bench triggers_load                  # SQLite in a temp dir
//! BENCH_DATABASE=postgres://... cargo bench -p voronka --bench triggers_load
//! ```
//!
//! Options: `BENCH_RATE` (events per second, default 1,000), `BENCH_SECONDS` (default 10),
//! `BENCH_IN_FLIGHT` (most requests at once, default 64).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::sync::Semaphore;

use common::{Server, env_num, event_at, percentile};

/// The server's allocator (see `host/src/main.rs`), for this process's own share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate = env_num("BENCH_RATE", 1_000);
    let seconds = env_num("BENCH_SECONDS", 10);
    let in_flight = env_num("BENCH_IN_FLIGHT", 64);
    let total = rate * seconds;
    let server = Arc::new(Server::start("triggers", in_flight * 2).await?);
    for key in ["paid", "welcomed"] {
        server.post("/types/deal/fields", json!({"key": key, "title": key, "kind": "bool"})).await?;
    }
    let stage = "/types/deal/funnels/default/stages/won";
    server
        .post(&format!("{stage}/triggers"), json!({"kind":"field-changed","config":{"field":"paid","to":true}}))
        .await?;
    server
        .post(&format!("{stage}/robots"), json!({"plugin":"set-field","config":{"fields":{"welcomed":true}}}))
        .await?;

    // The deals, created first.
    let mut ids = Vec::with_capacity(total);
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = Vec::new();
    for _ in 0..total {
        let (server, permit) = (server.clone(), permits.clone().acquire_owned().await?);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            server.post("/items/deal", json!({"title": "bench"})).await
        }));
    }
    for t in tasks {
        ids.push(t.await??["id"].as_i64().context("an id")?);
    }
    let (_, cursor) = server.events_after(0).await?;

    // Open loop: request i starts at i / rate seconds, whatever the earlier ones do.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().copied().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (server, permit) = (server.clone(), permits.clone().acquire_owned().await?);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            server
                .send(reqwest::Method::PATCH, &format!("/items/deal/{id}"), Some(json!({"fields": {"paid": true}})))
                .await
        }));
    }
    let mut errors = 0;
    for t in tasks {
        if t.await?.is_err() {
            errors += 1;
        }
    }
    let sent_secs = started.elapsed().as_secs_f64();

    // Wait for every robot effect, then read the latencies from the event stream.
    let mut changed: HashMap<i64, i64> = HashMap::new();
    let mut moved: HashMap<i64, i64> = HashMap::new();
    let mut effect: HashMap<i64, i64> = HashMap::new();
    let mut cursor = cursor;
    let drain_started = Instant::now();
    while effect.len() < ids.len() - errors {
        let (events, next) = server.events_after(cursor).await?;
        cursor = next;
        for e in &events {
            let Some(item) = e["item_id"].as_i64() else { continue };
            match (e["kind"].as_str(), e["actor"]["kind"].as_str()) {
                (Some("item.updated"), Some("user")) => changed.insert(item, event_at(e)),
                (Some("item.stage_changed"), Some("trigger")) => moved.insert(item, event_at(e)),
                (Some("item.updated"), Some("robot")) => effect.insert(item, event_at(e)),
                _ => None,
            };
        }
        if drain_started.elapsed() > Duration::from_secs(300) {
            bail!("robots did not finish: {} of {} effects", effect.len(), ids.len());
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut to_move = Vec::new();
    let mut to_effect = Vec::new();
    for (item, at) in &changed {
        let (Some(m), Some(e)) = (moved.get(item), effect.get(item)) else {
            bail!("deal {item} was not moved and served")
        };
        to_move.push((m - at) as f64 / 1000.0);
        to_effect.push((e - at) as f64 / 1000.0);
    }
    to_move.sort_by(|a, b| a.total_cmp(b));
    to_effect.sort_by(|a, b| a.total_cmp(b));
    for id in ids.iter().step_by((ids.len() / 50).max(1)) {
        let item = server.send(reqwest::Method::GET, &format!("/items/deal/{id}"), None).await?;
        if item["stage"] != "won" || item["fields"]["welcomed"] != true {
            bail!("deal {id} was not moved and served: {item}");
        }
    }
    println!(
        "| database | events | errors | events/s | event → trigger's move p50 / p99 ms | event → robot's effect p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {errors} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} |",
        server.kind,
        changed.len(),
        changed.len() as f64 / sent_secs,
        percentile(&to_move, 0.5),
        percentile(&to_move, 0.99),
        percentile(&to_effect, 0.5),
        percentile(&to_effect, 0.99),
    );
    Ok(())
}
