//! Wasm components: one engine (pooling allocator, epoch interruption that yields every tick,
//! optional fuel), one `InstancePre` per plugin version, a fresh store and instance per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host_api::{HostCalls, HostError, LogLevel};
use voronka_model::item::{Item, ItemRef};
use voronka_model::limits::{Failure, Limits};
use voronka_model::plugin::World;

/// Generated bindings of the `robot` world; its interfaces are shared by the other worlds.
pub mod robot {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "robot",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Generated bindings of the `trigger` world.
pub mod trigger {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "trigger",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "voronka:plugin/types": super::robot::voronka::plugin::types,
            "voronka:plugin/items": super::robot::voronka::plugin::items,
            "voronka:plugin/kv": super::robot::voronka::plugin::kv,
            "voronka:plugin/log": super::robot::voronka::plugin::log,
            "voronka:plugin/clock": super::robot::voronka::plugin::clock,
        },
    });
}

/// Generated bindings of the `bp-step` world.
pub mod bp_step {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "bp-step",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "voronka:plugin/types": super::robot::voronka::plugin::types,
            "voronka:plugin/items": super::robot::voronka::plugin::items,
            "voronka:plugin/timeline": super::robot::voronka::plugin::timeline,
            "voronka:plugin/tasks": super::robot::voronka::plugin::tasks,
            "voronka:plugin/processes": super::robot::voronka::plugin::processes,
            "voronka:plugin/kv": super::robot::voronka::plugin::kv,
            "voronka:plugin/log": super::robot::voronka::plugin::log,
            "voronka:plugin/clock": super::robot::voronka::plugin::clock,
            "voronka:plugin/notify": super::robot::voronka::plugin::notify,
        },
    });
}

/// Generated bindings of the `payment-schedule` world.
pub mod payment_schedule {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "payment-schedule",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "voronka:plugin/types": super::robot::voronka::plugin::types,
            "voronka:plugin/log": super::robot::voronka::plugin::log,
            "voronka:plugin/clock": super::robot::voronka::plugin::clock,
        },
    });
}

use robot::voronka::plugin::{clock, items, kv, log, notify, processes, tasks, timeline, types};

/// How often the epoch ticks; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-call store data: the host API, WASI (no files, network or environment), memory limits.
pub struct PluginState {
    /// Host calls of this invocation.
    pub host: HostCalls,
    /// Built at the plugin's first WASI call: most robots make none, and building one seeds
    /// random number generators.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| WasiCtx::builder().build());
        WasiCtxView { ctx, table: &mut self.table }
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

/// A compiled plugin ready to instantiate in its world.
#[derive(Clone)]
pub enum Prepared {
    /// `robot`.
    Robot(robot::RobotPre<PluginState>),
    /// `trigger`.
    Trigger(trigger::TriggerPre<PluginState>),
    /// `bp-step`.
    BpStep(bp_step::BpStepPre<PluginState>),
    /// `payment-schedule`.
    PaymentSchedule(payment_schedule::PaymentSchedulePre<PluginState>),
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
        robot::Robot::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
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
        Ok(match world {
            World::Robot => Prepared::Robot(robot::RobotPre::new(pre)?),
            World::Trigger => Prepared::Trigger(trigger::TriggerPre::new(pre)?),
            World::BpStep => Prepared::BpStep(bp_step::BpStepPre::new(pre)?),
            World::PaymentSchedule => Prepared::PaymentSchedule(payment_schedule::PaymentSchedulePre::new(pre)?),
        })
    }

    /// A fresh store with the call's memory limit, deadline and fuel.
    fn store(&self, host: HostCalls, limits: &Limits) -> (Store<PluginState>, Result<(), Failure>) {
        let state = PluginState {
            host,
            wasi: None,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size((limits.memory_mb as usize) << 20)
                .instances(64)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
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

    /// Runs a robot's `run` in a fresh instance; returns the outcome message and the host calls
    /// (with their buffered writes) on success.
    pub async fn run_robot(
        &self,
        prepared: &Prepared,
        host: HostCalls,
        limits: &Limits,
        ctx: RobotContext,
    ) -> Result<(Option<String>, HostCalls), Failure> {
        let Prepared::Robot(pre) = prepared else {
            return Err(Failure::Host("the plugin is not a robot".into()));
        };
        let _running = self.calls.enter();
        let (mut store, ready) = self.store(host, limits);
        ready?;
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let ctx =
                robot::Context { item: to_wit_item(&ctx.item), stage: ctx.stage, config: ctx.config, actor: ctx.actor };
            instance.call_run(&mut store, &ctx).await
        }
        .await;
        match result {
            Ok(Ok(outcome)) => Ok((outcome.message, store.into_data().host)),
            Ok(Err(error)) => Err(plugin_failure(error.code, error.message, store.data().host.denied())),
            Err(e) => Err(classify(e, limits)),
        }
    }

    /// Runs a trigger's `matches` in a fresh instance.
    pub async fn run_trigger(
        &self,
        prepared: &Prepared,
        host: HostCalls,
        limits: &Limits,
        event: String,
        config: String,
    ) -> Result<bool, Failure> {
        let Prepared::Trigger(pre) = prepared else {
            return Err(Failure::Host("the plugin is not a trigger".into()));
        };
        let _running = self.calls.enter();
        let (mut store, ready) = self.store(host, limits);
        ready?;
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_matches(&mut store, &event, &config).await
        }
        .await;
        match result {
            Ok(Ok(matched)) => Ok(matched),
            Ok(Err(error)) => Err(plugin_failure(error.code, error.message, store.data().host.denied())),
            Err(e) => Err(classify(e, limits)),
        }
    }
}

