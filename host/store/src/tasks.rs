//! Tasks, their auditors and their links to items.

use std::collections::HashMap;

use crate::{Fetch, Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::actor::Actor;
use voronka_model::item::ItemRef;
use voronka_model::task::{Task, TaskStatus};
use voronka_model::time::{Micros, to_rfc3339};

const COLUMNS: &str = "id, title, description, responsible_id, creator, status, deadline, require_result, result, \
                       checklist, tags, overdue_at, created_at, updated_at, completed_at, version";

/// A task's own columns, as written.
#[derive(Debug, Clone)]
pub struct TaskRow<'a> {
    /// The task (its `id` and `version` are ignored on insert).
    pub task: &'a Task,
    /// Deadline in microseconds since the Unix epoch; `None` for none.
    pub deadline: Option<Micros>,
    /// Its deadline is to be watched anew (a new task, a new deadline, a reopened task): the
    /// overdue mark is cleared. Otherwise the mark stays as the deadline watch left it.
    pub rewatch: bool,
    /// Completion time in microseconds since the Unix epoch; `None` unless completed.
    pub completed_at: Option<Micros>,
}

fn task_from_row(row: &Row, links: Vec<ItemRef>, auditors: Vec<i64>, now: Micros) -> StoreResult<Task> {
    let status: String = row.get("status")?;
    let status = TaskStatus::parse(&status).unwrap_or(TaskStatus::New);
    let deadline: Option<i64> = row.get("deadline")?;
    Ok(Task {
        id: row.get("id")?,
        title: row.get("title")?,
        description: row.get("description")?,
        status,
        responsible: row.get("responsible_id")?,
        creator: Actor::from_json_str(&row.get::<String>("creator")?),
        auditors,
        deadline: deadline.map(to_rfc3339),
        overdue: status != TaskStatus::Completed && deadline.is_some_and(|d| d <= now),
        require_result: row.get::<i64>("require_result")? != 0,
        result: row.get("result")?,
        checklist: parse_json("tasks", &row.get::<String>("checklist")?)?,
        tags: parse_json("tasks", &row.get::<String>("tags")?)?,
        links,
        created_at: to_rfc3339(row.get("created_at")?),
        updated_at: to_rfc3339(row.get("updated_at")?),
        completed_at: row.get::<Option<i64>>("completed_at")?.map(to_rfc3339),
        version: row.get("version")?,
    })
}

/// The deadline of a stored task row, in microseconds.
pub fn deadline_of(task: &Task) -> Option<Micros> {
    task.deadline.as_deref().and_then(voronka_model::time::parse_rfc3339)
}

/// Builds the tasks of `rows`, reading their links and auditors.
async fn assemble(conn: &mut impl Fetch, rows: &[Row], now: Micros) -> StoreResult<Vec<Task>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect::<Result<_, _>>()?;
    let mut links: HashMap<i64, Vec<ItemRef>> = HashMap::new();
    let mut auditors: HashMap<i64, Vec<i64>> = HashMap::new();
    if !ids.is_empty() {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT task_id, type_key, item_id FROM task_links WHERE task_id IN ({list}) ORDER BY type_key, item_id"
        );
        for row in conn.fetch(Statement::new(sql).transient()).await? {
            links
                .entry(row.get("task_id")?)
                .or_default()
                .push(ItemRef { type_key: row.get("type_key")?, id: row.get("item_id")? });
        }
        let sql = format!("SELECT task_id, user_id FROM task_auditors WHERE task_id IN ({list}) ORDER BY user_id");
        for row in conn.fetch(Statement::new(sql).transient()).await? {
            auditors.entry(row.get("task_id")?).or_default().push(row.get("user_id")?);
        }
    }
    rows.iter()
        .map(|r| {
            let id: i64 = r.get("id")?;
            task_from_row(r, links.remove(&id).unwrap_or_default(), auditors.remove(&id).unwrap_or_default(), now)
        })
        .collect()
}

