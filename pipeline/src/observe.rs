//! What the processes show of themselves: every metric (names, help, labels, registration) and
//! the HTTP endpoints that serve them with health and readiness.

pub mod http;
pub mod metrics;
