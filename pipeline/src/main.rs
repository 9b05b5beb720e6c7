//! The `radstream` command: parses the command line and hands it to the command's `execute`
//! (`radstream_pipeline::cli`).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use radstream_pipeline::cli::common::{report_error, set_json_logs};
use radstream_pipeline::cli::{
    deid, demo, dlq, infer, keygen, lake, loadgen, preprocess, publish, route, run, synth, validate,
};

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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Each command's help text is its arguments' doc comment, in its file under `cli/`.
#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Validate(validate::ValidateArgs),
    Route(route::RouteArgs),
    Demo(demo::DemoArgs),
    Synth(synth::SynthArgs),
    Publish(publish::PublishArgs),
    Deid(deid::DeidArgs),
    Preprocess(preprocess::PreprocessArgs),
    Infer(infer::InferArgs),
    Loadgen(loadgen::LoadgenArgs),
    Dlq(dlq::DlqArgs),
    Lake(lake::LakeArgs),
    Keygen(keygen::KeygenArgs),
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

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run::execute(&args).await,
        Command::Validate(args) => Ok(validate::execute(&args)),
        Command::Route(args) => route::execute(&args),
        Command::Demo(args) => demo::execute(args).await,
        Command::Synth(args) => synth::execute(&args),
        Command::Publish(args) => publish::execute(args).await,
        Command::Deid(args) => Ok(deid::execute(args)),
        Command::Preprocess(args) => Ok(preprocess::execute(args)),
        Command::Infer(args) => Ok(infer::execute(args)),
        Command::Loadgen(args) => loadgen::execute(args).await,
        Command::Dlq(args) => dlq::execute(args).await,
        Command::Lake(args) => lake::execute(&args).await,
        Command::Keygen(args) => Ok(keygen::execute(&args)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = if matches!(cli.command, Command::Run(_) | Command::Lake(_)) { "info" } else { "warn" };
    init_logging(cli.log_format, cli.log.as_deref().unwrap_or(default_filter));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    set_json_logs(matches!(cli.log_format, LogFormat::Json));
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            report_error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