/// A task by id with its links and auditors, if it exists; `now` decides whether it is overdue.
pub async fn get(conn: &mut impl Fetch, id: i64, now: Micros) -> StoreResult<Option<Task>> {
    let rows = conn.fetch(Statement::new(format!("SELECT {COLUMNS} FROM tasks WHERE id = $1")).bind(id)).await?;
    Ok(assemble(conn, &rows, now).await?.pop())
}

/// Which tasks a listing wants.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Tasks this user does, created or follows.
    pub participant: Option<i64>,
    /// Tasks this user does.
    pub responsible: Option<i64>,
    /// Tasks linked to this item.
    pub linked: Option<ItemRef>,
    /// Tasks in one of these statuses (any when empty).
    pub statuses: Vec<TaskStatus>,
    /// Only overdue tasks (past the deadline, not completed).
    pub overdue: bool,
}

/// Tasks matching `filter`, by id after `after`, at most `limit + 1`.
pub async fn list(
    conn: &mut impl Fetch,
    filter: &TaskFilter,
    now: Micros,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<Task>> {
    let mut sql = format!("SELECT {COLUMNS} FROM tasks t WHERE id > $1");
    let mut statement_args: Vec<voronka_db::Arg> = vec![after.into()];
    let next = |arg: voronka_db::Arg, args: &mut Vec<voronka_db::Arg>| {
        args.push(arg);
        format!("${}", args.len())
    };
    if let Some(user) = filter.participant {
        let p = next(user.into(), &mut statement_args);
        sql.push_str(&format!(
            " AND (responsible_id = {p} OR creator_id = {p}
                   OR EXISTS (SELECT 1 FROM task_auditors a WHERE a.task_id = t.id AND a.user_id = {p}))"
        ));
    }
    if let Some(user) = filter.responsible {
        let p = next(user.into(), &mut statement_args);
        sql.push_str(&format!(" AND responsible_id = {p}"));
    }
    if let Some(item) = &filter.linked {
        let (t, i) =
            (next(item.type_key.as_str().into(), &mut statement_args), next(item.id.into(), &mut statement_args));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM task_links l WHERE l.task_id = t.id AND l.type_key = {t} AND l.item_id = {i})"
        ));
    }
    if !filter.statuses.is_empty() {
        let list = filter.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",");
        sql.push_str(&format!(" AND status IN ({list})"));
    }
    if filter.overdue {
        let p = next(now.into(), &mut statement_args);
        sql.push_str(&format!(" AND status <> 'completed' AND deadline IS NOT NULL AND deadline <= {p}"));
    }
    let p = next((limit + 1).into(), &mut statement_args);
    sql.push_str(&format!(" ORDER BY id LIMIT CAST({p} AS BIGINT)"));
    let mut statement = Statement::new(sql);
    for arg in statement_args {
        statement = statement.bind(arg);
    }
    let rows = conn.fetch(statement).await?;
    assemble(conn, &rows, now).await
}

/// Inserts a task with its links and auditors; returns its id.
pub async fn insert(tx: &mut Tx, row: &TaskRow<'_>, now: Micros) -> StoreResult<i64> {
    let task = row.task;
    let rows = tx
        .write_returning(
            Statement::new(
                "INSERT INTO tasks (title, description, responsible_id, creator, creator_id, status, deadline,
                     require_result, result, checklist, tags, overdue_at, created_at, updated_at, completed_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, 1) RETURNING id",
            )
            .bind(task.title.as_str())
            .bind(task.description.as_str())
            .bind(task.responsible)
            .bind(task.creator.to_json_string())
            .bind(task.creator.user_id())
            .bind(task.status.as_str())
            .bind(row.deadline)
            .bind(i64::from(task.require_result))
            .bind(task.result.clone())
            .bind(serde_json::to_string(&task.checklist).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&task.tags).unwrap_or_else(|_| "[]".into()))
            .bind(None::<i64>)
            .bind(now)
            .bind(row.completed_at),
        )
        .await?;
    let id: i64 = rows.first().map(|r| r.get("id")).transpose()?.unwrap_or_default();
    write_members(tx, id, task);
    Ok(id)
}

