//! Wasm components: one engine (pooling allocator, epoch interruption that yields every tick,
//! optional fuel), one `InstancePre` per plugin version, a fresh store and instance per call.

pub(crate) mod bindings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, InstancePre, Linker, ResourceTable, TypedFunc};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use voronka_model::limits::{Failure, Limits};
use voronka_model::plugin::World;

use crate::host::HostCalls;
use crate::world::{PluginWorld, plugin_failure};

/// How often the epoch ticks; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-call store data: the host API, WASI (no files, network or environment), memory limits.
pub struct PluginState {
    /// Host calls of this invocation.
    pub(crate) host: HostCalls,
    /// Built at the plugin's first WASI call: most robots make none, and building one seeds
    /// random number generators.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| WasiCtx::builder().build());
        WasiCtxView { ctx, table: &mut self.table }
    }
}

/// The store's limits, noting when they refused a memory: a call that fails after that failed
/// for want of memory, whatever the trap says.
struct Limiter {
    limits: StoreLimits,
    refused_memory: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.refused_memory = true;
        }
        allowed
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The shared engine and linker.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    calls: Arc<CallsInFlight>,
}

/// How many plugin calls are running: the epoch ticker sleeps while there are none, so an idle
/// host does not wake 200 times a second.
#[derive(Default)]
struct CallsInFlight {
    count: std::sync::Mutex<usize>,
    started: std::sync::Condvar,
}

impl CallsInFlight {
    /// Counts a call until the guard drops.
    fn enter(self: &Arc<Self>) -> CallGuard {
        if let Ok(mut count) = self.count.lock() {
            *count += 1;
            if *count == 1 {
                self.started.notify_one();
            }
        }
        CallGuard(self.clone())
    }

    /// Waits up to `timeout` for a call to be running; true when one is.
    fn wait_for_calls(&self, timeout: Duration) -> bool {
        let Ok(count) = self.count.lock() else { return true };
        match self.started.wait_timeout_while(count, timeout, |count| *count == 0) {
            Ok((count, _)) => *count > 0,
            Err(_) => true,
        }
    }
}

/// A running call, counted in [`CallsInFlight`].
struct CallGuard(Arc<CallsInFlight>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Ok(mut count) = self.0.count.lock() {
            *count = count.saturating_sub(1);
        }
    }
}

/// A compiled plugin ready to instantiate, checked against its world: the export the host calls
/// was found and has the world's type.
#[derive(Clone)]
pub struct Prepared {
    pre: InstancePre<PluginState>,
    world: World,
    export: ComponentExportIndex,
}

