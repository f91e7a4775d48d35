//! Whether this host's automation has settled: no schedule or task deadline due, every reader
//! of the event stream caught up with it, no robot run, process advance or webhook delivery due
//! or under way, and no event committed while this was looked at. What follows from a change
//! has then happened, so a test can assert that nothing more will
//! (`GET /api/v1/testing/settled`, served only with test hooks on).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voronka_model::time::now_micros;
use voronka_store::{jobs, processes, webhooks};

use crate::service::{Caller, Core, ServiceResult, require_admin};

/// What keeps the automation busy, or `None` when it has settled.
///
/// The order of the looks matters. Work is handed on inside transactions (a dispatcher moves
/// its cursor in the transaction that queues the jobs it derived; a job ends in the
/// transaction that records its events), so looking at the sources before the readers and the
/// readers before the queues sees every hand-over either before or after it happened; an
/// event committed by work that ended during the looks shows as a moved end of the stream.
pub async fn unsettled(core: &Core) -> ServiceResult<Option<&'static str>> {
    let reader = core.store().reader();
    let now = now_micros();
    if voronka_store::schedules::next_due(reader).await?.is_some_and(|due| due <= now) {
        return Ok(Some("a schedule is due"));
    }
    if voronka_store::tasks::next_deadline(reader).await?.is_some_and(|due| due <= now) {
        return Ok(Some("a task deadline passed unnoted"));
    }
    let last = processes::last_event(reader).await?;
    for (cursor, name) in
        [(super::triggers::CURSOR, "the trigger dispatcher"), (super::webhooks::CURSOR, "the webhook fan-out")]
    {
        if jobs::position(reader, cursor).await? < last {
            return Ok(Some(name));
        }
    }
    if core.signals().process_events_read.load(Ordering::Acquire) < last {
        return Ok(Some("the process engine's event wakes"));
    }
    if jobs::QUEUE.busy(reader, now).await? > 0 {
        return Ok(Some("robot runs are due or running"));
    }
    if processes::QUEUE.busy(reader, now).await? > 0 {
        return Ok(Some("process advances are due or running"));
    }
    if webhooks::QUEUE.busy(reader, now).await? > 0 {
        return Ok(Some("webhook deliveries are due or being sent"));
    }
    if processes::last_event(reader).await? != last {
        return Ok(Some("events were committed meanwhile"));
    }
    Ok(None)
}

/// Waits until the automation has settled, looking again every few milliseconds, for at most
/// `timeout`; returns what still kept it busy when the time ran out. Administrators only.
pub async fn wait(core: &Core, caller: &Caller, timeout: Duration) -> ServiceResult<Option<&'static str>> {
    require_admin(caller)?;
    let give_up = Instant::now() + timeout;
    loop {
        let busy = unsettled(core).await?;
        if busy.is_none() || Instant::now() >= give_up {
            return Ok(busy);
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

/// How long [`wait`] sleeps between looks.
const LOOK_AGAIN: Duration = Duration::from_millis(5);
