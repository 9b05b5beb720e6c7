//! `infer`: runs a model, named by its manifest ([`manifest`]), on the tensors the `preprocess`
//! operator attached, and attaches the result ([`Envelope::results`]).
//!
//! **Batching, per model.** The operator gives the runtime its own batching policy
//! ([`crate::batching`]): a batch is handed over when `max_batch` envelopes are queued, or when
//! the oldest has waited `max_delay_ms`, whichever comes first, gathered across partitions and
//! studies, STAT-priority envelopes first. The operator cuts the batch's images into runs of at
//! most `max_batch` images ([`plan_runs`]; a multi-frame instance may span two runs) and runs
//! them one after the other on tokio's blocking pool. One model run per chunk rather than per
//! instance is the point: a CPU or GPU does a batch of 8 in far less than 8 times the time of
//! one. Queue delay (`radstream_model_queue_delay_seconds`), images per run and model time are
//! metrics.
//!
//! **Models of whole series** (manifest `input = "series"`): the operator gathers each series'
//! instances ([`assembly`]), runs the model once on the stacked volume `[1, C, D, H, W]` when
//! the series is complete, and forwards every instance of it with the same result. A late
//! instance re-runs its series; the new result's `revision` supersedes the earlier one.
//!
//! **Routing.** An envelope a routing rule sent to another model (`Envelope::model`) is
//! forwarded untouched; the runtime checks at start that every model a rule names has an
//! `infer` operator.
//!
//! **Result.** Each forwarded envelope carries an [`InferenceResult`]: the model's name, version
//! and SHA-256 (so every downstream result and audit record can say which model said it), a
//! score per frame for each of the manifest's findings, and the findings whose score reached
//! their threshold. It is shared (`Arc`) because SR/SEG writers and the FHIR sink only read it.
//!
//! Outcomes:
//! * forwarded with its result, findings or none;
//! * dead-lettered as `config` when the envelope has no tensor (no `preprocess` before `infer`)
//!   or a tensor of another `[C, H, W]` than the model takes (the preprocess spec and the
//!   manifest disagree); the reason names the missing operator, or both shapes;
//! * dead-lettered as `internal` when the model fails on a run (every envelope of that run);
//! * for models of whole series: dropped as `duplicate_instance` when a re-delivered copy of a
//!   held instance replaces it; dead-lettered as `malformed_dicom` when the series' slices do
//!   not make one volume (another orientation or size), and as `late_instance` when an instance
//!   arrives after its series was run and its slices are no longer kept.
//!
//! **Backends** (`backend` in the config):
//! * `"tract"` (the default, [`cpu`]): pure Rust on the CPU, complete on its own.
//! * `"onnxruntime"` ([`ort`], feature `onnxruntime`, on in the binary): ONNX Runtime through
//!   `ort` with `default-features = false` and `load-dynamic`, its library opened at run time
//!   (`onnxruntime_lib` or `RADSTREAM_ONNXRUNTIME_LIB`). With `device = "auto"` it runs on ONNX
//!   Runtime's CUDA execution provider (the `onnxruntime-gpu` wheel's library) where a GPU
//!   starts, else on its CPU provider, and says why. Why this and not another GPU path:
//!   * it builds here without nvcc, a GPU or a download, and the binary built here runs on the
//!     GPU machines (CUDA 13, driver 580, onnxruntime installed, no Rust);
//!   * ONNX Runtime can bind device memory as input (`IoBinding`), so the tensor the
//!     preprocess kernels leave on the GPU can go into the model without a host round trip
//!     (not done yet: it needs a GPU to test);
//!   * it runs any ONNX graph a model author exports, with cuDNN/TensorRT-grade kernels;
//!   * candle's CUDA feature reads the CUDA version from nvcc at build time (there is none here)
//!     and links cudarc in a way that clashes with the dynamic loading our kernels use, and it
//!     runs only the ONNX operators candle implements; writing our own convolution kernels would
//!     be slower and a project of its own.
//!
//! Both backends give the same scores (tested to 1e-5 on the test and demo models).

pub mod assembly;
pub mod cpu;
pub mod manifest;
#[cfg(feature = "onnxruntime")]
pub mod ort;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use radstream_schemas::{ErrorClass, Priority};
use serde::{Deserialize, Serialize};