/// Replaces a task's links and auditors (deferred with the transaction's next statement).
fn write_members(tx: &mut Tx, id: i64, task: &Task) {
    for link in &task.links {
        tx.defer(
            Statement::new("INSERT INTO task_links (task_id, type_key, item_id) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(link.type_key.as_str())
                .bind(link.id),
        );
    }
    for user in &task.auditors {
        tx.defer(Statement::new("INSERT INTO task_auditors (task_id, user_id) VALUES ($1, $2)").bind(id).bind(*user));
    }
}

/// Writes a changed task if its version is still `task.version - 1`; false when it changed
/// meanwhile.
pub async fn update(tx: &mut Tx, row: &TaskRow<'_>, now: Micros) -> StoreResult<bool> {
    let task = row.task;
    let changed = tx
        .write_returning(
            Statement::new(
                "UPDATE tasks SET title = $1, description = $2, responsible_id = $3, status = $4, deadline = $5,
                     require_result = $6, result = $7, checklist = $8, tags = $9,
                     overdue_at = CASE WHEN $10 = 1 THEN NULL ELSE overdue_at END, updated_at = $11,
                     completed_at = $12, version = $13
                 WHERE id = $14 AND version = $15 RETURNING id",
            )
            .bind(task.title.as_str())
            .bind(task.description.as_str())
            .bind(task.responsible)
            .bind(task.status.as_str())
            .bind(row.deadline)
            .bind(i64::from(task.require_result))
            .bind(task.result.clone())
            .bind(serde_json::to_string(&task.checklist).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&task.tags).unwrap_or_else(|_| "[]".into()))
            .bind(i64::from(row.rewatch))
            .bind(now)
            .bind(row.completed_at)
            .bind(task.version)
            .bind(task.id)
            .bind(task.version - 1),
        )
        .await?;
    if changed.is_empty() {
        return Ok(false);
    }
    tx.defer(Statement::new("DELETE FROM task_links WHERE task_id = $1").bind(task.id));
    tx.defer(Statement::new("DELETE FROM task_auditors WHERE task_id = $1").bind(task.id));
    write_members(tx, task.id, task);
    Ok(true)
}

/// The earliest deadline still watched (of a task not completed and not yet noted overdue).
pub async fn next_deadline(pool: &Reader) -> StoreResult<Option<Micros>> {
    Ok(pool.scalar(Statement::new("SELECT MIN(deadline) FROM tasks WHERE overdue_at IS NULL AND status <> 'completed' AND deadline IS NOT NULL",))
    .await?)
}

/// Marks the tasks whose deadline passed by `now` overdue, at most `limit`, and returns their ids
/// (each exactly once, even with several hosts: the mark is conditional).
pub async fn mark_overdue(tx: &mut Tx, now: Micros, limit: i64) -> StoreResult<Vec<i64>> {
    let rows = tx
        .write_returning(
            Statement::new(
                "UPDATE tasks SET overdue_at = $1 WHERE id IN (
                     SELECT id FROM tasks WHERE overdue_at IS NULL AND status <> 'completed' AND deadline IS NOT NULL
                         AND deadline <= $1 ORDER BY deadline LIMIT CAST($2 AS BIGINT))
                 AND overdue_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(limit),
        )
        .await?;
    rows.iter().map(|r| Ok(r.get("id")?)).collect()
}

/// The least busy active user among `candidates` (fewest open tasks, then lowest id).
pub async fn least_busy(conn: &mut impl Fetch, candidates: &[i64]) -> StoreResult<Option<i64>> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let list = candidates.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT u.id FROM users u
         LEFT JOIN tasks t ON t.responsible_id = u.id AND t.status <> 'completed'
         WHERE u.id IN ({list}) AND u.active = 1
         GROUP BY u.id ORDER BY COUNT(t.id), u.id LIMIT 1"
    );
    Ok(conn.fetch_first(Statement::new(sql)).await?.map(|row| row.get(0)).transpose()?)
}
