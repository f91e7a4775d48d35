//! `/tasks`: work assigned to people, linked to items; completion with a result.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_core::service::tasks::TaskQuery;
use voronka_model::FieldError;
use voronka_model::item::ItemRef;
use voronka_model::task::{Task, TaskStatus};
use voronka_model::task::{TaskPatch, TaskRequest};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(get_task, update_task))
        .routes(routes!(complete_task))
}

/// Filters of the task list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TaskListQuery {
    /// Only tasks the caller does, created or follows.
    mine: Option<bool>,
    /// Only tasks this user does.
    responsible: Option<i64>,
    /// Only tasks this user does, created or follows (administrators; others only themselves).
    user: Option<i64>,
    /// Every task, whoever's (administrators; 403 for others).
    all: Option<bool>,
    /// With `item_id`: only tasks linked to this item.
    item_type: Option<String>,
    /// With `item_type`: only tasks linked to this item.
    item_id: Option<i64>,
    /// Only these statuses, comma-separated (`new,in_progress`).
    status: Option<String>,
    /// Only tasks past their deadline and not completed.
    overdue: Option<bool>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500.
    limit: Option<i64>,
}

impl TaskListQuery {
    fn query(&self) -> Result<TaskQuery, Problem> {
        let mut errors = Vec::new();
        let linked = match (&self.item_type, self.item_id) {
            (Some(t), Some(id)) => Some(ItemRef { type_key: t.clone(), id }),
            (None, None) => None,
            _ => {
                errors.push(FieldError::new("item_type", "give `item_type` and `item_id` together"));
                None
            }
        };
        let mut statuses = Vec::new();
        for s in self.status.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            match TaskStatus::parse(s) {
                Some(status) => statuses.push(status),
                None => errors
                    .push(FieldError::new("status", format!("`{s}` is not new, in_progress, completed or deferred"))),
            }
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(TaskQuery {
            mine: self.mine.unwrap_or(false),
            responsible: self.responsible,
            linked,
            statuses,
            overdue: self.overdue.unwrap_or(false),
            user: self.user,
            all: self.all.unwrap_or(false),
        })
    }
}

/// Tasks, by id. Administrators see every task (one user's with `user`); others their own
/// (responsible, creator, auditor), or every task of an item they may read when filtering by it.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(TaskListQuery),
    responses((status = 200, body = ListOf<Task>), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn list_tasks(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> Result<Json<ListOf<Task>>, Problem> {
    let page = Page { cursor: q.cursor.clone(), limit: q.limit };
    let (tasks, next) = s.tasks().list(&caller, q.query()?, page.after()?, page.limit()?).await?;
    Ok(Json(ListOf::new(tasks, next)))
}

/// Creates a task; its responsible is notified.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = TaskRequest,
    responses((status = 201, body = Task), (status = 422, body = ProblemDocument)))]
async fn create_task(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<TaskRequest>,
) -> Result<(StatusCode, Json<Task>), Problem> {
    Ok((StatusCode::CREATED, Json(s.tasks().create(&caller, body).await?)))
}

/// One task, if the caller is its responsible, creator or auditor, may read an item it is linked
/// to, or is an administrator; 404 otherwise.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path)),
    responses((status = 200, body = Task), (status = 404, body = ProblemDocument)))]
async fn get_task(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Task>, Problem> {
    Ok(Json(s.tasks().get(&caller, id).await?))
}

/// Changes a task (its responsible, its creator or an administrator).
#[utoipa::path(patch, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path)), request_body = TaskPatch,
    responses((status = 200, body = Task), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn update_task(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TaskPatch>,
) -> Result<Json<Task>, Problem> {
    Ok(Json(s.tasks().update(&caller, id, body).await?))
}

/// `POST /tasks/{id}/complete` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    /// The result (required when the task says so).
    #[serde(default)]
    result: Option<String>,
}

/// Completes a task with its result; its creator is notified.
#[utoipa::path(post, path = "/tasks/{id}/complete", tag = "tasks", params(("id" = i64, Path)), request_body = CompleteRequest,
    responses((status = 200, body = Task), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn complete_task(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<Task>, Problem> {
    Ok(Json(s.tasks().complete(&caller, id, body.result).await?))
}
