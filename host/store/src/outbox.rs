//! The outbox: domain events written in the same transaction as the change they describe, so
//! automation reading them later never misses a committed change and never sees a rolled-back one.

use crate::{Reader, Statement, StoreResult, Tx, parse_json};
use voronka_model::actor::Actor;
use voronka_model::event::EventKind;
use voronka_model::time::{Micros, to_rfc3339};

/// A domain event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// What happened, e.g. `item.stage_changed`.
    pub kind: EventKind,
    /// Type key of the item concerned; `None` for an event about no item (a task's).
    pub type_key: Option<&'a str>,
    /// Id of the item concerned; `None` for an event about no item (a task's).
    pub item_id: Option<i64>,
    /// Who made the change: a user, or the automation or host that did.
    pub actor: &'a Actor,
    /// Automation chain depth of the change.
    pub depth: u32,
    /// Details (changed fields, from/to stages, the item's state).
    pub payload: serde_json::Value,
}

/// An event of the stream, as `GET /events` and webhook deliveries show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Position in the stream.
    pub id: i64,
    /// Kind, e.g. `item.stage_changed`.
    pub kind: EventKind,
    /// Type key of the item concerned; `null` when the event is about no item (task events).
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    /// Id of the item concerned; `null` when the event is about no item (task events).
    pub item_id: Option<i64>,
    /// Who made the change: a user, or the robot, trigger, schedule, process or host that did.
    pub actor: Actor,
    /// Details by kind: `item` (created, deleted), `changes` (updated), `from` and `to` (moves),
    /// `task`, `notification`, ...
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When it was recorded (RFC 3339, UTC).
    pub at: String,
    /// How many automation steps led to it (0 for a person's change).
    pub depth: i64,
}

/// Appends an event to the outbox inside the change's transaction (sent with the
/// transaction's next statement or commit).
pub fn record(tx: &mut Tx, event: &NewEvent<'_>, at: Micros) {
    tx.defer(event_statement(event, at));
}

/// The statement appending `event`.
pub fn event_statement(event: &NewEvent<'_>, at: Micros) -> Statement {
    Statement::new(
        "INSERT INTO events (kind, type_key, item_id, actor, payload, at, depth)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.kind.as_str())
    .bind(event.type_key)
    .bind(event.item_id)
    .bind(event.actor.to_json_string())
    .bind(event.payload.to_string())
    .bind(at)
    .bind(i64::from(event.depth))
}

/// A stored event kind (written from an [`EventKind`]).
pub fn parse_kind(name: &str) -> StoreResult<EventKind> {
    EventKind::parse(name)
        .ok_or_else(|| super::StoreError::Corrupt { table: "events", message: format!("unknown event kind `{name}`") })
}

/// Events after `after`, oldest first, optionally of one item, at most `limit + 1`.
pub async fn list(pool: &Reader, after: i64, item_id: Option<i64>, limit: i64) -> StoreResult<Vec<StoredEvent>> {
    let rows = pool
        .fetch_all(
            Statement::new(
                "SELECT id, kind, type_key, item_id, actor, payload, at, depth FROM events
         WHERE id > $1 AND ($2 = 0 OR item_id = $2) ORDER BY id LIMIT CAST($3 AS BIGINT)",
            )
            .bind(after)
            .bind(item_id.unwrap_or(0))
            .bind(limit + 1),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredEvent {
                id: r.get("id")?,
                kind: parse_kind(&r.get::<String>("kind")?)?,
                type_key: r.get("type_key")?,
                item_id: r.get("item_id")?,
                actor: Actor::from_json_str(&r.get::<String>("actor")?),
                payload: parse_json("events", &r.get::<String>("payload")?)?,
                at: to_rfc3339(r.get("at")?),
                depth: r.get("depth")?,
            })
        })
        .collect()
}
