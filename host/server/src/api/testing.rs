//! Routes for tests, served only when the server runs with test hooks on
//! (`VORONKA_TEST_HOOKS=1`), and left out of the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiQuery, Auth};
use super::problem::Problem;

/// Longest wait a caller may ask for, in milliseconds.
const MAX_WAIT_MS: u64 = 60_000;

/// The test routes, under `/testing`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/testing/settled", get(settled))
}

/// Query of `GET /testing/settled`.
#[derive(Debug, serde::Deserialize)]
struct SettledQuery {
    /// How long to wait for the automation to settle, in milliseconds (default 10 000).
    timeout_ms: Option<u64>,
}

/// `GET /testing/settled`: waits until this host's automation has settled (see
/// [`voronka_core::automation::settled`]) and answers `{"settled": true}`, or 503 naming what
/// still kept it busy when the wait ran out. Administrators only.
async fn settled(
    State(core): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<SettledQuery>,
) -> Result<Json<Value>, Problem> {
    let wait = Duration::from_millis(query.timeout_ms.unwrap_or(10_000).min(MAX_WAIT_MS));
    match voronka_core::automation::settled::wait(&core, &caller, wait).await? {
        None => Ok(Json(json!({"settled": true}))),
        Some(busy) => Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-settled", format!("still busy: {busy}"))),
    }
}
