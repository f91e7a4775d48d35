//! Job workers: claim due robot runs, run the plugin with its limits, then commit its buffered
//! writes together with the job's completion, or roll back and record the failure.

use std::sync::Arc;
use std::time::Duration;
use voronka_model::plugin::World;

use serde_json::json;

use tokio_util::sync::CancellationToken;

use super::background::{self, Next};
use crate::service::items::TimelineNote;
use crate::service::plugin_host::{after_commit, apply_writes, host_calls};
use crate::service::{Caller, Core, ServiceError, ServiceResult};
use voronka_model::actor::Actor;
use voronka_model::item::{Item, ItemRef, TimelineKind};
use voronka_model::limits::Failure;
use voronka_model::time::{Micros, now_micros};
use voronka_runtime::host::HostCalls;
use voronka_runtime::world::{Robot, RobotContext};
use voronka_store::jobs::{self, Job};
use voronka_store::{Store, Tx};

/// Jobs claimed at once by one worker. A worker waits for a commit to claim and for the
/// commits of what it ran, so its jobs per claim, times the workers, bound how many jobs are
/// in flight: enough to keep the database and the plugins busy while others wait.
const CLAIM: i64 = 128;
/// How long a claim holds its jobs before another worker may take them over (after a crash of
/// its host on a shared database; on SQLite a restarted host resumes them at once);
/// renewed every [`RENEW_EVERY`] while they run, so slow plugins do not lose their jobs.
const LEASE: Micros = 60_000_000;
/// How often a claim whose jobs still run renews their lease.
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// Longest sleep when the queue is empty on a shared database (other hosts' jobs).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Attempts of a job failing transiently before it is failed for good.
const MAX_ATTEMPTS: i64 = 5;

/// Runs until shutdown. Sleeps until the next job is due (delayed robots run on time), until
/// new jobs are queued, or for the idle poll.
pub async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    background::run("running robots", &core.signals().jobs, timing, shutdown, || pass(&core)).await
}

/// Runs a batch of due jobs, or names when the next is due.
async fn pass(core: &Arc<Core>) -> ServiceResult<Next> {
    if work_once(core).await? > 0 {
        return Ok(Next::Again);
    }
    Ok(Next::Wait(jobs::QUEUE.next_due(core.store().reader(), now_micros()).await?))
}

/// Claims and runs one batch of due jobs; returns how many ran. Jobs of different items run
/// concurrently (each waits for its commit, which a shared batch serves); the jobs of one item
/// run one after another, in claim order, so they do not race for the same row. The items of a
/// batch are read at once, and each job acts on its item as the job before it left it.
pub async fn work_once(core: &Arc<Core>) -> ServiceResult<usize> {
    let now = now_micros();
    let lease = now + LEASE;
    let claimed = jobs::claim(core.store().begin(), now, lease, CLAIM).await?;
    let n = claimed.len();
    if n == 0 {
        return Ok(0);
    }
    let _renewing = LeaseKeeper::start(core.store().clone(), claimed.iter().map(|j| (j.id, j.attempts)).collect());
    // A job taken over more often than it may be tried stopped its host each time (an abort,
    // the memory of the machine): it fails for good instead of stopping the next one.
    let (exhausted, claimed): (Vec<Job>, Vec<Job>) = claimed.into_iter().partition(|j| j.attempts > MAX_ATTEMPTS);
    if !exhausted.is_empty() {
        settle_stopped(core, &exhausted, "its host stopped during every attempt").await;
    }
    let mut by_item: Vec<(i64, Vec<Job>)> = Vec::new();
    for job in claimed {
        match by_item.iter_mut().find(|(item, _)| *item == job.item_id) {
            Some((_, jobs)) => jobs.push(job),
            None => by_item.push((job.item_id, vec![job])),
        }
    }
    let ids: Vec<i64> = by_item.iter().map(|(id, _)| *id).collect();
    let mut items = voronka_store::items::get_many(core.store().reader(), &ids).await?;
    // A task per item: a plugin that holds its thread (a Rhai script computing for its whole
    // time budget) holds up only its own item's jobs, the others moving to other threads.
    let runs = by_item.into_iter().map(|(id, jobs)| {
        let known = items.remove(&id).map_or(Known::Missing, |item| Known::Item(Box::new(item)));
        let jobs = Arc::new(jobs);
        let task = {
            let (core, jobs) = (core.clone(), jobs.clone());
            tokio::spawn(async move { run_item_jobs(&core, &jobs, known).await })
        };
        async move { (task.await, jobs) }
    });
    for (ended, jobs) in futures::future::join_all(runs).await {
        if let Err(e) = ended {
            tracing::error!(error = %e, "the jobs of an item stopped; they are put back for another attempt");
            settle_stopped(core, &jobs, &e.to_string()).await;
        }
    }
    Ok(n)
}

