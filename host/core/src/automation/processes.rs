//! The process engine: leases running instances that are runnable (started, or woken by a
//! completed task, assignment or child process) or whose timer came, and moves each thread on
//! as far as it goes — running steps, opening assignments, waiting — in one transaction with
//! the instance's new state, so every step runs once and a restart resumes where it stood.
//! A step that fails ends the instance as failed (nothing of that advance is kept), with the
//! reason in its log.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use voronka_model::event::EventKind;
use voronka_model::plugin::World;

use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

use super::background::{self, Next as Pass};
use crate::service::notifications::NewNotification;
use crate::service::plugin_host::{apply_writes, host_calls};
use crate::service::{Caller, Core, ServiceError, ServiceResult};
use voronka_model::actor::Actor;
use voronka_model::assignee::Assignee;
use voronka_model::item::ItemPatch;
use voronka_model::item::{Item, ItemRef};
use voronka_model::process::{
    ApprovalMode, Assignment, Instance, InstanceStatus, Op, Outcome, Program, StepKind, Thread, Wait, WriteTo,
};
use voronka_model::task::TaskRequest;
use voronka_model::time::{Micros, now_micros, parse_rfc3339};
use voronka_runtime::host::Write;
use voronka_runtime::world::{BpStep, StepContext, StepOutcome};
use voronka_store::Tx;
use voronka_store::processes as repo;

/// Longest sleep between looks at a shared database's instances (other hosts' wake-ups); this
/// host's own changes wake the engine, and it sleeps until the next timer.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Instances leased at once.
const CLAIM: i64 = 32;
/// How long a lease lasts: longer than the plugin steps of a round may take.
const LEASE: Micros = 300_000_000;
/// Most operations one advance runs (templates have no loops; this bounds a runaway).
const MAX_OPS: usize = 10_000;

/// Runs until shutdown.
pub async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    background::run("advancing processes", &core.signals().processes, timing, shutdown, || pass(&core)).await
}

/// Advances the due instances, or names when the next is due.
async fn pass(core: &Arc<Core>) -> ServiceResult<Pass> {
    if advance_due(core).await? > 0 {
        return Ok(Pass::Again);
    }
    Ok(Pass::Wait(repo::QUEUE.next_due(core.store().reader(), now_micros()).await?))
}

/// Leases the instances due and advances each; returns how many.
pub async fn advance_due(core: &Arc<Core>) -> ServiceResult<usize> {
    let now = now_micros();
    let mut tx = core.store().begin();
    let ids = repo::claim(&mut tx, now, now + LEASE, CLAIM).await?;
    tx.commit().await?;
    for id in &ids {
        if let Err(e) = advance(core, *id).await {
            tracing::error!(process = id, error = %e, "a process could not be advanced; it is retried after its lease");
        }
    }
    Ok(ids.len())
}

/// What an operation does to its thread.
enum Next {
    /// Go on at an op.
    Goto(usize),
    /// Wait at the current op.
    Wait(Wait),
    /// The thread ends.
    End,
    /// The thread splits into threads at these ops.
    Fork(Vec<usize>),
    /// The thread stays where it is until its plugin step has run (next advance).
    Park,
}

/// One advance of one instance.
struct Run<'a> {
    core: &'a Arc<Core>,
    program: Arc<Program>,
    instance: Instance,
    item: Item,
    caller: Caller,
    now: Micros,
    /// Tasks were created (the deadline watch is to look).
    created_tasks: bool,
    /// Plugin steps run before this advance, by (thread, op).
    plugins: HashMap<(u32, usize), PluginRun>,
    /// A thread reached a plugin step not run yet: the instance needs another advance.
    parked: bool,
}

/// Attempts at an advance whose write found its rows changed (SQLite's deferred checks).
const ATTEMPTS: usize = 3;

/// Advances an instance as far as it goes and saves it; a failing step fails it.
pub async fn advance(core: &Arc<Core>, id: i64) -> ServiceResult<()> {
    for _ in 1..ATTEMPTS {
        match advance_once(core, id).await {
            Err(ServiceError::Store(voronka_store::StoreError::Db(voronka_store::DbError::CheckFailed))) => continue,
            other => return other,
        }
    }
    advance_once(core, id).await
}

