//! Rhai scripts: one shared, immutable engine with the host functions registered as static
//! modules named after the WIT interfaces (`items::get`, `kv::set`, ...); scripts compiled once
//! to an AST; each call on a blocking thread with its own scope, fuel and deadline.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, Position, Scope};

use voronka_model::item::Item;
use voronka_model::limits::{Failure, Limits};
use voronka_model::plugin::World;

use crate::host::{HostCalls, HostError, HostResult};
use crate::world::{PluginWorld, plugin_failure, script_entry};

mod functions;

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

/// What Rhai calls answer.
pub(crate) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

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

/// A value as Rhai sees it.
pub(crate) fn to_dynamic<T: serde::Serialize>(value: &T) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(value)
}

/// JSON text as a Rhai value (`()` for text that is not JSON).
pub(crate) fn json_to_dynamic(text: &str) -> RhaiResult<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    to_dynamic(&value)
}

/// A Rhai value as JSON text.
pub(crate) fn to_json(value: Dynamic) -> RhaiResult<String> {
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
        let functions = functions::register(&mut engine);
        RhaiRuntime { engine: Arc::new(engine), functions }
    }

    /// `interface.function` of every registered host function.
    pub fn host_functions(&self) -> &[String] {
        &self.functions
    }

    /// Compiles a script and checks that it defines the world's entry function.
    pub fn compile(&self, script: &str, world: World) -> Result<AST, String> {
        let ast = self.engine.compile(script).map_err(|e| format!("the script does not compile: {e}"))?;
        let (name, params) = script_entry(world);
        if !ast.iter_functions().any(|f| f.name == name && f.params.len() == params) {
            return Err(format!("a {world} script must define `fn {name}` with {params} parameter(s)"));
        }
        Ok(ast)
    }

    /// Calls the world's function of a compiled script; returns what it answered and the
    /// host calls (with their buffered writes).
    pub(crate) async fn call<W: PluginWorld>(
        &self,
        ast: Arc<AST>,
        host: HostCalls,
        limits: &Limits,
        input: W::Input,
    ) -> Result<(W::Output, HostCalls), Failure> {
        let (value, host) = self.run_script(host, limits, move |engine| W::call_script(engine, &ast, input)).await?;
        Ok((W::script_output(value)?, host))
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

/// What a script threw: an error record `#{code, message}` (as host calls throw) keeps its code
/// and message; any other value (`throw "customer has no phone"`) is shown as its text.
fn thrown(value: Dynamic, current: &Current) -> Failure {
    let text = |value: &Dynamic| value.clone().into_string().unwrap_or_else(|_| value.to_string());
    if let Some(map) = value.read_lock::<Map>() {
        if let Some(code) = map.get("code") {
            let message = map.get("message").map(text).unwrap_or_default();
            return plugin_failure(text(code), message, current.host.denied());
        }
        if let Some(message) = map.get("message") {
            return Failure::Thrown(text(message).chars().take(2000).collect());
        }
    }
    if value.is_unit() {
        return Failure::Thrown("the script threw without a value".into());
    }
    Failure::Thrown(text(&value).chars().take(2000).collect())
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
        EvalAltResult::ErrorRuntime(value, _) => thrown(value, current),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => classify(*inner, limits, current),
        other => Failure::Trap(other.to_string()),
    }
}
