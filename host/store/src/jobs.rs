//! The durable job queue of robot runs, and the positions of the readers of the event stream.

use crate::lease::LeaseQueue;
use crate::{Reader, Row, Statement, StoreResult, Tx};
use voronka_model::time::Micros;

/// A queued robot run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id; of jobs due at the same time, the lower id is claimed first.
    pub id: i64,
    /// The robot binding (0 for a schedule's run).
    pub robot_id: i64,
    /// The schedule whose run this is.
    pub schedule_id: Option<i64>,
    /// Id of the item the robot runs on.
    pub item_id: i64,
    /// The item's type.
    pub type_key: String,
    /// Key of the funnel entered; empty for a schedule's run whose scope names no stage.
    pub funnel: String,
    /// Key of the stage entered; empty for a schedule's run whose scope names no stage.
    pub stage: String,
    /// The event that made the item enter.
    pub event_id: i64,
    /// Who made it enter (JSON).
    pub actor: String,
    /// Automation chain depth of that event.
    pub depth: i64,
    /// Attempts so far, including this one.
    pub attempts: i64,
}

const COLUMNS: &str =
    "id, robot_id, schedule_id, item_id, type_key, funnel_key, stage_key, event_id, actor, depth, attempts";

fn job_from_row(row: &Row) -> StoreResult<Job> {
    Ok(Job {
        id: row.get("id")?,
        robot_id: row.get("robot_id")?,
        schedule_id: row.get("schedule_id")?,
        item_id: row.get("item_id")?,
        type_key: row.get("type_key")?,
        funnel: row.get("funnel_key")?,
        stage: row.get("stage_key")?,
        event_id: row.get("event_id")?,
        actor: row.get("actor")?,
        depth: row.get("depth")?,
        attempts: row.get("attempts")?,
    })
}

/// A job to enqueue.
pub struct NewJob<'a> {
    /// Robot binding (0 for a schedule's run).
    pub robot_id: i64,
    /// The schedule whose run this is.
    pub schedule_id: Option<i64>,
    /// Id of the item to run on.
    pub item_id: i64,
    /// The item's type key.
    pub type_key: &'a str,
    /// Key of the funnel entered (empty for a schedule's run over no particular stage).
    pub funnel: &'a str,
    /// Key of the stage entered (empty for a schedule's run over no particular stage).
    pub stage: &'a str,
    /// The event that made the item enter; `None`: the item's latest event, the one the same
    /// transaction has just recorded.
    pub event_id: Option<i64>,
    /// Who made the item enter, as the actor's JSON text.
    pub actor: &'a str,
    /// Automation steps in a row behind the change that queued it (0: a person's change).
    pub depth: i64,
    /// Runs only after the job queued just before it for the same event has finished.
    pub after_previous: bool,
    /// Not before this time.
    pub due_at: Micros,
}

/// The statement queuing `job`, to send in the transaction of the change that caused it. A job
/// waiting for its predecessor finds it as the latest job queued for the same event of the item
/// (the statements of one transaction run in order, and no one else queues jobs for its event).
pub fn enqueue(job: &NewJob<'_>, now: Micros) -> Statement {
    let event = match job.event_id {
        Some(_) => "$6",
        None => "(SELECT MAX(e.id) FROM events e WHERE e.item_id = $6)",
    };
    let after = if job.after_previous {
        format!("(SELECT MAX(p.id) FROM jobs p WHERE p.item_id = $2 AND p.event_id = {event})")
    } else {
        "NULL".to_string()
    };
    Statement::new(format!(
        "INSERT INTO jobs (robot_id, item_id, type_key, funnel_key, stage_key, event_id, actor, depth, after_job, status, due_at, attempts,
             created_at, schedule_id)
         VALUES ($1, $2, $3, $4, $5, {event}, $7, $8, {after}, 'pending', $9, 0, $10, $11)"
    ))
    .bind(job.robot_id)
    .bind(job.item_id)
    .bind(job.type_key)
    .bind(job.funnel)
    .bind(job.stage)
    .bind(job.event_id.unwrap_or(job.item_id))
    .bind(job.actor)
    .bind(job.depth)
    .bind(job.due_at)
    .bind(now)
    .bind(job.schedule_id)
}