pub use self::assembly::{Assembler, SeriesConfig, SeriesRun};
pub use self::cpu::{BackendError, CpuModel, Output};
pub use self::manifest::{Code, CodeSystem, FindingSpec, ModelManifest, Task, VerifiedModel};
use crate::preprocess::Tensor;
use crate::{Batching, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// Largest `max_batch`: beyond it a batch of 256×256 images would be over a gigabyte.
const MAX_BATCH: usize = 4096;

fn default_max_batch() -> usize {
    8
}

fn default_max_delay_ms() -> f64 {
    0.0
}

/// Rule name of a re-delivered copy of a held instance.
pub const DUPLICATE_DROP_RULE: &str = "duplicate_instance";

/// Configuration of the `infer` operator.
///
/// ```toml
/// [[operators]]
/// type = "infer"
/// model = "models/ct-head-bleed.model.toml"
/// max_batch = 8
/// max_delay_ms = 0
/// ```
///
/// A model of whole series takes a `[operators.series]` table ([`SeriesConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferConfig {
    /// The model manifest (`models/*.model.toml`), read when the operator is built (the ONNX
    /// file it names is read and its SHA-256 checked then); relative to the working directory.
    pub model: PathBuf,
    /// Most images per model run; the runtime's batch of envelopes is cut into runs of this
    /// many images (default 8).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest an image waits for its batch to fill, from when it was queued, in milliseconds.
    /// The default, 0, hands over whatever is queued as soon as the model is free: a busy
    /// model still gets full batches (images queue while it runs). A wait rounds up to tokio's
    /// 1 ms timer tick, so 1 ms means up to about 2 ms of added latency at light load. A busy model fills its batches anyway (images queue while it runs), so a
    /// longer wait only helps at moderate load, at the cost of latency at every load.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: f64,
    /// Series assembly, for a model of whole series (defaults apply when absent).
    #[serde(default)]
    pub series: Option<SeriesConfig>,
    /// Which library runs the model: `"tract"` (the default, pure Rust, CPU) or
    /// `"onnxruntime"` (ONNX Runtime, opened at run time; GPU or CPU).
    #[serde(default)]
    pub backend: BackendKind,
    /// `backend = "onnxruntime"` only: `"auto"` (the default) runs on ONNX Runtime's CUDA
    /// provider where a GPU starts, else on its CPU provider; `"cpu"` always on the CPU.
    #[serde(default)]
    pub device: crate::preprocess::device::DeviceChoice,
    /// `backend = "onnxruntime"` only: ONNX Runtime's shared library (for example pip's
    /// `onnxruntime/capi/libonnxruntime.so.1.22.0`); default `$RADSTREAM_ONNXRUNTIME_LIB`.
    #[serde(default)]
    pub onnxruntime_lib: Option<PathBuf>,
}

/// Which library runs a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract, pure Rust, on the CPU.
    #[default]
    Tract,
    /// ONNX Runtime (feature `onnxruntime`), its library opened at run time.
    Onnxruntime,
}

/// How a model is to be loaded: the backend, the device, ONNX Runtime's library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendChoice {
    /// The backend.
    pub kind: BackendKind,
    /// The device (ONNX Runtime only).
    pub device: crate::preprocess::device::DeviceChoice,
    /// ONNX Runtime's library; `$RADSTREAM_ONNXRUNTIME_LIB` when `None`.
    pub library: Option<PathBuf>,
}

/// The environment variable naming ONNX Runtime's shared library.
pub const ONNXRUNTIME_LIB_ENV: &str = "RADSTREAM_ONNXRUNTIME_LIB";

impl InferConfig {
    /// Checks the configuration without reading the manifest.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.as_os_str().is_empty() {
            return Err(ConfigError::new("model", "name the model manifest, e.g. models/ct-head-bleed.model.toml"));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(ConfigError::new("max_batch", format!("must be between 1 and {MAX_BATCH}")));
        }
        if !(self.max_delay_ms.is_finite() && (0.0..=60_000.0).contains(&self.max_delay_ms)) {
            return Err(ConfigError::new("max_delay_ms", "must be between 0 and 60000"));
        }
        if let Some(series) = &self.series {
            series.validate().map_err(|e| e.within("series"))?;
        }
        if self.backend == BackendKind::Tract && self.onnxruntime_lib.is_some() {
            return Err(ConfigError::new("onnxruntime_lib", "is for backend = \"onnxruntime\""));
        }
        if self.backend == BackendKind::Tract && self.device != crate::preprocess::device::DeviceChoice::Auto {
            return Err(ConfigError::new(
                "device",
                "tract runs on the CPU only; `device` is for backend = \"onnxruntime\"",
            ));
        }
        if self.backend == BackendKind::Onnxruntime && !cfg!(feature = "onnxruntime") {
            return Err(ConfigError::new(
                "backend",
                "this build has no ONNX Runtime backend (cargo feature `onnxruntime`); use backend = \"tract\"",
            ));
        }
        Ok(())
    }

    /// The backend this configuration asks for.
    pub fn backend_choice(&self) -> BackendChoice {
        BackendChoice { kind: self.backend, device: self.device, library: self.onnxruntime_lib.clone() }
    }

    /// Builds the operator: reads the manifest, checks the model file's hash, loads the model.
    pub fn build(&self) -> Result<Infer, ConfigError> {
        self.validate()?;
        let model = LoadedModel::load_on(&self.model, &self.backend_choice()).map_err(|e| e.within("model"))?;
        if self.series.is_some() && !model.is_series() {
            return Err(ConfigError::new(
                "series",
                format!(
                    "model {} takes slices (input = \"slice\"); [series] is for models of whole series",
                    model.identity.name
                ),
            ));
        }
        if !model.is_series() {
            // Every batch size up to max_batch gets its plan now, not on its first batch.
            let sizes = 1..=self.max_batch.min(cpu::PLANS_KEPT / 2);
            model.backend.prepare(sizes).map_err(|e| ConfigError::new("model", e.to_string()))?;
        }
        let delay = Duration::from_secs_f64(self.max_delay_ms / 1e3);
        Ok(Infer::new(Arc::new(model), self.max_batch)
            .with_max_delay(delay)
            .with_series(self.series.clone().unwrap_or_default()))
    }
}

/// Which model said it: carried with every result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelIdentity {
    /// The manifest's name.
    pub name: String,
    /// The manifest's version.
    pub version: String,
    /// SHA-256 of the ONNX file that ran (checked against the manifest at load).
    pub sha256: String,
}

/// A finding: a score that reached its threshold on one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The manifest's label.
    pub label: String,
    /// Its coded concept.
    pub code: Code,
    /// The frame (image of the instance's tensor) it was found on.
    pub frame: usize,
    /// The model's score.
    pub score: f32,
    /// The threshold it reached.
    pub threshold: f32,
    /// Whether it needs a critical result notification.
    pub critical: bool,
}

