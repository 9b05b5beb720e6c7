//! `radstream demo`: the whole chain on embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{self, DemoOptions};

/// The whole chain on embedded defaults: in-process broker, local store, synthetic studies,
/// the demo head CT bleed model.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Synthetic studies to generate.
    #[arg(long, default_value_t = 6)]
    pub studies: usize,
    /// Keep objects, the model's files and results in this folder (default: a temporary
    /// folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// STOW-RS to this DICOMweb base URL (a real PACS) instead of the local folder store.
    #[arg(long)]
    pub pacs_url: Option<String>,
    /// Where `/metrics` is served while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Seed of the synthetic studies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the demo and prints its summary table.
pub async fn execute(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let DemoArgs { studies, out, pacs_url, metrics_listen, seed } = args;
    let summary = demo::run(DemoOptions { studies, out, pacs_url, metrics_listen, seed }).await?;
    println!("{}", summary.table());
    Ok(ExitCode::SUCCESS)
}