impl WasmRuntime {
    /// Builds the engine (pooling allocator tuned for fast fresh instances, epoch interruption,
    /// fuel available) and starts the epoch ticker thread.
    pub fn new() -> anyhow::Result<Arc<WasmRuntime>> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(512)
            .total_memories(512)
            .total_tables(512)
            .total_stacks(256)
            .max_memory_size((Limits::MAX.memory_mb as usize) << 20)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 20)
            .pagemap_scan(Enabled::Yes);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::PluginHost::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        let weak = engine.weak();
        let calls = Arc::new(CallsInFlight::default());
        let ticking = calls.clone();
        std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                // Deadlines count ticks from when they are set, so ticks while no call runs
                // change nothing: skip them.
                if ticking.wait_for_calls(Duration::from_secs(1)) {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            }
        })?;
        Ok(Arc::new(WasmRuntime { engine, linker, calls }))
    }

    /// The engine (for serialising compiled code).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component (blocking; call off the async threads).
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Ok(Component::new(&self.engine, bytes)?)
    }

    /// Type-checks a component against a world and prepares it for fast instantiation.
    pub fn prepare(&self, component: &Component, world: World) -> anyhow::Result<Prepared> {
        let pre = self.linker.instantiate_pre(component)?;
        let export = match world {
            World::Robot => export_of::<crate::world::Robot>(&pre)?,
            World::Trigger => export_of::<crate::world::Trigger>(&pre)?,
            World::BpStep => export_of::<crate::world::BpStep>(&pre)?,
            World::PaymentSchedule => export_of::<crate::world::PaymentSchedule>(&pre)?,
        };
        Ok(Prepared { pre, world, export })
    }

    /// A fresh store with the call's memory limit, deadline and fuel.
    fn store(&self, host: HostCalls, limits: &Limits) -> (Store<PluginState>, Result<(), Failure>) {
        let state = PluginState {
            host,
            wasi: None,
            table: ResourceTable::new(),
            limiter: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size((limits.memory_mb as usize) << 20)
                    .instances(64)
                    .tables(64)
                    .memories(16)
                    .trap_on_grow_failure(true)
                    .build(),
                refused_memory: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every tick the plugin runs, its call yields to the other tasks of its thread (the
        // other jobs of a batch among them), so a plugin that computes for its whole budget
        // holds up nothing else; at the first tick past its wall-clock deadline it ends. (Time
        // spent waiting for its turn or in host calls counts: the deadline is an instant.)
        let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                // Tokio's yield lets the thread's other tasks run first (a bare wake-up may not).
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        let fuel = store.set_fuel(limits.fuel.unwrap_or(u64::MAX)).map_err(|e| Failure::Host(e.to_string()));
        (store, fuel)
    }

    /// Calls the world's export of a prepared plugin in a fresh instance; returns what it
    /// answered and the host calls (with their buffered writes).
    pub(crate) async fn call<W: PluginWorld>(
        &self,
        prepared: &Prepared,
        host: HostCalls,
        limits: &Limits,
        input: W::Input,
    ) -> Result<(W::Output, HostCalls), Failure> {
        if prepared.world != W::WORLD {
            return Err(Failure::Host(format!("the plugin is a {} plugin, not a {}", prepared.world, W::WORLD)));
        }
        let _running = self.calls.enter();
        let (mut store, ready) = self.store(host, limits);
        ready?;
        let result = async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, prepared.export)
                .ok_or_else(|| wasmtime::format_err!("the export `{}` is gone", W::EXPORT))?;
            // SAFETY: `prepare` type-checked this export against `W::Params` and `W::Results`
            // (`export_of`), as the bindings wasmtime generates do before their unchecked call.
            let func = unsafe { TypedFunc::<W::Params, W::Results>::new_unchecked(func) };
            func.call_async(&mut store, W::params(input)).await
        }
        .await;
        match result {
            Ok(results) => match W::output(results) {
                Ok(output) => Ok((output, store.into_data().host)),
                Err(error) => Err(plugin_failure(error.code, error.message, store.data().host.denied())),
            },
            Err(e) => Err(classify(e, limits, store.data().limiter.refused_memory)),
        }
    }
}

/// Finds the export `W` calls and checks its type, as wasmtime's generated bindings do.
fn export_of<W: PluginWorld>(pre: &InstancePre<PluginState>) -> anyhow::Result<ComponentExportIndex> {
    let (item, index) = pre
        .component()
        .get_export(None, W::EXPORT)
        .ok_or_else(|| anyhow::anyhow!("no export `{}` found", W::EXPORT))?;
    match item {
        ComponentItem::ComponentFunc(func) => {
            func.typecheck::<W::Params, W::Results>(&pre.instance_type())
                .map_err(|e| anyhow::anyhow!("type-checking export func `{}`: {e}", W::EXPORT))?;
            Ok(index)
        }
        _ => anyhow::bail!("export `{}` is not a function", W::EXPORT),
    }
}

/// Sorts a wasmtime error into the failure kinds; `refused_memory`: the store's limits refused
/// to grow a memory during the call.
fn classify(error: wasmtime::Error, limits: &Limits, refused_memory: bool) -> Failure {
    if refused_memory {
        return Failure::MemoryLimit(format!("the plugin tried to use more than {} MiB", limits.memory_mb));
    }
    let text = format!("{error:?}");
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout(limits.timeout_ms),
        Some(Trap::OutOfFuel) => Failure::OutOfFuel,
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(trap) => Failure::Trap(format!("{trap}: {}", first_line(&text))),
        None => Failure::Trap(first_line(&text).to_string()),
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or(text);
    &line[..line.len().min(500)]
}

#[cfg(test)]
mod tests {
    use voronka_builtins::test::{HOSTILE, NOOP};
    use voronka_model::item::Item;

    use super::*;
    use crate::world::{Robot, RobotContext};