/// What a model said about one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceResult {
    /// The model.
    pub model: ModelIdentity,
    /// `scores[frame][i]`: the score of the manifest's `findings[i]` on each frame.
    pub scores: Vec<Vec<f32>>,
    /// The scores at or above their threshold, by frame then manifest order.
    pub findings: Vec<Finding>,
    /// For a model of whole series: the series run (the scores and findings are the series',
    /// on "frame" 0).
    pub series: Option<radstream_schemas::SeriesRecord>,
    /// For a model with a mask output (`tensors.mask`): per frame, the per-pixel probability of
    /// the first finding, `mask_size` rows × columns. Not serialized: segmentation objects are
    /// made from it.
    #[serde(skip)]
    pub masks: Option<Vec<Arc<[f32]>>>,
    /// `[rows, columns]` of each mask.
    #[serde(skip)]
    pub mask_size: Option<[usize; 2]>,
}

/// What a run of one volume gives.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRun {
    /// The series' score of each of the manifest's findings.
    pub scores: Vec<f32>,
    /// Per slice, the score of `tensors.slice_scores`, when the model has that output.
    pub slice_scores: Option<Vec<f32>>,
    /// Per slice, the mask of `tensors.mask`, when the model has that output.
    pub masks: Option<Vec<Arc<[f32]>>>,
}

/// What a run of images gives: per image, the score of each finding, and its mask when the
/// model has one.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRun {
    /// Per image, per manifest finding.
    pub scores: Vec<Vec<f32>>,
    /// Per image, the mask (`tensors.mask`), when the model has one.
    pub masks: Option<Vec<Arc<[f32]>>>,
}

impl InferenceResult {
    /// The record that travels on the outcome topic: the model's identity and its findings.
    pub fn record(&self) -> radstream_schemas::ModelResults {
        radstream_schemas::ModelResults {
            model: self.model.name.clone(),
            version: self.model.version.clone(),
            sha256: self.model.sha256.clone(),
            findings: self
                .findings
                .iter()
                .map(|f| radstream_schemas::FindingRecord {
                    label: f.label.clone(),
                    code_system: f.code.system.designator().to_string(),
                    code: f.code.value.clone(),
                    frame: f.frame,
                    score: f.score,
                    critical: f.critical,
                })
                .collect(),
            series: self.series.clone(),
        }
    }

    /// Whether any finding is critical.
    pub fn critical(&self) -> bool {
        self.findings.iter().any(|f| f.critical)
    }
}

/// A model loaded from its manifest: verified file, optimized plan, findings mapped to outputs.
#[derive(Debug)]
pub struct LoadedModel {
    manifest: ModelManifest,
    identity: ModelIdentity,
    backend: ModelBackend,
    /// Per manifest finding: (index into the outputs, column).
    finding_columns: Vec<(usize, usize)>,
    /// A model of whole series: the output of per-slice scores, if it has one.
    slice_scores: Option<usize>,
    /// The mask output, if it has one.
    mask_output: Option<usize>,
}

impl LoadedModel {
    /// Reads the manifest, checks the ONNX file's SHA-256 and loads it on the CPU (tract).
    pub fn load(manifest: &Path) -> Result<Self, ConfigError> {
        Self::load_on(manifest, &BackendChoice::default())
    }

    /// Reads the manifest, checks the ONNX file's SHA-256 and loads it on `backend`.
    pub fn load_on(manifest: &Path, backend: &BackendChoice) -> Result<Self, ConfigError> {
        let shown = manifest.display().to_string();
        Self::from_verified_on(ModelManifest::load(manifest)?, backend).map_err(|e| e.within(&shown))
    }

    /// Loads a verified model file on the CPU (tract).
    pub fn from_verified(verified: VerifiedModel) -> Result<Self, ConfigError> {
        Self::from_verified_on(verified, &BackendChoice::default())
    }

