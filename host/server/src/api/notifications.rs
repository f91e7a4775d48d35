//! `/notifications`: the caller's inbox.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_model::notification::Notification;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

/// Filter of the inbox.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct InboxQuery {
    /// Only unread notifications.
    unread: Option<bool>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500.
    limit: Option<i64>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(InboxQuery),
    responses((status = 200, body = ListOf<Notification>)))]
async fn list_notifications(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<ListOf<Notification>>, Problem> {
    let page = Page { cursor: q.cursor, limit: q.limit };
    let (rows, next) = s.notifications().list(&caller, q.unread.unwrap_or(false), page.after()?, page.limit()?).await?;
    Ok(Json(ListOf::new(rows, next)))
}

/// The size of the caller's unread inbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Count {
    /// How many of the caller's notifications are unread.
    unread: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count", tag = "notifications", responses((status = 200, body = Count)))]
async fn unread_count(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<Count>, Problem> {
    Ok(Json(Count { unread: s.notifications().unread(&caller).await? }))
}

/// How many notifications a call marked read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Marked {
    /// Notifications that were unread and are read now.
    marked: usize,
}

/// Marks one of the caller's notifications read; another user's answers 404.
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications", params(("id" = i64, Path)),
    responses((status = 200, body = Marked), (status = 404, body = ProblemDocument)))]
async fn mark_read(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Marked>, Problem> {
    Ok(Json(Marked { marked: s.notifications().mark_read(&caller, Some(id)).await? }))
}

/// Marks every notification of the caller read.
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications", responses((status = 200, body = Marked)))]
async fn mark_all_read(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<Marked>, Problem> {
    Ok(Json(Marked { marked: s.notifications().mark_read(&caller, None).await? }))
}
