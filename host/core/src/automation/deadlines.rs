//! The deadline watch: sleeps until the earliest deadline of an open task, then marks the tasks
//! past it overdue (a `task.overdue` event and a notification each, exactly once even with
//! several hosts). A deadline that passed while the host was down is noted at start.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::background::{self, Next};
use crate::service::{Core, ServiceResult};
use voronka_model::time::now_micros;
use voronka_store::tasks as repo;

/// Longest sleep between looks at a shared database's tasks (other hosts' deadlines). This
/// host's own task writes wake the watch.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Tasks marked overdue per transaction.
const BATCH: i64 = 200;

/// Runs until shutdown.
pub async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    background::run("marking overdue tasks", &core.signals().deadlines, timing, shutdown, || pass(&core)).await
}

/// Marks the tasks past their deadline, or names when the next deadline comes.
async fn pass(core: &Core) -> ServiceResult<Next> {
    match repo::next_deadline(core.store().reader()).await? {
        Some(due) if due <= now_micros() => {
            core.tasks().mark_overdue(BATCH).await?;
            Ok(Next::Again)
        }
        due => Ok(Next::Wait(due)),
    }
}
