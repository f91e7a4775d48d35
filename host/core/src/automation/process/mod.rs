//! The process engine: leases running instances that are runnable (started, or woken by a
//! completed task, assignment or child process) or whose timer came, and moves each thread on
//! as far as it goes — running steps, opening assignments, waiting — in one transaction with
//! the instance's new state, so every step runs once and a restart resumes where it stood.
//! A step that fails ends the instance as failed (nothing of that advance is kept), with the
//! reason in its log.
//!
//! Each kind of step lives in its own file under `steps/`; waking the processes that wait for an
//! item's events is in `event_wakes.rs`.

mod event_wakes;
mod steps;

pub use event_wakes::run_event_wakes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use voronka_model::actor::Actor;
use voronka_model::item::{Item, ItemRef, TimelineKind};
use voronka_model::process::{Instance, InstanceStatus, Op, Program, StepKind, Thread, Wait};
use voronka_model::time::{Micros, now_micros};
use voronka_store::Tx;
use voronka_store::processes as repo;

use super::background::{self, Next as Pass};
use crate::service::items::TimelineNote;
use crate::service::{Caller, Core, ServiceError, ServiceResult};
use steps::plugin::{PluginRun, run_plugins};

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
    /// The host's services.
    core: &'a Arc<Core>,
    /// The ops and steps of the template version the instance runs.
    program: Arc<Program>,
    /// The instance as its threads move on; saved at the end of the advance.
    instance: Instance,
    /// The item it runs on, as the steps so far have left it.
    item: Item,
    /// Who the steps act as: the process, one chain step deeper than the instance itself.
    caller: Caller,
    /// When this advance started: the time its log lines, deadlines and timers go by.
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

/// One attempt at [`advance`]: runs the instance's plugin steps, then moves it on and saves it
/// in one transaction.
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

/// Ends an instance as failed, with the reason in its log and on its item's timeline (when the
/// item still exists); a parent waiting for it goes on.
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
    note_failure(core, &mut tx, &instance, step, reason).await?;
    repo::cancel_all_open(&mut tx, instance.id, now);
    if let Some(parent) = instance.parent {
        repo::wake(&mut tx, parent);
    }
    tx.commit().await?;
    core.signals().processes.notify_one();
    Ok(())
}

/// Says on the item's timeline that a process failed, and why (nothing when the item is gone).
async fn note_failure(
    core: &Core,
    tx: &mut Tx,
    instance: &Instance,
    step: Option<&str>,
    reason: &str,
) -> ServiceResult<()> {
    let caller = Caller::automation(Actor::Process { id: instance.id, name: instance.template.clone() }, 0);
    let text = match step {
        Some(step) => format!("Process {} failed at step {step}: {reason}", instance.template),
        None => format!("Process {} failed: {reason}", instance.template),
    };
    let data = json!({ "process": instance.id, "step": step, "reason": reason });
    let note = TimelineNote { kind: TimelineKind::System, text: &text, data: &data };
    match core.items().add_timeline_entry_in(tx, &caller, &instance.item, note).await {
        Ok(_) | Err(ServiceError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What moving threads on gives: on failure, the id of the step that failed (if any) and why.
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

    /// Writes a line about a step to the instance's log; it is kept only if the advance commits.
    fn log(&self, tx: &mut Tx, step: &str, text: &str, data: Value) {
        repo::log(tx, self.instance.id, Some(step), text, &data, self.now);
    }

    /// The item the instance runs on, as a reference.
    fn item_ref(&self) -> ItemRef {
        ItemRef { type_key: self.item.type_key.clone(), id: self.item.id }
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
}

/// The error of an advance that ran more operations than [`MAX_OPS`].
fn too_long() -> ServiceError {
    ServiceError::Conflict(format!("more than {MAX_OPS} operations in one go"))
}
