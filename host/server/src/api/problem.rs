//! Errors as `application/problem+json` (RFC 9457) with a stable machine `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use voronka_core::service::ServiceError;
use voronka_model::FieldError;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem on its way to the client: status, stable machine code, detail, field errors.
#[derive(Debug)]
pub struct Problem {
    /// The response's status; also the document's `status`.
    pub status: StatusCode,
    /// Stable machine code, e.g. `validation-failed`.
    pub code: &'static str,
    /// What went wrong in this case.
    pub detail: String,
    /// For validation problems: each offending field.
    pub errors: Vec<FieldError>,
}

/// The problem document as serialised (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument<'a> {
    /// URI naming the problem kind (`urn:voronka:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: &'a str,
    /// The response's HTTP status code, repeated in the body.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: &'a str,
    /// Stable machine code, e.g. `validation-failed`.
    pub code: &'a str,
    /// For validation problems: each offending field.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub errors: &'a [FieldError],
}

impl Problem {
    /// A problem of `status` and `code` with `detail` and no field errors.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, code, detail: detail.into(), errors: Vec::new() }
    }

    /// A 422 naming each invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Problem { errors, ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", detail) }
    }

    /// A 401 `unauthorized`; the response also carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// A 400 with the given `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// The serialisable document.
    pub fn document(&self) -> ProblemDocument<'_> {
        ProblemDocument {
            kind: format!("urn:voronka:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Problem {
        match error {
            ServiceError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "not-found", m),
            ServiceError::Validation(errors) => Problem::validation(errors),
            ServiceError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::AutomaticMovesOnly(m) => Problem::new(StatusCode::FORBIDDEN, "automatic-moves-only", m),
            ServiceError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::TooLarge(m) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", m),
            e @ ServiceError::PreconditionFailed { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "precondition-failed", e.to_string())
            }
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed to complete the request")
            }
        }
    }
}
