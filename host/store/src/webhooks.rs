//! Outgoing webhooks: subscriptions and their deliveries (a durable queue, like robot jobs).

use crate::lease::LeaseQueue;
use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::time::{Micros, to_rfc3339};
use voronka_model::webhook::WebhookFilter;

/// A webhook subscription as stored, secret included.
#[derive(Debug, Clone)]
pub struct StoredWebhook {
    /// Subscription id, as in `/webhooks/{id}`.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// Event kinds (`*` for all).
    pub events: Vec<String>,
    /// Which events of those kinds.
    pub filter: WebhookFilter,
    /// HMAC key of the signature.
    pub secret: String,
    /// Paused subscriptions receive nothing.
    pub active: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

const COLUMNS: &str = "id, url, events, filter, secret, active, created_at";

fn webhook_from_row(row: &Row) -> StoreResult<StoredWebhook> {
    Ok(StoredWebhook {
        id: row.get("id")?,
        url: row.get("url")?,
        events: parse_json("webhooks", &row.get::<String>("events")?)?,
        filter: parse_json("webhooks", &row.get::<String>("filter")?)?,
        secret: row.get("secret")?,
        active: row.get::<i64>("active")? != 0,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Every subscription, oldest first.
pub async fn all(pool: &Reader) -> StoreResult<Vec<StoredWebhook>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks ORDER BY id");
    let rows = pool.fetch_all(Statement::new(sql)).await?;
    rows.iter().map(webhook_from_row).collect()
}

/// Active subscriptions, inside the fan-out's transaction.
pub async fn active_in(tx: &mut Tx) -> StoreResult<Vec<StoredWebhook>> {
    let rows =
        tx.fetch_all(Statement::new(format!("SELECT {COLUMNS} FROM webhooks WHERE active = 1 ORDER BY id"))).await?;
    rows.iter().map(webhook_from_row).collect()
}

/// Whether any subscription is active.
pub async fn any_active(pool: &Reader) -> StoreResult<bool> {
    let sql = format!("{ANY_ACTIVE} LIMIT 1");
    Ok(pool.fetch_optional(Statement::new(sql)).await?.is_some())
}

/// Finds a row while a subscription is active (see [`super::jobs::pass_over_unwatched`]).
pub const ANY_ACTIVE: &str = "SELECT 1 FROM webhooks WHERE active = 1";

/// A subscription by id, if it exists.
pub async fn get(pool: &Reader, id: i64) -> StoreResult<Option<StoredWebhook>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(webhook_from_row).transpose()
}

/// Inserts a subscription and returns its id.
pub async fn insert(tx: &mut Tx, webhook: &StoredWebhook, now: Micros) -> StoreResult<i64> {
    let statement = Statement::new(
        "INSERT INTO webhooks (url, events, filter, secret, active, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&webhook.url)
    .bind(json_text(&webhook.events))
    .bind(json_text(&webhook.filter))
    .bind(&webhook.secret)
    .bind(i64::from(webhook.active))
    .bind(now);
    Ok(tx.fetch_one(statement).await?.get(0)?)
}

/// Writes a subscription's URL, events, filter, secret and active flag.
pub async fn update(tx: &mut Tx, webhook: &StoredWebhook) -> StoreResult<()> {
    tx.execute(
        Statement::new(
            "UPDATE webhooks SET url = $1, events = $2, filter = $3, secret = $4, active = $5 WHERE id = $6",
        )
        .bind(&webhook.url)
        .bind(json_text(&webhook.events))
        .bind(json_text(&webhook.filter))
        .bind(&webhook.secret)
        .bind(i64::from(webhook.active))
        .bind(webhook.id),
    )
    .await?;
    Ok(())
}

/// Deletes a subscription with its deliveries.
pub async fn delete(tx: &mut Tx, id: i64) -> StoreResult<()> {
    tx.execute(Statement::new("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id)).await?;
    tx.execute(Statement::new("DELETE FROM webhooks WHERE id = $1").bind(id)).await?;
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A delivery of one event to one subscription, with its attempts.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Delivery id, sent in the `X-Voronka-Delivery` header of each attempt.
    pub id: i64,
    /// Id of the subscription it is for.
    pub webhook: i64,
    /// Id of the event delivered, as in `GET /events`.
    pub event: i64,
    /// `pending` (waiting for its next attempt), `delivered` or `failed` (gave up).
    pub status: String,
    /// Attempts so far; given up after 16 (a redelivery starts again from 0).
    pub attempts: i64,
    /// HTTP status of the last attempt, if the target answered.
    pub last_status: Option<i64>,
    /// What went wrong in the last attempt; `null` if it succeeded or none was made yet.
    pub last_error: Option<String>,
    /// Every attempt: `{"at", "status", "error", "ms"}`.
    #[schema(value_type = Vec<Object>)]
    pub log: Vec<serde_json::Value>,
    /// When the next attempt is due (RFC 3339); `null` unless `pending`.
    pub next_at: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When it was delivered or given up (RFC 3339); `null` while `pending`.
    pub finished_at: Option<String>,
}

const DELIVERY_COLUMNS: &str =
    "id, webhook_id, event_id, status, attempts, next_at, last_status, last_error, log, created_at, finished_at";

fn delivery_from_row(row: &Row) -> StoreResult<Delivery> {
    let status: String = row.get("status")?;
    let pending = status == "pending" || status == "sending";
    Ok(Delivery {
        id: row.get("id")?,
        webhook: row.get("webhook_id")?,
        event: row.get("event_id")?,
        status: if status == "sending" { "pending".into() } else { status },
        attempts: row.get("attempts")?,
        last_status: row.get("last_status")?,
        last_error: row.get("last_error")?,
        log: parse_json("webhook_deliveries", &row.get::<String>("log")?)?,
        next_at: pending.then(|| row.get("next_at").map(to_rfc3339)).transpose()?,
        created_at: to_rfc3339(row.get("created_at")?),
        finished_at: row.get::<Option<i64>>("finished_at")?.map(to_rfc3339),
    })
}

/// Queues a delivery (sent with the transaction's next statement or commit).
pub fn enqueue(tx: &mut Tx, webhook_id: i64, event_id: i64, now: Micros) {
    tx.defer(
        Statement::new(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, next_at, log, created_at)
             VALUES ($1, $2, 'pending', 0, $3, '[]', $3)",
        )
        .bind(webhook_id)
        .bind(event_id)
        .bind(now),
    );
}

/// A delivery claimed for an attempt, with what it needs to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Delivery id, sent as the `X-Voronka-Delivery` header.
    pub id: i64,
    /// Id of the subscription to send to.
    pub webhook_id: i64,
    /// Id of the event to send.
    pub event_id: i64,
    /// Attempts including this one.
    pub attempts: i64,
    /// The attempts before this one.
    pub log: Vec<serde_json::Value>,
}

/// The queue of deliveries: a pending one is due at `next_at`; one being sent is held by its
/// sender.
pub const QUEUE: LeaseQueue = LeaseQueue {
    table: "webhook_deliveries",
    waiting: "q.status = 'pending'",
    due: "q.next_at",
    order: "q.next_at, q.id",
    held: "status = 'sending'",
    takeover: "1 = 1",
    on_claim: ", status = 'sending', attempts = attempts + 1",
};

/// Claims up to `limit` due deliveries, and those whose sender's lease expired (a crash),
/// marking them `sending` until `lease_until`. PostgreSQL senders skip rows other hosts hold.
pub async fn claim(tx: &mut Tx, now: Micros, lease_until: Micros, limit: i64) -> StoreResult<Vec<ClaimedDelivery>> {
    let rows = QUEUE.claim(tx, now, lease_until, limit, "id, webhook_id, event_id, attempts, log").await?;
    rows.iter()
        .map(|r| {
            Ok(ClaimedDelivery {
                id: r.get("id")?,
                webhook_id: r.get("webhook_id")?,
                event_id: r.get("event_id")?,
                attempts: r.get("attempts")?,
                log: parse_json("webhook_deliveries", &r.get::<String>("log")?)?,
            })
        })
        .collect()
}

/// The outcome of one attempt.
pub struct Attempt<'a> {
    /// `delivered`, `failed` (given up) or `pending` (try again at `next_at`).
    pub status: &'a str,
    /// HTTP status, if the target answered.
    pub http_status: Option<i64>,
    /// What went wrong, in words (the target's answer or the connection error); `None` if delivered.
    pub error: Option<&'a str>,
    /// The attempt as a log entry.
    pub entry: serde_json::Value,
    /// The next attempt's time (pending).
    pub next_at: Micros,
    /// When the attempt ended, in microseconds since the Unix epoch (`finished_at` unless pending).
    pub now: Micros,
}

/// Records an attempt on a delivery this sender still holds; false (or `CheckFailed` at commit
/// on SQLite) when another sender took it over after the lease expired.
pub async fn record_attempt(tx: &mut Tx, delivery: &ClaimedDelivery, attempt: &Attempt<'_>) -> StoreResult<bool> {
    // The log keeps the last 20 attempts.
    let mut log = delivery.log.clone();
    log.push(attempt.entry.clone());
    let keep = log.len().saturating_sub(20);
    let log: Vec<_> = log.into_iter().skip(keep).collect();
    let finished = (attempt.status != "pending").then_some(attempt.now);
    let update = Statement::new(
        "UPDATE webhook_deliveries SET status = $1, last_status = $2, last_error = $3, log = $4, next_at = $5,
             finished_at = $6, lease_until = NULL
         WHERE id = $7 AND status = 'sending' AND attempts = $8",
    )
    .bind(attempt.status)
    .bind(attempt.http_status)
    .bind(attempt.error)
    .bind(json_text(&log))
    .bind(attempt.next_at)
    .bind(finished)
    .bind(delivery.id)
    .bind(delivery.attempts);
    Ok(tx.write_checked(update, Vec::new()).await?)
}

/// Puts a finished delivery back in the queue for a new round of attempts.
pub async fn redeliver(tx: &mut Tx, webhook_id: i64, id: i64, now: Micros) -> StoreResult<bool> {
    let update = Statement::new(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_at = $1, finished_at = NULL
         WHERE id = $2 AND webhook_id = $3 AND status IN ('delivered', 'failed')",
    )
    .bind(now)
    .bind(id)
    .bind(webhook_id);
    Ok(tx.write_checked(update, Vec::new()).await?)
}

/// A subscription's deliveries, newest first, before the cursor: at most `limit + 1`.
pub async fn deliveries(pool: &Reader, webhook_id: i64, before: Option<i64>, limit: i64) -> StoreResult<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT CAST($3 AS BIGINT)"
    );
    let rows =
        pool.fetch_all(Statement::new(sql).bind(webhook_id).bind(before.unwrap_or(i64::MAX)).bind(limit + 1)).await?;
    rows.iter().map(delivery_from_row).collect()
}
