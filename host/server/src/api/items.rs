//! `/items`: items of every type, their moves, history, timeline and children.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use headers::HeaderMapExt;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth, IfMatch, etag};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_core::service::list::ItemPage;
use voronka_model::item::{HistoryEntry, Item, TimelineEntry};
use voronka_model::item::{ItemPatch, MoveRequest, NewItem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item, update_item, delete_item))
        .routes(routes!(move_item))
        .routes(routes!(history))
        .routes(routes!(timeline, add_comment))
        .routes(routes!(children))
}

fn with_etag(status: StatusCode, item: Item) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(tag) = etag(item.version) {
        headers.typed_insert(tag);
    }
    (status, headers, Json(item)).into_response()
}

/// Items of a type. Filters: `funnel`, `stage`, `responsible`, `parent`, `contact`, `company`,
/// `q` (text in the title), `field.KEY=VALUE`, `field.KEY.gte|gt|lte|lt=VALUE`,
/// `amount.gte=...`, `created_at.gte=...`; `sort` (`id`, `created_at`, `updated_at`, `title`,
/// `-` for descending); `limit` (1..500); `cursor`.
#[utoipa::path(get, path = "/items/{type}", tag = "items", params(("type" = String, Path)),
    responses((status = 200, body = ItemPage), (status = 422, body = ProblemDocument)))]
async fn list_items(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<ItemPage>, Problem> {
    Ok(Json(s.items().list(&caller, &key, &params).await?))
}

/// Creates an item (needs write access to the type in its funnel): in the default funnel and
/// its first stage unless the body names others; the stage's robots are queued. The ETag is
/// its version, 1.
#[utoipa::path(post, path = "/items/{type}", tag = "items", params(("type" = String, Path)), request_body = NewItem,
    responses((status = 201, body = Item), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_item(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewItem>,
) -> Result<Response, Problem> {
    Ok(with_etag(StatusCode::CREATED, s.items().create(&caller, &key, body).await?))
}

/// One item; its version is also the ETag.
#[utoipa::path(get, path = "/items/{type}/{id}", tag = "items", params(("type" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Item), (status = 404, body = ProblemDocument)))]
async fn get_item(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
) -> Result<Response, Problem> {
    Ok(with_etag(StatusCode::OK, s.items().get(&caller, &key, id).await?))
}

/// Changes an item; `If-Match` with a stale version answers 412.
#[utoipa::path(patch, path = "/items/{type}/{id}", tag = "items", params(("type" = String, Path), ("id" = i64, Path)), request_body = ItemPatch,
    responses((status = 200, body = Item), (status = 412, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn update_item(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    if_match: IfMatch,
    ApiJson(body): ApiJson<ItemPatch>,
) -> Result<Response, Problem> {
    Ok(with_etag(StatusCode::OK, s.items().update(&caller, &key, id, body, Some(&|v| if_match.accepts(v))).await?))
}

/// Deletes an item (needs admin access to its type and funnel).
#[utoipa::path(delete, path = "/items/{type}/{id}", tag = "items", params(("type" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ProblemDocument), (status = 404, body = ProblemDocument)))]
async fn delete_item(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    if_match: IfMatch,
) -> Result<StatusCode, Problem> {
    s.items().delete(&caller, &key, id, Some(&|v| if_match.accepts(v))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves an item to a stage of its funnel, or of another funnel of its type.
#[utoipa::path(post, path = "/items/{type}/{id}/move", tag = "items", params(("type" = String, Path), ("id" = i64, Path)), request_body = MoveRequest,
    responses((status = 200, body = Item), (status = 412, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn move_item(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    if_match: IfMatch,
    ApiJson(body): ApiJson<MoveRequest>,
) -> Result<Response, Problem> {
    Ok(with_etag(StatusCode::OK, s.items().move_to(&caller, &key, id, body, Some(&|v| if_match.accepts(v))).await?))
}

/// Stage history, oldest first, across funnel changes, with who moved the item; the first entry
/// (`from` null) is its creation in its first stage.
#[utoipa::path(get, path = "/items/{type}/{id}/history", tag = "items", params(("type" = String, Path), ("id" = i64, Path), Page),
    responses((status = 200, body = ListOf<HistoryEntry>)))]
async fn history(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<ListOf<HistoryEntry>>, Problem> {
    let (entries, next) = s.items().history(&caller, &key, id, page.after()?, page.limit()?).await?;
    Ok(Json(ListOf::new(entries, next)))
}

/// Timeline, newest first: comments and system entries.
#[utoipa::path(get, path = "/items/{type}/{id}/timeline", tag = "items", params(("type" = String, Path), ("id" = i64, Path), Page),
    responses((status = 200, body = ListOf<TimelineEntry>)))]
async fn timeline(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<ListOf<TimelineEntry>>, Problem> {
    let before = match page.cursor {
        Some(_) => Some(page.after()?),
        None => None,
    };
    let (entries, next) = s.items().timeline(&caller, &key, id, before, page.limit()?).await?;
    Ok(Json(ListOf::new(entries, next)))
}

/// `POST .../timeline` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewComment {
    /// The comment, 1 to 20,000 characters after trimming.
    text: String,
}

/// Adds a comment to an item's timeline; reading the item is enough. It is an `item.commented`
/// event.
#[utoipa::path(post, path = "/items/{type}/{id}/timeline", tag = "items", params(("type" = String, Path), ("id" = i64, Path)), request_body = NewComment,
    responses((status = 201, body = TimelineEntry), (status = 422, body = ProblemDocument)))]
async fn add_comment(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<TimelineEntry>), Problem> {
    Ok((StatusCode::CREATED, Json(s.items().add_comment(&caller, &key, id, &body.text).await?)))
}

/// Items that have this item as a parent (e.g. a deal's production orders); `type=` narrows.
#[utoipa::path(get, path = "/items/{type}/{id}/children", tag = "items", params(("type" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ItemPage)))]
async fn children(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<ItemPage>, Problem> {
    Ok(Json(s.items().list_children(&caller, &key, id, &params).await?))
}
