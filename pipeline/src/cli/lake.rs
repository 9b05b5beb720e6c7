//! `radstream lake`: the analytics lake, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::common::{load_config, report_error, wait_for_signal, USAGE_EXIT};

/// Write the analytics lake until SIGTERM or Ctrl-C: one Parquet row per instance of the
/// outcome topic (pseudonymized UIDs, model, findings, latencies) and the radiologists'
/// verdicts from `lake.feedback_topic`, as files in `lake.bucket`, partitioned by date and
/// model; serves the agreement metrics on `lake.metrics_listen`. See docs/lake.md.
///
/// Consumer group `<kafka.group_id>-lake`; offsets are committed after the files are
/// uploaded. Exit 2 on a config error (no [lake] section, an unreadable key file).
#[derive(Debug, clap::Args)]
pub struct LakeArgs {
    /// Config file (TOML) with a [lake] section; `RADSTREAM__LAKE__*` variables override it.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Runs the lake. Exit status 2 for a config error (no `[lake]` section, an unreadable key).
pub async fn execute(args: &LakeArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match crate::lake::consumer::run(&config, wait_for_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_config() => {
            report_error(&e.to_string());
            Ok(ExitCode::from(USAGE_EXIT))
        }
        Err(e) => Err(e.into()),
    }
}