    /// Loads a verified model file on `choice`.
    pub fn from_verified_on(verified: VerifiedModel, choice: &BackendChoice) -> Result<Self, ConfigError> {
        let VerifiedModel { manifest, onnx } = verified;
        let backend = ModelBackend::load(&manifest, &onnx, choice)
            .map_err(|e| ConfigError::new("file", format!("{}: {e}", manifest.file.display())))?;
        let slice_scores = manifest
            .tensors
            .slice_scores
            .as_ref()
            .and_then(|name| manifest.tensors.outputs.iter().position(|o| o == name));
        let mut finding_columns = Vec::with_capacity(manifest.findings.len());
        for (i, finding) in manifest.findings.iter().enumerate() {
            let output = manifest.tensors.outputs.iter().position(|o| *o == finding.output).unwrap_or_default();
            let shape = &backend.output_shapes()[output];
            let columns = match shape.as_slice() {
                [_, columns] => *columns,
                _ => {
                    return Err(ConfigError::new(
                        format!("findings[{i}].output"),
                        format!("`{}` has {} dimensions; a finding needs [N, K] scores", finding.output, shape.len()),
                    ))
                }
            };
            if let Some(columns) = columns.filter(|&k| finding.index >= k) {
                return Err(ConfigError::new(
                    format!("findings[{i}].index"),
                    format!("`{}` has {columns} columns; index {} is past them", finding.output, finding.index),
                ));
            }
            finding_columns.push((output, finding.index));
        }
        if !manifest.validated_with_this_version() {
            tracing::warn!(
                model = %manifest.name,
                version = %manifest.version,
                validated_with = ?manifest.validated_with,
                radstream = env!("CARGO_PKG_VERSION"),
                "the model was not validated with this radstream version"
            );
        }
        let identity = ModelIdentity {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: crate::infer::manifest::sha256_hex(&onnx),
        };
        let mask_output = match &manifest.tensors.mask {
            None => None,
            Some(name) => {
                let index = manifest.tensors.outputs.iter().position(|o| o == name).unwrap_or_default();
                let [_, h, w] = backend.image_shape();
                let shape = &backend.output_shapes()[index];
                // Per image [N, 1, H, W]; per volume [1, 1, D, H, W].
                let (rank, wanted) = if backend.is_volume() { (5, "[1, 1, D") } else { (4, "[N, 1") };
                let fits = shape.len() == rank
                    && [shape[1], shape[rank - 2], shape[rank - 1]]
                        .iter()
                        .zip([1, h, w])
                        .all(|(have, want)| have.is_none_or(|d| d == want));
                if !fits {
                    return Err(ConfigError::new(
                        "tensors.mask",
                        format!("`{name}` is {shape:?}; a mask is {wanted}, {h}, {w}], at the input's size"),
                    ));
                }
                Some(index)
            }
        };
        Ok(Self { manifest, identity, backend, finding_columns, slice_scores, mask_output })
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &ModelBackend {
        &self.backend
    }

    /// Whether it takes whole series (`[1, C, D, H, W]`).
    pub fn is_series(&self) -> bool {
        self.backend.is_volume()
    }

    /// Runs one volume (`[C, D, H, W]` values) of a model of whole series: the series' score
    /// for each of the manifest's findings, and the per-slice scores when the model has them.
    pub fn series_scores(&self, volume: Vec<f32>, depth: usize) -> Result<(Vec<f32>, Option<Vec<f32>>), BackendError> {
        self.run_series_volume(volume, depth).map(|run| (run.scores, run.slice_scores))
    }

    /// Runs one volume: [`series_scores`](Self::series_scores) and, when the model has a mask
    /// output, the mask of each slice (`mask_size`, in the volume's slice order).
    pub fn run_series_volume(&self, volume: Vec<f32>, depth: usize) -> Result<VolumeRun, BackendError> {
        let outputs = self.backend.run_volume(volume, depth)?;
        let scores = self.finding_columns.iter().map(|&(output, column)| outputs[output].image(0)[column]).collect();
        let slices = match self.slice_scores {
            None => None,
            Some(i) => {
                let per = outputs[i].image(0);
                if per.len() != depth {
                    return Err(BackendError::Run(format!(
                        "the per-slice output has {} values for {depth} slices",
                        per.len()
                    )));
                }
                Some(per.to_vec())
            }
        };
        let masks = match (self.mask_output, self.mask_size()) {
            (Some(i), Some([h, w])) => {
                let all = outputs[i].image(0);
                if all.len() != depth * h * w {
                    return Err(BackendError::Run(format!(
                        "the mask output has {} values for {depth} slices of {h}x{w}",
                        all.len()
                    )));
                }
                Some(all.chunks_exact(h * w).map(Arc::from).collect())
            }
            _ => None,
        };
        Ok(VolumeRun { scores, slice_scores: slices, masks })
    }

    /// The manifest (its `file` resolved).
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Name, version, hash.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// `Ok` when `shape` (`[N, C, H, W]`) is a batch this model takes; else why not.
    pub fn check_tensor(&self, shape: [usize; 4]) -> Result<(), String> {
        let [c, h, w] = self.backend.image_shape();
        if shape[1..] != [c, h, w] || shape[0] == 0 {
            return Err(format!(
                "the tensor is {shape:?} but model {} takes [N, {c}, {h}, {w}]: the preprocess spec and the \
                 manifest's [input] disagree",
                self.identity.name
            ));
        }
        Ok(())
    }

    /// Runs `n` images (`[C, H, W]` each, one after the other) and returns, per image, the score
    /// of each of the manifest's findings.
    pub fn scores(&self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>, BackendError> {
        Ok(self.run_images(images, n)?.scores)
    }

    /// Runs `n` images and returns, per image, the findings' scores and the mask (when the
    /// manifest names one).
    pub fn run_images(&self, images: &[f32], n: usize) -> Result<ImageRun, BackendError> {
        let outputs = self.backend.run(images, n)?;
        let scores = (0..n)
            .map(|image| {
                self.finding_columns.iter().map(|&(output, column)| outputs[output].image(image)[column]).collect()
            })
            .collect();
        let masks = self.mask_output.map(|i| (0..n).map(|image| Arc::from(outputs[i].image(image))).collect());
        Ok(ImageRun { scores, masks })
    }

    /// `[rows, columns]` of the masks, when the model has a mask output.
    pub fn mask_size(&self) -> Option<[usize; 2]> {
        let [_, h, w] = self.backend.image_shape();
        self.mask_output.map(|_| [h, w])
    }

    /// The result for one instance from its per-frame scores.
    pub fn result(&self, scores: Vec<Vec<f32>>) -> InferenceResult {
        let mut findings = Vec::new();
        for (frame, frame_scores) in scores.iter().enumerate() {
            for (spec, &score) in self.manifest.findings.iter().zip(frame_scores) {
                if score >= spec.threshold {
                    findings.push(Finding {
                        label: spec.label.clone(),
                        code: spec.code.clone(),
                        frame,
                        score,
                        threshold: spec.threshold,
                        critical: spec.critical,
                    });
                }
            }
        }
        InferenceResult { model: self.identity.clone(), scores, findings, series: None, masks: None, mask_size: None }
    }

    /// The result for one instance from its per-frame scores and masks.
    pub fn result_of(&self, run: ImageRun) -> InferenceResult {
        let mut result = self.result(run.scores);
        if run.masks.is_some() {
            result.mask_size = self.mask_size();
        }
        result.masks = run.masks;
        result
    }

    /// Runs every frame of `tensor` in runs of at most `max_batch` (for tools; the operator
    /// batches across instances).
    pub fn infer(&self, tensor: &Tensor, max_batch: usize) -> Result<InferenceResult, BackendError> {
        let [n, c, h, w] = tensor.shape();
        let per = c * h * w;
        let mut all =
            ImageRun { scores: Vec::with_capacity(n), masks: self.mask_output.map(|_| Vec::with_capacity(n)) };
        for chunk in tensor.data().chunks(max_batch.max(1) * per) {
            let run = self.run_images(chunk, chunk.len() / per)?;
            all.scores.extend(run.scores);
            if let (Some(all), Some(masks)) = (all.masks.as_mut(), run.masks) {
                all.extend(masks);
            }
        }
        Ok(self.result_of(all))
    }
}

/// The library a model runs in.
#[derive(Debug)]
pub enum ModelBackend {
    /// tract on the CPU.
    Tract(CpuModel),
    /// ONNX Runtime, on its CUDA or CPU provider.
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(ort::OrtModel),
}

impl ModelBackend {
    /// Loads `onnx` as `manifest` describes it, on `choice`.
    pub fn load(manifest: &ModelManifest, onnx: &[u8], choice: &BackendChoice) -> Result<Self, BackendError> {
        let (input, outputs) = (&manifest.tensors.input, &manifest.tensors.outputs);
        let (shape, volume) =
            (manifest.input.image_shape(), manifest.input.input == crate::preprocess::InputKind::Series);
        match choice.kind {
            BackendKind::Tract if volume => Ok(Self::Tract(CpuModel::load_volume(onnx, input, outputs, shape)?)),
            BackendKind::Tract => Ok(Self::Tract(CpuModel::load(onnx, input, outputs, shape)?)),
            #[cfg(feature = "onnxruntime")]
            BackendKind::Onnxruntime => {
                let library = match &choice.library {
                    Some(path) => path.clone(),
                    None => std::env::var_os(ONNXRUNTIME_LIB_ENV).map(PathBuf::from).ok_or_else(|| {
                        BackendError::Load(format!(
                            "name ONNX Runtime's library: onnxruntime_lib, or {ONNXRUNTIME_LIB_ENV} (pip's onnxruntime \
                             wheel has onnxruntime/capi/libonnxruntime.so.*)"
                        ))
                    })?,
                };
                ort::init(&library)?;
                let gpu = choice.device == crate::preprocess::device::DeviceChoice::Auto;
                Ok(Self::Onnxruntime(ort::OrtModel::load(onnx, input, outputs, shape, volume, gpu)?))
            }
            #[cfg(not(feature = "onnxruntime"))]
            BackendKind::Onnxruntime => {
                Err(BackendError::Load("this build has no ONNX Runtime backend (cargo feature `onnxruntime`)".into()))
            }
        }
    }

    /// Where it computes, and why: the `backend` and `reason` labels of
    /// `radstream_compute_backend`, and the name of the library.
    pub fn placement(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Tract(_) => ("cpu", "cpu_requested", "tract"),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => match (m.provider(), m.fallback()) {
                (ort::Provider::Cuda, _) => ("cuda", "gpu_started", "onnxruntime"),
                (ort::Provider::Cpu, Some(_)) => ("cpu", "gpu_unavailable", "onnxruntime"),
                (ort::Provider::Cpu, None) => ("cpu", "cpu_requested", "onnxruntime"),
            },
        }
    }

    /// `[C, H, W]` of one image or slice.
    pub fn image_shape(&self) -> [usize; 3] {
        match self {
            Self::Tract(m) => m.image_shape(),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => m.image_shape(),
        }
    }

    /// Whether it takes volumes.
    pub fn is_volume(&self) -> bool {
        match self {
            Self::Tract(m) => m.is_volume(),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => m.is_volume(),
        }
    }

    /// Each output's shape as far as it is known before a run.
    pub fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        match self {
            Self::Tract(m) => m.output_shapes(),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => m.output_shapes(),
        }
    }

