//! The REST API under `/api/v1`: JSON in and out, bearer tokens, problem documents, an OpenAPI
//! 3.1 document generated from the handlers.

mod events;
mod extract;
mod files;
mod idempotency;
mod items;
mod notifications;
mod people;
mod plugins;
pub mod problem;
mod processes;
mod robots;
mod schedules;
mod tasks;
mod testing;
mod triggers;
mod types;
mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use problem::Problem;
use voronka_core::service::{Caller, Core};

/// Largest accepted request body, in bytes (plugin uploads: [`MAX_UPLOAD`]).
pub const MAX_BODY: usize = 1024 * 1024;

/// Largest plugin upload (module plus manifest and multipart framing).
pub const MAX_UPLOAD: usize = voronka_core::service::plugins::MAX_MODULE + 64 * 1024;

/// Largest file upload (the file plus its other parts and multipart framing).
pub const MAX_FILE_UPLOAD: usize = voronka_model::file::MAX_FILE as usize + 64 * 1024;

/// The body limit of a route.
pub fn body_limit(path: &str) -> usize {
    match path {
        "/api/v1/plugins" => MAX_UPLOAD,
        "/api/v1/files" => MAX_FILE_UPLOAD,
        _ => MAX_BODY,
    }
}

/// Shared state of every handler.
pub type AppState = Arc<Core>;

#[derive(OpenApi)]
#[openapi(
    info(title = "Voronka", description = "CRM automation platform: items, funnels, stages, people and access."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(problem::ProblemDocument))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Builds the whole HTTP application; `test_hooks` adds the routes for tests
/// (`/api/v1/testing/...`).
pub fn router(core: Arc<Core>, test_hooks: bool) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(types::routes())
        .merge(items::routes())
        .merge(people::routes())
        .merge(events::routes())
        .merge(plugins::routes())
        .merge(robots::routes())
        .merge(triggers::routes())
        .merge(webhooks::routes())
        .merge(schedules::routes())
        .merge(tasks::routes())
        .merge(files::routes())
        .merge(processes::routes())
        .merge(notifications::routes())
        .split_for_parts();
    let (public, public_openapi) = OpenApiRouter::<AppState>::new().merge(triggers::public_routes()).split_for_parts();
    let mut openapi = openapi;
    openapi.merge(public_openapi);
    openapi.paths.paths = openapi.paths.paths.into_iter().map(|(p, v)| (format!("/api/v1{p}"), v)).collect();
    let document = Arc::new(openapi);
    let api = if test_hooks { api.merge(testing::routes()) } else { api };
    let api = api
        .route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
        .layer(middleware::from_fn_with_state(core.clone(), idempotency::layer))
        .layer(middleware::from_fn_with_state(core.clone(), authenticate))
        .fallback(|| async { Problem::new(axum::http::StatusCode::NOT_FOUND, "not-found", "no such route") })
        .with_state(core.clone());
    let public = public.with_state(core);
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .nest("/api/v1", public.merge(api))
        .fallback(|| async { Problem::new(axum::http::StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_oversized))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed to complete the request",
            )
            .into_response()
        }))
        .layer(TraceLayer::new_for_http())
}

/// Refuses a body whose announced length is over [`MAX_BODY`] before reading any of it (a body
/// without a length is cut off at the limit by the JSON extractor instead).
async fn refuse_oversized(request: Request, next: Next) -> Response {
    let limit = body_limit(request.uri().path());
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        let detail = format!("the body is larger than {limit} bytes");
        return Problem::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", detail).into_response();
    }
    next.run(request).await
}

/// Resolves `Authorization: Bearer <token>` to a [`Caller`]; 401 otherwise.
async fn authenticate(State(core): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
        return Problem::unauthorized("send Authorization: Bearer <token>").into_response();
    };
    match core.people().authenticate(token).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(Caller::user(principal));
            next.run(request).await
        }
        Ok(None) => Problem::unauthorized("the token is unknown, revoked, or its user is inactive").into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// Pagination query shared by simple lists.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
}

impl Page {
    /// The page size asked for, 50 when absent; 422 `validation-failed` outside 1 to 500.
    pub fn limit(&self) -> Result<i64, Problem> {
        match self.limit {
            None => Ok(voronka_core::service::list::DEFAULT_LIMIT),
            Some(n) if (1..=voronka_core::service::list::MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(Problem::validation(vec![voronka_model::FieldError::new(
                "limit",
                "limit is a whole number from 1 to 500",
            )])),
        }
    }

    /// Numeric cursor (0 when absent).
    pub fn after(&self) -> Result<i64, Problem> {
        match &self.cursor {
            None => Ok(0),
            Some(c) => c.parse().map_err(|_| {
                Problem::validation(vec![voronka_model::FieldError::new("cursor", "not a cursor returned by this API")])
            }),
        }
    }
}

/// A page of a simple list.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ListOf<T> {
    /// This page's entries, at most the page size.
    pub items: Vec<T>,
    /// Cursor of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl<T> ListOf<T> {
    /// A list with a numeric next cursor.
    pub fn new(items: Vec<T>, next: Option<i64>) -> ListOf<T> {
        ListOf { items, next_cursor: next.map(|n| n.to_string()) }
    }
}
