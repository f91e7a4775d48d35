//! The one way a background loop runs: a pass, then a sleep until it is woken (a signal of
//! this host), until the next due time it names, or until the idle poll, whichever comes
//! first; until shutdown. Every loop of the automation is such a pass.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use voronka_model::time::{Micros, now_micros};

use crate::service::ServiceResult;

/// What a pass asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// More work may wait: pass again at once.
    Again,
    /// Nothing to do now: wait to be woken, or until the time given (microseconds), at most
    /// the loop's idle poll.
    Wait(Option<Micros>),
    /// Pass again after this pause, or when woken (a step that could not be taken now).
    Retry(Duration),
    /// Rest this long even if woken (nothing watches the work: a busy host looks a few times a
    /// second, not at every commit), then wait as [`Next::Wait`] does.
    Rest(Duration),
}

/// How long a background loop sleeps: at most `idle` with nothing due, `retry` after a failed
/// pass.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The longest sleep with nothing due: on SQLite a safety net only (this host wakes its own
    /// loops), on PostgreSQL how soon other hosts' work is seen.
    pub idle: Duration,
    /// The pause after a failed pass.
    pub retry: Duration,
}

/// Runs `pass` until `shutdown`, named `name` in the log. The wake-up is listened to before each
/// pass looks, so one sent while it looks is not lost.
pub async fn run<F, Fut>(name: &'static str, wake: &Notify, timing: Timing, shutdown: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ServiceResult<Next>>,
{
    while !shutdown.is_cancelled() {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let next = match pass().await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "{name} failed; retrying");
                Next::Retry(timing.retry)
            }
        };
        let sleep = match next {
            Next::Again => continue,
            Next::Wait(due) => due.map_or(timing.idle, |due| sleep_until(due, timing.idle)),
            Next::Retry(pause) => pause,
            Next::Rest(pause) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return,
                }
                timing.idle
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// How long to sleep for work next due at `due` (microseconds): until then, at least 1 ms, at
/// most `idle`.
pub fn sleep_until(due: Micros, idle: Duration) -> Duration {
    Duration::from_micros((due - now_micros()).clamp(1_000, idle.as_micros() as i64) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    const TIMING: Timing = Timing { idle: Duration::from_secs(30), retry: Duration::from_secs(30) };

    /// Passes asking `Again` run back to back; one asking to wait sleeps until woken, and the
    /// loop ends at shutdown.
    #[tokio::test]
    async fn a_loop_passes_again_sleeps_until_woken_and_stops() {
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = passes.clone();
        let running = tokio::spawn({
            let (wake, shutdown) = (wake.clone(), shutdown.clone());
            async move {
                run("test loop", &wake, TIMING, shutdown, || {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    async move { Ok(if n < 3 { Next::Again } else { Next::Wait(None) }) }
                })
                .await
            }
        });
        let started = Instant::now();
        while passes.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 4, "three passes again, then one that waits");
        wake.notify_one();
        while passes.load(Ordering::SeqCst) < 5 {
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        running.await.expect("the loop ends at shutdown");
        assert!(started.elapsed() < Duration::from_secs(5), "no idle poll was waited for");
    }

    /// A wait names its due time: the loop passes again then, without a wake-up.
    #[tokio::test]
    async fn a_loop_wakes_at_the_due_time_it_named() {
        let wake = Notify::new();
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let mut passes = 0;
        run("test loop", &wake, TIMING, shutdown.clone(), || {
            passes += 1;
            if passes == 2 {
                shutdown.cancel();
            }
            async { Ok(Next::Wait(Some(now_micros() + 20_000))) }
        })
        .await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(20) && took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn sleeps_are_bounded() {
        let idle = Duration::from_secs(1);
        assert_eq!(sleep_until(0, idle), Duration::from_millis(1), "overdue work: at least 1 ms");
        assert_eq!(sleep_until(now_micros() + 60_000_000, idle), idle, "far work: the idle poll");
    }
}
