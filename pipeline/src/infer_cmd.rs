//! `radstream infer`: a model (named by its manifest, `models/*.model.toml`) over files and
//! folders, off the stream: the manifest's preprocessing, then the model, per file. Prints a
//! findings table (file, frame, label, score, whether the score reached the threshold) and
//! writes `<name>.findings.json` per input under `--out` (named like `radstream preprocess`
//! names its `.npy` files).
//!
//! Only 2D models (`input = "slice"`, one image per frame) for now: a 3D (series) model is
//! refused as a usage problem until series assembly exists. Files of a modality the manifest's
//! input does not list are skipped, as the `preprocess` operator drops them.
//!
//! [`InferCommand::plan`] loads the model (its file's SHA-256 checked against the manifest) and
//! lists the inputs before anything is written; [`InferPlan::execute`] runs the files on a pool
//! of threads. Nothing printed quotes a value from a file.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use dicom_dictionary_std::tags;
use radstream_operators::config::NoopObserver;
use radstream_operators::infer::{InferenceResult, LoadedModel};
use radstream_operators::preprocess::{preprocess_object_on, ComputeDevice, DeviceChoice, InputKind};
use radstream_operators::{element_text, parse_header};

use crate::deid_cmd::UsageError;
use crate::preprocess_cmd::{on_threads, plan_inputs, with_suffix, PreprocessInput};

/// Images per model run.
const MAX_BATCH: usize = 8;

/// `radstream infer`, as given on the command line.
#[derive(Debug, Clone)]
pub struct InferCommand {
    /// The model manifest (`models/*.model.toml`).
    pub model: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Files run at once; the available parallelism when absent.
    pub jobs: Option<NonZeroUsize>,
    /// Where the preprocessing kernels run (the model runs on the CPU).
    pub device: DeviceChoice,
    /// Files and folders (searched recursively).
    pub inputs: Vec<PathBuf>,
}

/// A checked run: the model loaded and verified, the inputs listed, output names distinct.
#[derive(Debug)]
pub struct InferPlan {
    model: LoadedModel,
    out: PathBuf,
    threads: usize,
    inputs: Vec<PreprocessInput>,
    device: ComputeDevice,
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum InferOutcome {
    /// The model ran on it and its findings file was written.
    Done {
        /// What the model said.
        result: Arc<InferenceResult>,
        /// The `.findings.json` written.
        written: PathBuf,
    },
    /// Not run: its modality is not one the manifest's input lists.
    Skipped {
        /// The file's modality (empty when it has none).
        modality: String,
    },
    /// Nothing was written; why.
    Failed {
        /// What went wrong, naming no value from the file.
        reason: String,
    },
}

/// The outcome of every input, in input order.
#[derive(Debug)]
pub struct InferReport {
    model: String,
    out: PathBuf,
    outcomes: Vec<(PathBuf, InferOutcome)>,
}

impl InferCommand {
    /// Loads the model (checking its hash), refuses a 3D model, lists the inputs and names the
    /// outputs. Creates nothing.
    pub fn plan(&self) -> Result<InferPlan, UsageError> {
        let model = LoadedModel::load(&self.model).map_err(|e| UsageError(e.to_string()))?;
        let inputs = plan_inputs(&self.inputs, &self.out, "findings.json")?;
        let available = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1);
        let threads = self.jobs.map_or(available, NonZeroUsize::get).min(inputs.len()).max(1);
        let device = ComputeDevice::select(self.device, &NoopObserver, &model.manifest().name);
        Ok(InferPlan { model, out: self.out.clone(), threads, inputs, device })
    }
}

impl InferPlan {
    /// The inputs, sorted by path.
    pub fn inputs(&self) -> &[PreprocessInput] {
        &self.inputs
    }

    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Runs every input on the plan's threads, calling `progress` after each file.
    pub fn execute(&self, progress: impl Fn(&PreprocessInput, &InferOutcome) + Sync) -> InferReport {
        let outcomes = on_threads(&self.inputs, self.threads, |input| {
            let outcome = self.one(input).unwrap_or_else(|reason| InferOutcome::Failed { reason });
            progress(input, &outcome);
            outcome
        });
        InferReport {
            model: format!("{} {}", self.model.identity().name, self.model.identity().version),
            out: self.out.clone(),
            outcomes: self
                .inputs
                .iter()
                .map(|input| input.source.clone())
                .zip(outcomes)
                .map(|(path, o)| (path, o.unwrap_or(InferOutcome::Failed { reason: "not processed".into() })))
                .collect(),
        }
    }

