//! Outgoing webhooks: the fan-out reads the outbox in order and queues a delivery for every
//! subscription an event matches, in the same transaction as its position; senders claim due
//! deliveries, POST the event signed with HMAC-SHA256, and retry failures with exponential
//! backoff until they give up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

use super::background::{self, Next};
use crate::service::{Core, ServiceResult};
use voronka_model::time::{Micros, now_micros};
use voronka_model::webhook::{backoff_seconds, place_in, signature, subscribed};
use voronka_store::jobs;
use voronka_store::outbox::{self, StoredEvent};
use voronka_store::webhooks::{self as repo, Attempt, ClaimedDelivery};

/// The name of the webhook fan-out's place in the event stream (`cursors` table).
pub const CURSOR: &str = "webhooks";
const BATCH: i64 = 500;
/// Deliveries claimed at once by a sender (sent concurrently).
const CLAIM: i64 = 16;
/// Attempts before a delivery is given up: with the backoff doubling up to an hour, the last
/// comes about four and a half hours after the first.
pub const MAX_ATTEMPTS: i64 = 16;
/// How long a target may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between looks at a shared database's queues (other hosts' events and
/// deliveries).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause between passes over the events while nothing is subscribed.
const UNSUBSCRIBED_PAUSE: Duration = Duration::from_millis(250);
/// Longest kept answer text of a failed attempt.
const MAX_ERROR: usize = 500;

/// Runs the fan-out until shutdown.
pub async fn run_fan_out(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    let events = &core.signals().webhook_events;
    background::run("queueing webhook deliveries", events, timing, shutdown, || async {
        Ok(match fan_out_batch(&core).await? {
            Some((events, deliveries)) => {
                if deliveries > 0 {
                    core.signals().deliveries.notify_one();
                }
                if events as i64 == BATCH { Next::Again } else { Next::Wait(None) }
            }
            // With nothing subscribed, the events of a busy host are passed over a few times a
            // second, not at every commit.
            None => Next::Rest(UNSUBSCRIBED_PAUSE),
        })
    })
    .await
}

/// Queues the deliveries of one batch of events; returns how many events it read and deliveries
/// it queued, or `None` when no subscription is active and the events were passed over unread.
/// A subscription gets the events from its creation on.
pub async fn fan_out_batch(core: &Core) -> ServiceResult<Option<(usize, usize)>> {
    if !repo::any_active(core.store().reader()).await? {
        let mut tx = core.store().begin();
        jobs::pass_over_unwatched(&mut tx, CURSOR, repo::ANY_ACTIVE);
        tx.commit().await?;
        return Ok(None);
    }
    let mut tx = core.store().begin();
    let position = jobs::cursor(&mut tx, CURSOR).await?;
    let events = jobs::events_after(&mut tx, position, BATCH).await?;
    let Some(last) = events.last().map(|e| e.id) else { return Ok(Some((0, 0))) };
    let hooks = repo::active_in(&mut tx).await?;
    let since: Vec<Micros> =
        hooks.iter().map(|h| voronka_model::time::parse_rfc3339(&h.created_at).unwrap_or(0)).collect();
    let now = now_micros();
    let mut queued = 0;
    for event in &events {
        let interested: Vec<_> = hooks
            .iter()
            .zip(&since)
            .filter(|(h, since)| event.at >= **since && subscribed(&h.events, event.kind))
            .map(|(h, _)| h)
            .collect();
        if interested.is_empty() {
            continue;
        }
        let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let mut place = place_in(&payload);
        if place.is_none()
            && interested.iter().any(|h| h.filter.needs_place())
            && let (Some(type_key), Some(id)) = (event.type_key.as_deref(), event.item_id)
            && let Some(item) = voronka_store::items::get_in(&mut tx, type_key, id).await?
        {
            place = item.funnel.zip(item.stage);
        }
        let place = place.as_ref().map(|(f, s)| (f.as_str(), s.as_str()));
        for hook in interested {
            if hook.filter.passes(event.type_key.as_deref(), place) {
                repo::enqueue(&mut tx, hook.id, event.id, now);
                queued += 1;
            }
        }
    }
    jobs::set_cursor(&mut tx, CURSOR, last);
    tx.commit().await?;
    Ok(Some((events.len(), queued)))
}

