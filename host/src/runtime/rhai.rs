//! Rhai scripts: one shared, immutable engine with the host functions registered as static
//! modules named after the WIT interfaces (`items::get`, `kv::set`, ...); scripts compiled once
//! to an AST; each call on a blocking thread with its own scope, fuel and deadline.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Module, Position, Scope};

use super::host_api::{HostCalls, HostError, HostResult, LogLevel};
use super::wasm::{RobotContext, plugin_failure};
use voronka_model::item::{Item, ItemRef};
use voronka_model::limits::{Failure, Limits};
use voronka_model::plugin::World;

/// State of the call running on this thread.
struct Current {
    host: HostCalls,
    handle: tokio::runtime::Handle,
    deadline: Instant,
    fuel: Option<u64>,
    stopped: Option<Failure>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Runs `f` with this thread's host calls; a call outside a plugin run is an error.
fn with_host<T>(f: impl FnOnce(&mut HostCalls, &tokio::runtime::Handle) -> HostResult<T>) -> RhaiResult<T> {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(current) = current.as_mut() else {
            return Err("host functions are only available while a plugin runs".into());
        };
        f(&mut current.host, &current.handle).map_err(host_error)
    })
}

/// A host error as a catchable Rhai error whose value is `#{code, message}`.
fn host_error(e: HostError) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("code".into(), e.code.into());
    map.insert("message".into(), e.message.into());
    Box::new(EvalAltResult::ErrorRuntime(map.into(), Position::NONE))
}

fn to_dynamic<T: serde::Serialize>(value: &T) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(value)
}

fn json_to_dynamic(text: &str) -> RhaiResult<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    to_dynamic(&value)
}

fn to_json(value: Dynamic) -> RhaiResult<String> {
    let json: serde_json::Value = rhai::serde::from_dynamic(&value)?;
    Ok(json.to_string())
}

/// The shared Rhai engine.
pub struct RhaiRuntime {
    engine: Arc<Engine>,
    functions: Vec<String>,
}

impl RhaiRuntime {
    /// Builds the engine once: limits, host functions, progress callback.
    pub fn new() -> RhaiRuntime {
        let mut engine = Engine::new();
        engine
            .set_max_call_levels(48)
            .set_max_expr_depths(64, 32)
            .set_max_string_size(1 << 20)
            .set_max_array_size(100_000)
            .set_max_map_size(10_000)
            .set_max_modules(0);
        engine.on_progress(|operations| {
            CURRENT.with(|current| {
                let mut current = current.borrow_mut();
                let current = current.as_mut()?;
                if current.fuel.is_some_and(|fuel| operations > fuel) {
                    current.stopped = Some(Failure::OutOfFuel);
                    return Some(Dynamic::from("out-of-fuel"));
                }
                if operations % 256 == 0 && Instant::now() > current.deadline {
                    return Some(Dynamic::from("timeout"));
                }
                None
            })
        });
        engine.on_print(|text| tracing::info!(target: "voronka::plugin", "{}", &text[..text.len().min(4096)]));
        engine.on_debug(|text, _, _| tracing::debug!(target: "voronka::plugin", "{}", &text[..text.len().min(4096)]));
        let functions = register_host_functions(&mut engine);
        RhaiRuntime { engine: Arc::new(engine), functions }
    }

    /// The engine (conditions are evaluated with it too).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `interface.function` of every registered host function.
    pub fn host_functions(&self) -> &[String] {
        &self.functions
    }

    /// Compiles a script and checks that it defines the world's entry function.
    pub fn compile(&self, script: &str, world: World) -> Result<AST, String> {
        let ast = self.engine.compile(script).map_err(|e| format!("the script does not compile: {e}"))?;
        let (name, params) = match world {
            World::Robot => ("run", 1),
            World::Trigger => ("matches", 2),
            World::BpStep => ("execute", 1),
            World::PaymentSchedule => ("generate", 1),
        };
        if !ast.iter_functions().any(|f| f.name == name && f.params.len() == params) {
            return Err(format!("a {world} script must define `fn {name}` with {params} parameter(s)"));
        }
        Ok(ast)
    }

