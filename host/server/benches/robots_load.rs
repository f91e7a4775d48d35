//! Robots under load, end to end over HTTP: clients move deals into a stage with three robots
//! bound to it (two `set-field`, one `add-comment`, all built-in Wasm components), and the
//! benchmark reports the sustained move rate, how long after the last move the last robot
//! effect committed, and robot latency — from the move's commit to the commit of each robot's
//! effect — with every effect checked. All times of commits are the server's, read from the
//! event stream after the run (reading the stream takes the benchmark a while; that time is not
//! the robots').
//!
//! ```text
//! cargo bench -p voronka --bench robots_load                  # SQLite in a temp dir
//! BENCH_DATABASE=postgres://... cargo bench -p voronka --bench robots_load
//! ```
//!
//! Options: `BENCH_SECONDS` (move phase, default 10), `BENCH_CLIENTS` (default 32),
//! `BENCH_DEALS` (deals created first, default 20,000), `BENCH_RATE` (moves per second all
//! clients together; default 0: as fast as they can).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use common::{Server, TOKEN, env_num, percentile};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 10) as u64;
    let clients = env_num("BENCH_CLIENTS", 32);
    let deals = env_num("BENCH_DEALS", 20_000);
    let rate = env_num("BENCH_RATE", 0);
    let server = Server::start("robots", clients * 2).await?;
    let kind = server.kind;
    let api = server.api.clone();
    let http = server.http.clone();
    let client = http.clone();
    let post = move |path: String, body: Value| {
        let http = client.clone();
        async move {
            let r = http.post(path).bearer_auth(TOKEN).json(&body).send().await?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("{status}: {body}");
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    for key in ["a", "b"] {
        post(format!("{api}/types/deal/fields"), json!({"key": key, "title": key, "kind": "bool"})).await?;
    }
    let robots = format!("{api}/types/deal/funnels/default/stages/in-progress/robots");
    post(robots.clone(), json!({"plugin":"set-field","config":{"fields":{"a":true}},"mode":"parallel"})).await?;
    post(robots.clone(), json!({"plugin":"set-field","config":{"fields":{"b":true}},"mode":"parallel"})).await?;
    post(robots, json!({"plugin":"add-comment","config":{"text":"Robot saw {{item.title}}"},"mode":"parallel"}))
        .await?;

    // Deals to move, created concurrently; each client later moves only its own.
    let created = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (post, api, created) = (post.clone(), api.clone(), created.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while created.fetch_add(1, Ordering::Relaxed) < deals {
                let item = post(format!("{api}/items/deal"), json!({"title": "bench"})).await?;
                mine.push(item["id"].as_i64().context("id")?);
            }
            Ok::<Vec<i64>, anyhow::Error>(mine)
        }));
    }
    let mut owned = Vec::new();
    for t in tasks {
        owned.push(t.await??);
    }

    // Move phase: each client moves its deals into the stage, one after another.
    let started = Instant::now();
    let started_at = chrono::Utc::now().timestamp_micros();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mine in owned {
        let (post, api) = (post.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            let mut moved = Vec::new();
            let mut errors = 0usize;
            // Paced: each client moves one deal per `clients / rate` seconds, catching up
            // after a slow answer.
            let mut pace = (rate > 0).then(|| {
                let mut pace = tokio::time::interval(Duration::from_secs_f64(clients as f64 / rate as f64));
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                pace
            });
            for id in mine {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                if Instant::now() >= deadline {
                    break;
                }
                match post(format!("{api}/items/deal/{id}/move"), json!({"stage":"in-progress"})).await {
                    Ok(_) => moved.push(id),
                    Err(_) => errors += 1,
                }
            }
            (moved, errors)
        }));
    }
    let mut moved = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (m, e) = t.await?;
        moved.extend(m);
        errors += e;
    }
    let move_secs = started.elapsed().as_secs_f64();
    let moves_ended_at = chrono::Utc::now().timestamp_micros();
    if moved.len() >= deals {
        eprintln!("warning: every deal was moved before the time ran out; raise BENCH_DEALS");
    }

    // Drain: wait until every robot effect of every moved deal is committed.
    let drain_started = Instant::now();
    let mut cursor = 0i64;
    let mut entered: HashMap<i64, i64> = HashMap::new();
    let mut effects: HashMap<i64, Vec<i64>> = HashMap::new();
    loop {
        let page: Value =
            http.get(format!("{api}/events?limit=500&cursor={cursor}")).bearer_auth(TOKEN).send().await?.json().await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for e in &items {
            let (Some(item), Some(at)) = (e["item_id"].as_i64(), e["at"].as_str()) else { continue };
            let at = chrono::DateTime::parse_from_rfc3339(at).map(|t| t.timestamp_micros()).unwrap_or(0);
            match (e["kind"].as_str(), e["actor"]["kind"].as_str()) {
                (Some("item.stage_changed"), Some("user")) => {
                    entered.insert(item, at);
                }
                (Some("item.updated" | "item.commented"), Some("robot")) => effects.entry(item).or_default().push(at),
                _ => {}
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.parse()?,
            None => {
                let done = moved.iter().filter(|id| effects.get(id).is_some_and(|v| v.len() >= 3)).count();
                if done == moved.len() {
                    break;
                }
                if drain_started.elapsed() > Duration::from_secs(600) {
                    bail!("robots did not finish: {done} of {} deals complete", moved.len());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let last_effect_at = effects.values().flatten().copied().max().unwrap_or(moves_ended_at);
    let drain_secs = (last_effect_at - moves_ended_at).max(0) as f64 / 1e6;
    let robots_secs = (last_effect_at - started_at) as f64 / 1e6;
    let mut latencies: Vec<f64> = Vec::new();
    let mut last_effect: Vec<f64> = Vec::new();
    for id in &moved {
        let start = entered.get(id).copied().context("a move without its event")?;
        let ats = effects.get(id).context("a move without robot effects")?;
        for at in ats {
            latencies.push((at - start) as f64 / 1000.0);
        }
        last_effect.push((ats.iter().max().copied().unwrap_or(start) - start) as f64 / 1000.0);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    last_effect.sort_by(|a, b| a.total_cmp(b));
    // Every effect is in the data too.
    let sample: Vec<&i64> = moved.iter().step_by((moved.len() / 50).max(1)).collect();
    for id in sample {
        let item: Value = http.get(format!("{api}/items/deal/{id}")).bearer_auth(TOKEN).send().await?.json().await?;
        if item["fields"]["a"] != true || item["fields"]["b"] != true {
            bail!("deal {id} lacks a robot's effect: {}", item["fields"]);
        }
    }
    let total = moved.len() as f64;
    println!(
        "| database | clients | moves | move errors | moves/s | robots finished after the moves | robot runs/s (whole run) | effect latency p50 / p99 ms | last effect per move p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {kind} | {clients} | {} | {errors} | {:.0} | {:.1} s | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} |",
        moved.len(),
        total / move_secs,
        drain_secs,
        total * 3.0 / robots_secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&last_effect, 0.5),
        percentile(&last_effect, 0.99),
    );
    Ok(())
}
