//! Business processes: templates (versioned), instances, their log and their assignments.

use crate::lease::LeaseQueue;
use crate::{Fetch, Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::actor::Actor;
use voronka_model::item::ItemRef;
use voronka_model::process::{Assignment, Instance, InstanceStatus};
use voronka_model::time::{Micros, to_rfc3339};

/// A stored template version.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StoredTemplate {
    /// Template key (lower-case letters, digits, `-`, `_`); saving it again adds a version.
    pub key: String,
    /// Version, from 1.
    pub version: i64,
    /// Entity type it runs on.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Display title; the key when none was given.
    pub title: String,
    /// The steps as given.
    #[schema(value_type = Vec<Object>)]
    pub steps: serde_json::Value,
    /// When this version was saved (RFC 3339).
    pub created_at: String,
}

fn template_from_row(row: &Row) -> StoreResult<StoredTemplate> {
    Ok(StoredTemplate {
        key: row.get("key")?,
        version: row.get("version")?,
        type_key: row.get("type_key")?,
        title: row.get("title")?,
        steps: parse_json("process_templates", &row.get::<String>("definition")?)?,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

const TEMPLATE_COLUMNS: &str = "key, version, type_key, title, definition, created_at";

/// Stores a new version of a template (one more than the latest); returns it.
pub async fn insert_template(tx: &mut Tx, template: &StoredTemplate, now: Micros) -> StoreResult<i64> {
    // Versions are counted: two saves of one key take turns, as all writers do (on PostgreSQL
    // the writers' lock, taken at the first statement, orders them).
    let row = tx
        .fetch_optional(
            Statement::new("SELECT COALESCE(MAX(version), 0) AS v FROM process_templates WHERE key = $1")
                .bind(template.key.as_str()),
        )
        .await?;
    let version = row.map(|r| r.get::<i64>("v")).transpose()?.unwrap_or(0) + 1;
    tx.write_returning(
        Statement::new(
            "INSERT INTO process_templates (key, version, type_key, title, definition, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(template.key.as_str())
        .bind(version)
        .bind(template.type_key.as_str())
        .bind(template.title.as_str())
        .bind(template.steps.to_string())
        .bind(now),
    )
    .await?;
    Ok(version)
}

/// A template version; the latest when `version` is `None`.
pub async fn template(pool: &Reader, key: &str, version: Option<i64>) -> StoreResult<Option<StoredTemplate>> {
    let sql = format!(
        "SELECT {TEMPLATE_COLUMNS} FROM process_templates WHERE key = $1 AND ($2 = 0 OR version = $2)
         ORDER BY version DESC LIMIT 1"
    );
    let row = pool.fetch_optional(Statement::new(sql).bind(key).bind(version.unwrap_or(0))).await?;
    row.as_ref().map(template_from_row).transpose()
}

/// The latest version of every template, by key.
pub async fn latest_templates(pool: &Reader) -> StoreResult<Vec<StoredTemplate>> {
    let sql = format!(
        "SELECT {TEMPLATE_COLUMNS} FROM process_templates t
         WHERE version = (SELECT MAX(version) FROM process_templates o WHERE o.key = t.key) ORDER BY key"
    );
    let rows = pool.fetch_all(Statement::new(sql)).await?;
    rows.iter().map(template_from_row).collect()
}

const INSTANCE_COLUMNS: &str = "id, template_key, template_version, type_key, item_id, parent_id, status, state, variables, \
                                error, started_by, created_at, updated_at, finished_at, version";

fn instance_from_row(row: &Row) -> StoreResult<Instance> {
    let status: String = row.get("status")?;
    Ok(Instance {
        id: row.get("id")?,
        template: row.get("template_key")?,
        template_version: row.get("template_version")?,
        item: ItemRef { type_key: row.get("type_key")?, id: row.get("item_id")? },
        parent: row.get("parent_id")?,
        status: InstanceStatus::parse(&status).unwrap_or(InstanceStatus::Failed),
        variables: parse_json("process_instances", &row.get::<String>("variables")?)?,
        current_steps: Vec::new(),
        state: parse_json("process_instances", &row.get::<String>("state")?)?,
        error: row.get("error")?,
        started_by: Actor::from_json_str(&row.get::<String>("started_by")?),
        created_at: to_rfc3339(row.get("created_at")?),
        updated_at: to_rfc3339(row.get("updated_at")?),
        finished_at: row.get::<Option<i64>>("finished_at")?.map(to_rfc3339),
        version: row.get("version")?,
    })
}

/// Stores a new, runnable instance `depth` processes deep; returns its id.
pub async fn insert_instance(tx: &mut Tx, instance: &Instance, depth: i64, now: Micros) -> StoreResult<i64> {
    let rows = tx
        .write_returning(
            Statement::new(
                "INSERT INTO process_instances (template_key, template_version, type_key, item_id, parent_id, status, state,
                     variables, runnable, started_by, created_at, updated_at, version, depth)
                 VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, 1, $8, $9, $9, 1, $10) RETURNING id",
            )
            .bind(instance.template.as_str())
            .bind(instance.template_version)
            .bind(instance.item.type_key.as_str())
            .bind(instance.item.id)
            .bind(instance.parent)
            .bind(serde_json::to_string(&instance.state).unwrap_or_else(|_| "{}".into()))
            .bind(serde_json::Value::Object(instance.variables.clone()).to_string())
            .bind(instance.started_by.to_json_string())
            .bind(now)
            .bind(depth),
        )
        .await?;
    Ok(rows.first().map(|r| r.get("id")).transpose()?.unwrap_or_default())
}

/// Locks an instance for an advance (PostgreSQL: the row, after the writers' lock every
/// transaction takes first; SQLite: the writer's turn) and returns its depth, or `None` when it
/// is gone. Every change of an instance takes this lock first, so wake-ups wait for an advance
/// to end and none is lost.
pub async fn lock_instance(tx: &mut Tx, id: i64) -> StoreResult<Option<i64>> {
    let lock = format!(" {}", tx.dialect().for_update());
    let sql = format!("SELECT depth FROM process_instances WHERE id = $1{lock}");
    let row = tx.fetch_optional(Statement::new(sql).bind(id)).await?;
    Ok(row.map(|r| r.get("depth")).transpose()?)
}

/// An instance by id, if it exists.
pub async fn instance(conn: &mut impl Fetch, id: i64) -> StoreResult<Option<Instance>> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM process_instances WHERE id = $1");
    let row = conn.fetch_first(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(instance_from_row).transpose()
}

/// Instances, optionally of one item and status, by id after `after`, at most `limit + 1`.
pub async fn instances(
    pool: &Reader,
    item: Option<&ItemRef>,
    status: Option<InstanceStatus>,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<Instance>> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM process_instances
         WHERE id > $1 AND ($2 = '' OR (type_key = $2 AND item_id = $3)) AND ($4 = '' OR status = $4)
         ORDER BY id LIMIT CAST($5 AS BIGINT)"
    );
    let rows = pool
        .fetch_all(
            Statement::new(sql)
                .bind(after)
                .bind(item.map(|i| i.type_key.clone()).unwrap_or_default())
                .bind(item.map(|i| i.id).unwrap_or(0))
                .bind(status.map(|s| s.as_str()).unwrap_or(""))
                .bind(limit + 1),
        )
        .await?;
    rows.iter().map(instance_from_row).collect()
}

/// The queue of process advances: a running instance is due now when runnable, else at its
/// wake time; one being advanced is held, and taken over (its advance cut short) only while
/// it still has something to do.
pub const QUEUE: LeaseQueue = LeaseQueue {
    table: "process_instances",
    waiting: "q.status = 'running' AND q.lease_until IS NULL AND (q.runnable = 1 OR q.wake_at IS NOT NULL)",
    due: "CASE WHEN q.runnable = 1 THEN {now} ELSE q.wake_at END",
    order: "q.id",
    held: "status = 'running' AND lease_until IS NOT NULL",
    takeover: "(q.runnable = 1 OR q.wake_at <= {now})",
    on_claim: "",
};

/// Leases up to `limit` instances that are runnable or whose wake time came, and up to `limit`
/// whose advance's lease ran out, until `lease`; returns their ids.
pub async fn claim(tx: &mut Tx, now: Micros, lease: Micros, limit: i64) -> StoreResult<Vec<i64>> {
    let rows = QUEUE.claim(tx, now, lease, limit, "id").await?;
    rows.iter().map(|r| Ok(r.get("id")?)).collect()
}

/// Saves an instance advanced by the engine if its version is still `instance.version - 1`;
/// clears its lease, and its runnable flag unless `runnable` (it has more to do at once). False
/// when it changed meanwhile.
pub async fn save(
    tx: &mut Tx,
    instance: &Instance,
    wake_at: Option<Micros>,
    runnable: bool,
    now: Micros,
) -> StoreResult<bool> {
    let finished = (instance.status != InstanceStatus::Running).then_some(now);
    let rows = tx
        .write_returning(
            Statement::new(
                "UPDATE process_instances SET status = $1, state = $2, variables = $3, error = $4, runnable = $12,
                     wake_at = $5, lease_until = NULL, updated_at = $6, finished_at = COALESCE(finished_at, $7), version = $8,
                     waits_event = $11
                 WHERE id = $9 AND version = $10 RETURNING id",
            )
            .bind(instance.status.as_str())
            .bind(serde_json::to_string(&instance.state).unwrap_or_else(|_| "{}".into()))
            .bind(serde_json::Value::Object(instance.variables.clone()).to_string())
            .bind(instance.error.clone())
            .bind(wake_at)
            .bind(now)
            .bind(finished)
            .bind(instance.version)
            .bind(instance.id)
            .bind(instance.version - 1)
            .bind(i64::from(instance.status == InstanceStatus::Running && instance.state.waits_for_event()))
            .bind(i64::from(runnable && instance.status == InstanceStatus::Running)),
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Marks the running instances of these items that wait for an event runnable; returns how
/// many. Each item comes with the least chain depth of its events: an instance woken by a
/// shallower chain than its own (a person's change is at 0) goes on as part of that one.
pub async fn wake_event_waiters(tx: &mut Tx, items: &[(ItemRef, i64)]) -> StoreResult<usize> {
    let mut woken = 0;
    for (item, depth) in items {
        let rows = tx
            .write_returning(
                Statement::new(
                    "UPDATE process_instances SET runnable = 1, depth = CASE WHEN depth > $3 THEN $3 ELSE depth END
                     WHERE waits_event = 1 AND status = 'running' AND type_key = $1 AND item_id = $2 RETURNING id",
                )
                .bind(item.type_key.as_str())
                .bind(item.id)
                .bind(*depth),
            )
            .await?;
        woken += rows.len();
    }
    Ok(woken)
}

/// Whether any running instance waits for an event.
pub async fn any_event_waiter(pool: &Reader) -> StoreResult<bool> {
    let row = pool
        .fetch_optional(Statement::new(
            "SELECT 1 FROM process_instances WHERE waits_event = 1 AND status = 'running' LIMIT 1",
        ))
        .await?;
    Ok(row.is_some())
}

/// Marks every running instance that waits for an event runnable (at start: events committed
/// while no host watched are looked at).
pub async fn wake_all_event_waiters(tx: &mut Tx) -> StoreResult<()> {
    tx.write_returning(Statement::new(
        "UPDATE process_instances SET runnable = 1 WHERE waits_event = 1 AND status = 'running' RETURNING id",
    ))
    .await?;
    Ok(())
}

/// The latest event id, seeing the transaction's own events.
pub async fn last_event_in(tx: &mut Tx) -> StoreResult<i64> {
    let row = tx.fetch_optional(Statement::new("SELECT COALESCE(MAX(id), 0) AS last FROM events")).await?;
    Ok(row.map(|r| r.get::<i64>("last")).transpose()?.unwrap_or(0))
}

/// The status of a task (`None` when it is gone), seeing the transaction's own writes.
pub async fn task_status(tx: &mut Tx, id: i64) -> StoreResult<Option<String>> {
    let row = tx.fetch_optional(Statement::new("SELECT status FROM tasks WHERE id = $1").bind(id)).await?;
    Ok(row.map(|r| r.get("status")).transpose()?)
}

/// The status of an instance (`None` when it is gone), seeing the transaction's own writes.
pub async fn instance_status(tx: &mut Tx, id: i64) -> StoreResult<Option<String>> {
    let row = tx.fetch_optional(Statement::new("SELECT status FROM process_instances WHERE id = $1").bind(id)).await?;
    Ok(row.map(|r| r.get("status")).transpose()?)
}

/// The latest event id.
pub async fn last_event(pool: &Reader) -> StoreResult<i64> {
    Ok(pool.scalar(Statement::new("SELECT COALESCE(MAX(id), 0) FROM events")).await?)
}

/// Events of an item of `kind` after `after` (seeing the transaction's own writes), oldest
/// first, at most 200: (id, payload).
pub async fn item_events_after(
    tx: &mut Tx,
    item: &ItemRef,
    kind: &str,
    after: i64,
) -> StoreResult<Vec<(i64, serde_json::Value)>> {
    let rows = tx
        .fetch_all(
            Statement::new(
                "SELECT id, payload FROM events WHERE item_id = $1 AND id > $2 AND type_key = $3 AND kind = $4
                 ORDER BY id LIMIT 200",
            )
            .bind(item.id)
            .bind(after)
            .bind(item.type_key.as_str())
            .bind(kind),
        )
        .await?;
    rows.iter().map(|r| Ok((r.get("id")?, parse_json("events", &r.get::<String>("payload")?)?))).collect()
}

/// Asks the engine to look at an instance again (sent with the transaction's next statement),
/// for a reason inside its own chain of automation (a child ended, a timer came): its depth
/// stays.
pub fn wake(tx: &mut Tx, id: i64) {
    tx.defer(Statement::new("UPDATE process_instances SET runnable = 1 WHERE id = $1 AND status = 'running'").bind(id));
}

/// Asks the engine to look at an instance again because of an action `depth` steps into an
/// automation chain (a person's answer, task completion or termination is at 0): the instance
/// goes on as part of that chain, so a person's action starts a new one. Sent with the
/// transaction's next statement.
pub fn resume(tx: &mut Tx, id: i64, depth: i64) {
    tx.defer(
        Statement::new("UPDATE process_instances SET runnable = 1, depth = $2 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .bind(depth),
    );
}

/// Ends a running instance as terminated; false when it was not running.
pub async fn terminate(tx: &mut Tx, id: i64, now: Micros) -> StoreResult<bool> {
    lock_instance(tx, id).await?;
    let rows = tx
        .write_returning(
            Statement::new(
                "UPDATE process_instances SET status = 'terminated', runnable = 0, wake_at = NULL, lease_until = NULL,
                     updated_at = $1, finished_at = $1, version = version + 1
                 WHERE id = $2 AND status = 'running' RETURNING id",
            )
            .bind(now)
            .bind(id),
        )
        .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    tx.defer(
        Statement::new(
            "UPDATE assignments SET status = 'cancelled', completed_at = $1 WHERE instance_id = $2 AND status = 'open'",
        )
        .bind(now)
        .bind(id),
    );
    Ok(true)
}

/// Adds a line to an instance's log (sent with the transaction's next statement).
pub fn log(tx: &mut Tx, instance: i64, step: Option<&str>, text: &str, data: &serde_json::Value, now: Micros) {
    tx.defer(
        Statement::new("INSERT INTO process_log (instance_id, step_id, text, data, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(instance)
            .bind(step)
            .bind(text)
            .bind(data.to_string())
            .bind(now),
    );
}

/// An instance's log, oldest first.
pub async fn log_of(pool: &Reader, instance: i64) -> StoreResult<Vec<serde_json::Value>> {
    let rows = pool
        .fetch_all(
            Statement::new("SELECT step_id, text, data, at FROM process_log WHERE instance_id = $1 ORDER BY id")
                .bind(instance),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(serde_json::json!({
                "step": r.get::<Option<String>>("step_id")?,
                "text": r.get::<String>("text")?,
                "data": parse_json::<serde_json::Value>("process_log", &r.get::<String>("data")?)?,
                "at": to_rfc3339(r.get("at")?),
            }))
        })
        .collect()
}

const ASSIGNMENT_COLUMNS: &str = "id, instance_id, step_id, kind, user_id, status, title, form, type_key, item_id, decision, \
                                  comment, answers, due_at, created_at, completed_at";

fn assignment_from_row(row: &Row) -> StoreResult<Assignment> {
    let answers: Option<String> = row.get("answers")?;
    Ok(Assignment {
        id: row.get("id")?,
        process: row.get("instance_id")?,
        step: row.get("step_id")?,
        kind: row.get("kind")?,
        user: row.get("user_id")?,
        status: row.get("status")?,
        title: row.get("title")?,
        form: parse_json("assignments", &row.get::<String>("form")?)?,
        item: ItemRef { type_key: row.get("type_key")?, id: row.get("item_id")? },
        decision: row.get("decision")?,
        comment: row.get("comment")?,
        answers: answers.map(|a| parse_json("assignments", &a)).transpose()?,
        due_at: row.get::<Option<i64>>("due_at")?.map(to_rfc3339),
        created_at: to_rfc3339(row.get("created_at")?),
        completed_at: row.get::<Option<i64>>("completed_at")?.map(to_rfc3339),
    })
}

/// Stores an open assignment; returns its id.
pub async fn insert_assignment(tx: &mut Tx, a: &Assignment, due_at: Option<Micros>, now: Micros) -> StoreResult<i64> {
    let rows = tx
        .write_returning(
            Statement::new(
                "INSERT INTO assignments (instance_id, step_id, kind, user_id, status, title, form, type_key, item_id, due_at,
                     created_at)
                 VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(a.process)
            .bind(a.step.as_str())
            .bind(a.kind.as_str())
            .bind(a.user)
            .bind(a.title.as_str())
            .bind(serde_json::to_string(&a.form).unwrap_or_else(|_| "[]".into()))
            .bind(a.item.type_key.as_str())
            .bind(a.item.id)
            .bind(due_at)
            .bind(now),
        )
        .await?;
    Ok(rows.first().map(|r| r.get("id")).transpose()?.unwrap_or_default())
}

/// An assignment by id, if it exists.
pub async fn assignment(conn: &mut impl Fetch, id: i64) -> StoreResult<Option<Assignment>> {
    let sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = $1");
    let row = conn.fetch_first(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(assignment_from_row).transpose()
}

/// Which assignments a list shows.
#[derive(Debug, Clone, Default)]
pub struct AssignmentFilter<'a> {
    /// Only this user's (any user's when absent).
    pub user: Option<i64>,
    /// Only those of this item (any item's when absent).
    pub item: Option<&'a ItemRef>,
    /// Only those in this status (`open`, `done`, `cancelled`; any when absent).
    pub status: Option<&'a str>,
}

/// The assignments matching `filter`, by id after `after`, at most `limit + 1`.
pub async fn assignments(
    pool: &Reader,
    filter: &AssignmentFilter<'_>,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<Assignment>> {
    let mut sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id > $1");
    let mut args: Vec<voronka_db::Arg> = vec![after.into()];
    let mut next = |arg: voronka_db::Arg| {
        args.push(arg);
        format!("${}", args.len())
    };
    if let Some(user) = filter.user {
        sql.push_str(&format!(" AND user_id = {}", next(user.into())));
    }
    if let Some(item) = filter.item {
        let (t, i) = (next(item.type_key.as_str().into()), next(item.id.into()));
        sql.push_str(&format!(" AND type_key = {t} AND item_id = {i}"));
    }
    if let Some(status) = filter.status {
        sql.push_str(&format!(" AND status = {}", next(status.into())));
    }
    let p = next((limit + 1).into());
    sql.push_str(&format!(" ORDER BY id LIMIT CAST({p} AS BIGINT)"));
    let mut statement = Statement::new(sql);
    for arg in args {
        statement = statement.bind(arg);
    }
    let rows = pool.fetch_all(statement).await?;
    rows.iter().map(assignment_from_row).collect()
}

/// The assignments of one step of an instance (seeing the transaction's own writes).
pub async fn assignments_of_step(tx: &mut Tx, instance: i64, step: &str) -> StoreResult<Vec<Assignment>> {
    let sql =
        format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE instance_id = $1 AND step_id = $2 ORDER BY id");
    let rows = tx.fetch_all(Statement::new(sql).bind(instance).bind(step)).await?;
    rows.iter().map(assignment_from_row).collect()
}

/// Records a person's answer to an open assignment; false when it is no longer open.
pub async fn complete_assignment(tx: &mut Tx, a: &Assignment, now: Micros) -> StoreResult<bool> {
    let rows = tx
        .write_returning(
            Statement::new(
                "UPDATE assignments SET status = 'done', decision = $1, comment = $2, answers = $3, completed_at = $4
                 WHERE id = $5 AND status = 'open' RETURNING id",
            )
            .bind(a.decision.clone())
            .bind(a.comment.clone())
            .bind(a.answers.as_ref().map(|v| v.to_string()))
            .bind(now)
            .bind(a.id),
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Hands an open assignment to another user; false when it is no longer open.
pub async fn delegate(tx: &mut Tx, id: i64, user: i64) -> StoreResult<bool> {
    let rows = tx
        .write_returning(
            Statement::new("UPDATE assignments SET user_id = $1 WHERE id = $2 AND status = 'open' RETURNING id")
                .bind(user)
                .bind(id),
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Cancels the open assignments of a step (a decision was reached without them).
pub fn cancel_open(tx: &mut Tx, instance: i64, step: &str, now: Micros) {
    tx.defer(
        Statement::new(
            "UPDATE assignments SET status = 'cancelled', completed_at = $1
             WHERE instance_id = $2 AND step_id = $3 AND status = 'open'",
        )
        .bind(now)
        .bind(instance)
        .bind(step),
    );
}

/// Cancels every open assignment of an instance (it ended).
pub fn cancel_all_open(tx: &mut Tx, instance: i64, now: Micros) {
    tx.defer(
        Statement::new(
            "UPDATE assignments SET status = 'cancelled', completed_at = $1 WHERE instance_id = $2 AND status = 'open'",
        )
        .bind(now)
        .bind(instance),
    );
}

/// Links a task to the process that waits for it (sent with the transaction's next statement).
pub fn link_task(tx: &mut Tx, task: i64, instance: i64) {
    tx.defer(Statement::new("UPDATE tasks SET process_id = $1 WHERE id = $2").bind(instance).bind(task));
}

/// The process waiting for a task, if any.
pub async fn process_of_task(tx: &mut Tx, task: i64) -> StoreResult<Option<i64>> {
    let row = tx.fetch_optional(Statement::new("SELECT process_id FROM tasks WHERE id = $1").bind(task)).await?;
    Ok(row.map(|r| r.get::<Option<i64>>("process_id")).transpose()?.flatten())
}
