//! Errors as `application/problem+json` (RFC 9457) with a stable machine `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::model::FieldError;
use crate::service::ServiceError;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the problem kind (`urn:voronka:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// Stable machine code, e.g. `validation-failed`.
    pub code: String,
    /// For validation problems: each offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// Builds a problem.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:voronka:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            errors: Vec::new(),
        }
    }

    /// A 422 naming each invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Problem { errors, ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", detail) }
    }

    /// 401.
    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 400.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
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
            ServiceError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "conflict", m),
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
