//! What an operator's config implements to be registered: its kind, a pure validation, how it
//! is built and, for a sink, how its destination is probed for readiness. The registry
//! (`crate::registry`) turns one line per implementor into the `[[operators]]` config enum.

use std::sync::Arc;

use async_trait::async_trait;

use super::build::BuildContext;
use super::error::ConfigError;
use super::operator::Operator;

/// Asks a destination whether it answers, for `/readyz`.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// A bounded name for logs: the operator kind and destination kind (never a URL with
    /// credentials, never patient data).
    fn name(&self) -> &str;

    /// One probe: `Err` says what failed (never a response body).
    async fn probe(&self) -> Result<(), String>;
}

/// An operator's configuration, as the registry sees it.
pub trait OperatorSpec {
    /// The `type` of its `[[operators]]` table, and the `operator` metric label.
    const KIND: &'static str;

    /// True for operators that deliver to a destination (the chain must end with one).
    const IS_SINK: bool = false;

    /// Checks the configuration without touching the network or the filesystem.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Builds the runtime operator (may read secrets from the environment or files).
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Operator>, ConfigError>;

    /// For a sink whose destination can be asked whether it answers: the probe; `None` for
    /// other operators, and where the probe cannot be built (the same failure then stops
    /// [`build`](Self::build), which says why).
    fn readiness(&self) -> Option<Arc<dyn ReadinessProbe>> {
        None
    }

    /// A minimal valid TOML table of this operator (without `type`), for the compliance test
    /// that runs over every registered operator: it may name only files in this repository
    /// (relative to the crate's directory) and the environment variables the test sets:
    /// `RADSTREAM_TEST_SECRET` (a password or token) and `RADSTREAM_TEST_DEID_KEY` (a
    /// pseudonymization key). URLs point at `127.0.0.1:9`, where nothing listens.
    fn example() -> &'static str;
}
