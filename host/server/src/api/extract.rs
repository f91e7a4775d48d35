//! Request extractors that turn bad input into problem documents.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use voronka_core::service::Caller;

/// A JSON body; malformed JSON, wrong shapes, a wrong content type or an oversized body become
/// problem documents that say what is wrong.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request("malformed-json", format!("the body is not valid JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            let text = source_text(&e);
            let mut problem = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                format!("the body does not have the expected shape: {text}"),
            );
            problem.errors.push(voronka_model::FieldError::new(field_of(&text), text));
            problem
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body is larger than {} bytes", super::MAX_BODY),
        ),
        other => Problem::bad_request("bad-request", other.body_text()),
    }
}

/// The innermost error message (serde's, with line and column).
fn source_text(error: &dyn std::error::Error) -> String {
    let mut current: &dyn std::error::Error = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Best guess at the field a serde message is about: the path before `:`, or the name in
/// backquotes (`missing field `title``).
fn field_of(message: &str) -> String {
    if let Some((path, _)) = message.split_once(": ")
        && !path.is_empty()
        && !path.contains(char::is_whitespace)
    {
        return path.to_string();
    }
    if let Some(start) = message.find('`')
        && let Some(len) = message[start + 1..].find('`')
    {
        return message[start + 1..start + 1 + len].to_string();
    }
    message.split(':').next().unwrap_or("body").trim().to_string()
}

/// The caller the request's token authenticated (see `api::auth`).
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let caller = parts.extensions.get::<Caller>().cloned();
        caller.map(Auth).ok_or_else(|| Problem::unauthorized("a bearer token is required"))
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `*` for any).
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        let text = value.to_str().unwrap_or("").trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let bare = text.trim_start_matches("W/").trim_matches('"');
        bare.parse::<i64>().map(|v| IfMatch(Some(v))).map_err(|_| {
            Problem::bad_request("bad-if-match", format!("If-Match `{text}` is not an ETag from this API, like \"3\""))
        })
    }
}

/// The ETag of an item version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Path parameters; a malformed one (e.g. a non-numeric id) becomes a problem document.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "not-found", format!("bad path: {}", e.body_text())))
    }
}

/// Query parameters; malformed ones become a problem document.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| Problem::bad_request("bad-query", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_from_serde_messages() {
        assert_eq!(field_of("missing field `title` at line 1 column 2"), "title");
        assert_eq!(field_of("unknown field `feilds`, expected one of ..."), "feilds");
        assert_eq!(field_of("amount.value: invalid type: floating point `1.5`"), "amount.value");
    }
}
