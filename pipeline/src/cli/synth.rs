//! `radstream synth`: synthetic CT, CR and MR studies.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::synth::{self, SynthOptions};

/// Write synthetic CT, CR and MR studies (with fake PHI where scanners put it).
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of studies.
    #[arg(long, default_value_t = 6)]
    pub studies: usize,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed (same seed, same files).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Aim for about this many bytes per instance (e.g. 524288).
    #[arg(long)]
    pub instance_bytes: Option<usize>,
    /// Also write where the planted lesions are (which studies, series and instances, and
    /// each disc's centre and radius in pixels) as JSON to this file. Keep it outside
    /// --out: publish, deid and preprocess take every file of a folder.
    #[arg(long, value_name = "FILE")]
    pub ground_truth: Option<PathBuf>,
}

/// Writes the studies (and, when asked, where their lesions are).
pub fn execute(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    let SynthArgs { studies, out, seed, instance_bytes, ground_truth } = args;
    let opts =
        SynthOptions { studies: *studies, seed: *seed, target_instance_bytes: *instance_bytes, ..Default::default() };
    if let Some(path) = ground_truth {
        if path.starts_with(out) {
            anyhow::bail!("--ground-truth {} is inside --out: put it elsewhere", path.display());
        }
    }
    let written = synth::write_to_dir(&opts, out)?;
    println!("wrote {} instances of {studies} studies to {}", written.len(), out.display());
    if let Some(path) = ground_truth {
        synth::write_ground_truth(&opts, path)?;
        println!("wrote the planted lesions to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
