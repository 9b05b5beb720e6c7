//! `radstream publish`: uploads DICOM files and produces their events.

use std::path::PathBuf;
use std::process::ExitCode;

use radstream_schemas::Priority;

use crate::cli::common::load_config;
use crate::files::collect_files;
use crate::publish::{ensure_not_empty, publish, PublishOptions};

/// Upload DICOM files to the configured object store and produce their events.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Config file: its `kafka` and `objects` sections are used.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Bucket to upload into.
    #[arg(long)]
    pub bucket: String,
    /// Key prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Mark the events STAT.
    #[arg(long)]
    pub stat: bool,
    /// Source (AE title) on the events.
    #[arg(long)]
    pub source: Option<String>,
    /// Uploads in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Files or folders.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Publishes every file with a progress bar. Exit status 2 when the config does not load.
pub async fn execute(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let list = collect_files(&args.files)?;
    ensure_not_empty(&list, &args.files)?;
    let n = list.len();
    let bar = indicatif::ProgressBar::new(n as u64);
    let opts = PublishOptions {
        bucket: args.bucket,
        prefix: args.prefix,
        priority: if args.stat { Priority::Stat } else { Priority::Routine },
        source: args.source,
        concurrency: args.concurrency,
        skip_events: false,
    };
    publish(&config.kafka, &config.objects, list, &opts, || bar.inc(1)).await?;
    bar.finish_and_clear();
    println!("published {n} instances to {} (bucket {})", config.kafka.input_topic, opts.bucket);
    Ok(ExitCode::SUCCESS)
}