    /// One input: read, check the modality, preprocess, run the model, write the findings.
    fn one(&self, input: &PreprocessInput) -> Result<InferOutcome, String> {
        let spec = &self.model.manifest().input;
        debug_assert_eq!(spec.input, InputKind::Slice, "LoadedModel refuses series models");
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !spec.takes_modality(&modality) {
            return Ok(InferOutcome::Skipped { modality });
        }
        let tensor = preprocess_object_on(&self.device, &NoopObserver, spec, &bytes).map_err(|e| e.to_string())?;
        let result = self.model.infer(&tensor, MAX_BATCH).map_err(|e| e.to_string())?;
        let path = with_suffix(&self.out.join(&input.stem), ".findings.json");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let document = self.findings_document(input, &result);
        crate::files::write_atomically(&path, |file| {
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), &document).map_err(std::io::Error::other)
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(InferOutcome::Done { result: Arc::new(result), written: path })
    }

    /// The `.findings.json` of one input: the model, every frame's scores against their
    /// thresholds, and the findings.
    fn findings_document(&self, input: &PreprocessInput, result: &InferenceResult) -> serde_json::Value {
        let specs = &self.model.manifest().findings;
        let frames: Vec<serde_json::Value> = result
            .scores
            .iter()
            .enumerate()
            .map(|(frame, scores)| {
                let scores: Vec<serde_json::Value> = specs
                    .iter()
                    .zip(scores)
                    .map(|(spec, &score)| {
                        serde_json::json!({
                            "label": spec.label,
                            "score": score,
                            "threshold": spec.threshold,
                            "above_threshold": score >= spec.threshold,
                        })
                    })
                    .collect();
                serde_json::json!({ "frame": frame, "scores": scores })
            })
            .collect();
        serde_json::json!({
            "file": input.source.display().to_string(),
            "model": result.model,
            "task": self.model.manifest().task,
            "frames": frames,
            "findings": result.findings,
        })
    }
}

impl InferReport {
    /// Every outcome, in input order.
    pub fn outcomes(&self) -> &[(PathBuf, InferOutcome)] {
        &self.outcomes
    }

    /// `path: reason` for each file that failed.
    pub fn failures(&self) -> impl Iterator<Item = String> + '_ {
        self.outcomes.iter().filter_map(|(path, outcome)| match outcome {
            InferOutcome::Failed { reason } => Some(format!("{}: {reason}", path.display())),
            InferOutcome::Done { .. } | InferOutcome::Skipped { .. } => None,
        })
    }

    /// The findings table: one row per file, frame and finding of the manifest, whether or not
    /// the score reached the threshold.
    pub fn table(&self, model: &LoadedModel) -> String {
        let specs = &model.manifest().findings;
        let mut table = format!("{:<60} {:>5}  {:<32} {:>7}  {}\n", "file", "frame", "label", "score", "finding");
        for (path, outcome) in &self.outcomes {
            let InferOutcome::Done { result, .. } = outcome else { continue };
            for (frame, scores) in result.scores.iter().enumerate() {
                for (spec, &score) in specs.iter().zip(scores) {
                    let above = if score >= spec.threshold { "yes" } else { "no" };
                    let _ = writeln!(
                        table,
                        "{:<60} {frame:>5}  {:<32} {score:>7.4}  {above}{}",
                        path.display().to_string(),
                        spec.label,
                        if spec.critical && score >= spec.threshold { " (critical)" } else { "" }
                    );
                }
            }
        }
        table
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let (mut done, mut images, mut findings, mut with_findings, mut skipped, mut failed) = (0, 0, 0, 0, 0, 0);
        for (_, outcome) in &self.outcomes {
            match outcome {
                InferOutcome::Done { result, .. } => {
                    done += 1;
                    images += result.scores.len();
                    findings += result.findings.len();
                    with_findings += usize::from(!result.findings.is_empty());
                }
                InferOutcome::Skipped { .. } => skipped += 1,
                InferOutcome::Failed { .. } => failed += 1,
            }
        }
        format!(
            "model {} on the CPU: {done} of {} files run ({images} images), {findings} findings in {with_findings} \
             files, written into {}; {skipped} skipped (modality not in the manifest), {failed} failed",
            self.model,
            self.outcomes.len(),
            self.out.display()
        )
    }

    /// 0 when no file failed (skipped files are not failures), 1 when any did.
    pub fn exit_code(&self) -> ExitCode {
        if self.outcomes.iter().any(|(_, o)| matches!(o, InferOutcome::Failed { .. })) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs `radstream infer`: plans, runs with a progress bar when stderr is a terminal, prints a
/// line per failed file, the findings table and the summary. Exit status 0 when every file ran
/// or was skipped, 1 when any failed, 2 for a usage problem (bad manifest, a model file whose
/// hash is not the manifest's, a 3D model, missing input; nothing written).
pub fn run(command: &InferCommand) -> ExitCode {
    let plan = match command.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let identity = plan.model().identity();
    tracing::info!(model = %identity.name, version = %identity.version, sha256 = %identity.sha256, "infer: model loaded");
    let report = crate::files::with_files_progress(
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
