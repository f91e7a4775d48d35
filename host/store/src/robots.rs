//! Robots: plugin bindings on a stage.

use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::time::{now_micros, to_rfc3339};

/// How a robot waits for the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RobotMode {
    /// Starts when the robot before it (by order) has finished.
    AfterPrevious,
    /// Starts at once (after its delay), alongside the others.
    Parallel,
}

impl RobotMode {
    fn as_str(self) -> &'static str {
        match self {
            RobotMode::AfterPrevious => "after-previous",
            RobotMode::Parallel => "parallel",
        }
    }
}

/// A robot due relative to a date or datetime field of the item, e.g. one day before
/// `install_date`: `{"field": "install_date", "offset_s": -86400}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelativeTo {
    /// The date or datetime field (a date means midnight UTC).
    pub field: String,
    /// Seconds after the field's time (negative: before).
    #[serde(default)]
    pub offset_s: i64,
}

/// A robot bound to a stage.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Robot {
    /// Robot id, as in `.../robots/{id}` and in the `robot` actor of the changes it makes.
    pub id: i64,
    /// Key of the entity type whose stage it is bound to.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Key of the funnel of that stage.
    pub funnel: String,
    /// Key of the stage; the robot runs when an item enters it.
    pub stage: String,
    /// Name of the plugin it runs, of world `robot` (a built-in one such as `set-field`, or uploaded).
    pub plugin: String,
    /// Version requirement: `latest` or a semver requirement.
    pub version: String,
    /// JSON config handed to the plugin.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Rhai expression over `item`; the robot runs only when it is true.
    pub condition: Option<String>,
    /// Seconds to wait after the item enters the stage.
    pub delay_s: i64,
    /// Instead of a delay, run at a time given by a date field of the item.
    pub relative_to: Option<RelativeTo>,
    /// `after-previous`: waits for the robot before it to finish; `parallel`: runs alongside.
    pub mode: RobotMode,
    /// Position among the stage's robots, which are listed and queued lowest first (ties by id).
    pub order: i64,
    /// When it was bound (RFC 3339).
    pub created_at: String,
}

const COLUMNS: &str = "id, type_key, funnel_key, stage_key, plugin, version_req, config, condition, delay_s, \
                       relative_field, relative_offset_s, mode, position, created_at";

fn robot_from_row(row: &Row) -> StoreResult<Robot> {
    let mode: String = row.get("mode")?;
    Ok(Robot {
        id: row.get("id")?,
        type_key: row.get("type_key")?,
        funnel: row.get("funnel_key")?,
        stage: row.get("stage_key")?,
        plugin: row.get("plugin")?,
        version: row.get("version_req")?,
        config: parse_json("robots", &row.get::<String>("config")?)?,
        condition: row.get("condition")?,
        delay_s: row.get("delay_s")?,
        relative_to: row
            .get::<Option<String>>("relative_field")?
            .map(|field| Ok::<_, voronka_db::DbError>(RelativeTo { field, offset_s: row.get("relative_offset_s")? }))
            .transpose()?,
        mode: if mode == "parallel" { RobotMode::Parallel } else { RobotMode::AfterPrevious },
        order: row.get("position")?,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Robots of a stage, by order.
pub async fn on_stage(pool: &Reader, type_key: &str, funnel: &str, stage: &str) -> StoreResult<Vec<Robot>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM robots WHERE type_key = $1 AND funnel_key = $2 AND stage_key = $3 ORDER BY position, id"
    );
    let rows = pool.fetch_all(Statement::new(sql).bind(type_key).bind(funnel).bind(stage)).await?;
    rows.iter().map(robot_from_row).collect()
}

/// Whether any robot is bound to any stage.
pub async fn any(pool: &Reader) -> StoreResult<bool> {
    Ok(pool.fetch_optional(Statement::new("SELECT 1 FROM robots LIMIT 1")).await?.is_some())
}

/// The plugins robot bindings name: (plugin, version requirement), each once.
pub async fn bound_plugins(pool: &Reader) -> StoreResult<Vec<(String, String)>> {
    let rows = pool.fetch_all(Statement::new("SELECT DISTINCT plugin, version_req FROM robots")).await?;
    rows.iter().map(|r| Ok((r.get("plugin")?, r.get("version_req")?))).collect()
}

/// A robot by id, if it exists.
pub async fn get(pool: &Reader, id: i64) -> StoreResult<Option<Robot>> {
    let sql = format!("SELECT {COLUMNS} FROM robots WHERE id = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(robot_from_row).transpose()
}

/// Inserts a robot and returns its id.
pub async fn insert(tx: &mut Tx, robot: &Robot) -> StoreResult<i64> {
    let insert = Statement::new(
        "INSERT INTO robots (plugin, version_req, config, condition, delay_s, mode, position, relative_field, relative_offset_s,
             type_key, funnel_key, stage_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    );
    let insert =
        bind_settings(insert, robot).bind(&robot.type_key).bind(&robot.funnel).bind(&robot.stage).bind(now_micros());
    Ok(tx.fetch_one(insert).await?.get(0)?)
}

/// Binds a robot's settings to `$1..$9` (plugin, version, config, condition, delay, mode,
/// order, relative field and offset), the columns an insert and an update share.
fn bind_settings(statement: Statement, robot: &Robot) -> Statement {
    statement
        .bind(&robot.plugin)
        .bind(&robot.version)
        .bind(robot.config.to_string())
        .bind(&robot.condition)
        .bind(robot.delay_s)
        .bind(robot.mode.as_str())
        .bind(robot.order)
        .bind(robot.relative_to.as_ref().map(|r| r.field.as_str()))
        .bind(robot.relative_to.as_ref().map_or(0, |r| r.offset_s))
}

/// Updates a robot's settings.
pub async fn update(tx: &mut Tx, robot: &Robot) -> StoreResult<()> {
    let update = Statement::new(
        "UPDATE robots SET plugin = $1, version_req = $2, config = $3, condition = $4, delay_s = $5, mode = $6, position = $7,
             relative_field = $8, relative_offset_s = $9
         WHERE id = $10",
    );
    Ok(tx.execute(bind_settings(update, robot).bind(robot.id)).await?)
}

/// Deletes a robot and cancels its pending jobs.
pub async fn delete(tx: &mut Tx, id: i64) -> StoreResult<()> {
    tx.execute(
        Statement::new(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1 WHERE robot_id = $2 AND status = 'pending'",
        )
        .bind(now_micros())
        .bind(id),
    )
    .await?;
    tx.execute(Statement::new("DELETE FROM robots WHERE id = $1").bind(id)).await?;
    Ok(())
}

/// How many robots use a plugin.
pub async fn count_using(tx: &mut Tx, plugin: &str) -> StoreResult<i64> {
    Ok(tx.fetch_one(Statement::new("SELECT COUNT(*) FROM robots WHERE plugin = $1").bind(plugin)).await?.get(0)?)
}
