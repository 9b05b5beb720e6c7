//! `radstream infer`'s work: a model (named by its manifest, `models/*.model.toml`) over files and
//! folders, off the stream: the manifest's preprocessing, then the model. Prints a findings
//! table and writes a `<name>.findings.json` per model input under `--out`. Files of a modality
//! the manifest's input does not list are skipped, as the `preprocess` operator drops them.
//!
//! * A 2D model (`input = "slice"`): each file is a model input, one image per frame. The table
//!   has a row per file, frame and finding (score, whether it reached the threshold);
//!   `<name>.findings.json` is named like `radstream preprocess` names its `.npy` files.
//! * A 3D model (`input = "series"`): the files are grouped by SeriesInstanceUID, across every
//!   INPUT, and each series is one model input: its slices preprocessed and stacked in patient
//!   order ([`preprocess_series`], as `radstream preprocess` stacks them), run once. So a
//!   series folder is one series, a study folder (or a folder of several series) is split per
//!   series, and a file given by itself is a series of its frames: one slice for a
//!   single-frame file, which the model runs on like the `infer` operator would on a series of
//!   one instance (localizers included: leave them out of the INPUTs to leave them unscored).
//!   A series is named after the folder its first file is in (below `--out` as that file's
//!   outputs would be; the folder's own name when the file lies directly in an INPUT folder or
//!   was given by itself), `-2`, `-3`, ... when taken. The table has a row per series and
//!   finding: the folder, the slices, the score, whether it reached the threshold and which
//!   files have a slice whose per-slice score reached the first finding's threshold. The JSON
//!   is the 2D one (the series' scores on frame 0) plus the series record the operator puts on
//!   the outcome topic (`reason` is `all_files`: the series ran once every file given was read)
//!   and each slice's file, position along the normal and per-slice score. A file whose header
//!   cannot be read, that has no SeriesInstanceUID or that repeats an instance of its series
//!   (the same SOPInstanceUID, as a re-delivered copy the operator drops) fails on its own and
//!   the series runs without it; a series with a file whose pixels cannot be decoded, or whose
//!   slices do not make one volume (another size or orientation, no position), fails, each of
//!   its files with the reason.
//!
//! [`InferCommand::plan`] loads the model (its file's SHA-256 checked against the manifest) and
//! lists the inputs before anything is written; [`InferPlan::execute`] runs the files (2D) or
//! the series (3D) on a pool of threads. Nothing printed quotes a value from a file: files and
//! series are named by path (SOPInstanceUIDs are in the JSON only).

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use dicom_dictionary_std::tags;
use radstream_operators::contract::InferenceResult;
use radstream_operators::contract::NoopRecorder;
use radstream_operators::dicom::decode::{decode, DecodedImage};
use radstream_operators::infer::LoadedModel;
use radstream_operators::preprocess::{
    preprocess_object_on, preprocess_series, ComputeDevice, DeviceChoice, InputKind, SeriesTensor,
};
use radstream_operators::{element_text, parse_header};
use radstream_schemas::SeriesRecord;

use crate::cli::common::{first_free_name, plan_inputs, with_suffix, InputFile, UsageError};
use crate::files::{collect_files, on_threads, worker_threads};

/// Images per model run.
const MAX_BATCH: usize = 8;

/// `SeriesRecord::reason` of a series run by this command: every file given was read.
const SERIES_REASON: &str = "all_files";

/// `radstream infer`, as given on the command line.
#[derive(Debug, Clone)]
pub struct InferCommand {
    /// The model manifest (`models/*.model.toml`).
    pub model: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Files run at once; the available parallelism when absent.
    pub jobs: Option<NonZeroUsize>,
    /// Where the preprocessing kernels run.
    pub device: DeviceChoice,
    /// The library that runs the model (and, for ONNX Runtime, on which device).
    pub backend: radstream_operators::infer::BackendChoice,
    /// Files and folders (searched recursively).
    pub inputs: Vec<PathBuf>,
}

