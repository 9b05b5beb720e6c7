//! `radstream validate`: checks a config without touching the network.

use std::path::PathBuf;
use std::process::ExitCode;

use radstream_operators::OperatorConfig;

use crate::cli::common::check_config;

/// Check a config file without touching the network; exit 2 when it is invalid.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Config file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Loads and validates the config; prints its input topic and chain. Exit status 2 when invalid.
pub fn execute(args: &ValidateArgs) -> ExitCode {
    let c = match check_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let chain: Vec<_> = c.operators.iter().map(OperatorConfig::kind).collect();
    println!("{}: valid (input topic {}, chain {})", args.config.display(), c.kafka.input_topic, chain.join(" -> "));
    ExitCode::SUCCESS
}
