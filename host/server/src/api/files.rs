//! `/files`: the file store. Upload with `multipart/form-data` (a part `file`, optional parts
//! `type` and `item` to attach it to an item), download with the file's media type.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiMultipart, ApiPath, Auth, multipart_problem};
use super::problem::{Problem, ProblemDocument};
use super::{AppState, ListOf};
use voronka_core::service::files::UploadInfo;
use voronka_model::FieldError;
use voronka_model::file::StoredFile;
use voronka_model::item::ItemRef;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_file))
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_FILE_UPLOAD))
        .routes(routes!(get_file))
        .routes(routes!(download_file))
        .routes(routes!(item_files))
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct FileUpload {
    /// The file (its part's file name and content type are kept).
    #[schema(format = Binary)]
    file: String,
    /// Entity type of the item to attach it to.
    r#type: Option<String>,
    /// Id of the item to attach it to.
    item: Option<i64>,
}

fn invalid(field: &str, message: impl Into<String>) -> Problem {
    Problem::validation(vec![FieldError::new(field, message)])
}

/// Uploads a file (at most 25 MiB), optionally attached to an item the caller may change.
#[utoipa::path(post, path = "/files", tag = "files",
    request_body(content = inline(FileUpload), content_type = "multipart/form-data"),
    responses((status = 201, body = StoredFile), (status = 400, body = ProblemDocument), (status = 413, body = ProblemDocument), (status = 415, body = ProblemDocument), (status = 422, body = ProblemDocument)))]
async fn upload_file(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<(StatusCode, Json<StoredFile>), Problem> {
    let mut upload = None;
    let mut info = UploadInfo::default();
    let (mut type_key, mut item) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(multipart_problem)? {
        match field.name() {
            Some("file") => {
                if upload.is_some() {
                    return Err(invalid("file", "send one `file` part"));
                }
                info.name = field.file_name().unwrap_or("").to_string();
                info.content_type = field.content_type().map(str::to_string);
                let mut staged = s.files().begin_upload().await?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_problem)? {
                    staged.write(&chunk).await?;
                }
                upload = Some(staged);
            }
            Some("type") => type_key = Some(field.text().await.map_err(multipart_problem)?),
            Some("item") => {
                let text = field.text().await.map_err(multipart_problem)?;
                item = Some(text.trim().parse::<i64>().map_err(|_| invalid("item", "an item id is a whole number"))?);
            }
            Some(other) => {
                return Err(invalid(other, "unknown part; send `file`, and `type` with `item` to attach it"));
            }
            None => return Err(invalid("", "every part needs a name")),
        }
    }
    info.attach = match (type_key, item) {
        (Some(type_key), Some(id)) => Some(ItemRef { type_key, id }),
        (None, None) => None,
        _ => return Err(invalid("item", "give `type` and `item` together")),
    };
    let upload = upload.ok_or_else(|| invalid("file", "the `file` part is missing"))?;
    Ok((StatusCode::CREATED, Json(s.files().finish_upload(&caller, upload, info).await?)))
}

/// A file's metadata.
#[utoipa::path(get, path = "/files/{id}", tag = "files", params(("id" = i64, Path)),
    responses((status = 200, body = StoredFile), (status = 404, body = ProblemDocument)))]
async fn get_file(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StoredFile>, Problem> {
    Ok(Json(s.files().get(&caller, id).await?))
}

/// A file's bytes, with its media type, offered as an attachment under its name.
#[utoipa::path(get, path = "/files/{id}/content", tag = "files", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ProblemDocument)))]
async fn download_file(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, Problem> {
    let (file, bytes) = s.files().read(&caller, id).await?;
    let ascii: String = file.name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let encoded: String = file
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    Response::builder()
        .header(header::CONTENT_TYPE, file.content_type.as_str())
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'")
        .body(Body::from(bytes))
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// The files attached to an item.
#[utoipa::path(get, path = "/items/{type}/{id}/files", tag = "files", params(("type" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ListOf<StoredFile>), (status = 404, body = ProblemDocument)))]
async fn item_files(
    State(s): State<AppState>,
    Auth(caller): Auth,
    ApiPath((type_key, id)): ApiPath<(String, i64)>,
) -> Result<Json<ListOf<StoredFile>>, Problem> {
    Ok(Json(ListOf::new(s.files().of_item(&caller, &ItemRef { type_key, id }).await?, None)))
}