async fn advance_once(core: &Arc<Core>, id: i64) -> ServiceResult<()> {
    // Plugin steps run first, outside the transaction; the advance consumes their results.
    let plugins = {
        let (instance, program) = core.processes().instance_program(id).await?;
        run_plugins(core, &instance, &program).await?
    };
    let mut tx = core.store().begin();
    // The lock first: what is read below is what the save will write over.
    let Some(depth) = repo::lock_instance(&mut tx, id).await? else { return Ok(()) };
    let (instance, program) = core.processes().instance_program(id).await?;
    if instance.status != InstanceStatus::Running {
        return Ok(());
    }
    let actor = Actor::Process { id, name: instance.template.clone() };
    let caller = Caller::automation(actor, u32::try_from(depth + 1).unwrap_or(u32::MAX));
    let item = match core.items().load_in(&mut tx, &caller, &instance.item.type_key, instance.item.id).await {
        Ok(item) => item,
        Err(ServiceError::NotFound(_)) => {
            drop(tx);
            return fail(core, instance, None, "its item was deleted").await;
        }
        Err(e) => return Err(e),
    };
    let loaded = instance.clone();
    let mut run =
        Run { core, program, instance, item, caller, now: now_micros(), created_tasks: false, plugins, parked: false };
    match run.go(&mut tx).await {
        Ok(()) => {}
        Err((step, ServiceError::Store(e))) => {
            tracing::warn!(process = id, step = step.as_deref().unwrap_or(""), error = %e, "a process step hit a storage failure");
            return Err(ServiceError::Store(e));
        }
        Err((step, e)) => {
            drop(tx);
            // Nothing of this advance is kept: the instance fails as it stood before it.
            return fail(core, loaded, step.as_deref(), &e.describe()).await;
        }
    }
    let mut instance = run.instance;
    instance.version += 1;
    if instance.state.threads.is_empty() {
        instance.status = InstanceStatus::Completed;
        repo::log(&mut tx, id, None, "Completed", &json!({}), run.now);
    }
    if !repo::save(&mut tx, &instance, instance.state.wake_at(), run.parked, run.now).await? {
        // Changed meanwhile (terminated): nothing of this advance is kept.
        return Ok(());
    }
    if instance.status != InstanceStatus::Running
        && let Some(parent) = instance.parent
    {
        repo::wake(&mut tx, parent);
    }
    tx.commit().await?;
    core.committed();
    core.signals().processes.notify_one();
    if run.created_tasks {
        core.signals().deadlines.notify_one();
    }
    Ok(())
}

/// Ends an instance as failed, with the reason in its log; a parent waiting for it goes on.
async fn fail(core: &Core, mut instance: Instance, step: Option<&str>, reason: &str) -> ServiceResult<()> {
    let now = now_micros();
    tracing::warn!(process = instance.id, step, reason, "a process failed");
    instance.status = InstanceStatus::Failed;
    instance.error = Some(match step {
        Some(step) => format!("step {step}: {reason}"),
        None => reason.to_string(),
    });
    instance.version += 1;
    let mut tx = core.store().begin();
    if !repo::save(&mut tx, &instance, None, false, now).await? {
        return Ok(());
    }
    repo::log(&mut tx, instance.id, step, &format!("Failed: {reason}"), &json!({}), now);
    repo::cancel_all_open(&mut tx, instance.id, now);
    if let Some(parent) = instance.parent {
        repo::wake(&mut tx, parent);
    }
    tx.commit().await?;
    core.signals().processes.notify_one();
    Ok(())
}

type StepResult<T> = Result<T, (Option<String>, ServiceError)>;