/// The statement cancelling an item's pending robot runs except those for `keep` (funnel,
/// stage): the item left their stage.
pub fn cancel_pending(item_id: i64, keep: Option<(&str, &str)>, now: Micros) -> Statement {
    let (funnel, stage) = keep.unwrap_or(("", ""));
    Statement::new(
        "UPDATE jobs SET status = 'cancelled', finished_at = $1
         WHERE item_id = $2 AND status = 'pending' AND schedule_id IS NULL AND NOT (funnel_key = $3 AND stage_key = $4)",
    )
    .bind(now)
    .bind(item_id)
    .bind(funnel)
    .bind(stage)
}

/// The statement moving an item's pending runs of one robot in `stage` (funnel, stage) to
/// `due`, or cancelling them when `due` is `None`.
pub fn retime_pending(item_id: i64, robot_id: i64, stage: (&str, &str), due: Option<Micros>, now: Micros) -> Statement {
    let (funnel, stage) = stage;
    let sql = match due {
        Some(_) => {
            "UPDATE jobs SET due_at = $1 WHERE item_id = $2 AND robot_id = $3 AND status = 'pending' AND funnel_key = $4 AND stage_key = $5"
        }
        None => {
            "UPDATE jobs SET status = 'cancelled', finished_at = $1 WHERE item_id = $2 AND robot_id = $3 AND status = 'pending' AND funnel_key = $4 AND stage_key = $5"
        }
    };
    Statement::new(sql).bind(due.unwrap_or(now)).bind(item_id).bind(robot_id).bind(funnel).bind(stage)
}

/// The queue of robot runs: a pending job is due at `due_at` once the job it waits for (if
/// any) ended; a running one is held by its worker.
pub const QUEUE: LeaseQueue = LeaseQueue {
    table: "jobs",
    waiting: "q.status = 'pending' AND (q.after_job IS NULL OR EXISTS (
        SELECT 1 FROM jobs p WHERE p.id = q.after_job AND p.status IN ('done', 'failed', 'cancelled')))",
    due: "q.due_at",
    order: "q.due_at, q.id",
    held: "status = 'running'",
    takeover: "1 = 1",
    on_claim: ", status = 'running', attempts = attempts + 1",
};

/// Claims up to `limit` due pending jobs, and up to `limit` running ones whose lease expired
/// (after a crash), marking them running until `lease_until`, and commits `tx` with the claim.
pub async fn claim(tx: Tx, now: Micros, lease_until: Micros, limit: i64) -> StoreResult<Vec<Job>> {
    let rows = QUEUE.claim_and_commit(tx, now, lease_until, limit, COLUMNS).await?;
    rows.iter().map(job_from_row).collect()
}

/// Finishes a running job this worker still holds (same attempt); false when another worker
/// took it over after the lease expired, in which case the caller must roll back. (On SQLite,
/// before the transaction's turn, the answer is `true` and a takeover shows as
/// [`crate::DbError::CheckFailed`] at commit: see [`Tx::write_checked`].)
pub async fn finish(tx: &mut Tx, job: &Job, status: &str, error: Option<&str>, now: Micros) -> StoreResult<bool> {
    let update = Statement::new(
        "UPDATE jobs SET status = $1, last_error = $2, finished_at = $3, lease_until = NULL
         WHERE id = $4 AND status = 'running' AND attempts = $5",
    )
    .bind(status)
    .bind(error)
    .bind(now)
    .bind(job.id)
    .bind(job.attempts);
    Ok(tx.write_checked(update, Vec::new()).await?)
}