/// Settles the jobs of an item whose task stopped (a fault of the host) as a transient
/// failure: retried with backoff, failed for good at the last attempt, like any host fault.
/// Jobs the task had finished are left as they are.
async fn settle_stopped(core: &Arc<Core>, jobs: &[Job], reason: &str) {
    let failure = Failure::Host(format!("the run stopped: {reason}"));
    for job in jobs {
        let settled = async {
            let (plugin, version) = match Binding::of(core, job).await? {
                Some(binding) => (binding.plugin, binding.version),
                None => ("?".to_string(), "?".to_string()),
            };
            let mut tx = core.store().begin();
            if settle_failure(core, &mut tx, job, &plugin, &version, &failure).await? {
                commit_unless_taken(tx).await?;
                core.committed();
            }
            ServiceResult::Ok(())
        };
        if let Err(e) = settled.await {
            tracing::error!(job = job.id, error = %e, "a stopped job could not be settled; it is retried after its lease");
        }
    }
}

/// Renews the lease of a claim's jobs while they run, so a batch that outlasts one lease (slow
/// plugins one after another) is not taken over and run again by another worker. The renewals
/// stop when it drops, or when none of the jobs is still running under the claim.
struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    /// Starts renewing the claimed jobs (`(id, attempts)`) every [`RENEW_EVERY`] by [`LEASE`].
    fn start(store: Store, claimed: Vec<(i64, i64)>) -> LeaseKeeper {
        LeaseKeeper::with_timing(store, claimed, LEASE, RENEW_EVERY)
    }

    fn with_timing(store: Store, claimed: Vec<(i64, i64)>, lease: Micros, every: Duration) -> LeaseKeeper {
        LeaseKeeper(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let until = now_micros() + lease;
                let renewed = jobs::QUEUE.renew(store.begin(), &claimed, until).await;
                match renewed {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "renewing the lease of running jobs failed; retrying"),
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the claimed jobs of one item in claim order: together in one transaction as far as
/// they can be (one commit instead of one per job), the rest one by one. Each plugin's writes
/// stay atomic either way: jobs whose writes cannot all be stored together are rolled back
/// and run again one by one (a run's only effects are its buffered writes).
async fn run_item_jobs(core: &Arc<Core>, jobs: &[Job], mut known: Known) {
    let mut done = 0;
    if jobs.len() > 1
        && let Known::Item(item) = &known
    {
        done = run_together(core, jobs, item.as_ref().clone()).await;
        known = Known::Unread;
    }
    for job in &jobs[done..] {
        known = match run_job(core, job, known).await {
            Ok(after) => after,
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "a job could not be completed; it will be retried after its lease");
                Known::Unread
            }
        };
    }
}

/// Runs jobs of one item in as few transactions as it can, each job on the item as the jobs
/// before it left it; returns how many are committed (the rest run one by one). A
/// transaction is committed early once it holds its turn on the database (a write that
/// needed an answer), so no plugin runs while it holds up other writers.
async fn run_together(core: &Arc<Core>, jobs: &[Job], mut item: Item) -> usize {
    let mut done = 0;
    while done < jobs.len() {
        match run_segment(core, &jobs[done..], item).await {
            Ok((n, Some(after))) if n > 0 => {
                done += n;
                item = after;
            }
            Ok((n, _)) => return done + n,
            Err(e) => {
                tracing::debug!(error = %e, "jobs of one item could not run together; running them one by one");
                return done;
            }
        }
    }
    done
}

