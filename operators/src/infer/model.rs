//! A model loaded from its manifest, and the backend that runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cpu::{BackendError, CpuModel, Output};
use super::manifest::{ModelManifest, VerifiedModel};
#[cfg(feature = "onnxruntime")]
use super::ort;
use crate::contract::{ConfigError, Finding, InferenceResult, ModelIdentity};
use crate::preprocess::Tensor;

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

/// A model loaded from its manifest: verified file, optimized plan, findings mapped to outputs.
#[derive(Debug)]
pub struct LoadedModel {
    pub(super) manifest: ModelManifest,
    pub(super) identity: ModelIdentity,
    pub(super) backend: ModelBackend,
    /// Per manifest finding: (index into the outputs, column).
    pub(super) finding_columns: Vec<(usize, usize)>,
    /// A model of whole series: the output of per-slice scores, if it has one.
    pub(super) slice_scores: Option<usize>,
    /// The mask output, if it has one.
    pub(super) mask_output: Option<usize>,
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
            sha256: super::manifest::sha256_hex(&onnx),
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

/// Which library runs a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
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
