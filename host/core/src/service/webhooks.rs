//! Outgoing webhooks: subscriptions (administrators only) and their delivery log; the
//! [`super::Webhooks`] aggregate (`core.webhooks()`).

use serde::{Deserialize, Serialize};

use super::{Caller, ServiceError, ServiceResult, Webhooks, require_admin};
use voronka_model::FieldError;
use voronka_model::time::now_micros;
use voronka_model::webhook::{WebhookFilter, check_events, check_url};
use voronka_store::webhooks::{self as repo, Delivery, StoredWebhook};

/// `POST /webhooks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Target: an `http` or `https` URL.
    pub url: String,
    /// Event kinds, e.g. `["item.stage_changed"]`; `["*"]` for all.
    pub events: Vec<String>,
    /// HMAC-SHA256 key of `X-Voronka-Signature`; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Which events of those kinds: `{"type": .., "funnel": .., "stage": ..}`, all optional.
    #[serde(default)]
    pub filter: WebhookFilter,
    /// Paused subscriptions receive nothing (default `true`).
    #[serde(default = "super::defaults::yes")]
    pub active: bool,
}

/// `PATCH /webhooks/{id}` body: present keys change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New target: an absolute `http` or `https` URL with a host. Absent or `null` keeps it.
    pub url: Option<String>,
    /// New event kinds, replacing the old: at least one known kind, or `["*"]` for all. Absent or
    /// `null` keeps them.
    pub events: Option<Vec<String>>,
    /// New signing key, 1 to 256 bytes; the answer shows it once. Absent or `null` keeps the key.
    pub secret: Option<String>,
    /// New filter, replacing the whole old one (`{}` passes every event of the kinds). Absent or
    /// `null` keeps it.
    pub filter: Option<WebhookFilter>,
    /// `false` pauses the subscription, `true` resumes it. Absent or `null` keeps it.
    pub active: Option<bool>,
}

/// A subscription as the API shows it. The secret appears once, in the answer to its creation
/// (or to a change of it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    /// The subscription's id, as in `/webhooks/{id}`.
    pub id: i64,
    /// The `http` or `https` URL deliveries are POSTed to.
    pub url: String,
    /// The event kinds it receives; `["*"]` is every kind.
    pub events: Vec<String>,
    /// Which events of those kinds it receives; keys it lacks match anything.
    pub filter: WebhookFilter,
    /// Whether it receives events.
    pub active: bool,
    /// The signing key, in the answer that set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: String,
}

impl Webhook {
    fn view(stored: StoredWebhook, show_secret: bool) -> Webhook {
        Webhook {
            id: stored.id,
            url: stored.url,
            events: stored.events,
            filter: stored.filter,
            active: stored.active,
            secret: show_secret.then_some(stored.secret),
            created_at: stored.created_at,
        }
    }
}

/// Longest signing key, in bytes.
const MAX_SECRET: usize = 256;

fn check(webhook: &StoredWebhook) -> ServiceResult<()> {
    let mut errors = Vec::new();
    if let Err(e) = check_url(&webhook.url) {
        errors.push(e);
    }
    if let Err(e) = check_events(&webhook.events) {
        errors.push(e);
    }
    if webhook.secret.is_empty() || webhook.secret.len() > MAX_SECRET {
        errors.push(FieldError::new("secret", format!("a secret is 1 to {MAX_SECRET} bytes")));
    }
    if errors.is_empty() { Ok(()) } else { Err(ServiceError::Validation(errors)) }
}

impl Webhooks<'_> {
    /// Every subscription in id order, without secrets. Administrators only.
    pub async fn list(&self, caller: &Caller) -> ServiceResult<Vec<Webhook>> {
        require_admin(caller)?;
        Ok(repo::all(self.core.store.reader()).await?.into_iter().map(|w| Webhook::view(w, false)).collect())
    }

    /// One subscription, without its secret; `NotFound` when there is no such id.
    /// Administrators only.
    pub async fn get(&self, caller: &Caller, id: i64) -> ServiceResult<Webhook> {
        require_admin(caller)?;
        Ok(Webhook::view(self.stored(id).await?, false))
    }

    async fn stored(&self, id: i64) -> ServiceResult<StoredWebhook> {
        repo::get(self.core.store.reader(), id).await?.ok_or_else(|| ServiceError::NotFound(format!("no webhook {id}")))
    }

    /// Subscribes a URL to events from now on.
    pub async fn create(&self, caller: &Caller, input: WebhookRequest) -> ServiceResult<Webhook> {
        require_admin(caller)?;
        let mut webhook = StoredWebhook {
            id: 0,
            url: input.url,
            events: input.events,
            filter: input.filter,
            secret: input.secret.unwrap_or_else(super::auth::random_secret),
            active: input.active,
            created_at: String::new(),
        };
        check(&webhook)?;
        let now = now_micros();
        let mut tx = self.core.store.begin();
        webhook.id = repo::insert(&mut tx, &webhook, now).await?;
        tx.commit().await?;
        webhook.created_at = voronka_model::time::to_rfc3339(now);
        Ok(Webhook::view(webhook, true))
    }

    /// Changes the keys present in `patch`, checked as on creation; the answer shows the secret
    /// only when it changed. Administrators only.
    pub async fn update(&self, caller: &Caller, id: i64, patch: WebhookPatch) -> ServiceResult<Webhook> {
        require_admin(caller)?;
        let mut webhook = self.stored(id).await?;
        let new_secret = patch.secret.is_some();
        if let Some(v) = patch.url {
            webhook.url = v;
        }
        if let Some(v) = patch.events {
            webhook.events = v;
        }
        if let Some(v) = patch.secret {
            webhook.secret = v;
        }
        if let Some(v) = patch.filter {
            webhook.filter = v;
        }
        if let Some(v) = patch.active {
            webhook.active = v;
        }
        check(&webhook)?;
        let mut tx = self.core.store.begin();
        repo::update(&mut tx, &webhook).await?;
        tx.commit().await?;
        Ok(Webhook::view(webhook, new_secret))
    }

    /// Deletes a subscription and its delivery log.
    pub async fn delete(&self, caller: &Caller, id: i64) -> ServiceResult<()> {
        require_admin(caller)?;
        self.stored(id).await?;
        let mut tx = self.core.store.begin();
        repo::delete(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A subscription's deliveries, newest first: `(deliveries, next cursor)`.
    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> ServiceResult<(Vec<Delivery>, Option<i64>)> {
        require_admin(caller)?;
        self.stored(id).await?;
        let mut deliveries = repo::deliveries(self.core.store.reader(), id, before, limit).await?;
        let next = super::page_cursor(&mut deliveries, limit, |d| d.id);
        Ok((deliveries, next))
    }

    /// Sends a delivered or failed delivery again.
    pub async fn redeliver(&self, caller: &Caller, id: i64, delivery: i64) -> ServiceResult<()> {
        require_admin(caller)?;
        self.stored(id).await?;
        let mut tx = self.core.store.begin();
        if !repo::redeliver(&mut tx, id, delivery, now_micros()).await? {
            return Err(ServiceError::Conflict(format!(
                "delivery {delivery} of webhook {id} does not exist or is still being attempted"
            )));
        }
        match tx.commit().await {
            Ok(()) => {}
            Err(voronka_store::DbError::CheckFailed) => {
                return Err(ServiceError::Conflict(format!(
                    "delivery {delivery} of webhook {id} does not exist or is still being attempted"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.core.signals().deliveries.notify_one();
        Ok(())
    }
}
