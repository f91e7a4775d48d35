//! Plugin invocation overhead: a fresh instance and one call of a trivial robot, with limits on
//! (epoch deadline, memory limit, fuel), for a Rust Wasm component (`plugins/testing/noop`, built
//! with the SDK) and for a Rhai script.
//!
//! ```text
//! cargo bench -p voronka-runtime --bench runtime
//! ```
//!
//! Each case runs `BENCH_CALLS` calls (default 20,000) after a warm-up and prints the median,
//! p90 and p99 in microseconds. `BENCH_CASES` picks cases (comma-separated: `wasm`, `rhai`, `js`;
//! default all), e.g. to profile one. The robot does nothing but return, so the figure is the cost
//! the host adds to every robot run.

use std::sync::Arc;
use std::time::Instant;

use voronka_model::capability::Capability;
use voronka_model::item::Item;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};
use voronka_runtime::Runtime;
use voronka_runtime::host::{Domain, DomainFuture, HostCalls};
use voronka_runtime::world::{Robot, RobotContext};

const TRIVIAL_WASM: &[u8] = voronka_builtins::test::NOOP;
const TRIVIAL_RHAI: &str = "fn run(ctx) { () }";

fn item() -> Item {
    Item {
        id: 1,
        type_key: "deal".into(),
        funnel: Some("default".into()),
        stage: Some("new".into()),
        title: "Kitchen".into(),
        version: 1,
        ..Item::default()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99)
    );
}

/// The domain of a robot that reads nothing: the call's cost is the runtime's alone.
struct NoReads;

impl Domain for NoReads {
    fn get_item<'a>(&'a self, _: &'a str, _: i64) -> DomainFuture<'a, Option<Item>> {
        Box::pin(async { Ok(None) })
    }

    fn find_items<'a>(&'a self, _: &'a str, _: Vec<(String, String)>) -> DomainFuture<'a, Vec<Item>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn kv_get<'a>(&'a self, _: &'a str, _: &'a str) -> DomainFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
}

/// The server's allocator (see the `voronka` binary's `main.rs`), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runtime = Runtime::new(None)?;
    let domain: Arc<dyn Domain> = Arc::new(NoReads);
    let limits = Limits { timeout_ms: 1_000, memory_mb: 64, fuel: Some(10_000_000) };
    let wasm =
        runtime.compile(PluginKind::Wasm, World::Robot, "", TRIVIAL_WASM.to_vec()).await.map_err(anyhow::Error::msg)?;
    let rhai = runtime
        .compile(PluginKind::Rhai, World::Robot, "", TRIVIAL_RHAI.as_bytes().to_vec())
        .await
        .map_err(anyhow::Error::msg)?;
    let js_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/js-robot/dist/robot.wasm");
    let cases_wanted = std::env::var("BENCH_CASES").unwrap_or_else(|_| "wasm,rhai,js".into());
    let wanted = |case: &str| cases_wanted.split(',').any(|c| c.trim() == case);
    let js = match std::fs::read(js_path) {
        Ok(_) if !wanted("js") => None,
        Ok(bytes) => {
            Some(runtime.compile(PluginKind::Wasm, World::Robot, "", bytes).await.map_err(anyhow::Error::msg)?)
        }
        Err(_) => {
            eprintln!("{js_path} is not built (npm run build in examples/js-robot); skipping the JavaScript case");
            None
        }
    };
    let ctx = RobotContext { item: item(), stage: "new".into(), config: "{}".into(), actor: "{}".into() };
    // The JavaScript example writes a field; its buffered write is never applied here.
    println!("| case | calls | median µs | p90 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let mut cases = Vec::new();
    if wanted("wasm") {
        cases.push(("Rust Wasm robot (fresh instance + call)", &wasm, calls));
    }
    if wanted("rhai") {
        cases.push(("Rhai robot (shared engine, cached AST)", &rhai, calls));
    }
    if let Some(js) = &js {
        cases.push(("JavaScript robot, jco/QuickJS (fresh instance + call)", js, calls / 10));
    }
    for (name, loaded, calls) in cases {
        let mut samples = Vec::with_capacity(calls);
        for i in 0..calls + 1_000 {
            let host = HostCalls::new(domain.clone(), "bench", vec![Capability::ItemsWrite]);
            let started = Instant::now();
            let result = runtime.call::<Robot>(loaded, host, &limits, ctx.clone()).await;
            let elapsed = started.elapsed().as_secs_f64() * 1e6;
            result.map_err(|f| anyhow::anyhow!("{name}: {f}"))?;
            if i >= 1_000 {
                samples.push(elapsed);
            }
        }
        report(name, samples);
    }
    Ok(())
}
