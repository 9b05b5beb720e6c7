//! `radstream preprocess`: a model's preprocessing over files and folders, off the stream, to
//! check what the model will see. Per input it writes the tensor as a NumPy `.npy` file
//! (`[N, C, H, W]`, `<f4`: one image per frame) and an 8-bit PNG preview of channel 0 of each
//! frame. Files of a modality the spec does not list are skipped, as the `preprocess` operator
//! drops them.
//!
//! [`PreprocessCommand::plan`] does every check that can fail before a file is read (the spec,
//! the inputs, where the outputs go); [`PreprocessPlan::execute`] then preprocesses the files on
//! a pool of threads. Nothing printed quotes a value from a file: files are named by path,
//! problems by the decoder's and the kernels' own errors.

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dicom_dictionary_std::tags;
use radstream_operators::preprocess::{npy, png, preprocess_object, PreprocessSpec, Tensor};
use radstream_operators::{element_text, parse_header};

use crate::deid_cmd::UsageError;
use crate::publish::collect_files;

/// `radstream preprocess`, as given on the command line.
#[derive(Debug, Clone)]
pub struct PreprocessCommand {
    /// The model's preprocessing spec (`models/*.preprocess.toml`).
    pub model: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Files preprocessed at once; the available parallelism when absent.
    pub jobs: Option<NonZeroUsize>,
    /// Files and folders (searched recursively).
    pub inputs: Vec<PathBuf>,
}

/// One input file and the name of its outputs below `--out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessInput {
    /// The file as found.
    pub source: PathBuf,
    /// Its outputs' path below `--out` without extension: the file's name (a `.dcm` extension
    /// dropped) for a file argument, its path below the folder for a folder argument.
    pub stem: PathBuf,
}

/// A checked run: the spec valid, the inputs listed, output names distinct.
#[derive(Debug)]
pub struct PreprocessPlan {
    spec: PreprocessSpec,
    out: PathBuf,
    threads: usize,
    inputs: Vec<PreprocessInput>,
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    /// Its tensor and previews were written.
    Written {
        /// `[N, C, H, W]` of the tensor.
        shape: [usize; 4],
    },
    /// Not preprocessed: its modality is not one the spec lists.
    Skipped {
        /// The file's modality (empty when it has none).
        modality: String,
    },
    /// Nothing usable was written; why.
    Failed {
        /// What went wrong, naming no value from the file.
        reason: String,
    },
}

/// The outcome of every input, in input order.
#[derive(Debug)]
pub struct PreprocessReport {
    model: String,
    out: PathBuf,
    outcomes: Vec<(PathBuf, FileOutcome)>,
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

impl PreprocessCommand {
    /// Checks the spec, lists the inputs and names the outputs. Creates nothing.
    pub fn plan(&self) -> Result<PreprocessPlan, UsageError> {
        let spec = PreprocessSpec::load(&self.model).map_err(|e| usage(e.to_string()))?;
        if self.out.is_file() {
            return Err(usage(format!("--out {} is a file; give a folder", self.out.display())));
        }
        let out = std::path::absolute(&self.out).map_err(|e| usage(format!("--out {}: {e}", self.out.display())))?;
        for input in &self.inputs {
            if !input.exists() {
                return Err(usage(format!("{}: no such file or folder", input.display())));
            }
            let absolute = std::path::absolute(input).map_err(|e| usage(format!("{}: {e}", input.display())))?;
            if input.is_dir() && out.starts_with(&absolute) {
                return Err(usage(format!(
                    "--out {} is inside the input folder {}: a later run would read its outputs as inputs",
                    self.out.display(),
                    input.display()
                )));
            }
        }
        let files = collect_files(&self.inputs).map_err(|e| usage(format!("listing the inputs: {e}")))?;
        if files.is_empty() {
            return Err(usage("no files found under the inputs"));
        }
        let mut inputs: Vec<PreprocessInput> =
            files.into_iter().map(|(source, relative)| PreprocessInput { source, stem: stem(&relative) }).collect();
        inputs.sort_by(|a, b| a.stem.cmp(&b.stem));
        for pair in inputs.windows(2) {
            if pair[0].stem == pair[1].stem {
                return Err(usage(format!(
                    "{} and {} would both be written as {}.npy: preprocess them into separate folders",
                    pair[0].source.display(),
                    pair[1].source.display(),
                    self.out.join(&pair[0].stem).display()
                )));
            }
        }
        inputs.sort_by(|a, b| a.source.cmp(&b.source));
        let available = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1);
        let threads = self.jobs.map_or(available, NonZeroUsize::get).min(inputs.len()).max(1);
        Ok(PreprocessPlan { spec, out: self.out.clone(), threads, inputs })
    }
}

/// The output stem of a relative input path: `a/b/x.dcm` → `a/b/x`.
fn stem(relative: &str) -> PathBuf {
    let path = PathBuf::from(relative);
    match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("dcm") => path.with_extension(""),
        _ => path,
    }
}

impl PreprocessPlan {
    /// The inputs, sorted by path.
    pub fn inputs(&self) -> &[PreprocessInput] {
        &self.inputs
    }

