//! The `radstream` command.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use radstream_operators::preprocess::DeviceChoice;
use radstream_operators::pseudonymize::{ProfileOption, SafePrivateRule};
use radstream_operators::route::RouteAttributes;
use radstream_operators::OperatorConfig;
use radstream_pipeline::config::Config;
use radstream_pipeline::deid_cmd::{
    self, parse_safe_private, BurnedInPolicy, DeidCommand, KeySource, ProfileOptionParser,
};
use radstream_pipeline::demo::{self, DemoOptions};
use radstream_pipeline::infer_cmd::{self, InferCommand};
use radstream_pipeline::metrics::Metrics;
use radstream_pipeline::preprocess_cmd::{self, PreprocessCommand};
use radstream_pipeline::publish::{self, PublishOptions};
use radstream_pipeline::runtime::{self, parse_header, RunStats};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::Priority;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// radstream: brings AI results into the radiologist's PACS, as a stream over Kafka.
///
/// Reads DICOM instance events from Kafka, fetches each object from S3 (or a folder), runs it
/// through a chain of operators (route, ...) and STOW-RSes it to a DICOMweb PACS, at least
/// once, committing offsets only after every instance is delivered, dropped on purpose, or in
/// the dead-letter topic.
#[derive(Debug, Parser)]
#[command(name = "radstream", version, about, long_about)]
struct Cli {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RADSTREAM_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `radstream_pipeline=debug`.
    /// Default: `info` for `run`, `warn` for the other commands (they print their own progress).
    #[arg(long, global = true, env = "RADSTREAM_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--device` of `preprocess`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Tract,
    Onnxruntime,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline (a worker of its consumer group) until SIGTERM or Ctrl-C.
    Run {
        /// Config file (TOML); `RADSTREAM__SECTION__KEY` environment variables override it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file without touching the network; exit 2 when it is invalid.
    Validate {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show which routing rule each DICOM file matches.
    Route {
        /// Evaluate only; nothing is sent (the only mode for now, required to be explicit).
        #[arg(long, required = true)]
        dry_run: bool,
        /// Config file whose `route` operator is evaluated.
        #[arg(long, short)]
        config: PathBuf,
        /// DICOM files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The whole chain on embedded defaults: in-process broker, local store, synthetic studies,
    /// the demo head CT bleed model.
    Demo {
        /// Synthetic studies to generate.
        #[arg(long, default_value_t = 6)]
        studies: usize,
        /// Keep objects, the model's files and results in this folder (default: a temporary
        /// folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// STOW-RS to this DICOMweb base URL (a real PACS) instead of the local folder store.
        #[arg(long)]
        pacs_url: Option<String>,
        /// Where `/metrics` is served while the demo runs.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: String,
        /// Seed of the synthetic studies.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write synthetic CT, CR and MR studies (with fake PHI where scanners put it).
    Synth {
        /// Number of studies.
        #[arg(long, default_value_t = 6)]
        studies: usize,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Seed (same seed, same files).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Aim for about this many bytes per instance (e.g. 524288).
        #[arg(long)]
        instance_bytes: Option<usize>,
        /// Also write where the planted lesions are (which studies, series and instances, and
        /// each disc's centre and radius in pixels) as JSON to this file. Keep it outside
        /// --out: publish, deid and preprocess take every file of a folder.
        #[arg(long, value_name = "FILE")]
        ground_truth: Option<PathBuf>,
    },
    /// Upload DICOM files to the configured object store and produce their events.
    Publish {
        /// Config file: its `kafka` and `objects` sections are used.
        #[arg(long, short)]
        config: PathBuf,
        /// Bucket to upload into.
        #[arg(long)]
        bucket: String,
        /// Key prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Mark the events STAT.
        #[arg(long)]
        stat: bool,
        /// Source (AE title) on the events.
        #[arg(long)]
        source: Option<String>,
        /// Uploads in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// De-identify DICOM files and folders (PS3.15 Basic Profile, keyed pseudonyms) into a folder.
    ///
    /// Every regular file under each INPUT is de-identified and written under --out: a file
    /// argument by its name, a folder's files by their path below that folder. Names are copied
    /// as they are, so names made of original UIDs or patient names leave with the data: when
    /// input names carry identifiers (synth and many PACS exports name files by original UIDs),
    /// use --rename, which names each output by its pseudonymized UIDs. Files are written whole
    /// or not at all. Instances whose pixels may hold burned-in text
    /// (BurnedInAnnotation YES, or absent on ultrasound, secondary capture and the like) are
    /// never written to --out: they are rejected or quarantined. The same key always gives the
    /// same pseudonyms, so studies de-identified in separate runs still line up.
    ///
    /// Exit status: 0 when every file was written (or quarantined), 1 when any failed or was
    /// rejected (each is named on stderr as `path: reason`), 2 for a usage or configuration
    /// problem (nothing is written then).
    #[command(
        group(clap::ArgGroup::new("key").required(true).args(["key_file", "key_env"])),
        after_help = "Example:\n  radstream keygen --id 2026-11 --out /secure/deid.key\n  \
                      radstream deid --key-file /secure/deid.key --option retain-longitudinal-modified-dates \\\n      \
                      --burned-in quarantine --quarantine-dir /data/review --out /data/deid /data/incoming"
    )]
    Deid {
        /// Key file written by `radstream keygen`.
        #[arg(long, value_name = "KEY")]
        key_file: Option<PathBuf>,
        /// Environment variable holding the key file's text (instead of --key-file).
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// A profile option on top of the Basic Profile; repeat for several.
        #[arg(long = "option", value_name = "NAME", value_parser = ProfileOptionParser)]
        options: Vec<ProfileOption>,
        /// A private attribute that `--option retain-safe-private` keeps, with its Private
        /// Creator: CREATOR:ELEMENT (in any odd group) or CREATOR:GROUP:ELEMENT, GROUP four hex
        /// digits, ELEMENT the two hex digits of the offset in the block (`GEMS_ACQU_01:0019:23`
        /// keeps (0019,xx23) of the block reserved by GEMS_ACQU_01). Read from the right, so a
        /// creator may hold colons (then give GROUP if the creator ends in `:` and hex digits).
        /// Repeat for several; every other private attribute is removed.
        #[arg(long, value_name = "CREATOR:[GROUP:]ELEMENT", value_parser = parse_safe_private)]
        safe_private: Vec<SafePrivateRule>,
        /// What happens to instances that may have burned-in text.
        #[arg(long, value_enum, default_value_t = BurnedInPolicy::Reject)]
        burned_in: BurnedInPolicy,
        /// Where `--burned-in quarantine` writes them (de-identified header, pixels untouched),
        /// named as they would be under --out; must not overlap --out.
        #[arg(long, value_name = "DIR", required_if_eq("burned_in", "quarantine"))]
        quarantine_dir: Option<PathBuf>,
        /// Files de-identified at once (default: the available parallelism).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<NonZeroUsize>,
        /// Name each output STUDY/SERIES/SOP.dcm by its pseudonymized Study, Series and SOP
        /// Instance UIDs instead of by the input's path (the layout `export` writes), under --out
        /// and --quarantine-dir alike: the choice when input names carry identifiers. A second
        /// input of the same instance fails instead of replacing the first.
        #[arg(long)]
        rename: bool,
        /// Output folder (created if needed); must not be inside an input folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// DICOM files or folders (searched recursively).
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Run a model's preprocessing over DICOM files and folders, to see what the model will see.
    ///
    /// For a 2D spec (`input = "slice"`), for every file under each INPUT, writes `<name>.npy`
    /// under --out (NumPy, `<f4`, shape [N, C, H, W], one image per frame) and
    /// `<name>.f<k>.png`, an 8-bit grayscale preview of channel 0 of frame k. `<name>` is the
    /// file's name (without a `.dcm` extension) for a file argument, its path below the folder
    /// for a folder argument.
    ///
    /// For a 3D spec (`input = "series"`), the files are grouped by series and each series
    /// becomes one volume `<folder>.npy` ([1, C, D, H, W], slices in patient-position order),
    /// named after the folder of its first file, with `<folder>.json` (voxel spacing, slice
    /// order, irregular spacing) and `<folder>.s<k>.png` per slice.
    ///
    /// Files of a modality the spec does not list are skipped (and counted).
    ///
    /// Exit status: 0 when no file failed, 1 when any failed (each is named on
    /// stderr as `path: reason`), 2 for a usage problem (nothing is written then).
    #[command(
        after_help = "Example:\n  radstream preprocess --model models/ct-head-bleed.preprocess.toml --out /tmp/pre /data/ct"
    )]
    Preprocess {
        /// The model's preprocessing spec (e.g. models/ct-head-bleed.preprocess.toml).
        #[arg(long, value_name = "SPEC")]
        model: PathBuf,
        /// Output folder (created if needed); must not be inside an input folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Files preprocessed at once (default: the available parallelism).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<NonZeroUsize>,
        /// Where the kernels run: `auto` uses the GPU when this build has CUDA and a GPU starts
        /// (else the CPU, with the same numbers); `cpu` never tries the GPU.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// DICOM files or folders (searched recursively).
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Run a model (named by its manifest) over DICOM files and folders and print its findings.
    ///
    /// The manifest (`models/*.model.toml`) names the ONNX file, whose SHA-256 must be the
    /// manifest's, and the preprocessing; each file under each INPUT is preprocessed (one image
    /// per frame) and run through the model on the CPU. Prints a table of file, frame, label,
    /// score and whether the score reached the finding's threshold, and writes
    /// `<name>.findings.json` under --out (`<name>` as `radstream preprocess` names its outputs).
    /// A model of whole series (3D) runs once per series: files are grouped by
    /// SeriesInstanceUID and stacked in patient order, one row per series.
    ///
    /// Files of a modality the manifest does not list are skipped (and counted).
    ///
    /// Exit status: 0 when no file failed, 1 when any failed (each is named on stderr as
    /// `path: reason`), 2 for a usage problem (bad manifest or model file; nothing is written).
    #[command(
        after_help = "Example:\n  radstream infer --model models/ct-head-bleed.model.toml --out /tmp/findings /data/ct"
    )]
    Infer {
        /// The model manifest (e.g. models/ct-head-bleed.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// Output folder (created if needed); must not be inside an input folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Files run at once (default: the available parallelism).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<NonZeroUsize>,
        /// Where the preprocessing kernels run (`auto`: the GPU when there is one), and with
        /// `--backend onnxruntime` the model too (its CUDA provider, else its CPU one).
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// The library that runs the model: tract (pure Rust, CPU) or ONNX Runtime (opened at
        /// run time from --onnxruntime-lib).
        #[arg(long, value_enum, default_value = "tract")]
        backend: BackendArg,
        /// ONNX Runtime's shared library (pip's onnxruntime/capi/libonnxruntime.so.*), for
        /// --backend onnxruntime.
        #[arg(long, value_name = "FILE", env = "RADSTREAM_ONNXRUNTIME_LIB")]
        onnxruntime_lib: Option<PathBuf>,
        /// DICOM files or folders (searched recursively).
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Send a steady stream of synthetic studies (CT, CR, MR; series of 1 to --max-instances
    /// instances; a STAT share) to the configured object store and input topic, at --rate
    /// events per second, for scale tests and benchmarks.
    ///
    /// Prints the seed (same seed, same studies), progress, and a summary: events and studies
    /// sent (STAT among them), the largest series, the rate reached, and how late the latest
    /// event went out against its schedule (when the machine could not keep the rate).
    #[command(
        after_help = "Example:\n  radstream loadgen --config radstream.toml --bucket dicom --rate 200 --studies 100 --stat-share 0.1"
    )]
    Loadgen {
        /// Config file: its `kafka` and `objects` sections are used.
        #[arg(long, short)]
        config: PathBuf,
        /// Bucket to upload into.
        #[arg(long)]
        bucket: String,
        /// Key prefix of the objects.
        #[arg(long, default_value = "loadgen")]
        prefix: String,
        /// Events (instances) per second.
        #[arg(long)]
        rate: f64,
        /// Studies to send.
        #[arg(long)]
        studies: usize,
        /// Share of STAT studies (0 to 1).
        #[arg(long, default_value_t = 0.1)]
        stat_share: f64,
        /// Largest series of a CT or MR study (instances per series).
        #[arg(long, default_value_t = 500)]
        max_instances: usize,
        /// Aim for about this many bytes per instance (default: synth's 512x512 images).
        #[arg(long)]
        instance_bytes: Option<usize>,
        /// Seed (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Uploads and events in flight at most.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// The dead-letter topic: list what landed there, and replay it after a fix.
    ///
    /// Reads the config's `kafka.dead_letter_topic` up to its current end (outside any consumer
    /// group; nothing is committed). Filters combine: --class and --operator may repeat,
    /// --since and --until take a UTC time (2026-11-28T07:00:00Z) or an age (30m, 2h, 7d).
    /// `replay` sends each matching letter's original message, byte for byte with its key, back
    /// to the input topic (or --to-topic), marked with a `radstream-replay-of` header; results
    /// have the same UIDs every time, so the PACS keeps one copy.
    ///
    /// Exit status: 0 on success, 1 when the topic cannot be read or a send fails, 2 for a usage
    /// or configuration problem.
    #[command(
        after_help = "Examples:\n  radstream dlq list --config radstream.toml --class pacs_unavailable --since 2h\n  \
                      radstream dlq replay --config radstream.toml --class pacs_unavailable --since 2h --dry-run\n  \
                      radstream dlq replay --config radstream.toml --class pacs_unavailable --since 2h"
    )]
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Write the analytics lake until SIGTERM or Ctrl-C: one Parquet row per instance of the
    /// outcome topic (pseudonymized UIDs, model, findings, latencies) and the radiologists'
    /// verdicts from `lake.feedback_topic`, as files in `lake.bucket`, partitioned by date and
    /// model; serves the agreement metrics on `lake.metrics_listen`. See docs/lake.md.
    ///
    /// Consumer group `<kafka.group_id>-lake`; offsets are committed after the files are
    /// uploaded. Exit 2 on a config error (no [lake] section, an unreadable key file).
    Lake {
        /// Config file (TOML) with a [lake] section; `RADSTREAM__LAKE__*` variables override it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a new pseudonymization key file for `deid` (mode 0600; never overwrites).
    Keygen {
        /// Key id, recorded in every de-identified instance so a key rotation can be traced
        /// (e.g. `2026-11`).
        #[arg(long)]
        id: String,
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Print the matching dead letters: time, partition/offset, class, operator, attempts,
    /// object key, SOPInstanceUID, reason (a tab-separated table, or JSON lines with --json).
    List {
        #[command(flatten)]
        select: DlqSelect,
        /// One JSON object per letter instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send the matching dead letters' original messages back to the input topic.
    Replay {
        #[command(flatten)]
        select: DlqSelect,
        /// Topic to send to (default: the config's kafka.input_topic).
        #[arg(long, value_name = "TOPIC")]
        to_topic: Option<String>,
        /// List what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which dead letters, of which pipeline.
#[derive(Debug, clap::Args)]
struct DlqSelect {
    /// Config file: its `kafka` section names the brokers and topics.
    #[arg(long, short)]
    config: PathBuf,
    /// Only this reason class (missing_object, pacs_unavailable, ...); repeat for several.
    #[arg(long = "class", value_name = "CLASS", value_parser = parse_error_class)]
    classes: Vec<radstream_schemas::ErrorClass>,
    /// Only letters of this operator or stage (fetch, parse, stow, ...); repeat for several.
    #[arg(long = "operator", value_name = "NAME")]
    operators: Vec<String>,
    /// Only letters written at or after this time (UTC, or an age such as 2h).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only letters written before this time (UTC, or an age such as 30m).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

fn parse_error_class(text: &str) -> Result<radstream_schemas::ErrorClass, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("{text:?} is not a reason class (see the dead letters' error_class values)"))
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter =
        if matches!(cli.command, Command::Run { .. } | Command::Lake { .. }) { "info" } else { "warn" };
    init_logging(cli.log_format, cli.log.as_deref().unwrap_or(default_filter));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    JSON_LOGS.store(matches!(cli.log_format, LogFormat::Json), std::sync::atomic::Ordering::Relaxed);
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            report_error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Whether logs are JSON (`--log-format json`), for [`report_error`].
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A fatal error, said once: as a structured log line for log pipelines (`--log-format json`),
/// else as `error: ...` on stderr.
fn report_error(message: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { config } => match Config::load(&config, std::env::vars()) {
            Ok(c) => {
                let chain: Vec<_> = c.operators.iter().map(OperatorConfig::kind).collect();
                println!(
                    "{}: valid (input topic {}, chain {})",
                    config.display(),
                    c.kafka.input_topic,
                    chain.join(" -> ")
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                Ok(ExitCode::from(2))
            }
        },
        Command::Run { config: path } => match Config::load(&path, std::env::vars()) {
            Ok(config) => run(config).await,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                Ok(ExitCode::from(2))
            }
        },
        Command::Route { dry_run: _, config, files } => route_dry_run(load(&config)?, &files),
        Command::Demo { studies, out, pacs_url, metrics_listen, seed } => {
            let summary = demo::run(DemoOptions { studies, out, pacs_url, metrics_listen, seed }).await?;
            println!("{}", summary.table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth { studies, out, seed, instance_bytes, ground_truth } => {
            let opts = SynthOptions { studies, seed, target_instance_bytes: instance_bytes, ..Default::default() };
            if let Some(path) = &ground_truth {
                if path.starts_with(&out) {
                    anyhow::bail!("--ground-truth {} is inside --out: put it elsewhere", path.display());
                }
            }
            let written = synth::write_to_dir(&opts, &out)?;
            println!("wrote {} instances of {studies} studies to {}", written.len(), out.display());
            if let Some(path) = &ground_truth {
                synth::write_ground_truth(&opts, path)?;
                println!("wrote the planted lesions to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { config, bucket, prefix, stat, source, concurrency, files } => {
            let config = load(&config)?;
            let list = publish::collect_files(&files)?;
            publish::ensure_not_empty(&list, &files)?;
            let n = list.len();
            let bar = indicatif::ProgressBar::new(n as u64);
            let opts = PublishOptions {
                bucket,
                prefix,
                priority: if stat { Priority::Stat } else { Priority::Routine },
                source,
                concurrency,
                skip_events: false,
            };
            publish::publish(&config.kafka, &config.objects, list, &opts, || bar.inc(1)).await?;
            bar.finish_and_clear();
            println!("published {n} instances to {} (bucket {})", config.kafka.input_topic, opts.bucket);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deid {
            key_file,
            key_env,
            options,
            safe_private,
            burned_in,
            quarantine_dir,
            jobs,
            rename,
            out,
            inputs,
        } => {
            let key = match (key_file, key_env) {
                (Some(file), _) => KeySource::File(file),
                (None, Some(var)) => KeySource::Env(var),
                (None, None) => unreachable!("clap requires one of --key-file and --key-env"),
            };
            let command =
                DeidCommand { key, options, safe_private, burned_in, quarantine_dir, jobs, rename, out, inputs };
            Ok(deid_cmd::run(&command))
        }
        Command::Keygen { id, out } => Ok(deid_cmd::keygen(&id, &out)),
        Command::Lake { config: path } => match Config::load(&path, std::env::vars()) {
            Ok(config) => match radstream_pipeline::lake::run(&config, wait_for_signal()).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) if e.is_config() => {
                    report_error(&e.to_string());
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                Ok(ExitCode::from(2))
            }
        },
        Command::Dlq { action } => dlq(action).await,
        Command::Loadgen {
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
        } => {
            use radstream_pipeline::loadgen::{self, LoadgenOptions};
            let config = match Config::load(&config, std::env::vars()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return Ok(ExitCode::from(2));
                }
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
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
            eprintln!(
                "radstream loadgen: seed {seed}, {studies} studies at {rate} events/s to {}",
                config.kafka.input_topic
            );
            let bar = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} events sent ({per_sec}) {elapsed}")
                    .expect("static template"),
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
        Command::Preprocess { model, out, jobs, device, inputs } => {
            let device = match device {
                DeviceArg::Auto => DeviceChoice::Auto,
                DeviceArg::Cpu => DeviceChoice::Cpu,
            };
            Ok(preprocess_cmd::run(&PreprocessCommand { model, out, jobs, device, inputs }))
        }
        Command::Infer { model, out, jobs, device, backend, onnxruntime_lib, inputs } => {
            let device = match device {
                DeviceArg::Auto => DeviceChoice::Auto,
                DeviceArg::Cpu => DeviceChoice::Cpu,
            };
            let backend = match backend {
                BackendArg::Tract => radstream_operators::infer::BackendChoice::default(),
                BackendArg::Onnxruntime => radstream_operators::infer::BackendChoice {
                    kind: radstream_operators::infer::BackendKind::Onnxruntime,
                    device,
                    library: onnxruntime_lib,
                },
            };
            Ok(infer_cmd::run(&InferCommand { model, out, jobs, device, backend, inputs }))
        }
    }
}

async fn dlq(action: DlqAction) -> anyhow::Result<ExitCode> {
    use radstream_pipeline::dlq_cmd::{self, DlqFilter};
    let select = match &action {
        DlqAction::List { select, .. } | DlqAction::Replay { select, .. } => select,
    };
    let config = match Config::load(&select.config, std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", select.config.display());
            return Ok(ExitCode::from(2));
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let time = |arg: &Option<String>, name: &str| -> Result<Option<i64>, String> {
        arg.as_deref().map(|t| dlq_cmd::parse_time(t, now).map_err(|e| format!("--{name}: {e}"))).transpose()
    };
    let (since_ms, until_ms) = match (time(&select.since, "since"), time(&select.until, "until")) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let filter = DlqFilter { classes: select.classes.clone(), operators: select.operators.clone(), since_ms, until_ms };
    let kafka = config.kafka.clone();
    let read = tokio::task::spawn_blocking(move || dlq_cmd::read(&kafka, &filter, std::time::Duration::from_secs(60)))
        .await
        .context("the dead-letter reader")??;
    let topic = &config.kafka.dead_letter_topic;
    for (partition, offset) in &read.unreadable {
        eprintln!("warning: {topic} {partition}/{offset} is not a dead letter; skipped");
    }
    match action {
        DlqAction::List { json, .. } => {
            if json {
                for letter in &read.matching {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                print!("{}", dlq_cmd::table(&read.matching));
            }
            eprintln!("{} of {} dead letters in {topic} match", read.matching.len(), read.total);
        }
        DlqAction::Replay { to_topic, dry_run, .. } => {
            let target = to_topic.unwrap_or_else(|| config.kafka.input_topic.clone());
            if dry_run {
                print!("{}", dlq_cmd::table(&read.matching));
                eprintln!(
                    "dry run: would replay {} of {} dead letters from {topic} to {target}; nothing sent",
                    read.matching.len(),
                    read.total
                );
            } else {
                let sent = dlq_cmd::replay(&config.kafka, &read.matching, &target).await?;
                eprintln!("replayed {sent} of {} dead letters from {topic} to {target}", read.total);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let metrics = Metrics::new();
    let readiness = Arc::new(radstream_pipeline::http::Readiness::default());
    if !config.metrics.listen.is_empty() {
        let addr = radstream_pipeline::http::serve(&config.metrics.listen, metrics.clone(), readiness.clone())
            .await
            .with_context(|| format!("metrics.listen = {}: cannot listen", config.metrics.listen))?;
        info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    radstream_pipeline::health::spawn_probes(&config, readiness);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: draining in-flight work");
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        warn!("second signal: exiting now without draining");
        std::process::exit(130);
    });
    match runtime::run(config, metrics, Arc::new(RunStats::default()), stop_rx).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A config that validates but cannot be built (a missing key or secret file, a schema
        // file that does not parse) is a configuration error too: exit 2, like `validate`.
        Err(
            e @ (runtime::RuntimeError::Operator { .. }
            | runtime::RuntimeError::UnservedModel { .. }
            | runtime::RuntimeError::Schema(_)),
        ) => {
            report_error(&e.to_string());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn route_dry_run(config: Config, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let route = config
        .operators
        .iter()
        .find_map(|o| match o {
            OperatorConfig::Route(r) => Some(r),
            _ => None,
        })
        .context("the config has no `route` operator")?;
    let router = route.build()?;
    let mut failures = 0;
    for (path, _) in publish::collect_files(paths)? {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match parse_header(&bytes) {
            Ok(header) => {
                let decision = router.decide(&RouteAttributes::from_header(&header, None));
                let rule = decision.rule.as_deref().unwrap_or("(default)");
                let action = match (&decision.action, &decision.branch) {
                    (radstream_operators::route::RouteAction::Forward, Some(b)) => format!("forward -> {b}"),
                    _ => "drop".to_string(),
                };
                println!("{}\t{rule}\t{action}", path.display());
            }
            Err(e) => {
                failures += 1;
                println!("{}\t(unreadable)\t{e}", path.display());
            }
        }
    }
    Ok(if failures > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