    fn context(mode: &str) -> RobotContext {
        let item = Item {
            id: 1,
            type_key: "deal".into(),
            funnel: Some("default".into()),
            stage: Some("new".into()),
            title: "Kitchen".into(),
            version: 1,
            ..Item::default()
        };
        RobotContext { item, stage: "new".into(), config: format!(r#"{{"mode":"{mode}"}}"#), actor: "{}".into() }
    }

    fn runtime() -> (WasmRuntime, Prepared, Prepared) {
        let wasm = WasmRuntime::new().expect("runtime");
        let wasm = Arc::try_unwrap(wasm).unwrap_or_else(|_| unreachable!("a new runtime has one owner"));
        let prepare =
            |bytes: &[u8]| wasm.prepare(&wasm.compile(bytes).expect("compile"), World::Robot).expect("prepare");
        let (hostile, noop) = (prepare(HOSTILE), prepare(NOOP));
        (wasm, hostile, noop)
    }

    fn host() -> HostCalls {
        HostCalls::new(Arc::new(crate::EmptyDomain), "test", Vec::new())
    }

    /// Each way a plugin can fail is told apart: the memory limit by the store's limiter (not
    /// by the trap's text), the others by their trap.
    #[tokio::test]
    async fn failures_are_classified_by_kind() {
        let (wasm, hostile, _) = runtime();
        let limits = Limits { timeout_ms: 2_000, memory_mb: 16, fuel: None };
        let run = |mode: &'static str| wasm.call::<Robot>(&hostile, host(), &limits, context(mode));
        let memory = run("memory").await.err();
        assert!(matches!(memory, Some(Failure::MemoryLimit(ref m)) if m.contains("16 MiB")), "{memory:?}");
        // Rust's stack lives in linear memory: running past it is a trap, not a memory limit.
        let stack = run("stack").await.err();
        assert!(matches!(stack, Some(Failure::Trap(_))), "{stack:?}");
        let panic = run("panic").await.err();
        assert!(matches!(panic, Some(Failure::Trap(_))), "{panic:?}");
        let fueled = Limits { fuel: Some(10_000), ..limits };
        let out_of_fuel = wasm.call::<Robot>(&hostile, host(), &fueled, context("loop")).await.err();
        assert_eq!(out_of_fuel, Some(Failure::OutOfFuel));
        assert!(run("ok").await.is_ok());
    }

    /// A prepared robot is not called as another world's plugin.
    #[tokio::test]
    async fn a_plugin_is_called_only_in_its_world() {
        let (wasm, _, noop) = runtime();
        let input = crate::world::TriggerInput { event: "{}".into(), config: "{}".into() };
        let refused = wasm.call::<crate::world::Trigger>(&noop, host(), &Limits::DEFAULT, input).await.err();
        assert!(matches!(refused, Some(Failure::Host(ref m)) if m.contains("not a trigger")), "{refused:?}");
        let refused = wasm.prepare(&wasm.compile(NOOP).expect("compile"), World::Trigger).err();
        assert!(refused.is_some_and(|e| e.to_string().contains("matches")), "a robot has no `matches`");
    }

    /// On one thread (the test's runtime has one), eight plugins looping for their whole time
    /// budget and a quick one: the quick one ends first, and each loop ends as a timeout when
    /// its wall-clock budget is up, not after its share of the thread adds up to it.
    #[tokio::test]
    async fn a_plugin_computing_for_its_whole_budget_lets_others_run() {
        let (wasm, hostile, noop) = runtime();
        let limits = Limits { timeout_ms: 300, memory_mb: 64, fuel: None };
        let started = Instant::now();
        // `join!` polls the loops first: without yields they would hold the thread to their end.
        let loops =
            futures::future::join_all((0..8).map(|_| async {
                (wasm.call::<Robot>(&hostile, host(), &limits, context("loop")).await, Instant::now())
            }));
        let quick = async { (wasm.call::<Robot>(&noop, host(), &limits, context("ok")).await, Instant::now()) };
        let (looped, (ran, quick_ended)) = tokio::join!(loops, quick);
        assert!(ran.is_ok(), "{:?}", ran.err());
        for (result, ended) in looped {
            assert!(matches!(result, Err(Failure::Timeout(300))), "{:?}", result.err());
            assert!(quick_ended < ended, "the quick plugin waited for a loop to end");
            let took = ended - started;
            assert!(took < Duration::from_millis(1_200), "a loop of a 300 ms budget ran {took:?}");
        }
    }
}
