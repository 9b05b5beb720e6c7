//! `radstream preprocess`'s work: a model's preprocessing over files and folders, off the stream, to
//! check what the model will see. Files of a modality the spec does not list are skipped, as
//! the `preprocess` operator drops them.
//!
//! * A 2D spec (`input = "slice"`): per input file, the tensor as a NumPy `.npy` file
//!   (`[N, C, H, W]`, `<f4`: one image per frame) and an 8-bit PNG preview of channel 0 of
//!   each frame.
//! * A 3D spec (`input = "series"`): the files are grouped by SeriesInstanceUID and each series
//!   becomes one volume (`[1, C, D, H, W]`, slices in patient-position order), named after the
//!   folder its first file is in, with a `.json` sidecar (voxel spacing, whether the spacing is
//!   regular, which file and frame each slice came from) and a PNG preview per slice.
//!
//! The kernels run where the operator's would: the GPU when there is one (`--device auto`),
//! else the CPU; the summary says which.
//!
//! [`PreprocessCommand::plan`] does every check that can fail before a file is read (the spec,
//! the inputs, where the outputs go); [`PreprocessPlan::execute`] then preprocesses the files on
//! a pool of threads. Nothing printed quotes a value from a file: files are named by path,
//! problems by the decoder's and the kernels' own errors.

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use dicom_dictionary_std::tags;
use radstream_operators::contract::NoopRecorder;
use radstream_operators::dicom::decode::{decode, DecodedImage};
use radstream_operators::preprocess::{
    npy, png, preprocess_object_on, preprocess_series, ComputeDevice, DeviceChoice, InputKind, PreprocessSpec,
    SeriesTensor, Tensor,
};
use radstream_operators::{element_text, parse_header};

use crate::cli::common::{first_free_name, plan_inputs, usage, with_suffix, InputFile, UsageError};
use crate::files::{on_threads, worker_threads};

/// `radstream preprocess`, as given on the command line.
#[derive(Debug, Clone)]
pub struct PreprocessCommand {
    /// The model's preprocessing spec (`models/*.preprocess.toml`).
    pub model: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Files preprocessed at once; the available parallelism when absent.
    pub jobs: Option<NonZeroUsize>,
    /// Where the kernels run.
    pub device: DeviceChoice,
    /// Files and folders (searched recursively).
    pub inputs: Vec<PathBuf>,
}

/// A checked run: the spec valid, the inputs listed, output names distinct.
#[derive(Debug)]
pub struct PreprocessPlan {
    spec: PreprocessSpec,
    out: PathBuf,
    threads: usize,
    inputs: Vec<InputFile>,
    device: ComputeDevice,
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    /// Its tensor and previews were written.
    Written {
        /// `[N, C, H, W]` of the tensor.
        shape: [usize; 4],
    },
    /// It is a slice of a series volume that was written.
    Stacked {
        /// The volume's `.npy` file.
        volume: PathBuf,
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
    backend: &'static str,
    outcomes: Vec<(PathBuf, FileOutcome)>,
}

impl PreprocessCommand {
    /// Checks the spec, lists the inputs and names the outputs. Creates nothing.
    pub fn plan(&self) -> Result<PreprocessPlan, UsageError> {
        let spec = PreprocessSpec::load(&self.model).map_err(|e| usage(e.to_string()))?;
        let inputs = plan_inputs(&self.inputs, &self.out, "npy")?;
        let threads = worker_threads(self.jobs, inputs.len());
        let device = ComputeDevice::select(self.device, &NoopRecorder, &spec.name);
        Ok(PreprocessPlan { spec, out: self.out.clone(), threads, inputs, device })
    }
}

impl PreprocessPlan {
    /// The inputs, sorted by path.
    pub fn inputs(&self) -> &[InputFile] {
        &self.inputs
    }

