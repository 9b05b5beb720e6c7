//! `radstream preprocess`: a model's preprocessing over files and folders, to see what the
//! model will see.

pub mod plan;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::common::{usage_exit, DeviceArg};
use crate::cli::preprocess::plan::{FileOutcome, PreprocessCommand};
use crate::files::with_files_progress;

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
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  radstream preprocess --model models/ct-head-bleed.preprocess.toml --out /tmp/pre /data/ct"
)]
pub struct PreprocessArgs {
    /// The model's preprocessing spec (e.g. models/ct-head-bleed.preprocess.toml).
    #[arg(long, value_name = "SPEC")]
    pub model: PathBuf,
    /// Output folder (created if needed); must not be inside an input folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Files preprocessed at once (default: the available parallelism).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Where the kernels run: `auto` uses the GPU when this build has CUDA and a GPU starts
    /// (else the CPU, with the same numbers); `cpu` never tries the GPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// DICOM files or folders (searched recursively).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// Plans, preprocesses with a progress bar when stderr is a terminal, prints a line per failed
/// file and the summary. Exit status 0 when every file was written or skipped, 1 when any
/// failed, 2 for a usage problem.
pub fn execute(args: PreprocessArgs) -> ExitCode {
    let PreprocessArgs { model, out, jobs, device, inputs } = args;
    let command = PreprocessCommand { model, out, jobs, device: device.into(), inputs };
    let plan = match command.plan() {
        Ok(plan) => plan,
        Err(e) => return usage_exit(e),
    };
    let report = with_files_progress(
        plan.inputs().len(),
        |outcome: &FileOutcome| matches!(outcome, FileOutcome::Failed { .. }),
        |done| plan.execute(|_, outcome| done(outcome)),
    );
    for failure in report.failures() {
        eprintln!("{failure}");
    }
    println!("{}", report.summary());
    report.exit_code()
}
