//! `/users`, `/departments`, `/roles`, `/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf, Page};
use voronka_core::service::people::{DepartmentRequest, NewUserRequest, RoleRequest, UserPatch};
use voronka_model::people::{Department, Role, User};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(create_token))
        .routes(routes!(list_departments, create_department))
        .routes(routes!(update_department))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role))
        .routes(routes!(me))
}

/// Every user, active or not, by id, a page at a time (any signed-in user).
#[utoipa::path(get, path = "/users", tag = "people", params(Page), responses((status = 200, body = ListOf<User>)))]
async fn list_users(
    State(s): State<AppState>,
    _: Auth,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<ListOf<User>>, Problem> {
    let limit = page.limit()?;
    let mut users = s.people().list_users(page.after()?, limit).await?;
    let next = voronka_core::service::page_cursor(&mut users, limit, |u| u.id);
    Ok(Json(ListOf::new(users, next)))
}

/// Creates a user (administrators).
#[utoipa::path(post, path = "/users", tag = "people", request_body = NewUserRequest,
    responses((status = 201, body = User), (status = 403, body = ProblemDocument), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_user(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewUserRequest>,
) -> Result<(StatusCode, Json<User>), Problem> {
    Ok((StatusCode::CREATED, Json(s.people().create_user(&caller, body).await?)))
}

/// One user by id, active or not (any signed-in user may read it).
#[utoipa::path(get, path = "/users/{id}", tag = "people", params(("id" = i64, Path)), responses((status = 200, body = User), (status = 404, body = ProblemDocument)))]
async fn get_user(State(s): State<AppState>, _: Auth, ApiPath(id): ApiPath<i64>) -> Result<Json<User>, Problem> {
    Ok(Json(s.people().get_user(id).await?))
}

/// Changes a user (administrators).
#[utoipa::path(patch, path = "/users/{id}", tag = "people", params(("id" = i64, Path)), request_body = UserPatch,
    responses((status = 200, body = User), (status = 422, body = ProblemDocument)))]
async fn update_user(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<User>, Problem> {
    Ok(Json(s.people().update_user(&caller, id, body).await?))
}

/// `POST /users/{id}/tokens` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// A label for the token; blank or absent gives `api`.
    #[serde(default)]
    name: String,
}

/// A token, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct IssuedToken {
    /// The id the new token is stored under.
    id: i64,
    /// The bearer token; only its hash is stored.
    token: String,
}

/// Issues an API token for a user (administrators, or the user itself); returned once.
#[utoipa::path(post, path = "/users/{id}/tokens", tag = "people", params(("id" = i64, Path)), request_body = NewToken,
    responses((status = 201, body = IssuedToken), (status = 403, body = ProblemDocument)))]
async fn create_token(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<IssuedToken>), Problem> {
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<NewToken>(&body)
            .map_err(|e| Problem::bad_request("malformed-json", format!("the body is not a token request: {e}")))?
            .name
    };
    let (token_id, token) = s.people().issue_token(&caller, id, &name).await?;
    Ok((StatusCode::CREATED, Json(IssuedToken { id: token_id, token })))
}

/// Every department, by id (any signed-in user; not paged).
#[utoipa::path(get, path = "/departments", tag = "people", responses((status = 200, body = ListOf<Department>)))]
async fn list_departments(State(s): State<AppState>, _: Auth) -> Result<Json<ListOf<Department>>, Problem> {
    Ok(Json(ListOf::new(s.people().list_departments().await?, None)))
}

/// Creates a department (administrators).
#[utoipa::path(post, path = "/departments", tag = "people", request_body = DepartmentRequest,
    responses((status = 201, body = Department), (status = 422, body = ProblemDocument)))]
async fn create_department(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<DepartmentRequest>,
) -> Result<(StatusCode, Json<Department>), Problem> {
    Ok((StatusCode::CREATED, Json(s.people().create_department(&caller, body).await?)))
}

/// Changes a department (administrators).
#[utoipa::path(patch, path = "/departments/{id}", tag = "people", params(("id" = i64, Path)), request_body = DepartmentRequest,
    responses((status = 200, body = Department), (status = 422, body = ProblemDocument)))]
async fn update_department(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DepartmentRequest>,
) -> Result<Json<Department>, Problem> {
    Ok(Json(s.people().update_department(&caller, id, body).await?))
}

/// Every role with its permissions, by key (any signed-in user; not paged).
#[utoipa::path(get, path = "/roles", tag = "people", responses((status = 200, body = ListOf<Role>)))]
async fn list_roles(State(s): State<AppState>, _: Auth) -> Result<Json<ListOf<Role>>, Problem> {
    Ok(Json(ListOf::new(s.people().list_roles().await?, None)))
}

/// Creates a role (administrators).
#[utoipa::path(post, path = "/roles", tag = "people", request_body = RoleRequest,
    responses((status = 201, body = Role), (status = 409, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn create_role(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<(StatusCode, Json<Role>), Problem> {
    Ok((StatusCode::CREATED, Json(s.people().create_role(&caller, body).await?)))
}

/// Replaces a role's title and permissions (administrators).
#[utoipa::path(patch, path = "/roles/{key}", tag = "people", params(("key" = String, Path)), request_body = RoleRequest,
    responses((status = 200, body = Role), (status = 422, body = ProblemDocument)))]
async fn update_role(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<Json<Role>, Problem> {
    Ok(Json(s.people().update_role(&caller, &key, body).await?))
}

/// The user the bearer token belongs to.
#[utoipa::path(get, path = "/me", tag = "people", responses((status = 200, body = User)))]
async fn me(State(s): State<AppState>, Auth(caller): Auth) -> Result<Json<User>, Problem> {
    Ok(Json(s.people().get_user(caller.principal.user_id).await?))
}