impl Run<'_> {
    /// Moves every thread on until each waits or ends: each runs until it blocks, then the
    /// waiting ones are looked at again while any thread moved.
    async fn go(&mut self, tx: &mut Tx) -> StepResult<()> {
        let mut budget = MAX_OPS;
        loop {
            let mut moved = false;
            let mut i = 0;
            while i < self.instance.state.threads.len() {
                let thread = self.instance.state.threads[i].clone();
                let step = self.program.step_of(thread.pc).map(|s| s.id.clone());
                if thread.wait.is_none() {
                    budget = budget.checked_sub(1).ok_or_else(|| (step.clone(), too_long()))?;
                }
                let next = match &thread.wait {
                    Some(wait) => match self.wait_over(tx, &thread, wait).await.map_err(|e| (step.clone(), e))? {
                        true => Some(Next::Goto(thread.pc + 1)),
                        false => None,
                    },
                    None => Some(self.op(tx, &thread).await.map_err(|e| (step.clone(), e))?),
                };
                let Some(next) = next else {
                    i += 1;
                    continue;
                };
                moved |= !matches!(next, Next::Park);
                let threads = &mut self.instance.state.threads;
                match next {
                    // The same thread goes on at once.
                    Next::Goto(pc) => threads[i] = Thread { id: thread.id, pc, wait: None },
                    Next::Wait(wait) => {
                        threads[i].wait = Some(wait);
                        i += 1;
                    }
                    Next::End => {
                        threads.remove(i);
                    }
                    Next::Park => {
                        self.parked = true;
                        i += 1;
                        continue;
                    }
                    Next::Fork(starts) => {
                        threads.remove(i);
                        for pc in starts {
                            let id = self.instance.state.next_thread;
                            self.instance.state.next_thread += 1;
                            self.instance.state.threads.push(Thread { id, pc, wait: None });
                        }
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn log(&self, tx: &mut Tx, step: &str, text: &str, data: Value) {
        repo::log(tx, self.instance.id, Some(step), text, &data, self.now);
    }

    /// Runs the op a runnable thread stands at.
    async fn op(&mut self, tx: &mut Tx, thread: &Thread) -> ServiceResult<Next> {
        let pc = thread.pc;
        let op = self.program.ops.get(pc).cloned().unwrap_or(Op::End);
        Ok(match op {
            Op::Run(index) => {
                let step = self.program.steps[index].clone();
                self.run_step(tx, &step.id, &step.kind, (thread.id, pc)).await?
            }
            Op::Branch { step, otherwise } => {
                let (id, when) = match &self.program.steps[step].kind {
                    StepKind::Condition { when, .. } => (self.program.steps[step].id.clone(), when.clone()),
                    _ => return Err(ServiceError::Conflict("a condition op without its condition".into())),
                };
                let vars = Value::Object(self.instance.variables.clone());
                let holds = self
                    .core
                    .runtime()
                    .process_condition(&when, &vars, &self.item)
                    .map_err(|e| ServiceError::invalid("when", e))?;
                self.log(tx, &id, if holds { "Condition true" } else { "Condition false" }, json!({}));
                Next::Goto(if holds { pc + 1 } else { otherwise })
            }
            Op::Jump(target) => Next::Goto(target),
            Op::Fork { step, starts, join } => {
                self.instance.state.joins.insert(join, 0);
                let id = self.program.steps[step].id.clone();
                self.log(tx, &id, &format!("{} branches started", starts.len()), json!({}));
                Next::Fork(starts)
            }
            Op::EndBranch { join } => {
                let arrived = self.instance.state.joins.entry(join).or_insert(0);
                *arrived += 1;
                let needed = match self.program.ops.get(join) {
                    Some(Op::Join { branches }) => *branches,
                    _ => 1,
                };
                if *arrived >= needed {
                    self.instance.state.joins.remove(&join);
                    Next::Goto(join + 1)
                } else {
                    Next::End
                }
            }
            Op::Join { .. } => Next::Goto(pc + 1),
            Op::End => Next::End,
        })
    }

    /// Runs an action step.
    async fn run_step(
        &mut self,
        tx: &mut Tx,
        id: &str,
        kind: &StepKind,
        (thread, pc): (u32, usize),
    ) -> ServiceResult<Next> {
        let item_ref = ItemRef { type_key: self.item.type_key.clone(), id: self.item.id };
        Ok(match kind {
            StepKind::Task { title, description, assignee, wait, deadline_s, require_result, tags } => {
                let request = TaskRequest {
                    title: title.clone(),
                    description: description.clone(),
                    responsible: Some(assignee.clone()),
                    deadline: None,
                    deadline_in_s: *deadline_s,
                    links: vec![item_ref],
                    auditors: Vec::new(),
                    checklist: Vec::new(),
                    require_result: *require_result,
                    tags: tags.clone(),
                };
                let task = self.core.tasks().create_in(tx, &self.caller, request).await?;
                self.created_tasks = true;
                self.instance.variables.insert(id.to_string(), json!({ "task": task.id }));
                self.log(
                    tx,
                    id,
                    &format!("Task {} created for user {}", task.id, task.responsible),
                    json!({ "task": task.id }),
                );
                if *wait {
                    repo::link_task(tx, task.id, self.instance.id);
                    Next::Wait(Wait::Task { task: task.id })
                } else {
                    Next::Goto(pc + 1)
                }
            }
            StepKind::Approval { assignees, deadline_s, title, .. } => {
                let mut users = BTreeSet::new();
                for (i, value) in assignees.iter().enumerate() {
                    let field = format!("assignees[{i}]");
                    let assignee = Assignee::from_json(&field, value)?;
                    users.extend(self.core.people().resolve_assignee(&field, &assignee, Some(&self.item)).await?);
                }
                let until = deadline_s.map(|s| self.now + s * 1_000_000);
                let title = title.clone().unwrap_or_else(|| format!("Approve: {}", self.item.title));
                for user in users {
                    self.assign(tx, id, "approval", user, &title, Vec::new(), until).await?;
                }
                Next::Wait(Wait::Assignments { until })
            }
            StepKind::RequestInfo { assignee, form, title, .. } => {
                let assignee = Assignee::from_json("assignee", assignee)?;
                let user = self.core.people().resolve_one_assignee("assignee", &assignee, Some(&self.item)).await?;
                let title = title.clone().unwrap_or_else(|| format!("Fill in: {}", self.item.title));
                self.assign(tx, id, "request-info", user, &title, form.clone(), None).await?;
                Next::Wait(Wait::Assignments { until: None })
            }
            StepKind::SetFields { fields } => {
                let patch = ItemPatch { fields: Some(fields.clone()), ..ItemPatch::default() };
                self.item = self
                    .core
                    .items()
                    .update_in(tx, &self.caller, &self.item.type_key, self.item.id, patch, None)
                    .await?;
                self.log(tx, id, "Fields set", json!({ "fields": fields }));
                Next::Goto(pc + 1)
            }
            StepKind::Wait { event: Some(kind), field, stage, .. } => {
                let after = repo::last_event_in(tx).await?;
                Next::Wait(Wait::Event { kind: kind.clone(), field: field.clone(), stage: stage.clone(), after })
            }
            StepKind::Wait { duration_s, until, until_field, offset_s, .. } => {
                let at = if let Some(s) = duration_s {
                    Some(self.now + s * 1_000_000)
                } else if let Some(text) = until {
                    parse_rfc3339(text)
                } else {
                    until_field
                        .as_deref()
                        .and_then(|f| crate::automation::field_time(&self.item.fields, f))
                        .and_then(|at| at.checked_add(offset_s.checked_mul(1_000_000)?))
                };
                match at {
                    Some(at) if at > self.now => Next::Wait(Wait::Timer { at }),
                    _ => {
                        self.log(tx, id, "Nothing to wait for: the time has passed or the field is empty", json!({}));
                        Next::Goto(pc + 1)
                    }
                }
            }
            StepKind::Notify { to, text } => {
                let assignee = Assignee::from_json("to", to)?;
                for user in self.core.people().resolve_assignee("to", &assignee, Some(&self.item)).await? {
                    let note = NewNotification {
                        user,
                        kind: "process",
                        text: text.clone(),
                        about: Some(item_ref.clone()),
                        data: json!({ "process": self.instance.id, "step": id }),
                    };
                    self.core.notifications().notify_in(tx, &self.caller, note).await?;
                }
                Next::Goto(pc + 1)
            }
            StepKind::StartProcess { template, wait, params } => {
                let child_caller = Caller { depth: self.caller.depth + 1, ..self.caller.clone() };
                let child = self
                    .core
                    .processes()
                    .start_in(tx, &child_caller, template, &item_ref, params.clone(), Some(self.instance.id))
                    .await?;
                self.log(tx, id, &format!("Process {} started", child.id), json!({ "process": child.id }));
                self.instance.variables.insert(id.to_string(), json!({ "process": child.id }));
                if *wait { Next::Wait(Wait::Child { instance: child.id }) } else { Next::Goto(pc + 1) }
            }
            StepKind::Plugin { .. } => {
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
                Next::Goto(pc + 1)
            }
            StepKind::Condition { .. } | StepKind::Parallel { .. } => Next::Goto(pc + 1),
        })
    }

    /// Opens an assignment and notifies its person.
    #[allow(clippy::too_many_arguments)]
    async fn assign(
        &mut self,
        tx: &mut Tx,
        step: &str,
        kind: &str,
        user: i64,
        title: &str,
        form: Vec<voronka_model::process::FormField>,
        until: Option<Micros>,
    ) -> ServiceResult<()> {
        let mut assignment = Assignment {
            id: 0,
            process: self.instance.id,
            step: step.to_string(),
            kind: kind.to_string(),
            user,
            status: "open".into(),
            title: title.to_string(),
            form,
            item: ItemRef { type_key: self.item.type_key.clone(), id: self.item.id },
            decision: None,
            comment: None,
            answers: None,
            due_at: None,
            created_at: String::new(),
            completed_at: None,
        };
        assignment.id = repo::insert_assignment(tx, &assignment, until, self.now).await?;
        let note = NewNotification {
            user,
            kind: "assignment",
            text: title.to_string(),
            about: Some(assignment.item.clone()),
            data: json!({ "assignment": assignment.id, "process": self.instance.id, "step": step }),
        };
        self.core.notifications().notify_in(tx, &self.caller, note).await?;
        self.log(tx, step, &format!("Assigned to user {user}"), json!({ "assignment": assignment.id, "kind": kind }));
        Ok(())
    }

    /// Whether a waiting thread may go on; an approval or request that resolves records its
    /// outcome first.
    async fn wait_over(&mut self, tx: &mut Tx, thread: &Thread, wait: &Wait) -> ServiceResult<bool> {
        if let Wait::Event { kind, field, stage, after } = wait {
            let item = ItemRef { type_key: self.item.type_key.clone(), id: self.item.id };
            let mut after = *after;
            loop {
                let events = repo::item_events_after(tx, &item, kind, after).await?;
                if events.iter().any(|(_, payload)| event_matches(payload, field.as_deref(), stage.as_deref())) {
                    return Ok(true);
                }
                let Some((last, _)) = events.last() else { break };
                after = *last;
            }
            // Events looked at are not looked at again.
            if let Some(t) = self.instance.state.threads.iter_mut().find(|t| t.id == thread.id) {
                t.wait = Some(Wait::Event { kind: kind.clone(), field: field.clone(), stage: stage.clone(), after });
            }
            return Ok(false);
        }
        if let Wait::Child { instance } = wait {
            let status = repo::instance_status(tx, *instance).await?.unwrap_or_else(|| "failed".into());
            if status == "running" {
                return Ok(false);
            }
            // The parent learns how its child ended, and may branch on it.
            if let Some(step) = self.program.step_of(thread.pc) {
                let value = json!({ "process": instance, "status": status });
                self.instance.variables.insert(step.id.clone(), value);
            }
            return Ok(true);
        }
        let Wait::Assignments { until } = wait else { return self.core.processes().wait_is_over(tx, wait).await };
        let Some(step) = self.program.step_of(thread.pc).cloned() else { return Ok(true) };
        let assignments: Vec<Assignment> = repo::assignments_of_step(tx, self.instance.id, &step.id)
            .await?
            .into_iter()
            .filter(|a| a.status != "cancelled")
            .collect();
        match &step.kind {
            StepKind::Approval { mode, min_percent, default, .. } => {
                let total = assignments.len();
                let approvals = assignments.iter().filter(|a| a.decision.as_deref() == Some("approve")).count();
                let rejections = assignments.iter().filter(|a| a.decision.as_deref() == Some("reject")).count();
                let mut outcome = decide(*mode, min_percent.unwrap_or(100) as usize, total, approvals, rejections);
                let mut timed_out = false;
                if outcome.is_none() && until.is_some_and(|u| u <= self.now) {
                    outcome = *default;
                    timed_out = true;
                }
                let Some(outcome) = outcome else { return Ok(false) };
                self.instance.variables.insert(step.id.clone(), Value::String(outcome.as_str().into()));
                repo::cancel_open(tx, self.instance.id, &step.id, self.now);
                let how = if timed_out { " (deadline passed: default outcome)" } else { "" };
                let text = format!("Outcome: {}{how}", outcome.as_str());
                self.log(tx, &step.id, &text, json!({ "approvals": approvals, "rejections": rejections, "of": total }));
                if let Some(responsible) = self.item.responsible {
                    let note = NewNotification {
                        user: responsible,
                        kind: "approval-outcome",
                        text: format!("{}: {}", self.item.title, outcome.as_str()),
                        about: Some(ItemRef { type_key: self.item.type_key.clone(), id: self.item.id }),
                        data: json!({ "process": self.instance.id, "step": step.id, "outcome": outcome.as_str() }),
                    };
                    self.core.notifications().notify_in(tx, &self.caller, note).await?;
                }
                Ok(true)
            }
            StepKind::RequestInfo { write_to, .. } => {
                let Some(done) = assignments.iter().find(|a| a.status == "done") else { return Ok(false) };
                if *write_to == WriteTo::Vars
                    && let Some(Value::Object(answers)) = &done.answers
                {
                    for (key, value) in answers {
                        self.instance.variables.insert(key.clone(), value.clone());
                    }
                }
                self.instance.variables.insert(step.id.clone(), Value::String("answered".into()));
                // The answers may have changed the item's fields.
                if *write_to == WriteTo::Fields {
                    self.item = self.core.items().load_in(tx, &self.caller, &self.item.type_key, self.item.id).await?;
                }
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}

/// A plugin step run before its advance, outside any transaction (a plugin may take up to its
/// time limit; the database's writer is not held meanwhile): its variables, branch and
/// buffered writes, or why it failed.
struct PluginRun {
    plugin: String,
    /// The item version and the variables it ran with: applied only if both still hold.
    item_version: i64,
    variables: serde_json::Map<String, Value>,
    result: Result<PluginOutcome, String>,
}

/// What a plugin step returned: variables to merge, a branch, and its buffered writes.
type PluginOutcome = (serde_json::Map<String, Value>, Option<String>, Vec<Write>);

/// Runs the plugin steps the runnable threads of an instance stand at, keyed by (thread, op).
async fn run_plugins(
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

/// Whether an item event's payload has the field change or the stage a wait asks for.
fn event_matches(payload: &Value, field: Option<&str>, stage: Option<&str>) -> bool {
    let field_ok = field.is_none_or(|f| {
        let names = [f.to_string(), format!("fields.{f}")];
        payload["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["field"].as_str().is_some_and(|n| names.iter().any(|x| x == n))))
    });
    let stage_ok = stage.is_none_or(|s| payload["to"]["stage"].as_str() == Some(s));
    field_ok && stage_ok
}

/// Wakes the processes that wait for an event of an item when such events are committed.
/// Each host reads the event stream from where it stood at start; at start every waiting
/// process is woken once, so events committed while no host watched are not missed.
pub async fn run_event_wakes(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    // Where this host stands in the event stream; `NOT_STARTED` until the first pass takes the
    // stream's end, with every waiting process woken once.
    let position = &core.signals().process_events_read;
    let wakes = &core.signals().process_events;
    background::run("waking processes for events", wakes, timing, shutdown, || async {
        let from = position.load(Ordering::Acquire);
        if from == super::NOT_STARTED {
            let last = repo::last_event(core.store().reader()).await?;
            let mut tx = core.store().begin();
            repo::wake_all_event_waiters(&mut tx).await?;
            tx.commit().await?;
            position.store(last, Ordering::Release);
            core.signals().processes.notify_one();
            return Ok(Pass::Again);
        }
        let (last, more) = wake_for_events(&core, from).await?;
        position.store(last, Ordering::Release);
        Ok(if more { Pass::Again } else { Pass::Wait(None) })
    })
    .await
}

/// Wakes the waiting processes of the items of the events after `position`; returns the new
/// position and whether more events may wait.
async fn wake_for_events(core: &Core, position: i64) -> ServiceResult<(i64, bool)> {
    const BATCH: i64 = 500;
    let reader = core.store().reader();
    // The stream's end is read before the waiters are. A process waits for the events after the
    // stream's end at its start, and events are ordered behind that start (the event-order
    // lock), so when no process waits yet, none waits for the events up to here: they are
    // passed over unread.
    let end = repo::last_event(reader).await?;
    if !repo::any_event_waiter(reader).await? {
        return Ok((end.max(position), false));
    }
    let events = voronka_store::outbox::list(reader, position, None, BATCH).await?;
    let Some(last) = events.iter().take(BATCH as usize).map(|e| e.id).next_back() else { return Ok((position, false)) };
    let more = events.len() as i64 > BATCH;
    {
        let mut items: Vec<ItemRef> = Vec::new();
        for event in events.iter().take(BATCH as usize) {
            if let (Some(type_key), Some(id)) = (&event.type_key, event.item_id)
                && (voronka_model::process::WAITABLE_EVENTS.contains(&event.kind)
                    || event.kind == EventKind::ItemDeleted)
                && !items.iter().any(|i| i.id == id && &i.type_key == type_key)
            {
                items.push(ItemRef { type_key: type_key.clone(), id });
            }
        }
        if !items.is_empty() {
            let mut tx = core.store().begin();
            let woken = repo::wake_event_waiters(&mut tx, &items).await?;
            tx.commit().await?;
            if woken > 0 {
                core.signals().processes.notify_one();
            }
        }
    }
    Ok((last, more))
}

/// An approval's outcome from its decisions so far, once it cannot change.
fn decide(
    mode: ApprovalMode,
    min_percent: usize,
    total: usize,
    approvals: usize,
    rejections: usize,
) -> Option<Outcome> {
    if total == 0 {
        return Some(Outcome::Approved);
    }
    match mode {
        ApprovalMode::All if rejections > 0 => Some(Outcome::Rejected),
        ApprovalMode::All if approvals == total => Some(Outcome::Approved),
        ApprovalMode::Any if approvals > 0 => Some(Outcome::Approved),
        ApprovalMode::Any if rejections == total => Some(Outcome::Rejected),
        ApprovalMode::Vote if approvals * 100 >= min_percent * total => Some(Outcome::Approved),
        ApprovalMode::Vote if (total - rejections) * 100 < min_percent * total => Some(Outcome::Rejected),
        _ => None,
    }
}

fn too_long() -> ServiceError {
    ServiceError::Conflict(format!("more than {MAX_OPS} operations in one go"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_decide_as_soon_as_the_outcome_is_certain() {
        use ApprovalMode::*;
        assert_eq!(decide(All, 100, 2, 1, 0), None);
        assert_eq!(decide(All, 100, 2, 2, 0), Some(Outcome::Approved));
        assert_eq!(decide(All, 100, 3, 2, 1), Some(Outcome::Rejected));
        assert_eq!(decide(All, 100, 3, 0, 1), Some(Outcome::Rejected));
        assert_eq!(decide(Any, 100, 3, 1, 0), Some(Outcome::Approved));
        assert_eq!(decide(Any, 100, 2, 0, 1), None);
        assert_eq!(decide(Any, 100, 2, 0, 2), Some(Outcome::Rejected));
        // 60 % of 5: three approvals approve; three rejections make it impossible.
        assert_eq!(decide(Vote, 60, 5, 2, 0), None);
        assert_eq!(decide(Vote, 60, 5, 3, 0), Some(Outcome::Approved));
        assert_eq!(decide(Vote, 60, 5, 1, 2), None);
        assert_eq!(decide(Vote, 60, 5, 1, 3), Some(Outcome::Rejected));
    }
}
