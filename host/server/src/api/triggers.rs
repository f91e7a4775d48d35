//! `/types/{type}/funnels/{funnel}/stages/{stage}/triggers`: triggers that move items to a stage;
//! `/hooks/triggers/{secret}`: the secret URL of a webhook trigger.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::triggers::{Trigger, TriggerPatch, TriggerRequest, WebhookOutcome};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_triggers, create_trigger)).routes(routes!(update_trigger, delete_trigger))
}

/// Routes that take no bearer token: the secret in the path is the credential.
pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(fire_webhook))
}

type StagePath = (String, String, String);
type TriggerPath = (String, String, String, i64);

/// The server's address as the client reached it, for absolute webhook URLs.
fn base_url(headers: &HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let scheme = text("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = text("x-forwarded-host").or_else(|| text(header::HOST.as_str())).unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

/// The triggers of a stage, oldest first.
#[utoipa::path(get, path = "/types/{type}/funnels/{funnel}/stages/{stage}/triggers", tag = "triggers",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path)),
    responses((status = 200, body = ListOf<Trigger>), (status = 404, body = ProblemDocument)))]
async fn list_triggers(
    State(s): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    ApiPath((t, f, st)): ApiPath<StagePath>,
) -> Result<Json<ListOf<Trigger>>, Problem> {
    let base = base_url(&headers);
    let triggers = s.triggers().list(&caller, &t, &f, &st).await?;
    Ok(Json(ListOf::new(triggers.into_iter().map(|t| Trigger::view(t, &base)).collect(), None)))
}

/// Creates a trigger: when its event matches an item of this funnel, the item moves to this
/// stage. A webhook trigger's response carries its secret `url`.
#[utoipa::path(post, path = "/types/{type}/funnels/{funnel}/stages/{stage}/triggers", tag = "triggers",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path)), request_body = TriggerRequest,
    responses((status = 201, body = Trigger), (status = 422, body = ProblemDocument)))]
async fn create_trigger(
    State(s): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    ApiPath((t, f, st)): ApiPath<StagePath>,
    ApiJson(body): ApiJson<TriggerRequest>,
) -> Result<(StatusCode, Json<Trigger>), Problem> {
    let trigger = s.triggers().create(&caller, &t, &f, &st, body).await?;
    Ok((StatusCode::CREATED, Json(Trigger::view(trigger, &base_url(&headers)))))
}

/// Changes a trigger: keys present in the body change, checked as at creation (admin access to
/// the type in that funnel).
#[utoipa::path(patch, path = "/types/{type}/funnels/{funnel}/stages/{stage}/triggers/{id}", tag = "triggers",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path), ("id" = i64, Path)), request_body = TriggerPatch,
    responses((status = 200, body = Trigger), (status = 422, body = ProblemDocument)))]
async fn update_trigger(
    State(s): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    ApiPath((t, f, st, id)): ApiPath<TriggerPath>,
    ApiJson(body): ApiJson<TriggerPatch>,
) -> Result<Json<Trigger>, Problem> {
    let trigger = s.triggers().update(&caller, (&t, &f, &st), id, body).await?;
    Ok(Json(Trigger::view(trigger, &base_url(&headers))))
}

/// Deletes a trigger; a webhook trigger's URL then answers 404.
#[utoipa::path(delete, path = "/types/{type}/funnels/{funnel}/stages/{stage}/triggers/{id}", tag = "triggers",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ProblemDocument)))]
async fn delete_trigger(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((t, f, st, id)): ApiPath<TriggerPath>,
) -> Result<StatusCode, Problem> {
    s.triggers().delete(&caller, (&t, &f, &st), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a webhook call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct WebhookCall {
    /// The item to move (of the trigger's type).
    item: i64,
}

/// A webhook trigger's secret URL: moves the item to the trigger's stage (same rules as every
/// trigger: the item's funnel, the backwards rule, the condition). No token: the secret is the
/// credential.
#[utoipa::path(post, path = "/hooks/triggers/{secret}", tag = "triggers", security(()),
    params(("secret" = String, Path)), request_body = WebhookCall,
    responses((status = 200, body = WebhookOutcome), (status = 404, body = ProblemDocument)))]
async fn fire_webhook(
    State(s): State<AppState>,
    ApiPath(secret): ApiPath<String>,
    ApiJson(body): ApiJson<WebhookCall>,
) -> Result<Json<WebhookOutcome>, Problem> {
    Ok(Json(s.triggers().fire_webhook(&secret, body.item).await?))
}
