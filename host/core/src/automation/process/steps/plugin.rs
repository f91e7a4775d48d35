//! Plugin: runs a plugin of world `bp-step` with the step's config, the item and the
//! process's variables; the variables it returns merge into the process's, the branch it names
//! becomes the step's variable, and its buffered writes apply to the data. It runs before its
//! advance, outside any transaction (a plugin may take up to its time limit; the database's
//! writer is not held meanwhile), and its result is applied in the advance if the item and the
//! variables it ran with still hold — else it runs again.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use voronka_model::actor::Actor;
use voronka_model::item::Item;
use voronka_model::plugin::World;
use voronka_model::process::{Instance, InstanceStatus, Op, Program, StepKind};
use voronka_runtime::host::Write;
use voronka_runtime::world::{BpStep, StepContext, StepOutcome};
use voronka_store::Tx;

use crate::automation::process::{Next, Run};
use crate::service::plugin_host::{apply_writes, host_calls};
use crate::service::{Caller, Core, ServiceError, ServiceResult};

/// A plugin step run before its advance, outside any transaction (a plugin may take up to its
/// time limit; the database's writer is not held meanwhile): its variables, branch and
/// buffered writes, or why it failed.
pub(crate) struct PluginRun {
    /// Name of the plugin that ran.
    plugin: String,
    /// The item version and the variables it ran with: applied only if both still hold.
    item_version: i64,
    /// The process's variables it ran with.
    variables: serde_json::Map<String, Value>,
    /// What it returned, or why it failed.
    result: Result<PluginOutcome, String>,
}

/// What a plugin step returned: variables to merge, a branch, and its buffered writes.
type PluginOutcome = (serde_json::Map<String, Value>, Option<String>, Vec<Write>);

/// Runs the plugin steps the runnable threads of an instance stand at, keyed by (thread, op).
pub(crate) async fn run_plugins(
    core: &Arc<Core>,
    instance: &Instance,
    program: &Program,
) -> ServiceResult<HashMap<(u32, usize), PluginRun>> {
    let mut runs = HashMap::new();
    if instance.status != InstanceStatus::Running {
        return Ok(runs);
    }
    let at_plugin: Vec<(u32, usize, StepKind)> = instance
        .state
        .threads
        .iter()
        .filter(|t| t.wait.is_none())
        .filter_map(|t| match program.ops.get(t.pc) {
            Some(Op::Run(i)) => program.steps.get(*i).map(|s| (t.id, t.pc, s.kind.clone())),
            _ => None,
        })
        .filter(|(_, _, kind)| matches!(kind, StepKind::Plugin { .. }))
        .collect();
    if at_plugin.is_empty() {
        return Ok(runs);
    }
    let mut conn = core.store().key_reader().await?;
    let item = voronka_store::items::get(&mut conn, &instance.item.type_key, instance.item.id).await?;
    drop(conn);
    let Some(item) = item else { return Ok(runs) };
    let caller = Caller::automation(Actor::Process { id: instance.id, name: instance.template.clone() }, 1);
    for (thread, pc, kind) in at_plugin {
        let StepKind::Plugin { plugin, version, config } = kind else { continue };
        let result = run_plugin(core, &caller, &item, &instance.variables, (&plugin, &version, &config)).await?;
        let ran_with = (item.version, instance.variables.clone());
        runs.insert((thread, pc), PluginRun { plugin, item_version: ran_with.0, variables: ran_with.1, result });
    }
    Ok(runs)
}

/// Runs one plugin step; a plugin's own failure is `Ok(Err(why))`.
async fn run_plugin(
    core: &Arc<Core>,
    caller: &Caller,
    item: &Item,
    variables: &serde_json::Map<String, Value>,
    (plugin, version, config): (&str, &str, &Value),
) -> ServiceResult<Result<PluginOutcome, String>> {
    let resolved = match core.plugins().resolve(plugin, version, World::BpStep).await {
        Ok(r) => r,
        Err(ServiceError::NotFound(m)) => return Ok(Err(m)),
        Err(e) => return Err(e),
    };
    let host = host_calls(core, plugin, resolved.version.capabilities.clone(), caller.clone());
    let ctx = StepContext {
        item: item.clone(),
        config: config.to_string(),
        variables: Value::Object(variables.clone()).to_string(),
    };
    let limits = resolved.version.limits;
    let (StepOutcome { variables, branch }, host) =
        match core.runtime().call::<BpStep>(&resolved.loaded, host, &limits, ctx).await {
            Ok(done) => done,
            Err(failure) => {
                return Ok(Err(format!("{plugin} {} ({}): {failure}", resolved.version.version, failure.kind())));
            }
        };
    Ok(match serde_json::from_str::<Value>(&variables) {
        Ok(Value::Object(map)) => Ok((map, branch, host.writes().to_vec())),
        Ok(Value::Null) => Ok((serde_json::Map::new(), branch, host.writes().to_vec())),
        _ => Err(format!("{plugin} returned variables that are not a JSON object")),
    })
}

impl Run<'_> {
    /// Applies the result of the plugin step the thread stands at: its writes, variables and
    /// branch. The thread stays parked if the step has not run yet, or ran on an item or
    /// variables that changed since (it runs again); a plugin's failure fails the step.
    pub(super) async fn apply_plugin(
        &mut self,
        tx: &mut Tx,
        id: &str,
        (thread, pc): (u32, usize),
    ) -> ServiceResult<Next> {
        let Some(run) = self.plugins.remove(&(thread, pc)) else { return Ok(Next::Park) };
        // It ran on what was read before the lock: if that changed since, it runs again.
        if run.item_version != self.item.version || run.variables != self.instance.variables {
            return Ok(Next::Park);
        }
        let plugin = run.plugin;
        let (variables, branch, writes) = run.result.map_err(|why| ServiceError::invalid("plugin", why))?;
        apply_writes(self.core, tx, &self.caller, &plugin, &writes).await?;
        self.created_tasks |= writes.iter().any(|w| matches!(w, Write::CreateTask { .. }));
        for (key, value) in variables {
            self.instance.variables.insert(key, value);
        }
        if let Some(branch) = branch {
            self.instance.variables.insert(id.to_string(), Value::String(branch));
        }
        self.log(tx, id, &format!("Plugin {plugin} ran"), json!({}));
        Ok(Next::Goto(pc + 1))
    }
}
