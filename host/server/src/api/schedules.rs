//! `/schedules`: run a robot plugin on a timetable over the items of a scope (administrators).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::schedules::{Schedule, SchedulePatch, ScheduleRequest};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_schedules, create_schedule)).routes(routes!(
        get_schedule,
        update_schedule,
        delete_schedule
    ))
}

/// Every schedule in id order, with its next and last firing (not paged; administrators only).
#[utoipa::path(get, path = "/schedules", tag = "schedules", responses((status = 200, body = ListOf<Schedule>)))]
async fn list_schedules(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<ListOf<Schedule>>, Problem> {
    Ok(Json(ListOf::new(s.schedules().list(&caller).await?, None)))
}

/// Creates a schedule: at each time of its cron expression (in its time zone) its robot plugin
/// runs once for every item of its scope.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = ScheduleRequest,
    responses((status = 201, body = Schedule), (status = 422, body = ProblemDocument)))]
async fn create_schedule(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<Schedule>), Problem> {
    Ok((StatusCode::CREATED, Json(s.schedules().create(&caller, body).await?)))
}

/// One schedule, with its next and last firing.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ProblemDocument)))]
async fn get_schedule(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Schedule>, Problem> {
    Ok(Json(s.schedules().get(&caller, id).await?))
}

/// Changes a schedule (pause it with `{"active": false}`).
#[utoipa::path(patch, path = "/schedules/{id}", tag = "schedules", params(("id" = i64, Path)), request_body = SchedulePatch,
    responses((status = 200, body = Schedule), (status = 422, body = ProblemDocument)))]
async fn update_schedule(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SchedulePatch>,
) -> Result<Json<Schedule>, Problem> {
    Ok(Json(s.schedules().update(&caller, id, body).await?))
}

/// Deletes a schedule; its pending runs are cancelled.
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ProblemDocument)))]
async fn delete_schedule(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, Problem> {
    s.schedules().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