    /// Preprocesses every input on the plan's threads, calling `progress` after each.
    pub fn execute(&self, progress: impl Fn(&PreprocessInput, &FileOutcome) + Sync) -> PreprocessReport {
        let next = AtomicUsize::new(0);
        let outcomes: Mutex<Vec<Option<FileOutcome>>> = Mutex::new(vec![None; self.inputs.len()]);
        std::thread::scope(|scope| {
            for _ in 0..self.threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = self.inputs.get(i) else { break };
                    let outcome = self.one(input).unwrap_or_else(|reason| FileOutcome::Failed { reason });
                    progress(input, &outcome);
                    outcomes.lock().expect("outcomes lock")[i] = Some(outcome);
                });
            }
        });
        let outcomes = outcomes.into_inner().expect("outcomes lock");
        PreprocessReport {
            model: self.spec.name.clone(),
            out: self.out.clone(),
            outcomes: self
                .inputs
                .iter()
                .zip(outcomes)
                .map(|(input, outcome)| {
                    let outcome = outcome.unwrap_or(FileOutcome::Failed { reason: "not processed".into() });
                    (input.source.clone(), outcome)
                })
                .collect(),
        }
    }

    /// One input: read, check the modality, decode, preprocess, write the tensor and the
    /// previews.
    fn one(&self, input: &PreprocessInput) -> Result<FileOutcome, String> {
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !self.spec.takes_modality(&modality) {
            return Ok(FileOutcome::Skipped { modality });
        }
        let tensor = preprocess_object(&self.spec, &bytes).map_err(|e| e.to_string())?;
        let base = self.out.join(&input.stem);
        if let Some(parent) = base.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let npy_path = with_suffix(&base, ".npy");
        crate::files::write_atomically(&npy_path, |file| npy::write_npy(std::io::BufWriter::new(file), &tensor))
            .map_err(|e| format!("cannot write {}: {e}", npy_path.display()))?;
        self.write_previews(&base, &tensor)?;
        Ok(FileOutcome::Written { shape: tensor.shape() })
    }

    /// `<stem>.f<k>.png` for every image `k` of the tensor: channel 0, the range its values fall
    /// in mapped onto black..white.
    fn write_previews(&self, base: &Path, tensor: &Tensor) -> Result<(), String> {
        let (lo, hi) = self.spec.value_range(0).unwrap_or((0.0, 1.0));
        for k in 0..tensor.shape()[0] {
            let path = with_suffix(base, &format!(".f{k}.png"));
            let bytes =
                png::preview(tensor, k, 0, lo, hi).ok_or_else(|| format!("cannot encode {}", path.display()))?;
            crate::files::write_atomically(&path, |file| file.write_all(&bytes))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// `base` with `suffix` appended to its last component (`x` → `x.npy`).
fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

impl PreprocessReport {
    /// Every outcome, in input order.
    pub fn outcomes(&self) -> &[(PathBuf, FileOutcome)] {
        &self.outcomes
    }

    /// `path: reason` for each file that failed.
    pub fn failures(&self) -> impl Iterator<Item = String> + '_ {
        self.outcomes.iter().filter_map(|(path, outcome)| match outcome {
            FileOutcome::Failed { reason } => Some(format!("{}: {reason}", path.display())),
            FileOutcome::Written { .. } | FileOutcome::Skipped { .. } => None,
        })
    }

    /// The summary lines.
    pub fn summary(&self) -> String {
        let (mut written, mut images, mut skipped, mut failed) = (0, 0, 0, 0);
        for (_, outcome) in &self.outcomes {
            match outcome {
                FileOutcome::Written { shape } => {
                    written += 1;
                    images += shape[0];
                }
                FileOutcome::Skipped { .. } => skipped += 1,
                FileOutcome::Failed { .. } => failed += 1,
            }
        }
        format!(
            "model {}: {written} of {} files preprocessed ({images} images) into {}; \
             {skipped} skipped (modality not in the spec), {failed} failed",
            self.model,
            self.outcomes.len(),
            self.out.display()
        )
    }

    /// 0 when no file failed (skipped files are not failures), 1 when any did.
    pub fn exit_code(&self) -> ExitCode {
        if !self.outcomes.iter().any(|(_, o)| matches!(o, FileOutcome::Failed { .. })) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Runs `radstream preprocess`: plans, preprocesses with a progress bar when stderr is a
/// terminal, prints a line per failed file and the summary. Exit status 0 when every file was
/// written or skipped, 1 when any failed, 2 for a usage problem.
pub fn run(command: &PreprocessCommand) -> ExitCode {
    let plan = match command.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let bar = crate::files::files_progress(plan.inputs().len());
    let failed = AtomicUsize::new(0);
    let report = plan.execute(|_, outcome| {
        if matches!(outcome, FileOutcome::Failed { .. }) {
            let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    for failure in report.failures() {
        eprintln!("{failure}");
    }
    println!("{}", report.summary());
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_drop_a_dcm_extension_only() {
        assert_eq!(stem("a/b/x.dcm"), PathBuf::from("a/b/x"));
        assert_eq!(stem("X.DCM"), PathBuf::from("X"));
        assert_eq!(stem("1.2.840.5"), PathBuf::from("1.2.840.5"));
        assert_eq!(with_suffix(Path::new("out/1.2.3"), ".f0.png"), PathBuf::from("out/1.2.3.f0.png"));
    }
}