/// Puts a running job back in the queue for a later attempt (false, or `CheckFailed` at
/// commit, as for [`finish`]).
pub async fn retry(tx: &mut Tx, job: &Job, due_at: Micros, error: &str) -> StoreResult<bool> {
    let update = Statement::new(
        "UPDATE jobs SET status = 'pending', due_at = $1, last_error = $2, lease_until = NULL
         WHERE id = $3 AND status = 'running' AND attempts = $4",
    )
    .bind(due_at)
    .bind(error)
    .bind(job.id)
    .bind(job.attempts);
    Ok(tx.write_checked(update, Vec::new()).await?)
}

/// Counts jobs by status (for tests and monitoring).
pub async fn count(pool: &Reader, status: &str) -> StoreResult<i64> {
    Ok(pool.scalar(Statement::new("SELECT COUNT(*) FROM jobs WHERE status = $1").bind(status)).await?)
}

/// A reader's position, locked for this transaction on PostgreSQL so one host
/// dispatches at a time.
pub async fn cursor(tx: &mut Tx, name: &str) -> StoreResult<i64> {
    let sql = format!("SELECT position FROM cursors WHERE name = $1 {}", tx.dialect().for_update());
    match tx.fetch_optional(Statement::new(sql).bind(name)).await? {
        Some(row) => Ok(row.get(0)?),
        None => Ok(0),
    }
}

/// A reader's position, read outside a transaction.
pub async fn position(pool: &Reader, name: &str) -> StoreResult<i64> {
    let row: Option<i64> =
        pool.scalar_optional(Statement::new("SELECT position FROM cursors WHERE name = $1").bind(name)).await?;
    Ok(row.unwrap_or(0))
}

/// Moves a reader's position.
/// Sent with the transaction's next statement or commit.
pub fn set_cursor(tx: &mut Tx, name: &str, position: i64) {
    tx.defer(Statement::new("UPDATE cursors SET position = $1 WHERE name = $2").bind(position).bind(name));
}

/// Moves a reader's position from `from` to `to`, checking that it is still at `from` (another
/// host may have moved it). False, or [`crate::DbError::CheckFailed`] at commit on SQLite
/// before the transaction's turn, when it was not: see [`Tx::write_checked`]. Needs no answer
/// from the database, so the transaction can stay a program.
pub async fn advance_cursor(tx: &mut Tx, name: &str, from: i64, to: i64) -> StoreResult<bool> {
    let update = Statement::new("UPDATE cursors SET position = $1 WHERE name = $2 AND position = $3")
        .bind(to)
        .bind(name)
        .bind(from);
    Ok(tx.write_checked(update, Vec::new()).await?)
}

/// Moves a reader's position (cursor `name`) past every event unless `watched` (a query)
/// finds a row: with nothing watched, no event is owed to anyone. Checked in the statement
/// itself, so an event committed after something became watched is never passed over.
pub fn pass_over_unwatched(tx: &mut Tx, name: &str, watched: &'static str) {
    tx.defer(
        Statement::new(format!(
            "UPDATE cursors SET position = (SELECT COALESCE(MAX(id), 0) FROM events)
             WHERE name = $1 AND NOT EXISTS ({watched})"
        ))
        .bind(name),
    );
}

/// A stored event as the readers of the stream need it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Position in the stream; ids commit in order, so a reader's cursor never skips one.
    pub id: i64,
    /// What happened, e.g. `item.stage_changed`.
    pub kind: voronka_model::event::EventKind,
    /// Type key of the item concerned; `None` for an event about no item (a task's).
    pub type_key: Option<String>,
    /// Id of the item concerned; `None` for an event about no item (a task's).
    pub item_id: Option<i64>,
    /// Who made the change, as the actor's JSON text.
    pub actor: String,
    /// How many automation steps led to it (0 for a person's change).
    pub depth: i64,
    /// Details by kind, as JSON text.
    pub payload: String,
    /// When it was recorded, in microseconds since the Unix epoch.
    pub at: Micros,
}

