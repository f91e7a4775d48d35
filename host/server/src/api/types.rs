//! `/types`: entity types, their custom fields and funnels.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::catalog::{FunnelPatch, NewField, NewFunnel, NewType, TypePatch};
use voronka_model::entity_type::TypeSchema;
use voronka_model::field::FieldDef;
use voronka_model::funnel::Funnel;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_types, create_type))
        .routes(routes!(get_type, update_type))
        .routes(routes!(list_fields, create_field))
        .routes(routes!(list_funnels, create_funnel))
        .routes(routes!(get_funnel, update_funnel))
}

/// Entity types the caller can see.
#[utoipa::path(get, path = "/types", tag = "types", responses((status = 200, body = ListOf<TypeSchema>)))]
async fn list_types(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<ListOf<TypeSchema>>, Problem> {
    Ok(Json(ListOf::new(s.types().list(&caller).await?, None)))
}

/// Creates a custom entity type (smart process) with a default funnel.
#[utoipa::path(post, path = "/types", tag = "types", request_body = NewType,
    responses((status = 201, body = TypeSchema), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_type(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewType>,
) -> Result<(StatusCode, Json<TypeSchema>), Problem> {
    Ok((StatusCode::CREATED, Json(s.types().create(&caller, body).await?)))
}

/// A type with its fields and funnels.
#[utoipa::path(get, path = "/types/{type}", tag = "types", params(("type" = String, Path)),
    responses((status = 200, body = TypeSchema), (status = 404, body = ProblemDocument)))]
async fn get_type(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<TypeSchema>, Problem> {
    Ok(Json(s.types().get(&caller, &key).await?))
}

/// Changes a type's title or allowed parents.
#[utoipa::path(patch, path = "/types/{type}", tag = "types", params(("type" = String, Path)), request_body = TypePatch,
    responses((status = 200, body = TypeSchema), (status = 422, body = ProblemDocument)))]
async fn update_type(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<TypePatch>,
) -> Result<Json<TypeSchema>, Problem> {
    Ok(Json(s.types().update(&caller, &key, body).await?))
}

/// The custom fields of a type, in order of creation (not paged).
#[utoipa::path(get, path = "/types/{type}/fields", tag = "types", params(("type" = String, Path)),
    responses((status = 200, body = ListOf<FieldDef>)))]
async fn list_fields(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ListOf<FieldDef>>, Problem> {
    Ok(Json(ListOf::new(s.types().get(&caller, &key).await?.fields, None)))
}

/// Adds a custom field to a type (admin access to the type); 409 when the key is taken.
#[utoipa::path(post, path = "/types/{type}/fields", tag = "types", params(("type" = String, Path)), request_body = NewField,
    responses((status = 201, body = FieldDef), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_field(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewField>,
) -> Result<(StatusCode, Json<FieldDef>), Problem> {
    Ok((StatusCode::CREATED, Json(s.types().create_field(&caller, &key, body).await?)))
}

/// Every funnel of a type with its stages: the default first, then in order of creation (not
/// paged).
#[utoipa::path(get, path = "/types/{type}/funnels", tag = "types", params(("type" = String, Path)),
    responses((status = 200, body = ListOf<Funnel>)))]
async fn list_funnels(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ListOf<Funnel>>, Problem> {
    Ok(Json(ListOf::new(s.types().get(&caller, &key).await?.funnels, None)))
}

/// Adds a funnel to a type with funnels (admin access to the type); `"default": true` makes it
/// the type's default in place of the old one.
#[utoipa::path(post, path = "/types/{type}/funnels", tag = "types", params(("type" = String, Path)), request_body = NewFunnel,
    responses((status = 201, body = Funnel), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_funnel(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewFunnel>,
) -> Result<(StatusCode, Json<Funnel>), Problem> {
    Ok((StatusCode::CREATED, Json(s.types().create_funnel(&caller, &key, body).await?)))
}

/// A funnel with its stages.
#[utoipa::path(get, path = "/types/{type}/funnels/{funnel}", tag = "types", params(("type" = String, Path), ("funnel" = String, Path)),
    responses((status = 200, body = Funnel), (status = 404, body = ProblemDocument)))]
async fn get_funnel(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, funnel)): ApiPath<(String, String)>,
) -> Result<Json<Funnel>, Problem> {
    Ok(Json(s.types().get_funnel(&caller, &key, &funnel).await?))
}

/// Changes a funnel's title, stages or default flag.
#[utoipa::path(patch, path = "/types/{type}/funnels/{funnel}", tag = "types", params(("type" = String, Path), ("funnel" = String, Path)),
    request_body = FunnelPatch, responses((status = 200, body = Funnel), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn update_funnel(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((key, funnel)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FunnelPatch>,
) -> Result<Json<Funnel>, Problem> {
    Ok(Json(s.types().update_funnel(&caller, &key, &funnel, body).await?))
}