    /// Preprocesses every input on the plan's threads, calling `progress` after each file.
    pub fn execute(&self, progress: impl Fn(&InputFile, &FileOutcome) + Sync) -> PreprocessReport {
        let outcomes = match self.spec.input {
            InputKind::Slice => self.each_file(|input| self.one(input), &progress),
            InputKind::Series => {
                let decoded = Mutex::new(Vec::new());
                let mut outcomes = self.each_file(
                    |input| {
                        let (series, image) = match self.read_slice(input)? {
                            SliceRead::Skipped(outcome) => return Ok(outcome),
                            SliceRead::Decoded { series, image } => (series, image),
                        };
                        let index = self.inputs.iter().position(|i| i.source == input.source).unwrap_or(0);
                        decoded.lock().expect("decoded lock").push((index, series, *image));
                        // Decoded; the volume is written below, when the whole series is in.
                        Ok(FileOutcome::Stacked { volume: PathBuf::new() })
                    },
                    &progress,
                );
                self.write_volumes(decoded.into_inner().expect("decoded lock"), &mut outcomes);
                outcomes
            }
        };
        PreprocessReport {
            model: self.spec.name.clone(),
            out: self.out.clone(),
            backend: self.device.backend_name(),
            outcomes: self.inputs.iter().map(|input| input.source.clone()).zip(outcomes).collect(),
        }
    }

    /// Runs `work` on every input on the plan's threads; outcomes in input order.
    fn each_file(
        &self,
        work: impl Fn(&InputFile) -> Result<FileOutcome, String> + Sync,
        progress: &(impl Fn(&InputFile, &FileOutcome) + Sync),
    ) -> Vec<FileOutcome> {
        let outcomes = on_threads(&self.inputs, self.threads, |_, input| {
            let outcome = work(input).unwrap_or_else(|reason| FileOutcome::Failed { reason });
            progress(input, &outcome);
            outcome
        });
        outcomes.into_iter().map(|o| o.unwrap_or(FileOutcome::Failed { reason: "not processed".into() })).collect()
    }

    /// One file of a series, decoded, or skipped for its modality.
    fn read_slice(&self, input: &InputFile) -> Result<SliceRead, String> {
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !self.spec.takes_modality(&modality) {
            return Ok(SliceRead::Skipped(FileOutcome::Skipped { modality }));
        }
        let series = element_text(&header, tags::SERIES_INSTANCE_UID)
            .filter(|uid| !uid.is_empty())
            .ok_or("no SeriesInstanceUID: the file cannot be put in a series")?;
        let image = decode(&bytes).map_err(|e| format!("cannot decode pixel data: {e}"))?;
        Ok(SliceRead::Decoded { series, image: Box::new(image) })
    }

    /// Groups the decoded slices by series, stacks and writes each volume, and records the
    /// result in the outcome of every file of it.
    fn write_volumes(&self, decoded: Vec<(usize, String, DecodedImage)>, outcomes: &mut [FileOutcome]) {
        let mut series: Vec<(String, Vec<(usize, DecodedImage)>)> = Vec::new();
        let mut decoded = decoded;
        decoded.sort_by_key(|(index, _, _)| *index);
        for (index, uid, image) in decoded {
            match series.iter_mut().find(|(u, _)| *u == uid) {
                Some((_, members)) => members.push((index, image)),
                None => series.push((uid, vec![(index, image)])),
            }
        }
        let mut names: Vec<PathBuf> = Vec::new();
        for (_, members) in series {
            let first = &self.inputs[members[0].0];
            let name = volume_name(&first.stem, &names);
            names.push(name.clone());
            let indices: Vec<usize> = members.iter().map(|(i, _)| *i).collect();
            let images: Vec<DecodedImage> = members.into_iter().map(|(_, image)| image).collect();
            let result = preprocess_series(&self.device, &NoopRecorder, &self.spec, &images)
                .map_err(|e| e.to_string())
                .and_then(|volume| self.write_volume(&name, &volume, &indices));
            for i in indices {
                outcomes[i] = match &result {
                    Ok(path) => FileOutcome::Stacked { volume: path.clone() },
                    Err(reason) => FileOutcome::Failed { reason: format!("series {}: {reason}", name.display()) },
                };
            }
        }
    }

