//! `/processes`: business-process templates and instances; `/assignments`: the caller's part in
//! them (approvals to decide, forms to fill in).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_core::service::assignments::{AssignmentQuery, CompleteAssignment};
use voronka_core::service::processes::{StartRequest, TemplateRequest};
use voronka_model::FieldError;
use voronka_model::item::ItemRef;
use voronka_model::process::{Assignment, Instance, InstanceStatus};
use voronka_store::processes::StoredTemplate;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, save_template))
        .routes(routes!(get_template))
        .routes(routes!(list_processes, start_process))
        .routes(routes!(get_process))
        .routes(routes!(terminate_process))
        .routes(routes!(list_assignments))
        .routes(routes!(complete_assignment))
        .routes(routes!(delegate_assignment))
}

/// The latest version of every template of a type the caller may write.
#[utoipa::path(get, path = "/processes/templates", tag = "processes", responses((status = 200, body = ListOf<StoredTemplate>)))]
async fn list_templates(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<ListOf<StoredTemplate>>, Problem> {
    Ok(Json(ListOf::new(s.processes().list_templates(&caller).await?, None)))
}

/// Stores a template (administrators): version 1 of a new key, or the next version of an
/// existing one. Running instances keep the version they started with.
#[utoipa::path(post, path = "/processes/templates", tag = "processes", request_body = TemplateRequest,
    responses((status = 201, body = StoredTemplate), (status = 422, body = ProblemDocument)))]
async fn save_template(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<TemplateRequest>,
) -> Result<(StatusCode, Json<StoredTemplate>), Problem> {
    Ok((StatusCode::CREATED, Json(s.processes().save_template(&caller, body).await?)))
}

/// Which version of a template to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionQuery {
    /// A version (default: the latest).
    version: Option<i64>,
}

/// A template, its latest version or a given one.
#[utoipa::path(get, path = "/processes/templates/{key}", tag = "processes", params(("key" = String, Path), VersionQuery),
    responses((status = 200, body = StoredTemplate), (status = 404, body = ProblemDocument)))]
async fn get_template(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<StoredTemplate>, Problem> {
    Ok(Json(s.processes().read_template(&caller, &key, q.version).await?))
}

/// Filters of the instance list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ProcessQuery {
    /// With `item_id`: instances on this item.
    item_type: Option<String>,
    /// With `item_type`: instances on this item.
    item_id: Option<i64>,
    /// `running`, `completed`, `terminated` or `failed`.
    status: Option<String>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500.
    limit: Option<i64>,
}

/// Instances with their state and current steps: of an item the caller may read, or all of
/// them for administrators.
#[utoipa::path(get, path = "/processes", tag = "processes", params(ProcessQuery),
    responses((status = 200, body = ListOf<Instance>), (status = 422, body = ProblemDocument)))]
async fn list_processes(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ProcessQuery>,
) -> Result<Json<ListOf<Instance>>, Problem> {
    let item = item_filter(q.item_type, q.item_id)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(InstanceStatus::parse(text).ok_or_else(|| {
            Problem::validation(vec![FieldError::new("status", "running, completed, terminated or failed")])
        })?),
    };
    let page = Page { cursor: q.cursor, limit: q.limit };
    let (rows, next) = s.processes().list(&caller, item, status, page.after()?, page.limit()?).await?;
    Ok(Json(ListOf::new(rows, next)))
}

/// Starts a process on an item the caller may change.
#[utoipa::path(post, path = "/processes", tag = "processes", request_body = StartRequest,
    responses((status = 201, body = Instance), (status = 422, body = ProblemDocument)))]
async fn start_process(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<Instance>), Problem> {
    Ok((StatusCode::CREATED, Json(s.processes().start(&caller, body).await?)))
}

/// An instance with its log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ProcessView {
    /// The instance, its fields inline: status, variables, current steps, ...
    #[serde(flatten)]
    instance: Instance,
    /// What happened, oldest first.
    #[schema(value_type = Vec<Object>)]
    log: Vec<Value>,
}

/// An instance: state, variables, current steps and log.
#[utoipa::path(get, path = "/processes/{id}", tag = "processes", params(("id" = i64, Path)),
    responses((status = 200, body = ProcessView), (status = 404, body = ProblemDocument)))]
async fn get_process(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ProcessView>, Problem> {
    let (instance, log) = s.processes().get(&caller, id).await?;
    Ok(Json(ProcessView { instance, log }))
}

/// Terminates a running process; its open assignments are cancelled.
#[utoipa::path(post, path = "/processes/{id}/terminate", tag = "processes", params(("id" = i64, Path)),
    responses((status = 200, body = Instance), (status = 409, body = ProblemDocument)))]
async fn terminate_process(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Instance>, Problem> {
    Ok(Json(s.processes().terminate(&caller, id).await?))
}

/// Filters of the assignment list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AssignmentListQuery {
    /// `open` (default), `done`, `cancelled` or `all`.
    status: Option<String>,
    /// Only this user's (administrators; others only themselves).
    user: Option<i64>,
    /// Everyone's (administrators; 403 for others).
    all: Option<bool>,
    /// With `item_id`: only this item's assignments, everyone's when the caller may read it.
    item_type: Option<String>,
    /// With `item_type`: only this item's assignments.
    item_id: Option<i64>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500.
    limit: Option<i64>,
}

/// Assignments with their forms (open ones by default): the caller's; one user's or everyone's
/// (`user`, `all`: administrators); or an item's (everyone's when the caller may read it).
#[utoipa::path(get, path = "/assignments", tag = "processes", params(AssignmentListQuery),
    responses((status = 200, body = ListOf<Assignment>), (status = 403, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn list_assignments(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<AssignmentListQuery>,
) -> Result<Json<ListOf<Assignment>>, Problem> {
    let item = item_filter(q.item_type, q.item_id)?;
    let query = AssignmentQuery { status: q.status, user: q.user, all: q.all.unwrap_or(false), item };
    let page = Page { cursor: q.cursor, limit: q.limit };
    let (rows, next) = s.assignments().list(&caller, &query, page.after()?, page.limit()?).await?;
    Ok(Json(ListOf::new(rows, next)))
}

/// Completes one of the caller's assignments: a decision for an approval, answers for a
/// request for information (checked against its form).
#[utoipa::path(post, path = "/assignments/{id}/complete", tag = "processes", params(("id" = i64, Path)),
    request_body = CompleteAssignment,
    responses((status = 200, body = Assignment), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn complete_assignment(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CompleteAssignment>,
) -> Result<Json<Assignment>, Problem> {
    Ok(Json(s.assignments().complete(&caller, id, body).await?))
}

/// `POST /assignments/{id}/delegate` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DelegateRequest {
    /// The user to hand it to.
    to: i64,
}

/// Hands an open assignment to another user, who is notified.
#[utoipa::path(post, path = "/assignments/{id}/delegate", tag = "processes", params(("id" = i64, Path)),
    request_body = DelegateRequest,
    responses((status = 200, body = Assignment), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn delegate_assignment(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DelegateRequest>,
) -> Result<Json<Assignment>, Problem> {
    Ok(Json(s.assignments().delegate(&caller, id, body.to).await?))
}

/// The item a list is filtered by: `item_type` and `item_id` together, or neither.
fn item_filter(type_key: Option<String>, id: Option<i64>) -> Result<Option<ItemRef>, Problem> {
    match (type_key, id) {
        (Some(type_key), Some(id)) => Ok(Some(ItemRef { type_key, id })),
        (None, None) => Ok(None),
        _ => Err(Problem::validation(vec![FieldError::new("item_type", "give `item_type` and `item_id` together")])),
    }
}