impl WasmRuntime {
    /// Runs a business-process step's `execute` in a fresh instance; returns its variables
    /// (JSON text), its branch, and the host calls with their buffered writes.
    pub async fn run_bp_step(
        &self,
        prepared: &Prepared,
        host: HostCalls,
        limits: &Limits,
        ctx: StepContext,
    ) -> Result<(String, Option<String>, HostCalls), Failure> {
        let Prepared::BpStep(pre) = prepared else {
            return Err(Failure::Host("the plugin is not a business-process step".into()));
        };
        let _running = self.calls.enter();
        let (mut store, ready) = self.store(host, limits);
        ready?;
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let ctx =
                bp_step::StepContext { item: to_wit_item(&ctx.item), config: ctx.config, variables: ctx.variables };
            instance.call_execute(&mut store, &ctx).await
        }
        .await;
        match result {
            Ok(Ok(outcome)) => Ok((outcome.variables, outcome.branch, store.into_data().host)),
            Ok(Err(error)) => Err(plugin_failure(error.code, error.message, store.data().host.denied())),
            Err(e) => Err(classify(e, limits)),
        }
    }
}

/// What a business-process step call receives.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The item as it stands.
    pub item: Item,
    /// The step's config (JSON).
    pub config: String,
    /// The process variables (JSON object).
    pub variables: String,
}

/// What a robot call receives.
#[derive(Debug, Clone)]
pub struct RobotContext {
    /// The item as it stood when the job started.
    pub item: Item,
    /// The stage entered.
    pub stage: String,
    /// The binding's config (JSON).
    pub config: String,
    /// The actor whose change made the item enter (JSON).
    pub actor: String,
}

/// A plugin's own error; `denied` names the refused capability when the host refused one.
pub fn plugin_failure(code: String, message: String, denied: Option<voronka_model::capability::Capability>) -> Failure {
    match (code.as_str(), denied) {
        ("denied", Some(capability)) => Failure::Denied(capability.as_str().to_string()),
        _ => Failure::Plugin { code, message: message.chars().take(2000).collect() },
    }
}