/// Runs the first jobs of `jobs` in one transaction and commits it; returns how many it
/// committed (0: none, nothing written) and the item as they left it, if known. A plugin that
/// read stored state after an earlier job of the transaction wrote saw the state without
/// those writes: its job is left to the next transaction, which runs it again after the
/// commit (as if the jobs had run one by one).
async fn run_segment(core: &Arc<Core>, jobs: &[Job], item: Item) -> ServiceResult<(usize, Option<Item>)> {
    let (type_key, id) = (item.type_key.clone(), item.id);
    let mut tx = core.store().begin();
    voronka_store::items::lend(&mut tx, item);
    let mut ran: Vec<HostCalls> = Vec::new();
    let mut n = 0;
    for job in jobs {
        let Some(item) = voronka_store::items::lent(&tx, &type_key, id).cloned().filter(|_| job.type_key == type_key)
        else {
            break;
        };
        let outcome = decide(core, job, Some(item)).await?;
        if let Outcome::Ran(run) = &outcome
            && run.host.read_stored()
            && ran.iter().any(|earlier| !earlier.writes().is_empty())
        {
            break;
        }
        if !record(core, &mut tx, job, &outcome).await? {
            return Ok((0, None));
        }
        n += 1;
        if let Outcome::Ran(run) = outcome {
            ran.push(run.host);
        }
        if tx.holds_turn() {
            break;
        }
    }
    let after = voronka_store::items::lent(&tx, &type_key, id).cloned();
    tx.commit().await?;
    core.committed();
    for host in &ran {
        after_commit(core, host.writes());
    }
    Ok((n, after))
}

/// What a worker knows of a job's item before the job runs, and after it.
enum Known {
    /// Nothing: read it.
    Unread,
    /// The item was not found (deleted since): its jobs are cancelled without reading it again.
    Missing,
    /// It is as stored (its version is checked by any write).
    Item(Box<Item>),
}

