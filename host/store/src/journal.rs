//! Stage history and timeline entries of items.

use crate::{Reader, Statement, StoreError, StoreResult, Tx, parse_json};
use voronka_model::actor::Actor;
use voronka_model::item::{HistoryEntry, StagePoint, TimelineEntry, TimelineKind};
use voronka_model::time::{Micros, to_rfc3339};

/// The record of a stage or funnel change; from nowhere (no funnel, no stage) at creation.
pub fn move_statement(item_id: i64, from: &StagePoint, to: &StagePoint, actor: &Actor, at: Micros) -> Statement {
    Statement::new(
        "INSERT INTO stage_history (item_id, from_funnel, from_stage, to_funnel, to_stage, actor, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(item_id)
    .bind(&from.funnel)
    .bind(&from.stage)
    .bind(&to.funnel)
    .bind(&to.stage)
    .bind(actor.to_json_string())
    .bind(at)
}

/// Where an item was before its last change of funnel: the `from` of its latest history entry
/// whose funnel differs from its `to` (an entry without a `from`, the item's creation, is no
/// change of funnel); `None` when it never changed funnel.
pub async fn before_last_funnel_change(tx: &mut Tx, item_id: i64) -> StoreResult<Option<StagePoint>> {
    let row = tx
        .fetch_optional(
            Statement::new(
                "SELECT from_funnel, from_stage FROM stage_history
                 WHERE item_id = $1 AND from_funnel IS NOT NULL AND from_funnel <> to_funnel
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(item_id),
        )
        .await?;
    Ok(match row {
        Some(r) => Some(StagePoint { funnel: r.get("from_funnel")?, stage: r.get("from_stage")? }),
        None => None,
    })
}

/// History of an item, oldest first, after entry `after`, at most `limit + 1` entries.
pub async fn history(pool: &Reader, item_id: i64, after: i64, limit: i64) -> StoreResult<Vec<HistoryEntry>> {
    let rows = pool
        .fetch_all(
            Statement::new(
                "SELECT id, from_funnel, from_stage, to_funnel, to_stage, actor, at FROM stage_history
         WHERE item_id = $1 AND id > $2 ORDER BY id LIMIT CAST($3 AS BIGINT)",
            )
            .bind(item_id)
            .bind(after)
            .bind(limit + 1),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                id: r.get("id")?,
                from: Some(StagePoint { funnel: r.get("from_funnel")?, stage: r.get("from_stage")? })
                    .filter(|from| from.funnel.is_some() || from.stage.is_some()),
                to: StagePoint { funnel: r.get("to_funnel")?, stage: r.get("to_stage")? },
                actor: Actor::from_json_str(&r.get::<String>("actor")?),
                at: to_rfc3339(r.get("at")?),
            })
        })
        .collect()
}

/// A timeline entry to write.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Id of the item whose timeline the entry joins.
    pub item_id: i64,
    /// Comment or system entry.
    pub kind: TimelineKind,
    /// The comment, or what happened in words (e.g. `Created`).
    pub text: &'a str,
    /// Structured details (JSON, `{}` when none), e.g. the changes of an update.
    pub data: &'a serde_json::Value,
    /// Who wrote it: a user, or the automation or host that did.
    pub actor: &'a Actor,
    /// When, in microseconds since the Unix epoch.
    pub at: Micros,
}

/// The statement adding `entry`.
pub fn entry_statement(entry: &NewEntry<'_>, returning_id: bool) -> Statement {
    let kind = match entry.kind {
        TimelineKind::Comment => "comment",
        TimelineKind::System => "system",
    };
    let sql = if returning_id { INSERT_ENTRY_RETURNING_ID } else { INSERT_ENTRY };
    Statement::new(sql)
        .bind(entry.item_id)
        .bind(kind)
        .bind(entry.text)
        .bind(entry.data.to_string())
        .bind(entry.actor.to_json_string())
        .bind(entry.at)
}

const INSERT_ENTRY: &str =
    "INSERT INTO timeline (item_id, kind, text, data, actor, at) VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_ENTRY_RETURNING_ID: &str =
    "INSERT INTO timeline (item_id, kind, text, data, actor, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// Adds a timeline entry and returns its id.
pub async fn add_entry(tx: &mut Tx, entry: &NewEntry<'_>) -> StoreResult<i64> {
    let rows = tx.write_returning(entry_statement(entry, true)).await?;
    match rows.first() {
        Some(row) => Ok(row.get(0)?),
        None => Err(StoreError::Corrupt { table: "timeline", message: "insert returned no id".into() }),
    }
}

/// Timeline of an item, newest first, before entry `before`, at most `limit + 1` entries.
pub async fn timeline(pool: &Reader, item_id: i64, before: i64, limit: i64) -> StoreResult<Vec<TimelineEntry>> {
    let rows = pool.fetch_all(Statement::new("SELECT id, kind, text, data, actor, at FROM timeline WHERE item_id = $1 AND id < $2 ORDER BY id DESC LIMIT CAST($3 AS BIGINT)",).bind(item_id) .bind(before) .bind(limit + 1))
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get("kind")?;
            Ok(TimelineEntry {
                id: r.get("id")?,
                kind: if kind == "comment" { TimelineKind::Comment } else { TimelineKind::System },
                text: r.get("text")?,
                data: parse_json("timeline", &r.get::<String>("data")?)?,
                actor: Actor::from_json_str(&r.get::<String>("actor")?),
                at: to_rfc3339(r.get("at")?),
            })
        })
        .collect()
}
