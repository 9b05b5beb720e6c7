//! `/metrics`, `/healthz` and `/readyz`.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 only when partitions
//! are assigned to this worker and every destination answered its last probe; otherwise 503
//! with the reason, so a load balancer or Kubernetes can tell why.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What readiness depends on.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Whether every destination answered its last probe.
    pub destinations_ok: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Arc<Readiness>,
}

/// Starts the endpoint on `listen`; returns the bound address.
pub async fn serve(listen: &str, metrics: Metrics, readiness: Arc<Readiness>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, readiness });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(addr)
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    let partitions = state.metrics.assigned_partitions.get();
    let destinations = state.readiness.destinations_ok.load(Ordering::Relaxed);
    match (partitions > 0, destinations) {
        (true, true) => (StatusCode::OK, format!("ready: {partitions} partitions assigned, destinations reachable\n")),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no partitions assigned to this worker\n".into()),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: a destination (PACS) is unreachable\n".into()),
    }
}