    /// Runs `n` images.
    pub fn run(&self, images: &[f32], n: usize) -> Result<Vec<Output>, BackendError> {
        match self {
            Self::Tract(m) => m.run(images, n),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => m.run(images, n),
        }
    }

    /// Runs one volume of `depth` slices.
    pub fn run_volume(&self, volume: Vec<f32>, depth: usize) -> Result<Vec<Output>, BackendError> {
        match self {
            Self::Tract(m) => m.run_volume(volume, depth),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(m) => m.run_volume(volume, depth),
        }
    }

    /// Prepares the batch sizes `sizes` (tract optimizes a plan per size; ONNX Runtime needs
    /// nothing).
    pub fn prepare(&self, sizes: impl IntoIterator<Item = usize>) -> Result<(), BackendError> {
        match self {
            Self::Tract(m) => m.prepare(sizes),
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime(_) => Ok(()),
        }
    }
}

/// Part of one instance's frames in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPart {
    /// Which instance (index into the list given to [`plan_runs`]).
    pub item: usize,
    /// Its frames in this run.
    pub frames: Range<usize>,
}

/// Cuts instances of `frames[i]` images each, in the given order, into runs of at most
/// `max_batch` images; an instance that does not fit the rest of a run continues in the next.
pub fn plan_runs(frames: &[usize], max_batch: usize) -> Vec<Vec<RunPart>> {
    let max_batch = max_batch.max(1);
    let mut runs: Vec<Vec<RunPart>> = Vec::new();
    let mut filled = max_batch;
    for (item, &count) in frames.iter().enumerate() {
        let mut start = 0;
        while start < count {
            if filled == max_batch {
                runs.push(Vec::new());
                filled = 0;
            }
            let take = (count - start).min(max_batch - filled);
            runs.last_mut().expect("a run was pushed").push(RunPart { item, frames: start..start + take });
            filled += take;
            start += take;
        }
    }
    runs
}

