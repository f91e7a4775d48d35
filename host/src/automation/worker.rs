//! Job workers: claim due robot runs, run the plugin with its limits, then commit its buffered
//! writes together with the job's completion, or roll back and record the failure.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Shutdown;
use crate::model::actor::Actor;
use crate::model::item::{Item, ItemRef, TimelineKind};
use crate::model::time::now_micros;
use crate::runtime::host_api::{HostCalls, after_commit, apply_writes};
use crate::runtime::limits::Failure;
use crate::runtime::registry::Loaded;
use crate::runtime::wasm::RobotContext;
use crate::service::items::TimelineNote;
use crate::service::{Caller, Service, ServiceError, ServiceResult};
use crate::store::jobs::{self, Job};
use crate::store::{StoreError, Tx};

/// Jobs claimed at once by one worker.
const CLAIM: i64 = 32;
/// Longest sleep when the queue is empty on a shared database (other hosts' jobs).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Attempts of a job failing transiently before it is failed for good.
const MAX_ATTEMPTS: i64 = 5;

/// Runs until shutdown. Sleeps until the next job is due (delayed robots run on time), until
/// new jobs are queued, or for the idle poll.
pub async fn run(service: Arc<Service>, worker: usize, mut shutdown: Shutdown) {
    let idle = super::idle_poll(&service, IDLE_POLL);
    while !shutdown.is_fired() {
        // Listening before looking: jobs queued while this worker looks still wake it.
        let queued = service.signals().jobs.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        match work_once(&service).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(worker, error = %e, "claiming jobs failed; retrying"),
        }
        let sleep = match jobs::next_due(service.store().reader()).await {
            Ok(Some(due)) => super::sleep_until(due, idle),
            Ok(None) => idle,
            Err(_) => IDLE_POLL,
        };
        tokio::select! {
            _ = queued => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.fired() => {}
        }
    }
}

/// Claims and runs one batch of due jobs; returns how many ran. Jobs of different items run
/// concurrently (each waits for its commit, which a shared batch serves); the jobs of one item
/// run one after another, in claim order, so they do not race for the same row. The items of a
/// batch are read at once, and each job acts on its item as the job before it left it.
pub async fn work_once(service: &Arc<Service>) -> ServiceResult<usize> {
    let now = now_micros();
    let lease = now + 120_000_000;
    let mut tx = service.store().begin().await?;
    let claimed = jobs::claim(&mut tx, now, lease, CLAIM).await?;
    tx.commit().await?;
    let n = claimed.len();
    let mut by_item: Vec<(i64, Vec<Job>)> = Vec::new();
    for job in claimed {
        match by_item.iter_mut().find(|(item, _)| *item == job.item_id) {
            Some((_, jobs)) => jobs.push(job),
            None => by_item.push((job.item_id, vec![job])),
        }
    }
    let ids: Vec<i64> = by_item.iter().map(|(id, _)| *id).collect();
    let mut items = crate::store::items::get_many(service.store().reader(), &ids).await?;
    let runs = by_item.into_iter().map(|(id, jobs)| {
        let mut known = items.remove(&id).map_or(Known::Missing, Known::Item);
        async move {
            for job in jobs {
                known = match run_job(service, &job, known).await {
                    Ok(after) => after,
                    Err(e) => {
                        tracing::error!(job = job.id, error = %e, "a job could not be completed; it will be retried after its lease");
                        Known::Unread
                    }
                };
            }
        }
    });
    futures::future::join_all(runs).await;
    Ok(n)
}

/// What a worker knows of a job's item before the job runs, and after it.
enum Known {
    /// Nothing: read it.
    Unread,
    /// It does not exist.
    Missing,
    /// It is as stored (its version is checked by any write).
    Item(Item),
}

/// What a job runs: a robot bound to a stage, or a schedule's plugin.
struct Binding {
    plugin: String,
    version: String,
    config: serde_json::Value,
    condition: Option<String>,
    /// The robot's or the schedule's id.
    id: i64,
    schedule: bool,
}