/// Sorts a wasmtime error into the failure kinds.
fn classify(error: wasmtime::Error, limits: &Limits) -> Failure {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout(limits.timeout_ms),
        Some(Trap::OutOfFuel) => Failure::OutOfFuel,
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(trap) => {
            let text = format!("{error:?}");
            if text.contains("forcing trap when growing memory") || text.contains("memory minimum size") {
                Failure::MemoryLimit(format!("the plugin tried to use more than {} MiB", limits.memory_mb))
            } else {
                Failure::Trap(format!("{trap}: {}", first_line(&text)))
            }
        }
        None => {
            let text = format!("{error:?}");
            if text.contains("forcing trap when growing memory") || text.contains("memory minimum size") {
                Failure::MemoryLimit(format!("the plugin tried to use more than {} MiB", limits.memory_mb))
            } else {
                Failure::Trap(first_line(&text).to_string())
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or(text);
    &line[..line.len().min(500)]
}

fn to_wit_item(item: &Item) -> types::Item {
    types::Item {
        id: item.id,
        type_key: item.type_key.clone(),
        funnel: item.funnel.clone(),
        stage: item.stage.clone(),
        title: item.title.clone(),
        amount: item.amount.as_ref().map(|m| types::Money { value: m.value.clone(), currency: m.currency.clone() }),
        responsible: item.responsible,
        parents: item.parents.iter().map(|p| types::ItemRef { type_key: p.type_key.clone(), id: p.id }).collect(),
        fields: serde_json::Value::Object(item.fields.clone()).to_string(),
        version: item.version,
    }
}

fn to_wit_error(e: HostError) -> types::Error {
    types::Error { code: e.code, message: e.message }
}

type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

impl types::Host for PluginState {}

impl items::Host for PluginState {
    async fn get(&mut self, type_key: String, id: i64) -> Wit<Option<types::Item>> {
        Ok(self.host.items_get(&type_key, id).await.map(|i| i.as_ref().map(to_wit_item)).map_err(to_wit_error))
    }

    async fn find(&mut self, type_key: String, filters: Vec<items::Filter>, limit: u32) -> Wit<Vec<types::Item>> {
        let filters = filters.into_iter().map(|f| (f.name, f.value)).collect();
        Ok(self
            .host
            .items_find(&type_key, filters, limit)
            .await
            .map(|l| l.iter().map(to_wit_item).collect())
            .map_err(to_wit_error))
    }

    async fn create(&mut self, type_key: String, input: String) -> Wit<i64> {
        Ok(self.host.items_create(&type_key, &input).map_err(to_wit_error))
    }

    async fn update_fields(&mut self, type_key: String, id: i64, fields: String) -> Wit<()> {
        Ok(self.host.items_update_fields(&type_key, id, &fields).map_err(to_wit_error))
    }

    async fn move_to_stage(&mut self, type_key: String, id: i64, funnel: Option<String>, stage: String) -> Wit<()> {
        Ok(self.host.items_move_to_stage(&type_key, id, funnel, &stage).map_err(to_wit_error))
    }

    async fn link_parent(&mut self, type_key: String, id: i64, parent: types::ItemRef) -> Wit<()> {
        let parent = ItemRef { type_key: parent.type_key, id: parent.id };
        Ok(self.host.items_link_parent(&type_key, id, parent).map_err(to_wit_error))
    }
}

impl timeline::Host for PluginState {
    async fn add_entry(&mut self, type_key: String, id: i64, text: String) -> Wit<()> {
        Ok(self.host.timeline_add_entry(&type_key, id, &text).map_err(to_wit_error))
    }
}

impl tasks::Host for PluginState {
    async fn create(&mut self, input: String) -> Wit<i64> {
        Ok(self.host.tasks_create(&input).map_err(to_wit_error))
    }
}

impl processes::Host for PluginState {
    async fn start(&mut self, template: String, item: types::ItemRef, params: String) -> Wit<i64> {
        let item = ItemRef { type_key: item.type_key, id: item.id };
        Ok(self.host.processes_start(&template, item, &params).map_err(to_wit_error))
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Wit<Option<String>> {
        Ok(self.host.kv_get(&key).await.map_err(to_wit_error))
    }

    async fn set(&mut self, key: String, value: String) -> Wit<()> {
        Ok(self.host.kv_set(&key, &value).map_err(to_wit_error))
    }

    async fn delete(&mut self, key: String) -> Wit<()> {
        Ok(self.host.kv_delete(&key).map_err(to_wit_error))
    }
}

impl log::Host for PluginState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.host.log_write(level, &message);
        Ok(())
    }
}

impl clock::Host for PluginState {
    async fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.host.clock_now())
    }
}

impl notify::Host for PluginState {
    async fn send(&mut self, user: i64, text: String, about: Option<types::ItemRef>) -> Wit<()> {
        let about = about.map(|a| ItemRef { type_key: a.type_key, id: a.id });
        Ok(self.host.notify_send(user, &text, about).map_err(to_wit_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Caller, Service};
    use voronka_model::actor::Actor;

    const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile.wasm"));
    const NOOP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/noop.wasm"));

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

    /// On one thread (the test's runtime has one), eight plugins looping for their whole time
    /// budget and a quick one: the quick one ends first, and each loop ends as a timeout when
    /// its wall-clock budget is up, not after its share of the thread adds up to it.
    #[tokio::test]
    async fn a_plugin_computing_for_its_whole_budget_lets_others_run() {
        let (dir, store) = voronka_store::scratch().await;
        let runtime = Arc::new(super::super::registry::Runtime::new(None).expect("runtime"));
        let service = Arc::new(Service::new(store, runtime.clone(), dir.path().to_path_buf()));
        let wasm = &runtime.wasm;
        let prepare =
            |bytes: &[u8]| wasm.prepare(&wasm.compile(bytes).expect("compile"), World::Robot).expect("prepare");
        let (hostile, noop) = (prepare(HOSTILE), prepare(NOOP));
        let host = || HostCalls::new(service.clone(), "test", Vec::new(), Caller::automation(Actor::System, 0));
        let limits = Limits { timeout_ms: 300, memory_mb: 64, fuel: None };
        let started = Instant::now();
        // `join!` polls the loops first: without yields they would hold the thread to their end.
        let loops = futures::future::join_all(
            (0..8)
                .map(|_| async { (wasm.run_robot(&hostile, host(), &limits, context("loop")).await, Instant::now()) }),
        );
        let quick = async { (wasm.run_robot(&noop, host(), &limits, context("ok")).await, Instant::now()) };
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
