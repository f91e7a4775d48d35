//! Stage history and timeline entries of items.

use sqlx::{AnyPool, Row};

use super::{StoreResult, Tx, parse_json};
use crate::model::actor::Actor;
use crate::model::item::{HistoryEntry, StagePoint, TimelineEntry, TimelineKind};
use crate::model::time::{Micros, to_rfc3339};

/// Records a stage or funnel change.
pub async fn record_move(
    tx: &mut Tx,
    item_id: i64,
    from: &StagePoint,
    to: &StagePoint,
    actor: &Actor,
    at: Micros,
) -> StoreResult<()> {
    sqlx::query(
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// History of an item, oldest first, after entry `after`, at most `limit + 1` entries.
pub async fn history(pool: &AnyPool, item_id: i64, after: i64, limit: i64) -> StoreResult<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT id, from_funnel, from_stage, to_funnel, to_stage, actor, at FROM stage_history
         WHERE item_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(item_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                id: r.try_get("id")?,
                from: StagePoint { funnel: r.try_get("from_funnel")?, stage: r.try_get("from_stage")? },
                to: StagePoint { funnel: r.try_get("to_funnel")?, stage: r.try_get("to_stage")? },
                actor: Actor::from_json_str(&r.try_get::<String, _>("actor")?),
                at: to_rfc3339(r.try_get("at")?),
            })
        })
        .collect()
}

/// Adds a timeline entry and returns its id.
pub async fn add_entry(
    tx: &mut Tx,
    item_id: i64,
    kind: TimelineKind,
    text: &str,
    data: &serde_json::Value,
    actor: &Actor,
    at: Micros,
) -> StoreResult<i64> {
    let kind = match kind {
        TimelineKind::Comment => "comment",
        TimelineKind::System => "system",
    };
    Ok(sqlx::query_scalar(
        "INSERT INTO timeline (item_id, kind, text, data, actor, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(item_id)
    .bind(kind)
    .bind(text)
    .bind(data.to_string())
    .bind(actor.to_json_string())
    .bind(at)
    .fetch_one(&mut **tx)
    .await?)
}

/// Timeline of an item, newest first, before entry `before`, at most `limit + 1` entries.
pub async fn timeline(pool: &AnyPool, item_id: i64, before: i64, limit: i64) -> StoreResult<Vec<TimelineEntry>> {
    let rows = sqlx::query(
        "SELECT id, kind, text, data, actor, at FROM timeline WHERE item_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(item_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(TimelineEntry {
                id: r.try_get("id")?,
                kind: if kind == "comment" { TimelineKind::Comment } else { TimelineKind::System },
                text: r.try_get("text")?,
                data: parse_json("timeline", &r.try_get::<String, _>("data")?)?,
                actor: Actor::from_json_str(&r.try_get::<String, _>("actor")?),
                at: to_rfc3339(r.try_get("at")?),
            })
        })
        .collect()
}
