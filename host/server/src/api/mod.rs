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
    modifiers(&BearerAuth, &StepKinds),
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

/// Adds the schema `StepKind`: the `kind`s a process template's steps may have, read from the
/// model's step enum (its variants have fields, so it has no derived schema of its own).
struct StepKinds;

impl utoipa::Modify for StepKinds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let kinds = voronka_model::variant_names::<voronka_model::process::StepKind>(Some("kind"));
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The kind of a process template's step (its `kind`)."))
            .enum_values(Some(kinds))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .insert("StepKind".into(), RefOr::T(Schema::Object(schema)));
    }
}

/// The routes that need a token, those that do not (webhook triggers, the API document), and
/// the API document itself (paths under `/api/v1`).
fn parts(test_hooks: bool) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
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
    let document = Arc::new(openapi.clone());
    let api = if test_hooks { api.merge(testing::routes()) } else { api };
    // The document holds no data: served without a token.
    let public = public.route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }));
    (api, public, openapi)
}

/// Builds the whole HTTP application; `test_hooks` adds the routes for tests
/// (`/api/v1/testing/...`).
pub fn router(core: Arc<Core>, test_hooks: bool) -> Router {
    let (api, public, _) = parts(test_hooks);
    let api = api
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

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use voronka_model::variant_names;

    /// The values of an enum schema of the API document.
    fn listed(document: &Value, schema: &str) -> Vec<String> {
        let values = document["components"]["schemas"][schema]["enum"].as_array().cloned().unwrap_or_default();
        values.iter().filter_map(|v| v.as_str().map(String::from)).collect()
    }

    /// Trigger kinds, capabilities, step kinds, field kinds and worlds: the document lists what
    /// the code's enums accept, so adding a variant cannot leave the document behind.
    #[test]
    fn the_documents_enums_are_the_codes() {
        let (_, _, document) = super::parts(false);
        let document = serde_json::to_value(&document).unwrap();
        use voronka_model::{capability, field, plugin, process, trigger};
        let expected = [
            ("TriggerKind", variant_names::<trigger::TriggerKind>(None)),
            ("Capability", variant_names::<capability::Capability>(None)),
            ("StepKind", variant_names::<process::StepKind>(Some("kind"))),
            ("FieldKind", variant_names::<field::FieldKind>(None)),
            ("World", variant_names::<plugin::World>(None)),
        ];
        for (schema, code) in expected {
            assert!(code.len() >= 4, "{schema}: the code's list is read: {code:?}");
            assert_eq!(listed(&document, schema), code, "{schema}");
        }
        assert!(variant_names::<process::StepKind>(Some("kind")).iter().any(|k| k == "request-info"));
        // The request bodies name those schemas rather than a bare string.
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["TriggerRequest"]["properties"]["kind"]["$ref"], "#/components/schemas/TriggerKind");
        assert_eq!(schemas["Manifest"]["properties"]["world"]["$ref"], "#/components/schemas/World");
        assert_eq!(
            schemas["Manifest"]["properties"]["capabilities"]["items"]["$ref"],
            "#/components/schemas/Capability"
        );
    }
}
