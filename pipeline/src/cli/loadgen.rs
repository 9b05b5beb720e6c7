//! `radstream loadgen`: a steady stream of synthetic studies, for scale tests and benchmarks.

use std::process::ExitCode;

use crate::cli::common::{load_config, usage_exit};
use crate::loadgen::{self, LoadgenOptions};

/// Send a steady stream of synthetic studies (CT, CR, MR; series of 1 to --max-instances
/// instances; a STAT share) to the configured object store and input topic, at --rate
/// events per second, for scale tests and benchmarks.
///
/// Prints the seed (same seed, same studies), progress, and a summary: events and studies
/// sent (STAT among them), the largest series, the rate reached, and how late the latest
/// event went out against its schedule (when the machine could not keep the rate).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  radstream loadgen --config radstream.toml --bucket dicom --rate 200 --studies 100 --stat-share 0.1"
)]
pub struct LoadgenArgs {
    /// Config file: its `kafka` and `objects` sections are used.
    #[arg(long, short)]
    pub config: std::path::PathBuf,
    /// Bucket to upload into.
    #[arg(long)]
    pub bucket: String,
    /// Key prefix of the objects.
    #[arg(long, default_value = "loadgen")]
    pub prefix: String,
    /// Events (instances) per second.
    #[arg(long)]
    pub rate: f64,
    /// Studies to send.
    #[arg(long)]
    pub studies: usize,
    /// Share of STAT studies (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    pub stat_share: f64,
    /// Largest series of a CT or MR study (instances per series).
    #[arg(long, default_value_t = 500)]
    pub max_instances: usize,
    /// Aim for about this many bytes per instance (default: synth's 512x512 images).
    #[arg(long)]
    pub instance_bytes: Option<usize>,
    /// Seed (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Uploads and events in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Sends the studies with a spinner, then prints the summary. Exit status 2 when the config does
/// not load or the options are out of range.
pub async fn execute(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let LoadgenArgs {
        config,
        bucket,
        prefix,
        rate,
        studies,
        stat_share,
        max_instances,
        instance_bytes,
        seed,
        concurrency,
    } = args;
    let config = match load_config(&config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let opts = LoadgenOptions {
        studies,
        rate,
        stat_share,
        max_series_instances: max_instances,
        seed,
        instance_bytes,
        bucket,
        prefix,
        concurrency,
    };
    if let Err(e) = opts.validate() {
        return Ok(usage_exit(e));
    }
    eprintln!("radstream loadgen: seed {seed}, {studies} studies at {rate} events/s to {}", config.kafka.input_topic);
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} events sent ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let ticker = bar.clone();
    let summary = loadgen::run(&config.kafka, &config.objects, &opts, move || ticker.inc(1)).await?;
    bar.finish_and_clear();
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    println!(
        "sent {} events ({} STAT) of {} studies ({} STAT) in {:.1} s: {:.1} events/s against {rate} asked; \
         largest series {}; latest start {:.0} ms behind schedule",
        summary.events,
        summary.stat_events,
        summary.studies,
        summary.stat_studies,
        seconds,
        summary.events as f64 / seconds,
        summary.largest_series,
        summary.max_late.as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}