/// A checked run: the model loaded and verified, the inputs listed, output names distinct.
#[derive(Debug)]
pub struct InferPlan {
    model: LoadedModel,
    out: PathBuf,
    threads: usize,
    inputs: Vec<InputFile>,
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
    /// A 3D model ran on the series it is a slice of, and the series' findings file was
    /// written (the series is in [`InferReport::series`]).
    Stacked {
        /// The series' `.findings.json`.
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

/// A series a 3D model ran on.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesFindings {
    /// How the table names it: the folder its first file is in (` [series k]` added for the
    /// k-th series of a folder that holds several).
    pub label: String,
    /// Its files, in input order.
    pub files: Vec<PathBuf>,
    /// What the model said, with the series record (`result.series`).
    pub result: Arc<InferenceResult>,
    /// The files with a slice whose per-slice score reached the first finding's threshold, in
    /// slice order (empty when the model has no per-slice output).
    pub flagged_files: Vec<PathBuf>,
    /// The `.findings.json` written.
    pub written: PathBuf,
}

/// The outcome of every input, in input order.
#[derive(Debug)]
pub struct InferReport {
    model: String,
    /// Where the model ran: the library and the device.
    ran_on: String,
    out: PathBuf,
    outcomes: Vec<(PathBuf, InferOutcome)>,
    /// Whether the model takes whole series.
    series_model: bool,
    /// 3D models: the series that ran, in order of their first file.
    series: Vec<SeriesFindings>,
}

/// A file of a series, found by its header (3D models).
struct Member {
    series_instance_uid: String,
    sop_instance_uid: String,
}

/// The files of one series (3D models).
struct SeriesGroup {
    series_instance_uid: String,
    /// Indices into the plan's inputs, in input order.
    members: Vec<usize>,
    /// Each member's SOPInstanceUID.
    sop_instance_uids: Vec<String>,
    /// The output name below `--out`, without extension.
    name: PathBuf,
    /// The table's name for it.
    label: String,
}

impl InferCommand {
    /// Loads the model (checking its hash), lists the inputs and names the outputs (a 3D
    /// model's series are named once their files' headers are read). Creates nothing.
    pub fn plan(&self) -> Result<InferPlan, UsageError> {
        let model = LoadedModel::load_on(&self.model, &self.backend).map_err(|e| UsageError(e.to_string()))?;
        let inputs = if model.is_series() {
            list_series_files(&self.inputs, &self.out)?
        } else {
            plan_inputs(&self.inputs, &self.out, "findings.json")?
        };
        let threads = worker_threads(self.jobs, inputs.len());
        let device = ComputeDevice::select(self.device, &NoopRecorder, &model.manifest().name);
        Ok(InferPlan { model, out: self.out.clone(), threads, inputs, device })
    }
}

impl InferPlan {
    /// The inputs, sorted by path.
    pub fn inputs(&self) -> &[InputFile] {
        &self.inputs
    }

    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Runs every input on the plan's threads, calling `progress` after each file (for a 3D
    /// model, a file of a series once its series has run).
    pub fn execute(&self, progress: impl Fn(&InputFile, &InferOutcome) + Sync) -> InferReport {
        let (outcomes, series) = match self.model.manifest().input.input {
            InputKind::Slice => {
                let outcomes = on_threads(&self.inputs, self.threads, |_, input| {
                    let outcome = self.one(input).unwrap_or_else(|reason| InferOutcome::Failed { reason });
                    progress(input, &outcome);
                    outcome
                });
                (outcomes, Vec::new())
            }
            InputKind::Series => self.execute_series(&progress),
        };
        let (device, _, library) = self.model.backend().placement();
        InferReport {
            model: format!("{} {}", self.model.identity().name, self.model.identity().version),
            ran_on: format!("{library} on the {}", device.to_uppercase().replace("CUDA", "GPU")),
            out: self.out.clone(),
            outcomes: self
                .inputs
                .iter()
                .map(|input| input.source.clone())
                .zip(outcomes)
                .map(|(path, o)| (path, o.unwrap_or(InferOutcome::Failed { reason: "not processed".into() })))
                .collect(),
            series_model: self.model.is_series(),
            series,
        }
    }