    /// Runs a robot script's `run(ctx)`; returns the outcome message and the host calls (with
    /// their buffered writes) on success.
    pub async fn run_robot(
        &self,
        ast: Arc<AST>,
        host: HostCalls,
        limits: &Limits,
        ctx: RobotContext,
    ) -> Result<(Option<String>, HostCalls), Failure> {
        let result = self
            .run_script(host, limits, move |engine| {
                let ctx = robot_context(&ctx)?;
                engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "run", (ctx,))
            })
            .await;
        result.map(|(value, host)| (outcome_message(value), host))
    }

    /// Runs a trigger script's `matches(event, config)` (both maps) for its verdict.
    pub async fn run_trigger(
        &self,
        ast: Arc<AST>,
        host: HostCalls,
        limits: &Limits,
        event: String,
        config: String,
    ) -> Result<bool, Failure> {
        let (value, _) = self
            .run_script(host, limits, move |engine| {
                let event = json_to_dynamic(&event)?;
                let config = json_to_dynamic(&config)?;
                engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "matches", (event, config))
            })
            .await?;
        value.as_bool().map_err(|t| Failure::Plugin {
            code: "bad-result".into(),
            message: format!("`matches` must return true or false, not {t}"),
        })
    }

    /// Runs a business-process step script's `execute(ctx)` (`ctx`: item, config, variables);
    /// it returns a map of variables, optionally with `branch`. Returns the variables (JSON
    /// text), the branch and the host calls.
    pub async fn run_bp_step(
        &self,
        ast: Arc<AST>,
        host: HostCalls,
        limits: &Limits,
        ctx: super::wasm::StepContext,
    ) -> Result<(String, Option<String>, HostCalls), Failure> {
        let (value, host) = self
            .run_script(host, limits, move |engine| {
                let mut map = Map::new();
                map.insert("item".into(), to_dynamic(&ctx.item)?);
                map.insert("config".into(), json_to_dynamic(&ctx.config)?);
                map.insert("variables".into(), json_to_dynamic(&ctx.variables)?);
                engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "execute", (Dynamic::from(map),))
            })
            .await?;
        let mut result = value.try_cast::<Map>().unwrap_or_default();
        let branch = result.remove("branch").map(|b| b.to_string());
        let variables = to_json(Dynamic::from(result)).map_err(|e| Failure::Plugin {
            code: "bad-result".into(),
            message: format!("`execute` must return a map of variables: {e}"),
        })?;
        Ok((variables, branch, host))
    }

    /// Evaluates a condition, a Rhai expression over `item`.
    pub fn condition(&self, expression: &str, item: &Item) -> Result<bool, String> {
        let mut scope = Scope::new();
        scope.push_constant("item", to_dynamic(item).map_err(|e| e.to_string())?);
        self.engine
            .eval_expression_with_scope::<bool>(&mut scope, expression)
            .map_err(|e| format!("the condition failed: {e}"))
    }

    /// Evaluates a process condition, a Rhai expression over `vars` (the process variables) and
    /// `item`.
    pub fn process_condition(&self, expression: &str, vars: &serde_json::Value, item: &Item) -> Result<bool, String> {
        let mut scope = Scope::new();
        scope.push_constant("item", to_dynamic(item).map_err(|e| e.to_string())?);
        scope.push_constant("vars", to_dynamic(vars).map_err(|e| e.to_string())?);
        self.engine
            .eval_expression_with_scope::<bool>(&mut scope, expression)
            .map_err(|e| format!("the condition failed: {e}"))
    }

    /// Checks that an expression compiles.
    pub fn check_expression(&self, expression: &str) -> Result<(), String> {
        if expression.len() > 4096 {
            return Err("an expression of at most 4 KiB".into());
        }
        self.engine
            .compile_expression(expression)
            .map(drop)
            .map_err(|e| format!("the expression does not compile: {e}"))
    }

    /// Runs `body` with the call's host functions and limits. Scripts block (host calls wait
    /// for the database): on the multi-threaded runtime the call runs in place, the worker's
    /// other tasks moving to another thread; elsewhere it goes to the blocking pool.
    async fn run_script(
        &self,
        host: HostCalls,
        limits: &Limits,
        body: impl FnOnce(&Engine) -> RhaiResult<Dynamic> + Send + 'static,
    ) -> Result<(Dynamic, HostCalls), Failure> {
        let engine = self.engine.clone();
        let limits = *limits;
        let handle = tokio::runtime::Handle::current();
        let call = move || run_on_this_thread(host, handle, &limits, move || body(&engine));
        if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(call)
        } else {
            match tokio::task::spawn_blocking(call).await {
                Ok(result) => result,
                Err(e) => Err(Failure::Host(format!("the script's thread failed: {e}"))),
            }
        }
    }
}

