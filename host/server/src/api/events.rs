//! `/events`: the domain event stream, for audit and debugging.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Auth};
use super::problem::Problem;
use super::{AppState, ListOf, Page};
use voronka_store::outbox::StoredEvent;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Filter of the event list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    /// Only events of this item.
    item: Option<i64>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500.
    limit: Option<i64>,
}

/// Domain events after the cursor, oldest first (administrators).
#[utoipa::path(get, path = "/events", tag = "events", params(EventQuery), responses((status = 200, body = ListOf<StoredEvent>)))]
async fn list_events(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<ListOf<StoredEvent>>, Problem> {
    let page = Page { cursor: q.cursor, limit: q.limit };
    let (events, next) = s.events().list(&caller, page.after()?, q.item, page.limit()?).await?;
    Ok(Json(ListOf::new(events, next)))
}