impl Known {
    /// The item as `tx` holds it (lent, or left by its writes); unread if it holds none.
    fn lent(tx: &Tx, type_key: &str, id: i64) -> Known {
        voronka_store::items::lent(tx, type_key, id).cloned().map_or(Known::Unread, |item| Known::Item(Box::new(item)))
    }
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
    async fn of(core: &Core, job: &Job) -> ServiceResult<Option<Binding>> {
        let reader = core.store().reader();
        Ok(match job.schedule_id {
            Some(id) => voronka_store::schedules::get(reader, id).await?.map(|s| Binding {
                plugin: s.plugin,
                version: s.version,
                config: s.config,
                condition: None,
                id,
                schedule: true,
            }),
            None => core.robots().cached(job.robot_id).await?.map(|r| Binding {
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

/// A plugin run whose writes wait to be recorded.
struct Ran {
    caller: Caller,
    plugin: String,
    version: String,
    host: HostCalls,
    note: Option<String>,
}

/// What running a job came to, before any of it is written.
enum Outcome {
    /// It ends without running a plugin: cancelled, or its condition is false.
    Ended { status: &'static str, note: &'static str },
    /// The plugin ran; its writes wait in `host`.
    Ran(Box<Ran>),
    /// It failed before or while running the plugin.
    Failed { plugin: String, version: String, failure: Failure },
}

/// Runs a job's plugin on `item` (`None`: the item is gone) unless the job ends before that.
async fn decide(core: &Arc<Core>, job: &Job, item: Option<Item>) -> ServiceResult<Outcome> {
    let gone = Outcome::Ended { status: "cancelled", note: "the robot or the item is gone" };
    let Some(item) = item else { return Ok(gone) };
    let Some(robot) = Binding::of(core, job).await? else { return Ok(gone) };
    // A schedule's run over any stage has no stage to stay in.
    let stage_bound = !(robot.schedule && job.stage.is_empty());
    if stage_bound
        && (item.funnel.as_deref() != Some(job.funnel.as_str()) || item.stage.as_deref() != Some(job.stage.as_str()))
    {
        return Ok(Outcome::Ended { status: "cancelled", note: "the item left the stage" });
    }
    if let Some(condition) = &robot.condition {
        match core.runtime().condition(condition, &item) {
            Ok(true) => {}
            Ok(false) => return Ok(Outcome::Ended { status: "done", note: "condition is false" }),
            Err(message) => {
                // Named on the timeline with the version that would have run.
                let version = match core.plugins().matching_version(&robot.plugin, &robot.version, World::Robot).await {
                    Ok(matching) => matching.version,
                    Err(_) => robot.version,
                };
                let failure = Failure::Plugin { code: "condition".into(), message };
                return Ok(Outcome::Failed { plugin: robot.plugin, version, failure });
            }
        }
    }
    let resolved = match core.plugins().resolve(&robot.plugin, &robot.version, World::Robot).await {
        Ok(r) => r,
        Err(ServiceError::NotFound(message)) => {
            let failure = Failure::Plugin { code: "not-found".into(), message };
            return Ok(Outcome::Failed { plugin: robot.plugin, version: robot.version, failure });
        }
        Err(e) => {
            let failure = Failure::Host(e.to_string());
            return Ok(Outcome::Failed { plugin: robot.plugin, version: robot.version, failure });
        }
    };
    let version = resolved.version.version.clone();
    let caller = Caller::automation(robot.actor(format!("{}@{}", robot.plugin, version)), job.depth as u32 + 1);
    let host = host_calls(core, &robot.plugin, resolved.version.capabilities.clone(), caller.clone());
    let ctx =
        RobotContext { item, stage: job.stage.clone(), config: robot.config.to_string(), actor: job.actor.clone() };
    let limits = resolved.version.limits;
    let result = core.runtime().call::<Robot>(&resolved.loaded, host, &limits, ctx).await;
    Ok(match result {
        Ok((message, host)) => {
            let note = message.map(|m| m.chars().take(2000).collect::<String>());
            Outcome::Ran(Box::new(Ran { caller, plugin: robot.plugin, version, host, note }))
        }
        Err(failure) => Outcome::Failed { plugin: robot.plugin, version, failure },
    })
}

/// Writes what a job came to into `tx`: the plugin's writes and the job's end, or its retry
/// or failure. False when another worker took the job over (roll back).
async fn record(core: &Core, tx: &mut Tx, job: &Job, outcome: &Outcome) -> ServiceResult<bool> {
    let now = now_micros();
    match outcome {
        Outcome::Ended { status, note } => Ok(jobs::finish(tx, job, status, Some(note), now).await?),
        Outcome::Ran(run) => {
            apply_writes(core, tx, &run.caller, &run.plugin, run.host.writes()).await?;
            Ok(jobs::finish(tx, job, "done", run.note.as_deref(), now).await?)
        }
        Outcome::Failed { plugin, version, failure } => settle_failure(core, tx, job, plugin, version, failure).await,
    }
}

/// Runs one job in its own transaction, given what is known of its item; returns what is
/// known of the item afterwards.
async fn run_job(core: &Arc<Core>, job: &Job, known: Known) -> ServiceResult<Known> {
    let system = Caller::automation(Actor::System, job.depth as u32);
    let item = match known {
        Known::Item(item) if item.type_key == job.type_key => Some(*item),
        Known::Missing => None,
        Known::Item(_) | Known::Unread => match core.items().get(&system, &job.type_key, job.item_id).await {
            Ok(item) => Some(item),
            Err(ServiceError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
    };
    let Some(item) = item else {
        let mut tx = core.store().begin();
        if record(core, &mut tx, job, &decide(core, job, None).await?).await? {
            commit_unless_taken(tx).await?;
        }
        return Ok(Known::Missing);
    };
    let (type_key, id) = (item.type_key.clone(), item.id);
    let outcome = decide(core, job, Some(item.clone())).await?;
    let mut tx = core.store().begin();
    // The plugin acted on this copy: its writes check its version.
    voronka_store::items::lend(&mut tx, item);
    let recorded = record(core, &mut tx, job, &outcome).await;
    let Outcome::Ran(run) = &outcome else {
        // Nothing of the item changed unless a failure was noted on its timeline.
        let after = Known::lent(&tx, &type_key, id);
        if recorded? {
            commit_unless_taken(tx).await?;
            core.committed();
        }
        return Ok(after);
    };
    let committed = match recorded {
        Ok(true) => {
            let after = Known::lent(&tx, &type_key, id);
            tx.commit().await.map(|()| after).map_err(ServiceError::from)
        }
        Ok(false) => return Ok(Known::Unread),
        Err(e) => {
            // Rolled back before the failure is written: on PostgreSQL it holds locks.
            drop(tx);
            Err(e)
        }
    };
    let failure = match committed {
        Ok(after) => {
            core.committed();
            after_commit(core, run.host.writes());
            return Ok(after);
        }
        // A host fault, or an item the robot read changed before its writes landed
        // (`CheckFailed`): nothing was written; run it again later.
        Err(ServiceError::Store(e)) => Failure::Host(e.to_string()),
        Err(e) => Failure::Plugin { code: "invalid-write".into(), message: e.describe() },
    };
    let mut tx = core.store().begin();
    if settle_failure(core, &mut tx, job, &run.plugin, &run.version, &failure).await? {
        commit_unless_taken(tx).await?;
        core.committed();
    }
    Ok(Known::Unread)
}

/// Commits a job's transaction; when another worker took the job over meanwhile (its lease
/// expired), nothing is written and that is not an error.
async fn commit_unless_taken(tx: Tx) -> ServiceResult<()> {
    match tx.commit().await {
        Ok(()) | Err(voronka_store::DbError::CheckFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes a failed run into `tx`: a transient failure puts the job back for a later attempt
/// (with backoff); any other failure, or the last attempt, fails it for good and says so on
/// the item's timeline, with the kind and the version. False when another worker took the
/// job over.
async fn settle_failure(
    core: &Core,
    tx: &mut Tx,
    job: &Job,
    plugin: &str,
    version: &str,
    failure: &Failure,
) -> ServiceResult<bool> {
    if failure.is_transient() && job.attempts < MAX_ATTEMPTS {
        let backoff = 1_000_000i64 << (job.attempts - 1).clamp(0, 10);
        return Ok(jobs::retry(tx, job, now_micros() + backoff, &failure.to_string()).await?);
    }
    tracing::warn!(job = job.id, plugin, version, kind = failure.kind(), "robot failed: {failure}");
    if !jobs::finish(tx, job, "failed", Some(&failure.to_string()), now_micros()).await? {
        return Ok(false);
    }
    let caller = Caller::automation(Actor::System, job.depth as u32);
    let what = if job.schedule_id.is_some() { "Scheduled run of" } else { "Robot" };
    let text = format!("{what} {plugin}@{version} failed ({}): {failure}", failure.kind());
    let data = json!({"robot": job.robot_id, "schedule": job.schedule_id, "plugin": plugin, "version": version,
        "kind": failure.kind(), "message": failure.to_string()});
    match core
        .items()
        .add_timeline_entry_in(
            tx,
            &caller,
            &ItemRef { type_key: job.type_key.clone(), id: job.item_id },
            TimelineNote { kind: TimelineKind::System, text: &text, data: &data },
        )
        .await
    {
        Ok(_) | Err(ServiceError::NotFound(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn claimable(store: &Store, limit: i64) -> Vec<i64> {
        let claimed = jobs::claim(store.begin(), now_micros(), now_micros() + 60_000_000, limit).await.expect("claim");
        claimed.iter().map(|j| j.id).collect()
    }

    /// A store with `n` robot runs of one item queued, due at once.
    async fn queued(n: i64) -> (tempfile::TempDir, Store) {
        let (dir, store) = voronka_store::scratch().await;
        jobs::queue_for_test(&store, n).await;
        (dir, store)
    }

    async fn statuses(store: &Store) -> Vec<(String, i64)> {
        let rows = store
            .reader()
            .fetch_all(voronka_store::Statement::new("SELECT status, attempts FROM jobs ORDER BY id"))
            .await;
        rows.expect("select")
            .iter()
            .map(|r| (r.get("status").expect("status"), r.get("attempts").expect("n")))
            .collect()
    }

    #[tokio::test]
    async fn jobs_of_a_stopped_task_are_retried_then_failed() {
        let (dir, store) = queued(2).await;
        let runtime = Arc::new(voronka_runtime::Runtime::new(None).expect("runtime"));
        let core = Arc::new(Core::new(store.clone(), runtime, dir.path().to_path_buf()));
        let claimed = jobs::claim(store.begin(), now_micros(), now_micros() + LEASE, 8).await.expect("claim");
        // The first had finished before the task stopped; the second is put back for later.
        let mut tx = store.begin();
        assert!(jobs::finish(&mut tx, &claimed[0], "done", None, now_micros()).await.expect("finish"));
        tx.commit().await.expect("commit");
        settle_stopped(&core, &claimed, "panicked").await;
        assert_eq!(statuses(&store).await, vec![("done".into(), 1), ("pending".into(), 1)]);
        // At its last attempt it fails for good.
        let mut last = claimed[1].clone();
        last.attempts = MAX_ATTEMPTS;
        let mut tx = store.begin();
        tx.execute(
            voronka_store::Statement::new("UPDATE jobs SET status = 'running', attempts = $1 WHERE id = $2")
                .bind(MAX_ATTEMPTS)
                .bind(last.id),
        )
        .await
        .expect("update");
        tx.commit().await.expect("commit");
        settle_stopped(&core, &[last], "panicked").await;
        assert_eq!(statuses(&store).await, vec![("done".into(), 1), ("failed".into(), MAX_ATTEMPTS)]);
        store.close().await;
    }

    /// A job whose lease ran out as often as it may be tried (its host stopped during each
    /// attempt) is failed when taken over, not run again.
    #[tokio::test]
    async fn a_job_that_stopped_its_host_every_time_fails() {
        let (dir, store) = queued(2).await;
        let runtime = Arc::new(voronka_runtime::Runtime::new(None).expect("runtime"));
        let core = Arc::new(Core::new(store.clone(), runtime, dir.path().to_path_buf()));
        let mut tx = store.begin();
        tx.execute(
            voronka_store::Statement::new(
                "UPDATE jobs SET status = 'running', attempts = $1, lease_until = 0 WHERE id = 1",
            )
            .bind(MAX_ATTEMPTS),
        )
        .await
        .expect("update");
        tx.commit().await.expect("commit");
        assert_eq!(work_once(&core).await.expect("work"), 2);
        // The other ran (its robot is gone, so it ends cancelled); the exhausted one failed.
        assert_eq!(statuses(&store).await, vec![("failed".into(), MAX_ATTEMPTS + 1), ("cancelled".into(), 1)]);
        store.close().await;
    }

    #[tokio::test]
    async fn a_kept_lease_is_not_taken_over_and_a_dropped_one_is() {
        let (_dir, store) = queued(1).await;
        let lease = 2_000_000;
        let held = now_micros() + lease;
        let claimed = jobs::claim(store.begin(), now_micros(), held, 8).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let keeper = LeaseKeeper::with_timing(
            store.clone(),
            vec![(claimed[0].id, claimed[0].attempts)],
            lease,
            Duration::from_millis(100),
        );
        // Twice the first lease: renewed, so no other worker may take the job.
        tokio::time::sleep(Duration::from_micros(2 * lease as u64)).await;
        assert_eq!(claimable(&store, 8).await, Vec::<i64>::new());
        // Renewals stop with the keeper (as when its host dies): the job is taken over once
        // its last lease ends.
        drop(keeper);
        tokio::time::sleep(Duration::from_micros(lease as u64 + 200_000)).await;
        assert_eq!(claimable(&store, 8).await, vec![claimed[0].id]);
        store.close().await;
    }
}