/// Events after `after`, oldest first.
pub async fn events_after(tx: &mut Tx, after: i64, limit: i64) -> StoreResult<Vec<EventRow>> {
    let rows = tx
        .fetch_all(
            Statement::new(
                "SELECT id, kind, type_key, item_id, actor, depth, payload, at FROM events WHERE id > $1 ORDER BY id LIMIT CAST($2 AS BIGINT)",
            )
            .bind(after)
            .bind(limit),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(EventRow {
                id: r.get("id")?,
                kind: super::outbox::parse_kind(&r.get::<String>("kind")?)?,
                type_key: r.get("type_key")?,
                item_id: r.get("item_id")?,
                actor: r.get("actor")?,
                depth: r.get("depth")?,
                payload: r.get("payload")?,
                at: r.get("at")?,
            })
        })
        .collect()
}

/// Queues `n` robot runs of one item (robots 1 to `n`), due at once: for tests.
#[cfg(any(test, feature = "test-support"))]
pub async fn queue_for_test(store: &super::Store, n: i64) {
    let mut tx = store.begin();
    for robot_id in 1..=n {
        let job = NewJob {
            robot_id,
            schedule_id: None,
            item_id: 7,
            type_key: "deal",
            funnel: "default",
            stage: "new",
            event_id: Some(1),
            actor: "{}",
            depth: 0,
            after_previous: false,
            due_at: 0,
        };
        tx.execute(enqueue(&job, 0)).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, scratch};

    async fn leases(store: &Store) -> Vec<(i64, String, Option<i64>)> {
        let rows = store
            .reader()
            .fetch_all(Statement::new("SELECT id, status, lease_until FROM jobs ORDER BY id"))
            .await
            .expect("select");
        rows.iter()
            .map(|r| (r.get("id").expect("id"), r.get("status").expect("status"), r.get("lease_until").expect("lease")))
            .collect()
    }

    #[tokio::test]
    async fn renew_extends_only_the_claims_running_jobs() {
        let (_dir, store) = scratch().await;
        queue_for_test(&store, 3).await;
        let claimed = claim(store.begin(), 10, 1_000, 2).await.expect("claim");
        assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2]);
        let ours: Vec<(i64, i64)> = claimed.iter().map(|j| (j.id, j.attempts)).chain([(3, 1)]).collect();
        // The third is claimed by someone else (its first attempt, under their lease).
        let other = claim(store.begin(), 20, 1_000, 2).await.expect("claim");
        assert_eq!(other.iter().map(|j| j.id).collect::<Vec<_>>(), vec![3]);
        // The first finishes; renewing the claim (which names every job, the third under an
        // attempt not its own) extends the second only.
        let mut tx = store.begin();
        assert!(finish(&mut tx, &claimed[0], "done", None, 30).await.expect("finish"));
        tx.commit().await.expect("commit");
        let mut mismatched = ours.clone();
        mismatched[2].1 = 2;
        let renewed = QUEUE.renew(store.begin(), &mismatched, 5_000).await.expect("renew");
        assert_eq!(renewed, 1);
        assert_eq!(
            leases(&store).await,
            vec![(1, "done".into(), None), (2, "running".into(), Some(5_000)), (3, "running".into(), Some(1_000))]
        );
        // Before the renewed lease ends only the other claim's expired job is taken over; after
        // it, the second is too, as a new attempt.
        let taken = claim(store.begin(), 4_999, 9_000, 8).await.expect("claim");
        assert_eq!(taken.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(), vec![(3, 2)]);
        let taken = claim(store.begin(), 5_001, 9_000, 8).await.expect("claim");
        assert_eq!(taken.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(), vec![(2, 2)]);
        // The old claim's attempt is over: renewing it changes nothing.
        assert_eq!(QUEUE.renew(store.begin(), &ours, 20_000).await.expect("renew"), 0);
        assert_eq!(QUEUE.renew(store.begin(), &[], 20_000).await.expect("renew"), 0);
        store.close().await;
    }
}
