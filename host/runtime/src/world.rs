//! The worlds a plugin implements, each with what the host hands its export and what it
//! answers. One generic call runs any world's plugin, Wasm or Rhai
//! ([`crate::Runtime::call`]); what differs between worlds is said once here.

use rhai::{AST, Dynamic, Engine, Map, Scope};
use wasmtime::component::{ComponentNamedList, Lift, Lower};

use voronka_model::item::Item;
use voronka_model::limits::Failure;
use voronka_model::plugin::World;

use crate::rhai::{RhaiResult, json_to_dynamic, to_dynamic, to_json};
use crate::wasm::bindings::{self, to_wit_item, types};

/// A world: its name, what a call takes and answers, and how both cross into a Wasm
/// component's export and a Rhai script's function.
pub trait PluginWorld: Send + Sync + 'static {
    /// The world this type runs; a loaded plugin of another world is refused as a host failure.
    const WORLD: World;
    /// The export (Wasm) and function (Rhai) the host calls.
    const EXPORT: &'static str;
    /// What a call takes.
    type Input: Send + 'static;
    /// What a call answers.
    type Output: Send + 'static;
    /// The export's parameters, as the bindings type them.
    type Params: ComponentNamedList + Lower + Send + Sync + 'static;
    /// The export's results, as the bindings type them.
    type Results: ComponentNamedList + Lift + Send + Sync + 'static;

    /// The export's arguments for `input`.
    fn params(input: Self::Input) -> Self::Params;
    /// What the export answered, or the plugin's own error.
    fn output(results: Self::Results) -> Result<Self::Output, types::Error>;
    /// Calls the script's function with `input`.
    fn call_script(engine: &Engine, ast: &AST, input: Self::Input) -> RhaiResult<Dynamic>;
    /// What the script's function answered.
    fn script_output(value: Dynamic) -> Result<Self::Output, Failure>;
}

/// A plugin's own error; `denied` names the refused capability when the host refused one.
pub(crate) fn plugin_failure(
    code: String,
    message: String,
    denied: Option<voronka_model::capability::Capability>,
) -> Failure {
    match (code.as_str(), denied) {
        ("denied", Some(capability)) => Failure::Denied(capability.as_str().to_string()),
        _ => Failure::Plugin { code, message: message.chars().take(2000).collect() },
    }
}

fn bad_result(message: String) -> Failure {
    Failure::Plugin { code: "bad-result".into(), message }
}

/// `robot`: runs when an item enters the stage it is bound to.
pub struct Robot;

/// What a robot call receives.
#[derive(Debug, Clone)]
pub struct RobotContext {
    /// The item as it stood when the job started.
    pub item: Item,
    /// Key of the stage entered; empty for a schedule's run whose scope names no stage.
    pub stage: String,
    /// The binding's config (JSON).
    pub config: String,
    /// The actor whose change made the item enter (JSON).
    pub actor: String,
}

impl PluginWorld for Robot {
    const WORLD: World = World::Robot;
    const EXPORT: &'static str = "run";
    type Input = RobotContext;
    /// The outcome message, if any.
    type Output = Option<String>;
    type Params = (bindings::Context,);
    type Results = (Result<bindings::Outcome, types::Error>,);

    fn params(ctx: RobotContext) -> Self::Params {
        (bindings::Context { item: to_wit_item(&ctx.item), stage: ctx.stage, config: ctx.config, actor: ctx.actor },)
    }

    fn output((results,): Self::Results) -> Result<Option<String>, types::Error> {
        results.map(|outcome| outcome.message)
    }

    fn call_script(engine: &Engine, ast: &AST, ctx: RobotContext) -> RhaiResult<Dynamic> {
        let mut map = Map::new();
        map.insert("item".into(), to_dynamic(&ctx.item)?);
        map.insert("stage".into(), ctx.stage.into());
        map.insert("config".into(), json_to_dynamic(&ctx.config)?);
        map.insert("actor".into(), json_to_dynamic(&ctx.actor)?);
        engine.call_fn::<Dynamic>(&mut Scope::new(), ast, Self::EXPORT, (Dynamic::from(map),))
    }

    /// A string, `#{message: ...}`, or nothing.
    fn script_output(value: Dynamic) -> Result<Option<String>, Failure> {
        if value.is_string() {
            return Ok(value.into_immutable_string().ok().map(|s| s.to_string()));
        }
        Ok(value.try_cast::<Map>().and_then(|m| m.get("message").map(|v| v.to_string())))
    }
}

/// `trigger`: decides whether a domain event should move an item.
pub struct Trigger;