/// Runs a model on the tensors of each batch and attaches the results.
pub struct Infer {
    model: Arc<LoadedModel>,
    max_batch: usize,
    max_delay: Duration,
    observer: Arc<dyn crate::config::OperatorObserver>,
    /// Models of whole series: the series being gathered.
    assembler: Option<Assembler>,
    /// The held count last reported to the observer.
    reported_held: usize,
}

impl std::fmt::Debug for Infer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infer")
            .field("model", &self.model)
            .field("max_batch", &self.max_batch)
            .field("max_delay", &self.max_delay)
            .field("assembler", &self.assembler)
            .finish_non_exhaustive()
    }
}

/// A volume stacked from a series' slices, in patient order.
#[derive(Debug)]
pub struct StackedSeries {
    /// `[C, D, H, W]` values.
    pub data: Vec<f32>,
    /// `D`.
    pub depth: usize,
    /// For each slice of the volume, in order: the index of the instance (into the run's
    /// slices) it came from.
    pub slice_instance: Vec<usize>,
    /// Whether the spacing is uneven (a slice missing, say).
    pub irregular_spacing: bool,
}

/// Stacks the slices of every instance along their normal (PS3.3 C.7.6.2.1.1).
pub fn stack_series(slices: &[assembly::Slices], image_shape: [usize; 3]) -> Result<StackedSeries, String> {
    let [c, h, w] = image_shape;
    let (plane, per) = (h * w, c * h * w);
    let mut geometry = Vec::new();
    let mut sources = Vec::new();
    for (instance, s) in slices.iter().enumerate() {
        let [frames, sc, sh, sw] = s.tensor.shape();
        if [sc, sh, sw] != image_shape {
            return Err(format!(
                "instance {} has images of [{sc}, {sh}, {sw}], the model takes [{c}, {h}, {w}]",
                s.sop_instance_uid
            ));
        }
        for frame in 0..frames {
            geometry.push(s.geometry[frame]);
            sources.push((instance, frame));
        }
    }
    let order =
        radstream_kernels::order_slices(&geometry).map_err(|e| format!("the slices are not one volume: {e}"))?;
    let depth = order.order.len();
    let mut data = Vec::with_capacity(c * depth * plane);
    for channel in 0..c {
        for &i in &order.order {
            let (instance, frame) = sources[i];
            let image = &slices[instance].tensor.data()[frame * per..(frame + 1) * per];
            data.extend_from_slice(&image[channel * plane..(channel + 1) * plane]);
        }
    }
    let slice_instance = order.order.iter().map(|&i| sources[i].0).collect();
    Ok(StackedSeries { data, depth, slice_instance, irregular_spacing: order.irregular_spacing })
}

impl Infer {
    /// An operator for `model`, at most `max_batch` images per run.
    pub fn new(model: Arc<LoadedModel>, max_batch: usize) -> Self {
        tracing::info!(
            model = %model.identity.name,
            version = %model.identity.version,
            sha256 = %model.identity.sha256,
            backend = model.backend.placement().2,
            device = model.backend.placement().0,
            series = model.is_series(),
            max_batch,
            "infer: model loaded"
        );
        let assembler = model.is_series().then(|| Assembler::new(SeriesConfig::default()));
        Self {
            model,
            max_batch: max_batch.max(1),
            max_delay: Duration::from_secs_f64(default_max_delay_ms() / 1e3),
            observer: Arc::new(crate::config::NoopObserver),
            assembler,
            reported_held: 0,
        }
    }

    /// Waits at most `max_delay` for a batch to fill.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Series assembly settings (models of whole series only; ignored otherwise).
    pub fn with_series(mut self, config: SeriesConfig) -> Self {
        if self.model.is_series() {
            self.assembler = Some(Assembler::new(config));
        }
        self
    }

    /// Reports each model run (images, model time) to `observer`: the runtime's metrics; and
    /// where the model computes (`radstream_compute_backend{operator="infer"}`).
    pub fn with_observer(mut self, observer: Arc<dyn crate::config::OperatorObserver>) -> Self {
        let (device, reason, _) = self.model.backend.placement();
        observer.compute_backend("infer", device, reason, 1);
        self.observer = observer;
        self
    }