impl Default for RhaiRuntime {
    fn default() -> Self {
        RhaiRuntime::new()
    }
}

fn robot_context(ctx: &RobotContext) -> RhaiResult<Dynamic> {
    let mut map = Map::new();
    map.insert("item".into(), to_dynamic(&ctx.item)?);
    map.insert("stage".into(), ctx.stage.clone().into());
    map.insert("config".into(), json_to_dynamic(&ctx.config)?);
    map.insert("actor".into(), json_to_dynamic(&ctx.actor)?);
    Ok(map.into())
}

/// A robot's return value as its outcome message: a string, `#{message: ...}`, or nothing.
fn outcome_message(value: Dynamic) -> Option<String> {
    if value.is_string() {
        return value.into_immutable_string().ok().map(|s| s.to_string());
    }
    value.try_cast::<Map>().and_then(|m| m.get("message").map(|v| v.to_string()))
}

/// Runs `body` with this thread's call state set, then classifies the result.
fn run_on_this_thread(
    host: HostCalls,
    handle: tokio::runtime::Handle,
    limits: &Limits,
    body: impl FnOnce() -> RhaiResult<Dynamic>,
) -> Result<(Dynamic, HostCalls), Failure> {
    let deadline = Instant::now() + std::time::Duration::from_millis(limits.timeout_ms);
    CURRENT.with(|c| *c.borrow_mut() = Some(Current { host, handle, deadline, fuel: limits.fuel, stopped: None }));
    let result = body();
    let current = CURRENT.with(|c| c.borrow_mut().take());
    let current = current.ok_or_else(|| Failure::Host("the call state vanished during the call".into()))?;
    match result {
        Ok(value) => Ok((value, current.host)),
        Err(e) => Err(classify(*e, limits, &current)),
    }
}

fn classify(error: EvalAltResult, limits: &Limits, current: &Current) -> Failure {
    match error {
        EvalAltResult::ErrorTerminated(token, _) => match current.stopped.clone() {
            Some(f) => f,
            None if token.to_string() == "out-of-fuel" => Failure::OutOfFuel,
            None => Failure::Timeout(limits.timeout_ms),
        },
        EvalAltResult::ErrorTooManyOperations(_) => Failure::OutOfFuel,
        EvalAltResult::ErrorStackOverflow(_) => Failure::Trap("stack overflow: too many nested calls".into()),
        EvalAltResult::ErrorDataTooLarge(what, _) => Failure::MemoryLimit(format!("{what} grew past the limit")),
        EvalAltResult::ErrorRuntime(value, _) => match value.try_cast::<Map>() {
            Some(map) if map.contains_key("code") => {
                let get = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
                plugin_failure(get("code"), get("message"), current.host.denied())
            }
            Some(map) => Failure::Plugin { code: "error".into(), message: format!("{map:?}") },
            None => Failure::Plugin { code: "error".into(), message: "the script threw an error".into() },
        },
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => classify(*inner, limits, current),
        other => Failure::Trap(other.to_string()),
    }
}