    /// A 3D model: reads every file's header, groups the files by series, then runs the series
    /// on the plan's threads.
    fn execute_series(
        &self,
        progress: &(impl Fn(&InputFile, &InferOutcome) + Sync),
    ) -> (Vec<Option<InferOutcome>>, Vec<SeriesFindings>) {
        // Headers only: the pixels are decoded per series below, so that at most a few series'
        // images are held at once.
        let read = on_threads(&self.inputs, self.threads, |_, input| {
            let member = self.read_member(input);
            match &member {
                Ok(Ok(_)) => {}
                Ok(Err(outcome)) => progress(input, outcome),
                Err(reason) => progress(input, &InferOutcome::Failed { reason: reason.clone() }),
            }
            member
        });
        let mut outcomes: Vec<Option<InferOutcome>> = Vec::with_capacity(read.len());
        let mut members = Vec::new();
        for (index, member) in read.into_iter().enumerate() {
            match member {
                Some(Ok(Ok(member))) => {
                    members.push((index, member));
                    outcomes.push(None);
                }
                Some(Ok(Err(outcome))) => outcomes.push(Some(outcome)),
                Some(Err(reason)) => outcomes.push(Some(InferOutcome::Failed { reason })),
                None => outcomes.push(None),
            }
        }
        let (groups, copies) = self.group_series(members);
        for (index, outcome) in copies {
            progress(&self.inputs[index], &outcome);
            outcomes[index] = Some(outcome);
        }
        // Threads over series; what is left over decodes a series' files in parallel.
        let inner = (self.threads / groups.len().max(1)).max(1);
        let runs = on_threads(&groups, self.threads.min(groups.len()), |_, group| {
            let run = self.one_series(group, inner);
            let outcome = member_outcome(group, &run);
            for &i in &group.members {
                progress(&self.inputs[i], &outcome);
            }
            run
        });
        let mut series = Vec::new();
        for (group, run) in groups.iter().zip(runs) {
            let run = run.unwrap_or_else(|| Err("not processed".into()));
            let outcome = member_outcome(group, &run);
            for &i in &group.members {
                outcomes[i] = Some(outcome.clone());
            }
            if let Ok(done) = run {
                series.push(done);
            }
        }
        (outcomes, series)
    }

    /// One file's header (3D models): its series, or its final outcome (skipped for its
    /// modality).
    fn read_member(&self, input: &InputFile) -> Result<Result<Member, InferOutcome>, String> {
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !self.model.manifest().input.takes_modality(&modality) {
            return Ok(Err(InferOutcome::Skipped { modality }));
        }
        let series_instance_uid = element_text(&header, tags::SERIES_INSTANCE_UID)
            .filter(|uid| !uid.is_empty())
            .ok_or("no SeriesInstanceUID: the file cannot be put in a series")?;
        let sop_instance_uid = element_text(&header, tags::SOP_INSTANCE_UID).unwrap_or_default();
        Ok(Ok(Member { series_instance_uid, sop_instance_uid }))
    }

