//! `radstream infer`: a model (named by its manifest) over DICOM files and folders, printing its
//! findings.

pub mod plan;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use radstream_operators::infer::{BackendChoice, BackendKind};

use crate::cli::common::{usage_exit, DeviceArg};
use crate::cli::infer::plan::{InferCommand, InferOutcome};
use crate::files::with_files_progress;

/// `--backend` of `infer`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    // Plain comments: a doc comment here would show in `--help`.
    Tract,
    Onnxruntime,
}

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
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  radstream infer --model models/ct-head-bleed.model.toml --out /tmp/findings /data/ct"
)]
pub struct InferArgs {
    /// The model manifest (e.g. models/ct-head-bleed.model.toml).
    #[arg(long, value_name = "MANIFEST")]
    pub model: PathBuf,
    /// Output folder (created if needed); must not be inside an input folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Files run at once (default: the available parallelism).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Where the preprocessing kernels run (`auto`: the GPU when there is one), and with
    /// `--backend onnxruntime` the model too (its CUDA provider, else its CPU one).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// The library that runs the model: tract (pure Rust, CPU) or ONNX Runtime (opened at
    /// run time from --onnxruntime-lib).
    #[arg(long, value_enum, default_value = "tract")]
    pub backend: BackendArg,
    /// ONNX Runtime's shared library (pip's onnxruntime/capi/libonnxruntime.so.*), for
    /// --backend onnxruntime.
    #[arg(long, value_name = "FILE", env = "RADSTREAM_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// DICOM files or folders (searched recursively).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// Plans, runs with a progress bar when stderr is a terminal, prints a line per failed file,
/// the findings table and the summary. Exit status 0 when every file ran (alone or in its
/// series) or was skipped, 1 when any failed, 2 for a usage problem (bad manifest, a model file
/// whose hash is not the manifest's, missing input; nothing written).
pub fn execute(args: InferArgs) -> ExitCode {
    let InferArgs { model, out, jobs, device, backend, onnxruntime_lib, inputs } = args;
    let device = device.into();
    let backend = match backend {
        BackendArg::Tract => BackendChoice::default(),
        BackendArg::Onnxruntime => BackendChoice { kind: BackendKind::Onnxruntime, device, library: onnxruntime_lib },
    };
    let plan = match (InferCommand { model, out, jobs, device, backend, inputs }).plan() {
        Ok(plan) => plan,
        Err(e) => return usage_exit(e),
    };
    let identity = plan.model().identity();
    tracing::info!(model = %identity.name, version = %identity.version, sha256 = %identity.sha256, "infer: model loaded");
    let report = with_files_progress(
        plan.inputs().len(),
        |outcome: &InferOutcome| matches!(outcome, InferOutcome::Failed { .. }),
        |done| plan.execute(|_, outcome| done(outcome)),
    );
    for failure in report.failures() {
        eprintln!("{failure}");
    }
    print!("{}", report.table(plan.model()));
    println!("{}", report.summary());
    report.exit_code()
}