/// Registers every host function of [`super::host_api::HOST_FUNCTIONS`] as `interface::name`;
/// returns `interface.function` (WIT naming) of each, for the parity test. The names come from
/// the registrations themselves (`register!`, `install!`), so none is listed that is not
/// registered under it.
fn register_host_functions(engine: &mut Engine) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    // A function of the module (named after its interface) under the name given.
    macro_rules! register {
        ($module:ident, $name:literal, $function:expr $(,)?) => {{
            let name = format!("{}.{}", stringify!($module), $name.replace('_', "-"));
            if !names.contains(&name) {
                names.push(name);
            }
            $module.set_native_fn($name, $function);
        }};
    }
    // The module, as a static module named after its interface.
    macro_rules! install {
        ($module:ident) => {
            engine.register_static_module(stringify!($module), $module.into())
        };
    }
    let mut items = Module::new();
    register!(items, "get", |type_key: ImmutableString, id: i64| {
        let item = with_host(|h, rt| rt.block_on(h.items_get(&type_key, id)))?;
        match item {
            Some(item) => to_dynamic(&item),
            None => Ok(Dynamic::UNIT),
        }
    });
    register!(items, "find", |type_key: ImmutableString, filters: Map, limit: i64| {
        let filters: Vec<(String, String)> = filters.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let limit = u32::try_from(limit.clamp(1, 500)).unwrap_or(50);
        let found = with_host(|h, rt| rt.block_on(h.items_find(&type_key, filters, limit)))?;
        found.iter().map(to_dynamic).collect::<RhaiResult<rhai::Array>>()
    });
    register!(items, "create", |type_key: ImmutableString, input: Dynamic| {
        let input = to_json(input)?;
        with_host(|h, _| h.items_create(&type_key, &input))
    });
    register!(items, "update_fields", |type_key: ImmutableString, id: i64, fields: Dynamic| {
        let fields = to_json(fields)?;
        with_host(|h, _| h.items_update_fields(&type_key, id, &fields))
    });
    register!(items, "move_to_stage", |type_key: ImmutableString, id: i64, stage: ImmutableString| {
        with_host(|h, _| h.items_move_to_stage(&type_key, id, None, &stage))
    });
    register!(items, "move_to_stage", |type_key: ImmutableString,
                                       id: i64,
                                       funnel: ImmutableString,
                                       stage: ImmutableString| {
        with_host(|h, _| h.items_move_to_stage(&type_key, id, Some(funnel.to_string()), &stage))
    });
    register!(items, "link_parent", |type_key: ImmutableString,
                                     id: i64,
                                     parent_type: ImmutableString,
                                     parent_id: i64| {
        let parent = ItemRef { type_key: parent_type.to_string(), id: parent_id };
        with_host(|h, _| h.items_link_parent(&type_key, id, parent))
    });
    install!(items);

    let mut timeline = Module::new();
    register!(timeline, "add_entry", |type_key: ImmutableString, id: i64, text: ImmutableString| {
        with_host(|h, _| h.timeline_add_entry(&type_key, id, &text))
    });
    install!(timeline);

    let mut kv = Module::new();
    register!(kv, "get", |key: ImmutableString| {
        let value = with_host(|h, rt| rt.block_on(h.kv_get(&key)))?;
        Ok(value.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    });
    register!(kv, "set", |key: ImmutableString, value: ImmutableString| with_host(|h, _| h.kv_set(&key, &value)));
    register!(kv, "delete", |key: ImmutableString| with_host(|h, _| h.kv_delete(&key)));
    install!(kv);

    let mut log = Module::new();
    register!(log, "write", |level: ImmutableString, message: ImmutableString| {
        let level = match level.as_str() {
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        };
        with_host(|h, _| {
            h.log_write(level, &message);
            Ok(())
        })
    });
    install!(log);

    let mut clock = Module::new();
    register!(clock, "now", || with_host(|h, _| Ok(h.clock_now())));
    install!(clock);

    let mut notify = Module::new();
    register!(notify, "send", |user: i64, text: ImmutableString| with_host(|h, _| h.notify_send(user, &text, None)));
    register!(notify, "send", |user: i64, text: ImmutableString, about_type: ImmutableString, about_id: i64| {
        let about = ItemRef { type_key: about_type.to_string(), id: about_id };
        with_host(|h, _| h.notify_send(user, &text, Some(about)))
    });
    install!(notify);

    let mut tasks = Module::new();
    register!(tasks, "create", |input: Dynamic| {
        let input = to_json(input)?;
        with_host(|h, _| h.tasks_create(&input))
    });
    install!(tasks);

    let mut processes = Module::new();
    register!(processes, "start", |template: ImmutableString,
                                   item_type: ImmutableString,
                                   item_id: i64,
                                   params: Dynamic| {
        let params = to_json(params)?;
        let item = ItemRef { type_key: item_type.to_string(), id: item_id };
        with_host(|h, _| h.processes_start(&template, item, &params))
    });
    install!(processes);
    names
}
