//! `/webhooks`: outgoing webhook subscriptions and their delivery log (administrators).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_core::service::webhooks::{Webhook, WebhookPatch, WebhookRequest};
use voronka_store::webhooks::Delivery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// Every subscription in id order, without secrets (not paged; administrators only).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", responses((status = 200, body = ListOf<Webhook>)))]
async fn list_webhooks(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<ListOf<Webhook>>, Problem> {
    Ok(Json(ListOf::new(s.webhooks().list(&caller).await?, None)))
}

/// Subscribes a URL to events: each matching event is POSTed as JSON, signed in
/// `X-Voronka-Signature: sha256=<hex HMAC-SHA256 of the body>`, and retried with exponential
/// backoff until the target answers 2xx. The answer carries the secret, once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, body = Webhook), (status = 422, body = ProblemDocument)))]
async fn create_webhook(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<Webhook>), Problem> {
    Ok((StatusCode::CREATED, Json(s.webhooks().create(&caller, body).await?)))
}

/// One subscription, without its secret (administrators only).
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ProblemDocument)))]
async fn get_webhook(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Webhook>, Problem> {
    Ok(Json(s.webhooks().get(&caller, id).await?))
}

/// Changes a subscription (pause it with `{"active": false}`).
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)), request_body = WebhookPatch,
    responses((status = 200, body = Webhook), (status = 422, body = ProblemDocument)))]
async fn update_webhook(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<WebhookPatch>,
) -> Result<Json<Webhook>, Problem> {
    Ok(Json(s.webhooks().update(&caller, id, body).await?))
}

/// Deletes a subscription and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ProblemDocument)))]
async fn delete_webhook(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, Problem> {
    s.webhooks().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a subscription, newest first: each delivery with its attempts.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path), Page),
    responses((status = 200, body = ListOf<Delivery>), (status = 404, body = ProblemDocument)))]
async fn list_deliveries(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<ListOf<Delivery>>, Problem> {
    let before = page.cursor.as_deref().map(|_| page.after()).transpose()?;
    let (deliveries, next) = s.webhooks().list_deliveries(&caller, id, before, page.limit()?).await?;
    Ok(Json(ListOf::new(deliveries, next)))
}

/// Sends a delivered or failed delivery again, with a fresh round of attempts.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = i64, Path), ("delivery" = i64, Path)),
    responses((status = 202), (status = 409, body = ProblemDocument)))]
async fn redeliver(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, Problem> {
    s.webhooks().redeliver(&caller, id, delivery).await?;
    Ok(StatusCode::ACCEPTED)
}
