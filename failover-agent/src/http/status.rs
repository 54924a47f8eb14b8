//! `/api/v1/status` (the agent's status snapshot as JSON, the same model as
//! `failover-agent status --json`) and `/`, the status page that reads it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Served;

/// The status page: one file, its CSS and JavaScript inline, nothing
/// fetched from elsewhere; it polls `/api/v1/status`.
pub const PAGE: &str = include_str!("page.html");

pub(super) async fn json(State(served): State<Arc<Served>>) -> Response {
    // Cloned out of the watch at once: the agent's next send never waits.
    let status = served.status.borrow().clone();
    // 10,000 endpoints make megabytes of JSON: off the async workers.
    match tokio::task::spawn_blocking(move || serde_json::to_vec(&*status)).await {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the status failed: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the status failed: {e}\n"),
        )
            .into_response(),
    }
}

pub(super) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Everything is inline and same-origin: say so to the browser.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}
