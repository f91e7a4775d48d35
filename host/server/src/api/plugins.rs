//! `/plugins`: upload, list, versions, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiMultipart, ApiPath, Auth, multipart_problem};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::plugins::{MAX_MODULE, Manifest};
use voronka_model::FieldError;
use voronka_store::plugins::PluginVersion;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload_plugin))
        .routes(routes!(plugin_versions, delete_plugin))
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_UPLOAD))
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PluginUpload {
    /// JSON: `{"name","version","kind":"wasm"|"rhai","world","capabilities":[..],"limits":{..}}`.
    #[schema(value_type = Manifest)]
    manifest: String,
    /// The `.wasm` component or `.rhai` script.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    module: Vec<u8>,
}

fn invalid(field: &str, message: impl Into<String>) -> Problem {
    Problem::validation(vec![FieldError::new(field, message)])
}

/// Uploads a plugin version: `curl -F manifest='{...}' -F module=@robot.wasm`. The module is
/// compiled and type-checked against its world (a script compiled) before it is stored.
#[utoipa::path(post, path = "/plugins", tag = "plugins",
    request_body(content = inline(PluginUpload), content_type = "multipart/form-data"),
    responses((status = 201, body = PluginVersion), (status = 400, body = ProblemDocument), (status = 409, body = ProblemDocument), (status = 413, body = ProblemDocument), (status = 415, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn upload_plugin(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<(StatusCode, Json<PluginVersion>), Problem> {
    let mut manifest: Option<Manifest> = None;
    let mut module: Option<Vec<u8>> = None;
    while let Some(field) = form.next_field().await.map_err(multipart_problem)? {
        match field.name() {
            Some("manifest") => {
                let text = field.text().await.map_err(multipart_problem)?;
                manifest = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| invalid("manifest", format!("not a valid manifest: {e}")))?,
                );
            }
            Some("module") => {
                let bytes = field.bytes().await.map_err(multipart_problem)?;
                if bytes.len() > MAX_MODULE {
                    return Err(invalid("module", format!("the module is larger than {MAX_MODULE} bytes")));
                }
                module = Some(bytes.to_vec());
            }
            Some(other) => return Err(invalid(other, "unknown part; send `manifest` and `module`")),
            None => return Err(invalid("", "every part needs a name")),
        }
    }
    let manifest = manifest.ok_or_else(|| invalid("manifest", "the `manifest` part is missing"))?;
    let module = module.ok_or_else(|| invalid("module", "the `module` part is missing"))?;
    Ok((StatusCode::CREATED, Json(s.plugins().install(&caller, manifest, module).await?)))
}

/// Every stored plugin version, by name, then oldest first (not paged).
#[utoipa::path(get, path = "/plugins", tag = "plugins", responses((status = 200, body = ListOf<PluginVersion>)))]
async fn list_plugins(State(s): State<AppState>, _: Auth) -> Result<Json<ListOf<PluginVersion>>, Problem> {
    Ok(Json(ListOf::new(s.plugins().list().await?, None)))
}

/// The stored versions of one plugin, oldest first; 404 when it has none.
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = ListOf<PluginVersion>), (status = 404, body = ProblemDocument)))]
async fn plugin_versions(
    State(s): State<AppState>,
    _: Auth,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ListOf<PluginVersion>>, Problem> {
    Ok(Json(ListOf::new(s.plugins().versions(&name).await?, None)))
}

/// Deletes a plugin with all its versions; refused while a robot uses it.
#[utoipa::path(delete, path = "/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 204), (status = 409, body = ProblemDocument)))]
async fn delete_plugin(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    s.plugins().delete(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
