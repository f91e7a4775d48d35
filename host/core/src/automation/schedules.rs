//! The scheduler: fires due schedules, queueing one run of the schedule's plugin for each item
//! in its scope (the robot job queue runs them), and sets each schedule's next firing. A
//! schedule that came due while the host was down fires once at start, then keeps its
//! timetable.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::background::{self, Next};
use crate::service::schedules::next_firing;
use crate::service::{Core, ServiceResult};
use voronka_model::actor::Actor;
use voronka_model::time::now_micros;
use voronka_store::jobs::{self, NewJob};
use voronka_store::schedules as repo;

/// Most items one firing runs over; more are left out with a warning.
pub const MAX_ITEMS_PER_FIRING: i64 = 10_000;
/// Longest sleep between looks at a shared database's schedules (other hosts' changes).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Runs until shutdown, sleeping until the next firing.
pub async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    background::run("firing schedules", &core.signals().schedules, timing, shutdown, || pass(&core)).await
}

/// Fires the due schedules and names when the next one is due.
async fn pass(core: &Core) -> ServiceResult<Next> {
    if fire_due(core).await? > 0 {
        core.signals().jobs.notify_waiters();
    }
    Ok(Next::Wait(repo::next_due(core.store().reader()).await?))
}

/// Fires every due schedule; returns how many runs it queued.
pub async fn fire_due(core: &Core) -> ServiceResult<usize> {
    let now = now_micros();
    let mut tx = core.store().begin();
    let due = repo::due(&mut tx, now).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for schedule in due {
        // Firings missed while down collapse into this one: the next is after now.
        repo::fired(&mut tx, schedule.id, now, next_firing(&schedule, now));
        // Runs of the previous firing still waiting: this firing is skipped rather than let the
        // queue grow without bound.
        if repo::has_pending_runs(&mut tx, schedule.id).await? {
            tracing::warn!(schedule = schedule.id, "a schedule fired while its previous runs still wait; skipped");
            continue;
        }
        let items = repo::items_in_scope(&mut tx, &schedule, MAX_ITEMS_PER_FIRING).await?;
        if items.len() as i64 == MAX_ITEMS_PER_FIRING {
            tracing::warn!(
                schedule = schedule.id,
                "a schedule's scope holds more than {MAX_ITEMS_PER_FIRING} items; the rest were left out"
            );
        }
        let actor = Actor::Schedule { id: schedule.id, name: schedule.plugin.clone() }.to_json_string();
        for (item_id, funnel, stage) in items {
            // A run over one stage records that stage; it still runs if the item leaves the
            // stage before it is claimed (a move cancels robot runs only, not schedule runs).
            let (funnel, stage) = match &schedule.stage {
                Some(_) => (funnel.unwrap_or_default(), stage.unwrap_or_default()),
                None => (String::new(), String::new()),
            };
            let job = NewJob {
                robot_id: 0,
                schedule_id: Some(schedule.id),
                item_id,
                type_key: &schedule.type_key,
                funnel: &funnel,
                stage: &stage,
                event_id: Some(0),
                actor: &actor,
                depth: 0,
                after_previous: false,
                due_at: now,
            };
            tx.defer(jobs::enqueue(&job, now));
            queued += 1;
        }
    }
    tx.commit().await?;
    Ok(queued)
}
