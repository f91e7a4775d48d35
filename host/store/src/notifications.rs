//! Per-user notification inboxes.

use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::item::ItemRef;
use voronka_model::notification::Notification;
use voronka_model::time::{Micros, to_rfc3339};

const COLUMNS: &str = "id, user_id, kind, text, type_key, item_id, data, created_at, read_at";

fn notification_from_row(row: &Row) -> StoreResult<Notification> {
    let type_key: Option<String> = row.get("type_key")?;
    let item_id: Option<i64> = row.get("item_id")?;
    Ok(Notification {
        id: row.get("id")?,
        user: row.get("user_id")?,
        kind: row.get("kind")?,
        text: row.get("text")?,
        about: type_key.zip(item_id).map(|(type_key, id)| ItemRef { type_key, id }),
        data: parse_json("notifications", &row.get::<String>("data")?)?,
        created_at: to_rfc3339(row.get("created_at")?),
        read_at: row.get::<Option<i64>>("read_at")?.map(to_rfc3339),
    })
}

/// Adds a notification to a user's inbox; returns its id.
pub async fn insert(tx: &mut Tx, n: &Notification, now: Micros) -> StoreResult<i64> {
    let rows = tx
        .write_returning(
            Statement::new(
                "INSERT INTO notifications (user_id, kind, text, type_key, item_id, data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(n.user)
            .bind(n.kind.as_str())
            .bind(n.text.as_str())
            .bind(n.about.as_ref().map(|a| a.type_key.clone()))
            .bind(n.about.as_ref().map(|a| a.id))
            .bind(n.data.to_string())
            .bind(now),
        )
        .await?;
    Ok(rows.first().map(|r| r.get("id")).transpose()?.unwrap_or_default())
}

/// A user's notifications, newest first, before `before` (0: from the newest), at most
/// `limit + 1`; only unread ones when `unread`.
pub async fn list(pool: &Reader, user: i64, unread: bool, before: i64, limit: i64) -> StoreResult<Vec<Notification>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND ($2 = 0 OR id < $2) AND ($3 = 0 OR read_at IS NULL)
         ORDER BY id DESC LIMIT CAST($4 AS BIGINT)"
    );
    let rows =
        pool.fetch_all(Statement::new(sql).bind(user).bind(before).bind(i64::from(unread)).bind(limit + 1)).await?;
    rows.iter().map(notification_from_row).collect()
}

/// How many notifications of a user are unread.
pub async fn unread_count(pool: &Reader, user: i64) -> StoreResult<i64> {
    Ok(pool
        .scalar(Statement::new("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL").bind(user))
        .await?)
}

/// Marks a user's notification read (`ids` empty: all of them); returns how many changed.
pub async fn mark_read(tx: &mut Tx, user: i64, ids: &[i64], now: Micros) -> StoreResult<usize> {
    let only = if ids.is_empty() {
        String::new()
    } else {
        format!(" AND id IN ({})", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
    };
    let sql =
        format!("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL{only} RETURNING id");
    Ok(tx.write_returning(Statement::new(sql).bind(now).bind(user)).await?.len())
}

/// Whether a user has the notification `id`.
pub async fn owned_by(pool: &Reader, id: i64, user: i64) -> StoreResult<bool> {
    let row = pool
        .fetch_optional(
            Statement::new("SELECT 1 FROM notifications WHERE id = $1 AND user_id = $2").bind(id).bind(user),
        )
        .await?;
    Ok(row.is_some())
}
