//! `/types/{type}/funnels/{funnel}/stages/{stage}/robots`: robots bound to a stage.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::robots::{RobotPatch, RobotRequest};
use voronka_store::robots::Robot;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_robots, create_robot)).routes(routes!(update_robot, delete_robot))
}

type StagePath = (String, String, String);
type RobotPath = (String, String, String, i64);

/// The robots of a stage, by order.
#[utoipa::path(get, path = "/types/{type}/funnels/{funnel}/stages/{stage}/robots", tag = "robots",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path)),
    responses((status = 200, body = ListOf<Robot>), (status = 404, body = ProblemDocument)))]
async fn list_robots(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((t, f, st)): ApiPath<StagePath>,
) -> Result<Json<ListOf<Robot>>, Problem> {
    Ok(Json(ListOf::new(s.robots().list(&caller, &t, &f, &st).await?, None)))
}

/// Binds a robot to a stage.
#[utoipa::path(post, path = "/types/{type}/funnels/{funnel}/stages/{stage}/robots", tag = "robots",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path)), request_body = RobotRequest,
    responses((status = 201, body = Robot), (status = 422, body = ProblemDocument)))]
async fn create_robot(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((t, f, st)): ApiPath<StagePath>,
    ApiJson(body): ApiJson<RobotRequest>,
) -> Result<(StatusCode, Json<Robot>), Problem> {
    Ok((StatusCode::CREATED, Json(s.robots().create(&caller, &t, &f, &st, body).await?)))
}

/// Changes a robot: keys present in the body change, checked as at binding (admin access to the
/// type in that funnel).
#[utoipa::path(patch, path = "/types/{type}/funnels/{funnel}/stages/{stage}/robots/{id}", tag = "robots",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path), ("id" = i64, Path)), request_body = RobotPatch,
    responses((status = 200, body = Robot), (status = 422, body = ProblemDocument)))]
async fn update_robot(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((t, f, st, id)): ApiPath<RobotPath>,
    ApiJson(body): ApiJson<RobotPatch>,
) -> Result<Json<Robot>, Problem> {
    Ok(Json(s.robots().update(&caller, &t, &f, &st, id, body).await?))
}

/// Unbinds a robot; its pending runs are cancelled.
#[utoipa::path(delete, path = "/types/{type}/funnels/{funnel}/stages/{stage}/robots/{id}", tag = "robots",
    params(("type" = String, Path), ("funnel" = String, Path), ("stage" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ProblemDocument)))]
async fn delete_robot(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((t, f, st, id)): ApiPath<RobotPath>,
) -> Result<StatusCode, Problem> {
    s.robots().delete(&caller, &t, &f, &st, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