impl Binding {
    /// The binding of a job, if it still exists.
    async fn of(service: &Service, job: &Job) -> ServiceResult<Option<Binding>> {
        let reader = service.store().reader();
        Ok(match job.schedule_id {
            Some(id) => crate::store::schedules::get(reader, id).await?.map(|s| Binding {
                plugin: s.plugin,
                version: s.version,
                config: s.config,
                condition: None,
                id,
                schedule: true,
            }),
            None => service.robot_cached(job.robot_id).await?.map(|r| Binding {
                plugin: r.plugin,
                version: r.version,
                config: r.config,
                condition: r.condition,
                id: r.id,
                schedule: false,
            }),
        })
    }

    /// The actor of its changes, naming the plugin version that ran.
    fn actor(&self, name: String) -> Actor {
        if self.schedule { Actor::Schedule { id: self.id, name } } else { Actor::Robot { id: self.id, name } }
    }
}

/// Runs one job to completion, failure, retry or cancellation, given what is known of its
/// item; returns what is known of the item afterwards.
async fn run_job(service: &Arc<Service>, job: &Job, known: Known) -> ServiceResult<Known> {
    let system = Caller::automation(Actor::System, job.depth as u32);
    let robot = Binding::of(service, job).await?;
    let item = match known {
        Known::Item(item) if item.type_key == job.type_key => Some(item),
        Known::Missing => None,
        Known::Item(_) | Known::Unread => match service.get_item(&system, &job.type_key, job.item_id).await {
            Ok(item) => Some(item),
            Err(ServiceError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
    };
    let Some(item) = item else {
        finish(service, job, "cancelled", Some("the robot or the item is gone")).await?;
        return Ok(Known::Missing);
    };
    let Some(robot) = robot else {
        finish(service, job, "cancelled", Some("the robot or the item is gone")).await?;
        return Ok(Known::Item(item));
    };
    // A schedule's run over any stage has no stage to stay in.
    let stage_bound = !(robot.schedule && job.stage.is_empty());
    if stage_bound
        && (item.funnel.as_deref() != Some(job.funnel.as_str()) || item.stage.as_deref() != Some(job.stage.as_str()))
    {
        finish(service, job, "cancelled", Some("the item left the stage")).await?;
        return Ok(Known::Item(item));
    }
    if let Some(condition) = &robot.condition {
        match service.runtime().rhai.condition(condition, &item) {
            Ok(true) => {}
            Ok(false) => {
                finish(service, job, "done", Some("condition is false")).await?;
                return Ok(Known::Item(item));
            }
            Err(e) => {
                let failure = Failure::Plugin { code: "condition".into(), message: e };
                fail(service, job, &robot.plugin, "?", &failure).await?;
                return Ok(Known::Item(item));
            }
        }
    }
    let resolved = match service.resolve_plugin(&robot.plugin, &robot.version, "robot").await {
        Ok(r) => r,
        Err(ServiceError::NotFound(m)) => {
            let failure = Failure::Plugin { code: "not-found".into(), message: m };
            fail(service, job, &robot.plugin, &robot.version, &failure).await?;
            return Ok(Known::Item(item));
        }
        Err(e) => {
            retry_or_fail(service, job, &robot.plugin, &robot.version, &Failure::Host(e.to_string())).await?;
            return Ok(Known::Item(item));
        }
    };
    let version = resolved.version.version.clone();
    let name = format!("{}@{}", robot.plugin, version);
    let caller = Caller::automation(robot.actor(name.clone()), job.depth as u32 + 1);
    let host = HostCalls::new(service.clone(), &robot.plugin, resolved.version.capabilities.clone(), caller.clone());
    let ctx = RobotContext {
        item: item.clone(),
        stage: job.stage.clone(),
        config: robot.config.to_string(),
        actor: job.actor.clone(),
    };
    let limits = resolved.version.limits;
    let runtime = service.runtime();
    let result = match resolved.loaded.as_ref() {
        Loaded::Wasm(prepared) => runtime.wasm.run_robot(prepared, host, &limits, ctx).await,
        Loaded::Rhai(ast) => runtime.rhai.run_robot(ast.clone(), host, &limits, ctx).await,
    };
    let (message, host) = match result {
        Ok(done) => done,
        Err(failure) => {
            retry_or_fail(service, job, &robot.plugin, &version, &failure).await?;
            return Ok(Known::Item(item));
        }
    };
    let note = message.map(|m| m.chars().take(2000).collect::<String>());
    let (type_key, id) = (item.type_key.clone(), item.id);
    let applied = async {
        let mut tx = service.store().begin().await?;
        // The robot acted on this copy: its writes check its version.
        tx.lend(item);
        apply_writes(service, &mut tx, &caller, &robot.plugin, host.writes()).await?;
        if !jobs::finish(&mut tx, job, "done", note.as_deref(), now_micros()).await? {
            return Ok(Known::Unread);
        }
        let after = tx.lent(&type_key, id).cloned().map_or(Known::Unread, Known::Item);
        tx.commit().await?;
        service.committed();
        after_commit(service, host.writes());
        Ok::<_, ServiceError>(after)
    }
    .await;
    match applied {
        Ok(after) => Ok(after),
        // A host fault, or an item the robot read changed before its writes landed
        // (`CheckFailed`): nothing was written; run it again later.
        Err(ServiceError::Store(e)) => {
            let failure = Failure::Host(e.to_string());
            retry_or_fail(service, job, &robot.plugin, &version, &failure).await?;
            Ok(Known::Unread)
        }
        Err(e) => {
            let failure = Failure::Plugin { code: "invalid-write".into(), message: e.describe() };
            fail(service, job, &robot.plugin, &version, &failure).await?;
            Ok(Known::Unread)
        }
    }
}

async fn finish(service: &Service, job: &Job, status: &str, note: Option<&str>) -> ServiceResult<()> {
    let mut tx = service.store().begin().await?;
    if jobs::finish(&mut tx, job, status, note, now_micros()).await? {
        commit_unless_taken(tx).await?;
    }
    Ok(())
}

/// Commits a job's transaction; when another worker took the job over meanwhile (its lease
/// expired), nothing is written and that is not an error.
async fn commit_unless_taken(tx: Tx) -> ServiceResult<()> {
    match tx.commit().await {
        Ok(()) | Err(StoreError::CheckFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn retry_or_fail(
    service: &Service,
    job: &Job,
    plugin: &str,
    version: &str,
    failure: &Failure,
) -> ServiceResult<()> {
    if failure.is_transient() && job.attempts < MAX_ATTEMPTS {
        let backoff = 1_000_000i64 << (job.attempts - 1).clamp(0, 10);
        let mut tx = service.store().begin().await?;
        if jobs::retry(&mut tx, job, now_micros() + backoff, &failure.to_string()).await? {
            commit_unless_taken(tx).await?;
        }
        return Ok(());
    }
    fail(service, job, plugin, version, failure).await
}

/// Fails a job for good and says so on the item's timeline, with the kind and the version.
async fn fail(service: &Service, job: &Job, plugin: &str, version: &str, failure: &Failure) -> ServiceResult<()> {
    tracing::warn!(job = job.id, plugin, version, kind = failure.kind(), "robot failed: {failure}");
    let mut tx = service.store().begin().await?;
    if !jobs::finish(&mut tx, job, "failed", Some(&failure.to_string()), now_micros()).await? {
        return Ok(());
    }
    let caller = Caller::automation(Actor::System, job.depth as u32);
    let what = if job.schedule_id.is_some() { "Scheduled run of" } else { "Robot" };
    let text = format!("{what} {plugin}@{version} failed ({}): {failure}", failure.kind());
    let data = json!({"robot": job.robot_id, "schedule": job.schedule_id, "plugin": plugin, "version": version,
        "kind": failure.kind(), "message": failure.to_string()});
    match service
        .add_timeline_entry_in(
            &mut tx,
            &caller,
            &ItemRef { type_key: job.type_key.clone(), id: job.item_id },
            TimelineNote { kind: TimelineKind::System, text: &text, data: &data },
        )
        .await
    {
        Ok(_) | Err(ServiceError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    commit_unless_taken(tx).await?;
    service.committed();
    Ok(())
}
