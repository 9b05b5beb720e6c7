//! What the processes show of themselves: every metric (names, help, labels, registration), the
//! HTTP endpoints that serve them with health and readiness, and the probes of every sink's
//! destination behind `/readyz`.

pub mod health;
pub mod http;
pub mod metrics;