    /// The model it runs.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    fn report_held(&mut self) {
        let held = self.assembler.as_ref().map_or(0, Assembler::held);
        if held != self.reported_held {
            self.observer.series_held(&self.model.identity.name, held as i64 - self.reported_held as i64);
            self.reported_held = held;
        }
    }

    /// Runs images (models of slices).
    async fn run_images(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let mut done = Vec::with_capacity(batch.len());
        let mut ready: Vec<(Envelope, Arc<Tensor>)> = Vec::with_capacity(batch.len());
        for envelope in batch {
            let checked = match &envelope.tensor {
                None => Err(format!(
                    "{}: no input tensor: put a `preprocess` operator with the spec of model {} before `infer`",
                    envelope.object_key(),
                    self.model.identity.name
                )),
                Some(tensor) => self
                    .model
                    .check_tensor(tensor.shape())
                    .map(|()| Arc::clone(tensor))
                    .map_err(|why| format!("{}: {why}", envelope.object_key())),
            };
            match checked {
                Ok(tensor) => ready.push((envelope, tensor)),
                Err(reason) => done.push(Processed {
                    envelope,
                    outcome: Outcome::Fail(OperatorError::dead_letter(ErrorClass::Config, reason)),
                }),
            }
        }
        // STAT first; `sort_by_key` is stable, so arrival order is kept within a priority.
        ready.sort_by_key(|(envelope, _)| envelope.event.priority != Priority::Stat);
        let frames: Vec<usize> = ready.iter().map(|(_, tensor)| tensor.shape()[0]).collect();
        let has_masks = self.model.mask_output.is_some();
        let mut runs: Vec<ImageRun> = frames
            .iter()
            .map(|&n| ImageRun { scores: Vec::with_capacity(n), masks: has_masks.then(|| Vec::with_capacity(n)) })
            .collect();
        let mut failed: Vec<Option<OperatorError>> = vec![None; ready.len()];
        for run in plan_runs(&frames, self.max_batch) {
            let parts: Vec<(Arc<Tensor>, Range<usize>)> =
                run.iter().map(|part| (Arc::clone(&ready[part.item].1), part.frames.clone())).collect();
            let model = Arc::clone(&self.model);
            let task = tokio::task::spawn_blocking(move || {
                let per = model.backend.image_shape().iter().product::<usize>();
                let n = parts.iter().map(|(_, frames)| frames.len()).sum();
                let mut images = Vec::with_capacity(n * per);
                for (tensor, frames) in &parts {
                    images.extend_from_slice(&tensor.data()[frames.start * per..frames.end * per]);
                }
                let started = std::time::Instant::now();
                model.run_images(&images, n).map(|run| (run, n, started.elapsed().as_secs_f64()))
            });
            let outcome = match task.await {
                Ok(Ok((run_scores, images, seconds))) => {
                    self.observer.model_run(&self.model.identity.name, images, seconds);
                    Ok(run_scores)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("the inference task failed: {e}")),
            };
            match outcome {
                Ok(ImageRun { scores, masks }) => {
                    let mut next = scores.into_iter();
                    let mut next_mask = masks.map(Vec::into_iter);
                    for part in &run {
                        let item = &mut runs[part.item];
                        item.scores.extend(next.by_ref().take(part.frames.len()));
                        if let (Some(all), Some(masks)) = (item.masks.as_mut(), next_mask.as_mut()) {
                            all.extend(masks.by_ref().take(part.frames.len()));
                        }
                    }
                }
                Err(reason) => {
                    for part in &run {
                        let key = ready[part.item].0.object_key();
                        failed[part.item] = Some(OperatorError::dead_letter(
                            ErrorClass::Internal,
                            format!("{key}: model {}: {reason}", self.model.identity.name),
                        ));
                    }
                }
            }
        }
        for (((mut envelope, _), run), failure) in ready.into_iter().zip(runs).zip(failed) {
            let outcome = match failure {
                Some(error) => Outcome::Fail(error),
                None => {
                    let result = self.model.result_of(run);
                    log_result(&envelope, &result);
                    envelope.results = Some(Arc::new(result));
                    Outcome::Forward
                }
            };
            done.push(Processed { envelope, outcome });
        }
        done
    }

    /// Adds instances to their series (models of whole series) and runs the series that are
    /// complete.
    async fn add_to_series(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let mut done = Vec::new();
        let mut runs = Vec::new();
        let assembler = self.assembler.as_mut().expect("a series model has an assembler");
        for envelope in batch {
            match assembler.add(envelope, Instant::now()).map_err(|refused| *refused) {
                Ok(ready) => runs.extend(ready),
                Err(assembly::Refused::Duplicate(older)) => done
                    .push(Processed { envelope: older, outcome: Outcome::Drop { rule: DUPLICATE_DROP_RULE.into() } }),
                Err(assembly::Refused::Evicted(envelope, reason)) => done.push(Processed {
                    envelope,
                    outcome: Outcome::Fail(OperatorError::dead_letter(ErrorClass::LateInstance, reason)),
                }),
                Err(assembly::Refused::NotPrepared(envelope, reason)) => done.push(Processed {
                    envelope,
                    outcome: Outcome::Fail(OperatorError::dead_letter(ErrorClass::Config, reason)),
                }),
            }
        }
        self.report_held();
        for run in runs {
            done.extend(self.run_series(run).await);
        }
        done
    }

    /// Runs one series and answers its new instances.
    async fn run_series(&mut self, run: SeriesRun) -> Vec<Processed> {
        let name = self.model.identity.name.clone();
        let reason = if run.is_rerun() { "late_instance" } else { run.reason.as_str() };
        self.observer.series_run(&name, reason);
        let slices = run.slices.clone();
        let model = Arc::clone(&self.model);
        let task = tokio::task::spawn_blocking(move || {
            let stacked =
                stack_series(&slices, model.backend.image_shape()).map_err(|e| (ErrorClass::MalformedDicom, e))?;
            let started = std::time::Instant::now();
            let depth = stacked.depth;
            let VolumeRun { scores, slice_scores: per_slice, masks } = model
                .run_series_volume(stacked.data, depth)
                .map_err(|e| (ErrorClass::Internal, format!("model {}: {e}", model.identity.name)))?;
            let seconds = started.elapsed().as_secs_f64();
            Ok::<_, (ErrorClass, String)>((
                scores,
                per_slice,
                masks,
                stacked.slice_instance,
                stacked.irregular_spacing,
                seconds,
            ))
        });
        let outcome = match task.await {
            Ok(result) => result,
            Err(e) => Err((ErrorClass::Internal, format!("the inference task failed: {e}"))),
        };
        let SeriesRun { key, revision, slices, envelopes, expected, reason: why, .. } = run;
        match outcome {
            Ok((scores, per_slice, masks, slice_instance, irregular_spacing, seconds)) => {
                self.observer.model_run(&name, slice_instance.len(), seconds);
                let threshold = self.model.manifest.findings.first().map(|f| f.threshold);
                let mut flagged_instances: Vec<String> = Vec::new();
                if let (Some(per_slice), Some(threshold)) = (&per_slice, threshold) {
                    for (score, &instance) in per_slice.iter().zip(&slice_instance) {
                        let sop = &slices[instance].sop_instance_uid;
                        if *score >= threshold && !flagged_instances.contains(sop) {
                            flagged_instances.push(sop.clone());
                        }
                    }
                }
                let mut result = self.model.result(vec![scores]);
                result.series = Some(radstream_schemas::SeriesRecord {
                    series_instance_uid: key.series.clone(),
                    revision,
                    reason: why.as_str().to_string(),
                    instances: slices.len(),
                    expected,
                    slices: slice_instance.len(),
                    flagged_instances,
                });
                tracing::info!(
                    model = %name,
                    series_instance_uid = %key.series,
                    revision,
                    reason,
                    instances = slices.len(),
                    expected = ?expected,
                    slices = slice_instance.len(),
                    irregular_spacing,
                    findings = result.findings.len(),
                    critical = result.critical(),
                    "infer: series done"
                );
                let result = Arc::new(result);
                // The first slice of each instance: where its mask is.
                let mut first_slice = std::collections::HashMap::new();
                for (slice, &instance) in slice_instance.iter().enumerate() {
                    first_slice.entry(slices[instance].sop_instance_uid.clone()).or_insert(slice);
                }
                if let Some(assembler) = self.assembler.as_mut() {
                    assembler.retain(key, slices, revision, expected, Instant::now());
                }
                // Each instance of the run carries the series' result and, where the model gives
                // masks, the mask of its own (first) slice, for its segmentation and overlay.
                let mask_size = self.model.mask_size();
                envelopes
                    .into_iter()
                    .map(|mut envelope| {
                        let own = masks
                            .as_ref()
                            .and_then(|masks| masks.get(*first_slice.get(&envelope.event.sop_instance_uid)?).cloned());
                        envelope.results = Some(match own {
                            Some(mask) => {
                                Arc::new(InferenceResult { masks: Some(vec![mask]), mask_size, ..(*result).clone() })
                            }
                            None => Arc::clone(&result),
                        });
                        Processed::forward(envelope)
                    })
                    .collect()
            }
            Err((class, reason)) => {
                tracing::warn!(model = %name, series_instance_uid = %key.series, revision, error_class = class.as_str(), %reason, "infer: series failed");
                envelopes
                    .into_iter()
                    .map(|envelope| {
                        let reason = format!("{}: series {}: {reason}", envelope.object_key(), key.series);
                        Processed { envelope, outcome: Outcome::Fail(OperatorError::dead_letter(class, reason)) }
                    })
                    .collect()
            }
        }
    }
}

