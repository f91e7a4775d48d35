//! Schedules: a robot plugin run on a timetable over the items of a scope.

use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::time::{Micros, to_rfc3339};

/// A schedule as stored: a robot plugin run on a cron timetable over the items of a scope.
#[derive(Debug, Clone)]
pub struct StoredSchedule {
    /// Schedule id, as in `/schedules/{id}` and in the `schedule` actor of its runs.
    pub id: i64,
    /// What it is for, in words.
    pub title: String,
    /// Cron expression: `min hour day month weekday`, or with seconds first (and a year last).
    pub cron: String,
    /// IANA time zone of the expression.
    pub timezone: String,
    /// Robot plugin to run for each item.
    pub plugin: String,
    /// Plugin version requirement: `latest` or a semver requirement.
    pub version: String,
    /// Config handed to the plugin.
    pub config: serde_json::Value,
    /// Items of this type...
    pub type_key: String,
    /// ... in this funnel (any when absent) ...
    pub funnel: Option<String>,
    /// ... and stage (any when absent).
    pub stage: Option<String>,
    /// Paused schedules do not fire.
    pub active: bool,
    /// The next firing, in microseconds (none for a paused schedule or an expression that
    /// never fires again).
    pub next_at: Option<Micros>,
    /// The last firing, in microseconds since the Unix epoch; `None` before the first.
    pub last_run_at: Option<Micros>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

const COLUMNS: &str = "id, title, cron, timezone, plugin, version_req, config, type_key, funnel_key, stage_key, active, \
                       next_at, last_run_at, created_at";

fn schedule_from_row(row: &Row) -> StoreResult<StoredSchedule> {
    Ok(StoredSchedule {
        id: row.get("id")?,
        title: row.get("title")?,
        cron: row.get("cron")?,
        timezone: row.get("timezone")?,
        plugin: row.get("plugin")?,
        version: row.get("version_req")?,
        config: parse_json("schedules", &row.get::<String>("config")?)?,
        type_key: row.get("type_key")?,
        funnel: row.get("funnel_key")?,
        stage: row.get("stage_key")?,
        active: row.get::<i64>("active")? != 0,
        next_at: row.get("next_at")?,
        last_run_at: row.get("last_run_at")?,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Every schedule, oldest first.
pub async fn all(pool: &Reader) -> StoreResult<Vec<StoredSchedule>> {
    let rows = pool.fetch_all(Statement::new(format!("SELECT {COLUMNS} FROM schedules ORDER BY id"))).await?;
    rows.iter().map(schedule_from_row).collect()
}

/// A schedule by id, if it exists.
pub async fn get(pool: &Reader, id: i64) -> StoreResult<Option<StoredSchedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE id = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(schedule_from_row).transpose()
}

/// Inserts a schedule and returns its id.
pub async fn insert(tx: &mut Tx, schedule: &StoredSchedule, now: Micros) -> StoreResult<i64> {
    let insert = Statement::new(
        "INSERT INTO schedules (title, cron, timezone, plugin, version_req, config, funnel_key, stage_key, active, next_at,
             type_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    );
    let insert = bind_settings(insert, schedule).bind(&schedule.type_key).bind(now);
    Ok(tx.fetch_one(insert).await?.get(0)?)
}

/// Binds a schedule's settings to `$1..$10` (title, cron, time zone, plugin, version, config,
/// funnel, stage, active, next firing), the columns an insert and an update share.
fn bind_settings(statement: Statement, schedule: &StoredSchedule) -> Statement {
    statement
        .bind(&schedule.title)
        .bind(&schedule.cron)
        .bind(&schedule.timezone)
        .bind(&schedule.plugin)
        .bind(&schedule.version)
        .bind(schedule.config.to_string())
        .bind(&schedule.funnel)
        .bind(&schedule.stage)
        .bind(i64::from(schedule.active))
        .bind(schedule.next_at)
}

/// Updates a schedule's settings, and its next firing when `retimed` (otherwise the next
/// firing stays as the scheduler left it).
pub async fn update(tx: &mut Tx, schedule: &StoredSchedule, retimed: bool) -> StoreResult<()> {
    let update = Statement::new(
        "UPDATE schedules SET title = $1, cron = $2, timezone = $3, plugin = $4, version_req = $5, config = $6,
             funnel_key = $7, stage_key = $8, active = $9, next_at = CASE WHEN $12 = 1 THEN $10 ELSE next_at END
         WHERE id = $11",
    );
    Ok(tx.execute(bind_settings(update, schedule).bind(schedule.id).bind(i64::from(retimed))).await?)
}

/// Deletes a schedule and cancels its pending runs.
pub async fn delete(tx: &mut Tx, id: i64, now: Micros) -> StoreResult<()> {
    tx.execute(
        Statement::new(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1 WHERE schedule_id = $2 AND status = 'pending'",
        )
        .bind(now)
        .bind(id),
    )
    .await?;
    tx.execute(Statement::new("DELETE FROM schedules WHERE id = $1").bind(id)).await?;
    Ok(())
}

/// Active schedules due at `now`, locked for this transaction (PostgreSQL hosts skip the ones
/// another host is firing).
pub async fn due(tx: &mut Tx, now: Micros) -> StoreResult<Vec<StoredSchedule>> {
    let lock = tx.dialect().skip_locked();
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE active = 1 AND next_at IS NOT NULL AND next_at <= $1 ORDER BY next_at, id {lock}"
    );
    let rows = tx.fetch_all(Statement::new(sql).bind(now)).await?;
    rows.iter().map(schedule_from_row).collect()
}

/// Records a firing and the next one (sent with the transaction's next statement or commit).
pub fn fired(tx: &mut Tx, id: i64, at: Micros, next_at: Option<Micros>) {
    tx.defer(
        Statement::new("UPDATE schedules SET last_run_at = $1, next_at = $2 WHERE id = $3")
            .bind(at)
            .bind(next_at)
            .bind(id),
    );
}

/// Whether runs of a schedule are still waiting in the job queue.
pub async fn has_pending_runs(tx: &mut Tx, id: i64) -> StoreResult<bool> {
    let row = tx
        .fetch_optional(
            Statement::new("SELECT 1 FROM jobs WHERE schedule_id = $1 AND status IN ('pending', 'running') LIMIT 1")
                .bind(id),
        )
        .await?;
    Ok(row.is_some())
}

/// The earliest next firing of an active schedule, to sleep until it.
pub async fn next_due(pool: &Reader) -> StoreResult<Option<Micros>> {
    Ok(pool.scalar(Statement::new("SELECT MIN(next_at) FROM schedules WHERE active = 1")).await?)
}

/// How many schedules run a plugin.
pub async fn count_using(tx: &mut Tx, plugin: &str) -> StoreResult<i64> {
    Ok(tx.fetch_one(Statement::new("SELECT COUNT(*) FROM schedules WHERE plugin = $1").bind(plugin)).await?.get(0)?)
}

/// The ids of the items in a schedule's scope (at most `limit`).
pub async fn items_in_scope(
    tx: &mut Tx,
    schedule: &StoredSchedule,
    limit: i64,
) -> StoreResult<Vec<(i64, Option<String>, Option<String>)>> {
    let rows = tx
        .fetch_all(
            Statement::new(
                "SELECT id, funnel_key, stage_key FROM items
                 WHERE type_key = $1 AND ($2 = '' OR funnel_key = $2) AND ($3 = '' OR stage_key = $3)
                 ORDER BY id LIMIT CAST($4 AS BIGINT)",
            )
            .bind(schedule.type_key.as_str())
            .bind(schedule.funnel.as_deref().unwrap_or(""))
            .bind(schedule.stage.as_deref().unwrap_or(""))
            .bind(limit),
        )
        .await?;
    rows.iter().map(|r| Ok((r.get("id")?, r.get("funnel_key")?, r.get("stage_key")?))).collect()
}