    /// Groups the files (input order) by SeriesInstanceUID and names each series. A second
    /// file with the SOPInstanceUID of one already in its series is a copy: it is left out (the
    /// `infer` operator drops a re-delivered instance likewise) and fails, naming the first.
    fn group_series(&self, members: Vec<(usize, Member)>) -> (Vec<SeriesGroup>, Vec<(usize, InferOutcome)>) {
        let mut groups: Vec<SeriesGroup> = Vec::new();
        let mut copies = Vec::new();
        for (index, member) in members {
            match groups.iter_mut().find(|g| g.series_instance_uid == member.series_instance_uid) {
                Some(group) => {
                    let sop = &member.sop_instance_uid;
                    if let Some(k) = group.sop_instance_uids.iter().position(|s| !sop.is_empty() && s == sop) {
                        let reason = format!(
                            "the same SOPInstanceUID as {}: a copy, left out of the series",
                            self.inputs[group.members[k]].source.display()
                        );
                        copies.push((index, InferOutcome::Failed { reason }));
                        continue;
                    }
                    group.members.push(index);
                    group.sop_instance_uids.push(member.sop_instance_uid);
                }
                None => groups.push(SeriesGroup {
                    series_instance_uid: member.series_instance_uid,
                    members: vec![index],
                    sop_instance_uids: vec![member.sop_instance_uid],
                    name: PathBuf::new(),
                    label: String::new(),
                }),
            }
        }
        let mut names: Vec<PathBuf> = Vec::new();
        let mut folders: Vec<PathBuf> = Vec::new();
        for group in &mut groups {
            let first = &self.inputs[group.members[0]];
            group.name = series_name(first, &names);
            names.push(group.name.clone());
            let folder = first.source.parent().map(Path::to_path_buf).unwrap_or_default();
            let before = folders.iter().filter(|f| **f == folder).count();
            group.label = match before {
                0 => folder.display().to_string(),
                n => format!("{} [series {}]", folder.display(), n + 1),
            };
            folders.push(folder);
        }
        (groups, copies)
    }

    /// One series: decode its files (on `threads` threads), stack and preprocess them, run the
    /// model, write the findings.
    fn one_series(&self, group: &SeriesGroup, threads: usize) -> Result<SeriesFindings, String> {
        let spec = &self.model.manifest().input;
        let files: Vec<InputFile> = group.members.iter().map(|&i| self.inputs[i].clone()).collect();
        let decoded = on_threads(&files, threads, |_, input| -> Result<DecodedImage, String> {
            let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
            decode(&bytes).map_err(|e| format!("cannot decode pixel data: {e}"))
        });
        let images = files
            .iter()
            .zip(decoded)
            .map(|(input, image)| {
                image
                    .unwrap_or_else(|| Err("not processed".into()))
                    .map_err(|e| format!("{}: {e}", input.source.display()))
            })
            .collect::<Result<Vec<DecodedImage>, String>>()?;
        let volume = preprocess_series(&self.device, &NoopRecorder, spec, &images).map_err(|e| e.to_string())?;
        drop(images);
        let SeriesTensor { shape, data, order, slices, spacing_mm } = volume;
        let depth = shape[2];
        let (scores, per_slice) = self.model.series_scores(data, depth).map_err(|e| e.to_string())?;
        let threshold = self.model.manifest().findings.first().map(|f| f.threshold);
        let mut flagged: Vec<usize> = Vec::new();
        if let (Some(per_slice), Some(threshold)) = (&per_slice, threshold) {
            for (&score, &(image, _)) in per_slice.iter().zip(&slices) {
                if score >= threshold && !flagged.contains(&image) {
                    flagged.push(image);
                }
            }
        }
        let mut result = self.model.result(vec![scores]);
        result.series = Some(SeriesRecord {
            series_instance_uid: group.series_instance_uid.clone(),
            revision: 1,
            reason: SERIES_REASON.into(),
            instances: files.len(),
            expected: None,
            slices: depth,
            flagged_instances: flagged.iter().map(|&i| group.sop_instance_uids[i].clone()).collect(),
        });
        let folder = files[0].source.parent().unwrap_or(Path::new("")).display().to_string();
        let mut document = self.findings_document(&folder, &result);
        let slice_entries: Vec<serde_json::Value> = slices
            .iter()
            .enumerate()
            .map(|(k, &(image, frame))| {
                let score = per_slice.as_ref().map(|p| p[k]);
                serde_json::json!({
                    "file": files[image].source.display().to_string(),
                    "frame": frame,
                    "sop_instance_uid": group.sop_instance_uids[image],
                    "distance_mm": order.distances[k],
                    "score": score,
                    "above_threshold": score.zip(threshold).map(|(s, t)| s >= t),
                })
            })
            .collect();
        document["series"] = serde_json::to_value(&result.series).map_err(|e| e.to_string())?;
        document["spacing_mm"] =
            serde_json::json!({ "slice": spacing_mm[0], "row": spacing_mm[1], "column": spacing_mm[2] });
        document["irregular_spacing"] = order.irregular_spacing.into();
        document["slices"] = slice_entries.into();
        let written = self.write_document(&group.name, &document)?;
        Ok(SeriesFindings {
            label: group.label.clone(),
            files: files.iter().map(|f| f.source.clone()).collect(),
            result: Arc::new(result),
            flagged_files: flagged.iter().map(|&i| files[i].source.clone()).collect(),
            written,
        })
    }

