//! The deadline watch: sleeps until the earliest deadline of an open task, then marks the tasks
//! past it overdue (a `task.overdue` event and a notification each, exactly once even with
//! several hosts). A deadline that passed while the host was down is noted at start.

use std::sync::Arc;
use std::time::Duration;

use super::Shutdown;
use crate::service::Service;
use voronka_model::time::now_micros;
use voronka_store::tasks as repo;

/// Longest sleep between looks at a shared database's tasks (other hosts' deadlines). This
/// host's own task writes wake the watch.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Tasks marked overdue per transaction.
const BATCH: i64 = 200;

/// Runs until shutdown.
pub async fn run(service: Arc<Service>, mut shutdown: Shutdown) {
    let idle = super::idle_poll(&service, IDLE_POLL);
    while !shutdown.is_fired() {
        // Listening before looking: a deadline set while this looks still wakes it.
        let changed = service.signals().deadlines.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let sleep = match repo::next_deadline(service.store().reader()).await {
            Ok(Some(due)) if due <= now_micros() => match service.mark_overdue_tasks(BATCH).await {
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "marking overdue tasks failed; retrying");
                    IDLE_POLL
                }
            },
            Ok(Some(due)) => super::sleep_until(due, idle),
            Ok(None) => idle,
            Err(e) => {
                tracing::error!(error = %e, "reading task deadlines failed; retrying");
                IDLE_POLL
            }
        };
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.fired() => {}
        }
    }
}
