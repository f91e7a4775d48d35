//! `Idempotency-Key` on POST: a repeated key returns the first response and writes nothing new.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::{PROBLEM_JSON, Problem};
use voronka_core::service::Caller;
use voronka_store::idempotency::{self, KeyState};

/// Header carrying the key.
const HEADER: &str = "idempotency-key";

/// Middleware: reserves the key, runs the request, records the response; replays it for repeats.
pub async fn layer(State(core): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => {
            return Problem::bad_request(
                "bad-idempotency-key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let limit = super::body_limit(parts.uri.path());
    let Ok(bytes) = to_bytes(body, limit).await else {
        let detail = format!("the body is larger than {limit} bytes");
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", detail).into_response();
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());
    let user = caller.principal.user_id;
    match idempotency::reserve(core.store(), user, &key, &fingerprint).await {
        Err(e) => return Problem::from(voronka_core::service::ServiceError::from(e)).into_response(),
        Ok(KeyState::Done { fingerprint: f, .. } | KeyState::InProgress { fingerprint: f }) if f != fingerprint => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request",
            )
            .into_response();
        }
        Ok(KeyState::InProgress { .. }) => {
            return Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-progress",
                "a request with this Idempotency-Key is still running",
            )
            .into_response();
        }
        Ok(KeyState::Done { status, body, .. }) => return replay(status, body),
        Ok(KeyState::Reserved) => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        let _ = idempotency::release(core.store(), user, &key).await;
        return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the response could not be read")
            .into_response();
    };
    let recorded = if status.is_server_error() {
        idempotency::release(core.store(), user, &key).await
    } else {
        idempotency::complete(core.store(), user, &key, status.as_u16(), &String::from_utf8_lossy(&body)).await
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, "recording an idempotency key failed");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() { "application/json" } else { PROBLEM_JSON };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