    /// Writes `<out>/<name>.findings.json`; returns its path.
    fn write_document(&self, name: &Path, document: &serde_json::Value) -> Result<PathBuf, String> {
        let path = with_suffix(&self.out.join(name), ".findings.json");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        crate::files::write_atomically(&path, |file| {
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), document).map_err(std::io::Error::other)
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// One input of a 2D model: read, check the modality, preprocess, run the model, write the
    /// findings.
    fn one(&self, input: &InputFile) -> Result<InferOutcome, String> {
        let spec = &self.model.manifest().input;
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !spec.takes_modality(&modality) {
            return Ok(InferOutcome::Skipped { modality });
        }
        let tensor = preprocess_object_on(&self.device, &NoopRecorder, spec, &bytes).map_err(|e| e.to_string())?;
        let result = self.model.infer(&tensor, MAX_BATCH).map_err(|e| e.to_string())?;
        let document = self.findings_document(&input.source.display().to_string(), &result);
        let written = self.write_document(&input.stem, &document)?;
        Ok(InferOutcome::Done { result: Arc::new(result), written })
    }

    /// The `.findings.json` of one model input (`file`: the file, or a series' folder): the
    /// model, every frame's scores against their thresholds, and the findings.
    fn findings_document(&self, file: &str, result: &InferenceResult) -> serde_json::Value {
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
            "file": file,
            "model": result.model,
            "task": self.model.manifest().task,
            "frames": frames,
            "findings": result.findings,
        })
    }
}

/// The files of a 3D model's INPUTs, sorted by path, each once. The checks on `--out` and the
/// inputs are [`plan_inputs`]'s, one INPUT at a time: here a file's own name does not name an
/// output, so two series folders may hold files of the same name.
fn list_series_files(inputs: &[PathBuf], out: &Path) -> Result<Vec<InputFile>, UsageError> {
    let mut listed: Vec<InputFile> = Vec::new();
    for input in inputs {
        let empty = input.is_dir()
            && collect_files(std::slice::from_ref(input))
                .map_err(|e| UsageError(format!("listing the inputs: {e}")))?
                .is_empty();
        if !empty {
            listed.extend(plan_inputs(std::slice::from_ref(input), out, "findings.json")?);
        }
    }
    if listed.is_empty() {
        return Err(UsageError("no files found under the inputs".into()));
    }
    // A file given twice (by itself and in its folder, say) would be stacked twice.
    let mut seen = std::collections::HashSet::new();
    listed.retain(|input| seen.insert(std::fs::canonicalize(&input.source).unwrap_or_else(|_| input.source.clone())));
    listed.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(listed)
}

/// The outcome of each file of a series that ran or failed.
fn member_outcome(group: &SeriesGroup, run: &Result<SeriesFindings, String>) -> InferOutcome {
    match run {
        Ok(done) => InferOutcome::Stacked { written: done.written.clone() },
        Err(reason) => InferOutcome::Failed { reason: format!("series {}: {reason}", group.label) },
    }
}

/// A series' output name: the folder its first file is in, below `--out` as that file's own
/// outputs would be; the folder's name when the file lies directly in an INPUT folder or was
/// given by itself (`series` when it has none); `-2`, `-3`, ... when taken.
fn series_name(first: &InputFile, taken: &[PathBuf]) -> PathBuf {
    let below = first.stem.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    let base = below.unwrap_or_else(|| {
        std::path::absolute(&first.source)
            .ok()
            .and_then(|path| path.parent().and_then(Path::file_name).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("series"))
    });
    first_free_name(base, taken)
}