fn log_result(envelope: &Envelope, result: &InferenceResult) {
    tracing::info!(
        object = %envelope.object_key(),
        sop_instance_uid = %envelope.event.sop_instance_uid,
        model = %result.model.name,
        version = %result.model.version,
        sha256 = %result.model.sha256,
        frames = result.scores.len(),
        findings = result.findings.len(),
        critical = result.critical(),
        "infer: instance done"
    );
}

#[async_trait]
impl Operator for Infer {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let name = &self.model.identity.name;
        let (mine, others): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|e| e.model.as_deref().is_none_or(|model| model == name));
        // Routed to another model: that model's `infer` takes it.
        let mut done: Vec<Processed> = others.into_iter().map(Processed::forward).collect();
        let now = std::time::Instant::now();
        for envelope in &mine {
            self.observer.model_queue_delay(name, now.saturating_duration_since(envelope.queued_at).as_secs_f64());
        }
        if self.assembler.is_some() {
            done.extend(self.add_to_series(mine).await);
        } else {
            done.extend(self.run_images(mine).await);
        }
        done
    }

    fn batching(&self) -> Option<Batching> {
        // A series model's instances wait in the assembler, not in batches.
        self.assembler.is_none().then_some(Batching::new(self.max_batch, self.max_delay).looking_ahead(4))
    }

    fn next_wake(&self) -> Option<Instant> {
        self.assembler.as_ref().and_then(Assembler::next_due)
    }

    async fn wake(&mut self) -> Vec<Processed> {
        let Some(assembler) = self.assembler.as_mut() else { return Vec::new() };
        let runs = assembler.due(Instant::now());
        self.report_held();
        let mut done = Vec::new();
        for run in runs {
            done.extend(self.run_series(run).await);
        }
        done
    }

    async fn on_close(&mut self) -> Vec<Envelope> {
        let held = self.assembler.as_mut().map(Assembler::drain).unwrap_or_default();
        self.report_held();
        held
    }

    fn models(&self) -> Vec<String> {
        vec![self.model.identity.name.clone()]
    }

    fn holds_at_most(&self) -> Option<usize> {
        self.assembler.as_ref().map(Assembler::max_held)
    }
}

#[cfg(test)]
mod tests;