/// Runs a sender until shutdown.
pub async fn run_sender(core: Arc<Core>, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("voronka-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: outgoing webhooks are not sent");
            return;
        }
    };
    let timing = super::timing(&core, IDLE_POLL, IDLE_POLL);
    let deliveries = &core.signals().deliveries;
    background::run("sending webhook deliveries", deliveries, timing, shutdown, || async {
        if send_once(&core, &client).await? > 0 {
            return Ok(Next::Again);
        }
        Ok(Next::Wait(repo::QUEUE.next_due(core.store().reader(), now_micros()).await?))
    })
    .await
}

/// Claims due deliveries and makes one attempt at each; returns how many.
pub async fn send_once(core: &Core, client: &reqwest::Client) -> ServiceResult<usize> {
    let now = now_micros();
    let lease = now + 2 * REQUEST_TIMEOUT.as_micros() as i64;
    let mut tx = core.store().begin();
    let claimed = repo::claim(&mut tx, now, lease, CLAIM).await?;
    tx.commit().await?;
    let n = claimed.len();
    let attempts = claimed.iter().map(|d| async move {
        if let Err(e) = attempt(core, client, d).await {
            tracing::error!(delivery = d.id, error = %e, "a webhook attempt could not be recorded; it is retried after its lease");
        }
    });
    futures::future::join_all(attempts).await;
    Ok(n)
}

/// One attempt at a delivery, recorded with its outcome.
async fn attempt(core: &Core, client: &reqwest::Client, delivery: &ClaimedDelivery) -> ServiceResult<()> {
    let reader = core.store().reader();
    let Some(hook) = repo::get(reader, delivery.webhook_id).await? else {
        // The subscription was deleted, and its deliveries with it.
        return Ok(());
    };
    let event = event(reader, delivery.event_id).await?;
    let refused = match (&event, hook.active) {
        (None, _) => Some("the event is no longer in the stream"),
        (Some(_), false) => Some("the subscription is paused; redeliver once it is active"),
        (Some(_), true) => None,
    };
    let (Some(event), None) = (event, refused) else {
        let now = now_micros();
        let error = refused.unwrap_or_default();
        let entry = json!({"at": voronka_model::time::to_rfc3339(now), "status": null, "error": error, "ms": 0});
        let outcome = Attempt { status: "failed", http_status: None, error: Some(error), entry, next_at: now, now };
        return record(core, delivery, &outcome).await;
    };
    let body = serde_json::to_vec(&event).unwrap_or_default();
    let started = Instant::now();
    let sent = client
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Voronka-Signature", signature(&hook.secret, &body))
        .header("X-Voronka-Event", event.kind.as_str())
        .header("X-Voronka-Delivery", delivery.id.to_string())
        .body(body)
        .send()
        .await;
    let ms = started.elapsed().as_millis() as i64;
    let (http_status, error) = match sent {
        Ok(response) if response.status().is_success() => (Some(i64::from(response.status().as_u16())), None),
        Ok(response) => {
            let status = response.status();
            let text = first_bytes(response, MAX_ERROR).await;
            (Some(i64::from(status.as_u16())), Some(format!("the target answered {status}: {text}")))
        }
        Err(e) => (None, Some(describe(&e))),
    };
    let now = now_micros();
    let status = match &error {
        None => "delivered",
        Some(_) if delivery.attempts >= MAX_ATTEMPTS => "failed",
        Some(_) => "pending",
    };
    let entry = json!({"at": voronka_model::time::to_rfc3339(now), "status": http_status, "error": error, "ms": ms});
    let outcome = Attempt {
        status,
        http_status,
        error: error.as_deref(),
        entry,
        next_at: now + backoff_seconds(delivery.attempts) * 1_000_000,
        now,
    };
    record(core, delivery, &outcome).await
}

/// Records an attempt, unless another sender took the delivery over meanwhile.
async fn record(core: &Core, delivery: &ClaimedDelivery, outcome: &Attempt<'_>) -> ServiceResult<()> {
    let mut tx = core.store().begin();
    if repo::record_attempt(&mut tx, delivery, outcome).await? {
        match tx.commit().await {
            Ok(()) | Err(voronka_store::DbError::CheckFailed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The start of an answer's body as text, reading no more than `limit` bytes of it.
async fn first_bytes(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(limit - bytes.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One event of the stream.
async fn event(pool: &voronka_store::Reader, id: i64) -> ServiceResult<Option<StoredEvent>> {
    let mut events = outbox::list(pool, id - 1, None, 1).await?;
    events.truncate(1);
    Ok(events.pop().filter(|e| e.id == id))
}

/// A transport error in words, with its cause (refused connection, timeout, TLS).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text.chars().take(MAX_ERROR).collect()
}