impl InferReport {
    /// Every outcome, in input order.
    pub fn outcomes(&self) -> &[(PathBuf, InferOutcome)] {
        &self.outcomes
    }

    /// The series a 3D model ran on, in order of their first file.
    pub fn series(&self) -> &[SeriesFindings] {
        &self.series
    }

    /// `path: reason` for each file that failed.
    pub fn failures(&self) -> impl Iterator<Item = String> + '_ {
        self.outcomes.iter().filter_map(|(path, outcome)| match outcome {
            InferOutcome::Failed { reason } => Some(format!("{}: {reason}", path.display())),
            InferOutcome::Done { .. } | InferOutcome::Stacked { .. } | InferOutcome::Skipped { .. } => None,
        })
    }

    /// The findings table: for a 2D model one row per file, frame and finding of the manifest,
    /// for a 3D model one row per series and finding; whether or not the score reached the
    /// threshold.
    pub fn table(&self, model: &LoadedModel) -> String {
        if self.series_model {
            return self.series_table(model);
        }
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

    /// One row per series and finding: the series' folder, its slices, the score, whether it
    /// reached the threshold, and (on the first finding's row) the names of the files with a
    /// slice at or over it.
    fn series_table(&self, model: &LoadedModel) -> String {
        let specs = &model.manifest().findings;
        let mut table = format!(
            "{:<60} {:>6}  {:<32} {:>7}  {:<14}  {}\n",
            "series", "slices", "label", "score", "finding", "flagged files"
        );
        for series in &self.series {
            let slices = series.result.series.as_ref().map_or(0, |s| s.slices);
            let scores = series.result.scores.first().map(Vec::as_slice).unwrap_or_default();
            for (i, (spec, &score)) in specs.iter().zip(scores).enumerate() {
                let above = match (score >= spec.threshold, spec.critical) {
                    (true, true) => "yes (critical)",
                    (true, false) => "yes",
                    (false, _) => "no",
                };
                let flagged = if i > 0 || series.flagged_files.is_empty() {
                    "-".to_string()
                } else {
                    let names =
                        series.flagged_files.iter().map(|f| f.file_name().unwrap_or(f.as_os_str()).to_string_lossy());
                    names.collect::<Vec<_>>().join(", ")
                };
                let _ = writeln!(
                    table,
                    "{:<60} {slices:>6}  {:<32} {score:>7.4}  {above:<14}  {flagged}",
                    series.label, spec.label
                );
            }
        }
        table
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let (mut done, mut images, mut findings, mut with_findings, mut skipped, mut failed) = (0, 0, 0, 0, 0, 0);
        let mut stacked = 0;
        for (_, outcome) in &self.outcomes {
            match outcome {
                InferOutcome::Done { result, .. } => {
                    done += 1;
                    images += result.scores.len();
                    findings += result.findings.len();
                    with_findings += usize::from(!result.findings.is_empty());
                }
                InferOutcome::Stacked { .. } => stacked += 1,
                InferOutcome::Skipped { .. } => skipped += 1,
                InferOutcome::Failed { .. } => failed += 1,
            }
        }
        let run = if !self.series_model {
            format!(
                "{done} of {} files run ({images} images), {findings} findings in {with_findings} files",
                self.outcomes.len()
            )
        } else {
            let slices: usize = self.series.iter().filter_map(|s| s.result.series.as_ref()).map(|s| s.slices).sum();
            let findings: usize = self.series.iter().map(|s| s.result.findings.len()).sum();
            let with_findings = self.series.iter().filter(|s| !s.result.findings.is_empty()).count();
            format!(
                "{} series from {stacked} of {} files ({slices} slices), {findings} findings in {with_findings} series",
                self.series.len(),
                self.outcomes.len()
            )
        };
        format!(
            "model {} ({}): {run}, written into {}; {skipped} skipped (modality not in the manifest), \
             {failed} failed",
            self.model,
            self.ran_on,
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

#[cfg(test)]
mod tests;
