//! `radstream run`: a worker of the pipeline's consumer group, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info, warn};

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
/// built; 1 when the worker stopped because it cannot go on (a stage's task died, an output
/// topic refuses every record); a first signal drains in-flight work, a second exits at once
/// (130).
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
    withhold_panic_messages();
    crate::observe::health::spawn_probes(&config, readiness.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: draining in-flight work");
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        warn!("second signal: exiting now without draining");
        std::process::exit(130);
    });
    let result = pipeline::run_reporting(config, metrics, Arc::new(RunStats::default()), stop_rx, readiness).await;
    exit_code(result)
}

/// The exit status of a run that ended with `result`; `Err` for what `main` reports (exit 1).
fn exit_code(result: Result<(), RuntimeError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A config that validates but cannot be built (a missing key or secret file, a schema
        // file that does not parse) is a configuration error too: exit 2, like `validate`.
        Err(e @ (RuntimeError::Operator { .. } | RuntimeError::UnservedModel { .. } | RuntimeError::Schema(_))) => {
            report_error(&e.to_string());
            Ok(ExitCode::from(USAGE_EXIT))
        }
        // RuntimeError::Failed (the worker cannot go on) and Kafka errors: exit 1.
        Err(e) => Err(e.into()),
    }
}

/// Logs a panic's location only. The default hook prints its message, which may quote what an
/// operator was reading (a patient's name in a header, say); an operator's panic is caught and
/// its batch dead-lettered, and this line says where it happened.
fn withhold_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current();
        error!(
            location = location.as_deref().unwrap_or("unknown"),
            thread = thread.name().unwrap_or("unnamed"),
            "panic (its message is withheld: it may hold patient data)"
        );
    }));
}

#[cfg(test)]
mod tests;
