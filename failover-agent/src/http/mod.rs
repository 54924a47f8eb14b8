//! The read-only HTTP endpoint (`[http] listen`): `/metrics`
//! ([`metrics`]), `/api/v1/status` and the status page `/` ([`status`]),
//! `/healthz` and `/readyz`.
//!
//! Nothing here reaches into the agent's loop: it reads what the loop
//! publishes (the status snapshot and progress through watch channels, the
//! counters its observers feed) and what is shared anyway (kernel and
//! server counters). A slow or hostile client costs a connection slot and
//! a little memory, never a check or a DNS answer; encoding runs off the
//! async workers.

pub mod metrics;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use log::{debug, info, warn};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::agent::Progress;
use crate::agent::lifecycle::Phase;
use crate::control::StatusReport;
pub use metrics::{Metrics, Sources};

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// A client gets this long to send a request's headers (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection lives, however busy (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request head (request line and headers) read; beyond it: 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body accepted (every route is a GET); beyond it: 413.
pub const MAX_BODY_BYTES: usize = 1024;
/// Longest a request is worked on; beyond it: 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint serves from, shared by every request.
pub struct Served {
    pub metrics: Metrics,
    /// The agent's last status snapshot ([`crate::agent::Agent::status_feed`]).
    pub status: watch::Receiver<Arc<StatusReport>>,
    pub progress: watch::Receiver<Progress>,
    /// The process's phase: handing over or stopping is not ready.
    pub phase: watch::Receiver<Phase>,
}

/// Binds `addr` for the HTTP endpoint. When `addr` is only the default and
/// is taken (another agent on this host), warns and returns None; an
/// address given explicitly must work.
pub fn bind(addr: SocketAddr, is_default: bool) -> Result<Option<std::net::TcpListener>> {
    match std::net::TcpListener::bind(addr) {
        Ok(listener) => {
            listener
                .set_nonblocking(true)
                .context("making the HTTP listener non-blocking")?;
            Ok(Some(listener))
        }
        Err(e) if is_default => {
            warn!(
                "HTTP endpoint: cannot listen on {addr}: {e}; running without one (give one with --http-listen or [http] listen)"
            );
            Ok(None)
        }
        Err(e) => {
            bail!("HTTP endpoint: cannot listen on {addr} ([http] listen / --http-listen): {e}")
        }
    }
}

/// The routes, with limits on what a request may be.
fn router(shared: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(status::page))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/status", get(status::json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(shared)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
}

/// Serves `listener` until the task is dropped or aborted.
pub async fn serve(listener: std::net::TcpListener, served: Served) -> Result<()> {
    let listener = TcpListener::from_std(listener).context("serving HTTP")?;
    let addr = listener.local_addr()?;
    info!(
        "HTTP endpoint: http://{addr}/ (status page), /metrics, /api/v1/status, /healthz, /readyz"
    );
    let service = TowerToHyperService::new(router(Arc::new(served)));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot first: over the limit, connections wait in the backlog.
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off.
                warn!("HTTP endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("HTTP {peer}: {e}"),
                Err(_) => debug!("HTTP {peer}: connection open too long, closed"),
            }
            drop(slot);
        });
    }
}

async fn metrics_handler(State(shared): State<Arc<Served>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(metrics::wants_openmetrics);
    let shared2 = shared.clone();
    // Encoding 10,000 endpoints is CPU work: off the async workers, which
    // run the checks and the DNS server.
    let body = tokio::task::spawn_blocking(move || {
        if openmetrics {
            shared2.metrics.openmetrics()
        } else {
            shared2.metrics.text()
        }
    })
    .await;
    match body {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                if openmetrics {
                    metrics::OPENMETRICS
                } else {
                    metrics::TEXT_004
                },
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Served>>) -> Response {
    match readiness(*shared.phase.borrow(), shared.progress.borrow().answering) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// Ready while answering and not on the way out; else why not.
fn readiness(phase: Phase, answering: bool) -> Result<(), &'static str> {
    match (phase, answering) {
        (Phase::HandingOver, _) => Err("handing over to a successor"),
        (Phase::Stopping, _) => Err("shutting down"),
        (_, false) => Err("the first round of health checks is still running"),
        (_, true) => Ok(()),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        "not found: this endpoint serves / (status page), /metrics, /api/v1/status, /healthz and /readyz\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests;
