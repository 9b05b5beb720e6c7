//! `radstream run`: a worker of the pipeline's consumer group, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::common::{load_config, report_error, wait_for_signal, USAGE_EXIT};
use crate::config::Config;
use crate::observe::http::{serve, Readiness};
use crate::observe::metrics::Metrics;
use crate::runtime::error::RuntimeError;
use crate::runtime::pipeline;
use crate::runtime::stats::RunStats;

/// Run the pipeline (a worker of its consumer group) until SIGTERM or Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file (TOML); `RADSTREAM__SECTION__KEY` environment variables override it.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Runs the worker. Exit status 2 for a config that does not load or whose operators cannot be
/// built; a first signal drains in-flight work, a second exits at once (130).
pub async fn execute(args: &RunArgs) -> anyhow::Result<ExitCode> {
    match load_config(&args.config) {
        Ok(config) => run(config).await,
        Err(code) => Ok(code),
    }
}

async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let metrics = Metrics::new();
    let readiness = Arc::new(Readiness::default());
    if !config.metrics.listen.is_empty() {
        let addr = serve(&config.metrics.listen, metrics.clone(), readiness.clone())
            .await
            .with_context(|| format!("metrics.listen = {}: cannot listen", config.metrics.listen))?;
        info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    crate::observe::health::spawn_probes(&config, readiness);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: draining in-flight work");
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        warn!("second signal: exiting now without draining");
        std::process::exit(130);
    });
    match pipeline::run(config, metrics, Arc::new(RunStats::default()), stop_rx).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A config that validates but cannot be built (a missing key or secret file, a schema
        // file that does not parse) is a configuration error too: exit 2, like `validate`.
        Err(e @ (RuntimeError::Operator { .. } | RuntimeError::UnservedModel { .. } | RuntimeError::Schema(_))) => {
            report_error(&e.to_string());
            Ok(ExitCode::from(USAGE_EXIT))
        }
        Err(e) => Err(e.into()),
    }
}
