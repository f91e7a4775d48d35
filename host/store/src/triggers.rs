//! Triggers: rules on a stage that move items there when a matching event happens.

use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::time::{now_micros, to_rfc3339};

/// A trigger as stored, secret included: a rule that moves items into its stage.
#[derive(Debug, Clone)]
pub struct StoredTrigger {
    /// Trigger id, as in `.../triggers/{id}` and in the `trigger` actor of the moves it makes.
    pub id: i64,
    /// Key of the entity type whose items it moves.
    pub type_key: String,
    /// Key of the funnel of the stage items move to.
    pub funnel: String,
    /// The stage items move to.
    pub stage: String,
    /// Kind, e.g. `field-changed`.
    pub kind: String,
    /// The kind's settings (JSON).
    pub config: serde_json::Value,
    /// Whether items in later stages move back too.
    pub allow_backwards: bool,
    /// Rhai expression over `item`; the trigger moves the item only when it is true.
    pub condition: Option<String>,
    /// The secret of a webhook trigger's URL.
    pub secret: Option<String>,
    /// The plugin a plugin trigger runs (kept apart so a plugin in use cannot be deleted).
    pub plugin: Option<String>,
    /// The last event of the stream when it was created: it reacts only to later ones.
    pub since_event: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

const COLUMNS: &str = "id, type_key, funnel_key, stage_key, kind, config, allow_backwards, condition, secret, plugin, since_event, created_at";

fn trigger_from_row(row: &Row) -> StoreResult<StoredTrigger> {
    Ok(StoredTrigger {
        id: row.get("id")?,
        type_key: row.get("type_key")?,
        funnel: row.get("funnel_key")?,
        stage: row.get("stage_key")?,
        kind: row.get("kind")?,
        config: parse_json("triggers", &row.get::<String>("config")?)?,
        allow_backwards: row.get::<i64>("allow_backwards")? != 0,
        condition: row.get("condition")?,
        secret: row.get("secret")?,
        plugin: row.get("plugin")?,
        since_event: row.get("since_event")?,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Every trigger (the dispatcher matches events against all of them: there are few).
pub async fn all(pool: &Reader) -> StoreResult<Vec<StoredTrigger>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers ORDER BY id");
    let rows = pool.fetch_all(Statement::new(sql)).await?;
    rows.iter().map(trigger_from_row).collect()
}

/// Finds a row while a trigger exists (see [`super::jobs::pass_over_unwatched`]).
pub const ANY_TRIGGER: &str = "SELECT 1 FROM triggers";

/// The triggers of a stage, oldest first.
pub async fn on_stage(pool: &Reader, type_key: &str, funnel: &str, stage: &str) -> StoreResult<Vec<StoredTrigger>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM triggers WHERE type_key = $1 AND funnel_key = $2 AND stage_key = $3 ORDER BY id"
    );
    let rows = pool.fetch_all(Statement::new(sql).bind(type_key).bind(funnel).bind(stage)).await?;
    rows.iter().map(trigger_from_row).collect()
}

/// A trigger by id, if it exists.
pub async fn get(pool: &Reader, id: i64) -> StoreResult<Option<StoredTrigger>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers WHERE id = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(trigger_from_row).transpose()
}

/// The webhook trigger with this secret.
pub async fn by_secret(pool: &Reader, secret: &str) -> StoreResult<Option<StoredTrigger>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers WHERE secret = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(secret)).await?;
    row.as_ref().map(trigger_from_row).transpose()
}

/// Inserts a trigger, reacting to events after the last one now, and returns its id and that
/// event's id.
pub async fn insert(tx: &mut Tx, trigger: &StoredTrigger) -> StoreResult<(i64, i64)> {
    let insert = Statement::new(
        "INSERT INTO triggers (kind, config, allow_backwards, condition, secret, plugin, type_key, funnel_key, stage_key, created_at, since_event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, (SELECT COALESCE(MAX(id), 0) FROM events)) RETURNING id, since_event",
    );
    let insert = bind_settings(insert, trigger)
        .bind(&trigger.type_key)
        .bind(&trigger.funnel)
        .bind(&trigger.stage)
        .bind(now_micros());
    let row = tx.fetch_one(insert).await?;
    Ok((row.get("id")?, row.get("since_event")?))
}

/// Binds a trigger's settings to `$1..$6` (kind, config, backwards, condition, secret,
/// plugin), the columns an insert and an update share.
fn bind_settings(statement: Statement, trigger: &StoredTrigger) -> Statement {
    statement
        .bind(&trigger.kind)
        .bind(trigger.config.to_string())
        .bind(i64::from(trigger.allow_backwards))
        .bind(&trigger.condition)
        .bind(&trigger.secret)
        .bind(&trigger.plugin)
}

/// Updates a trigger's settings.
pub async fn update(tx: &mut Tx, trigger: &StoredTrigger) -> StoreResult<()> {
    let update = Statement::new(
        "UPDATE triggers SET kind = $1, config = $2, allow_backwards = $3, condition = $4, secret = $5, plugin = $6
         WHERE id = $7",
    );
    Ok(tx.execute(bind_settings(update, trigger).bind(trigger.id)).await?)
}

/// Deletes a trigger by id; nothing happens when there is none.
pub async fn delete(tx: &mut Tx, id: i64) -> StoreResult<()> {
    tx.execute(Statement::new("DELETE FROM triggers WHERE id = $1").bind(id)).await?;
    Ok(())
}

/// How many triggers run a plugin.
pub async fn count_using(tx: &mut Tx, plugin: &str) -> StoreResult<i64> {
    Ok(tx.fetch_one(Statement::new("SELECT COUNT(*) FROM triggers WHERE plugin = $1").bind(plugin)).await?.get(0)?)
}