/// What a trigger call receives.
#[derive(Debug, Clone)]
pub struct TriggerInput {
    /// The event (JSON).
    pub event: String,
    /// The trigger's config (JSON).
    pub config: String,
}

impl PluginWorld for Trigger {
    const WORLD: World = World::Trigger;
    const EXPORT: &'static str = "matches";
    type Input = TriggerInput;
    /// Whether the event matches.
    type Output = bool;
    type Params = (String, String);
    type Results = (Result<bool, types::Error>,);

    fn params(input: TriggerInput) -> Self::Params {
        (input.event, input.config)
    }

    fn output((results,): Self::Results) -> Result<bool, types::Error> {
        results
    }

    fn call_script(engine: &Engine, ast: &AST, input: TriggerInput) -> RhaiResult<Dynamic> {
        let event = json_to_dynamic(&input.event)?;
        let config = json_to_dynamic(&input.config)?;
        engine.call_fn::<Dynamic>(&mut Scope::new(), ast, Self::EXPORT, (event, config))
    }

    fn script_output(value: Dynamic) -> Result<bool, Failure> {
        value.as_bool().map_err(|t| bad_result(format!("`matches` must return true or false, not {t}")))
    }
}

/// `bp-step`: a step of a business process.
pub struct BpStep;

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

/// What a business-process step answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Variables to merge into the process (JSON object).
    pub variables: String,
    /// The branch to take, if any.
    pub branch: Option<String>,
}

impl PluginWorld for BpStep {
    const WORLD: World = World::BpStep;
    const EXPORT: &'static str = "execute";
    type Input = StepContext;
    type Output = StepOutcome;
    type Params = (bindings::StepContext,);
    type Results = (Result<bindings::StepOutcome, types::Error>,);

    fn params(ctx: StepContext) -> Self::Params {
        (bindings::StepContext { item: to_wit_item(&ctx.item), config: ctx.config, variables: ctx.variables },)
    }

    fn output((results,): Self::Results) -> Result<StepOutcome, types::Error> {
        results.map(|outcome| StepOutcome { variables: outcome.variables, branch: outcome.branch })
    }

    /// `execute(ctx)`, `ctx` holding the item, the config and the variables.
    fn call_script(engine: &Engine, ast: &AST, ctx: StepContext) -> RhaiResult<Dynamic> {
        let mut map = Map::new();
        map.insert("item".into(), to_dynamic(&ctx.item)?);
        map.insert("config".into(), json_to_dynamic(&ctx.config)?);
        map.insert("variables".into(), json_to_dynamic(&ctx.variables)?);
        engine.call_fn::<Dynamic>(&mut Scope::new(), ast, Self::EXPORT, (Dynamic::from(map),))
    }

    /// A map of variables, optionally with `branch`.
    fn script_output(value: Dynamic) -> Result<StepOutcome, Failure> {
        let mut result = value.try_cast::<Map>().unwrap_or_default();
        let branch = result.remove("branch").map(|b| b.to_string());
        let variables = to_json(Dynamic::from(result))
            .map_err(|e| bad_result(format!("`execute` must return a map of variables: {e}")))?;
        Ok(StepOutcome { variables, branch })
    }
}

/// `payment-schedule`: turns a form's answers into a list of payments.
pub struct PaymentSchedule;

impl PluginWorld for PaymentSchedule {
    const WORLD: World = World::PaymentSchedule;
    const EXPORT: &'static str = "generate";
    /// The form's answers (JSON).
    type Input = String;
    /// The payments (JSON).
    type Output = String;
    type Params = (String,);
    type Results = (Result<String, types::Error>,);

    fn params(input: String) -> Self::Params {
        (input,)
    }

    fn output((results,): Self::Results) -> Result<String, types::Error> {
        results
    }

    fn call_script(engine: &Engine, ast: &AST, input: String) -> RhaiResult<Dynamic> {
        engine.call_fn::<Dynamic>(&mut Scope::new(), ast, Self::EXPORT, (json_to_dynamic(&input)?,))
    }

    /// Any value, as JSON.
    fn script_output(value: Dynamic) -> Result<String, Failure> {
        to_json(value).map_err(|e| bad_result(format!("`generate` must return JSON-like data: {e}")))
    }
}

/// The name and arity of the function a script of `world` must define.
pub(crate) fn script_entry(world: World) -> (&'static str, usize) {
    match world {
        World::Robot => (Robot::EXPORT, 1),
        World::Trigger => (Trigger::EXPORT, 2),
        World::BpStep => (BpStep::EXPORT, 1),
        World::PaymentSchedule => (PaymentSchedule::EXPORT, 1),
    }
}