    /// `<name>.npy`, `<name>.json` and `<name>.s<k>.png` for one volume; returns the `.npy` path.
    fn write_volume(&self, name: &Path, volume: &SeriesTensor, indices: &[usize]) -> Result<PathBuf, String> {
        let base = self.out.join(name);
        if let Some(parent) = base.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let npy_path = with_suffix(&base, ".npy");
        crate::files::write_atomically(&npy_path, |file| {
            npy::write_npy_shaped(std::io::BufWriter::new(file), &volume.shape, &volume.data)
        })
        .map_err(|e| format!("cannot write {}: {e}", npy_path.display()))?;
        let slices: Vec<serde_json::Value> = volume
            .slices
            .iter()
            .zip(&volume.order.distances)
            .map(|(&(image, frame), distance)| {
                serde_json::json!({
                    "file": self.inputs[indices[image]].source.display().to_string(),
                    "frame": frame,
                    "distance_mm": distance,
                })
            })
            .collect();
        let sidecar = serde_json::json!({
            "model": self.spec.name,
            "shape": volume.shape,
            "layout": "[1, C, D, H, W]: slices in patient-position order, along the normal",
            "spacing_mm": { "slice": volume.spacing_mm[0], "row": volume.spacing_mm[1], "column": volume.spacing_mm[2] },
            "normal": volume.order.normal,
            "irregular_spacing": volume.order.irregular_spacing,
            "max_spacing_deviation_mm": volume.order.max_spacing_deviation,
            "slices": slices,
        });
        let json_path = with_suffix(&base, ".json");
        crate::files::write_atomically(&json_path, |file| {
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), &sidecar).map_err(std::io::Error::other)
        })
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
        // Previews of channel 0: the first D planes, as a batch of D single-channel images.
        let [_, _, depth, h, w] = volume.shape;
        let channel0 =
            Tensor::new([depth, 1, h, w], volume.data[..depth * h * w].to_vec()).map_err(|e| e.to_string())?;
        let (lo, hi) = self.spec.value_range(0).unwrap_or((0.0, 1.0));
        for k in 0..depth {
            let path = with_suffix(&base, &format!(".s{k}.png"));
            let bytes =
                png::preview(&channel0, k, 0, lo, hi).ok_or_else(|| format!("cannot encode {}", path.display()))?;
            crate::files::write_atomically(&path, |file| file.write_all(&bytes))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(npy_path)
    }

    /// One input: read, check the modality, decode, preprocess, write the tensor and the
    /// previews.
    fn one(&self, input: &InputFile) -> Result<FileOutcome, String> {
        let bytes = std::fs::read(&input.source).map_err(|e| format!("cannot read: {e}"))?;
        let header = parse_header(&bytes)?;
        let modality = element_text(&header, tags::MODALITY).unwrap_or_default();
        if !self.spec.takes_modality(&modality) {
            return Ok(FileOutcome::Skipped { modality });
        }
        let tensor =
            preprocess_object_on(&self.device, &NoopRecorder, &self.spec, &bytes).map_err(|e| e.to_string())?;
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

/// What reading one file of a series gave.
enum SliceRead {
    /// Decoded, with its SeriesInstanceUID.
    Decoded { series: String, image: Box<DecodedImage> },
    /// Not taken (its modality is not in the spec).
    Skipped(FileOutcome),
}

/// A volume is named after the folder its first file is in (below `--out` as that file's
/// outputs would be), `series` for files given directly; `-2`, `-3`, ... when taken.
fn volume_name(first_stem: &Path, taken: &[PathBuf]) -> PathBuf {
    let folder = first_stem.parent().filter(|p| !p.as_os_str().is_empty());
    let base = folder.map_or_else(|| PathBuf::from("series"), Path::to_path_buf);
    first_free_name(base, taken)
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
            FileOutcome::Written { .. } | FileOutcome::Stacked { .. } | FileOutcome::Skipped { .. } => None,
        })
    }

    /// The summary lines.
    pub fn summary(&self) -> String {
        let (mut written, mut images, mut stacked, mut skipped, mut failed) = (0, 0, 0, 0, 0);
        let mut volumes: Vec<&PathBuf> = Vec::new();
        for (_, outcome) in &self.outcomes {
            match outcome {
                FileOutcome::Written { shape } => {
                    written += 1;
                    images += shape[0];
                }
                FileOutcome::Stacked { volume } => {
                    stacked += 1;
                    if !volumes.contains(&volume) {
                        volumes.push(volume);
                    }
                }
                FileOutcome::Skipped { .. } => skipped += 1,
                FileOutcome::Failed { .. } => failed += 1,
            }
        }
        let done = if volumes.is_empty() {
            format!("{written} of {} files preprocessed ({images} images)", self.outcomes.len())
        } else {
            format!("{} series volumes from {stacked} of {} files", volumes.len(), self.outcomes.len())
        };
        format!(
            "model {} on the {}: {done} into {}; {skipped} skipped (modality not in the spec), {failed} failed",
            self.model,
            self.backend.to_uppercase(),
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
