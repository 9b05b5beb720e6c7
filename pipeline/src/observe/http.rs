//! The HTTP endpoints: `/metrics`, `/healthz` and, on the workers, `/readyz`.
//!
//! `/healthz` answers 200 while the process runs and the worker can go on; once the runtime
//! found that it cannot (a stage's task died, an output topic refuses every record), 503 with
//! the reason, until the process exits non-zero. `/readyz` answers 200 only when partitions
//! are assigned to this worker, every destination answered its last probe and the worker is
//! healthy; otherwise 503 with the reason, so a load balancer or Kubernetes can tell why. The lake serves the same
//! `/metrics` and `/healthz` (it has no readiness of its own).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// Why the worker cannot go on, once the runtime found it (the first reason).
    failure: OnceLock<String>,
}

impl Readiness {
    /// The worker cannot go on: `/healthz` and `/readyz` answer 503 with `reason` from now on.
    /// The first reason stays.
    pub fn fail(&self, reason: String) {
        let _ = self.failure.set(reason);
    }

    /// Why the worker cannot go on, if it cannot.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
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

/// `/metrics`, the route every process serves (each adds its own `/healthz`).
fn base_routes<S: Exposition>() -> Router<S> {
    Router::new().route("/metrics", get(metrics_handler::<S>))
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
    let app = base_routes::<AppState>()
        .route("/healthz", get(health_handler))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, readiness });
    spawn(listen, app, "metrics endpoint").await
}

/// Starts the lake's endpoint (`/metrics`, `/healthz`) on `listen`; returns the bound address.
pub async fn serve_lake(listen: &str, metrics: LakeMetrics) -> std::io::Result<SocketAddr> {
    let app = base_routes::<LakeMetrics>().route("/healthz", get(|| async { "ok\n" })).with_state(metrics);
    spawn(listen, app, "lake metrics endpoint").await
}

async fn metrics_handler<S: Exposition>(State(state): State<S>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.exposition())
}

async fn health_handler(State(state): State<AppState>) -> (StatusCode, String) {
    health(&state.readiness)
}

fn health(readiness: &Readiness) -> (StatusCode, String) {
    match readiness.failure() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {reason}\n")),
    }
}

async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(reason) = state.readiness.failure() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: unhealthy: {reason}\n"));
    }
    let partitions = state.metrics.assigned_partitions.get();
    let destinations = state.readiness.destinations_ok.load(Ordering::Relaxed);
    match (partitions > 0, destinations) {
        (true, true) => (StatusCode::OK, format!("ready: {partitions} partitions assigned, destinations reachable\n")),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no partitions assigned to this worker\n".into()),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: a destination (PACS) is unreachable\n".into()),
    }
}

#[cfg(test)]
mod tests;
