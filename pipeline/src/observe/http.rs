//! The HTTP endpoints: `/metrics`, `/healthz` and, on the workers, `/readyz`.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 only when partitions
//! are assigned to this worker and every destination answered its last probe; otherwise 503
//! with the reason, so a load balancer or Kubernetes can tell why. The lake serves the same
//! `/metrics` and `/healthz` (it has no readiness of its own).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::observe::metrics::{LakeMetrics, Metrics};

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

/// Something whose metrics `/metrics` shows.
trait Exposition: Clone + Send + Sync + 'static {
    fn exposition(&self) -> String;
}

impl Exposition for LakeMetrics {
    fn exposition(&self) -> String {
        self.render()
    }
}

impl Exposition for AppState {
    fn exposition(&self) -> String {
        self.metrics.render()
    }
}

/// `/metrics` and `/healthz`, the routes every process serves.
fn base_routes<S: Exposition>() -> Router<S> {
    Router::new().route("/metrics", get(metrics_handler::<S>)).route("/healthz", get(|| async { "ok\n" }))
}

/// Binds `listen` and serves `app` in the background; returns the bound address.
async fn spawn(listen: &str, app: Router, what: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok(addr)
}

/// Starts a worker's endpoint on `listen`; returns the bound address.
pub async fn serve(listen: &str, metrics: Metrics, readiness: Arc<Readiness>) -> std::io::Result<SocketAddr> {
    let app =
        base_routes::<AppState>().route("/readyz", get(ready_handler)).with_state(AppState { metrics, readiness });
    spawn(listen, app, "metrics endpoint").await
}

/// Starts the lake's endpoint (`/metrics`, `/healthz`) on `listen`; returns the bound address.
pub async fn serve_lake(listen: &str, metrics: LakeMetrics) -> std::io::Result<SocketAddr> {
    spawn(listen, base_routes::<LakeMetrics>().with_state(metrics), "lake metrics endpoint").await
}

async fn metrics_handler<S: Exposition>(State(state): State<S>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.exposition())
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
