//! `infer`: runs a model, named by its manifest ([`manifest`]), on the tensors the `preprocess`
//! operator attached, and attaches the result ([`Envelope::results`]).
//!
//! **Batching.** The runtime already gathers a batch per stage across partitions and studies
//! (`batch_size`, `batch_linger_ms` of the stage), so the operator does not wait for more: it
//! orders the batch's images STAT-priority envelopes first (stable otherwise), cuts them into
//! runs of at most `max_batch` images ([`plan_runs`]; a multi-frame instance may span two runs)
//! and runs them one after the other on tokio's blocking pool. One model run per chunk rather
//! than per instance is the point: a CPU or GPU does a batch of 8 in far less than 8 times the
//! time of one.
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
//! * dead-lettered as `internal` when the model fails on a run (every envelope of that run).
//!
//! **Backends.** The CPU backend ([`cpu`], tract) is complete on its own. The GPU backend is not
//! built yet; the decision for it is `ort` (ONNX Runtime's Rust binding) with
//! `default-features = false` and `load-dynamic`, running ONNX Runtime's CUDA execution
//! provider from the `onnxruntime-gpu` wheel's `libonnxruntime.so`, opened at run time like our
//! kernels open `libcuda`/`libnvrtc`:
//! * it builds here without nvcc, a GPU or a download, and the binary built here runs on the
//!   GPU machines (CUDA 13, driver 580, onnxruntime installed, no Rust);
//! * ONNX Runtime binds device memory as input (`IoBinding`), so the tensor the preprocess
//!   kernels leave on the GPU goes into the model without a host round trip, and only the
//!   scores (and masks) come back;
//! * it runs any ONNX graph a model author exports, with cuDNN/TensorRT-grade kernels;
//! * candle's CUDA feature reads the CUDA version from nvcc at build time (there is none here)
//!   and links cudarc in a way that clashes with the dynamic loading our kernels use, and it
//!   runs only the ONNX operators candle implements; writing our own convolution kernels would
//!   be slower and a project of its own.
//!
//! The GPU backend will sit behind the `cuda` feature, fall back to this CPU backend like
//! `preprocess` does, and be checked against it on the same models.

pub mod cpu;
pub mod manifest;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use radstream_schemas::{ErrorClass, Priority};
use serde::{Deserialize, Serialize};

pub use self::cpu::{BackendError, CpuModel, Output};
pub use self::manifest::{Code, CodeSystem, FindingSpec, ModelManifest, Task, VerifiedModel};
use crate::preprocess::Tensor;
use crate::{ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// Largest `max_batch`: beyond it a batch of 256×256 images would be over a gigabyte.
const MAX_BATCH: usize = 4096;

fn default_max_batch() -> usize {
    8
}

/// Configuration of the `infer` operator.
///
/// ```toml
/// [[operators]]
/// type = "infer"
/// model = "models/ct-head-bleed.model.toml"
/// max_batch = 8
/// ```
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
}

impl InferConfig {
    /// Checks the configuration without reading the manifest.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.as_os_str().is_empty() {
            return Err(ConfigError::new("model", "name the model manifest, e.g. models/ct-head-bleed.model.toml"));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(ConfigError::new("max_batch", format!("must be between 1 and {MAX_BATCH}")));
        }
        Ok(())
    }

    /// Builds the operator: reads the manifest, checks the model file's hash, loads the model.
    pub fn build(&self) -> Result<Infer, ConfigError> {
        self.validate()?;
        let model = LoadedModel::load(&self.model).map_err(|e| e.within("model"))?;
        Ok(Infer::new(Arc::new(model), self.max_batch))
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
    backend: CpuModel,
    /// Per manifest finding: (index into the outputs, column).
    finding_columns: Vec<(usize, usize)>,
}

impl LoadedModel {
    /// Reads the manifest, checks the ONNX file's SHA-256 and loads it on the CPU.
    pub fn load(manifest: &Path) -> Result<Self, ConfigError> {
        let shown = manifest.display().to_string();
        Self::from_verified(ModelManifest::load(manifest)?).map_err(|e| e.within(&shown))
    }

    /// Loads a verified model file.
    pub fn from_verified(verified: VerifiedModel) -> Result<Self, ConfigError> {
        let VerifiedModel { manifest, onnx } = verified;
        if manifest.input.input != crate::preprocess::InputKind::Slice {
            return Err(ConfigError::new(
                "input.input",
                "models of whole series need series assembly, which the infer operator does not do yet",
            ));
        }
        let backend =
            CpuModel::load(&onnx, &manifest.tensors.input, &manifest.tensors.outputs, manifest.input.image_shape())
                .map_err(|e| ConfigError::new("file", format!("{}: {e}", manifest.file.display())))?;
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
        Ok(Self { manifest, identity, backend, finding_columns })
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
        let outputs = self.backend.run(images, n)?;
        Ok((0..n)
            .map(|image| {
                self.finding_columns.iter().map(|&(output, column)| outputs[output].image(image)[column]).collect()
            })
            .collect())
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
        InferenceResult { model: self.identity.clone(), scores, findings }
    }

    /// Runs every frame of `tensor` in runs of at most `max_batch` (for tools; the operator
    /// batches across instances).
    pub fn infer(&self, tensor: &Tensor, max_batch: usize) -> Result<InferenceResult, BackendError> {
        let [n, c, h, w] = tensor.shape();
        let per = c * h * w;
        let mut scores = Vec::with_capacity(n);
        for chunk in tensor.data().chunks(max_batch.max(1) * per) {
            scores.extend(self.scores(chunk, chunk.len() / per)?);
        }
        Ok(self.result(scores))
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
    observer: Arc<dyn crate::config::OperatorObserver>,
}

impl std::fmt::Debug for Infer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infer").field("model", &self.model).field("max_batch", &self.max_batch).finish_non_exhaustive()
    }
}

impl Infer {
    /// An operator for `model`, at most `max_batch` images per run.
    pub fn new(model: Arc<LoadedModel>, max_batch: usize) -> Self {
        tracing::info!(
            model = %model.identity.name,
            version = %model.identity.version,
            sha256 = %model.identity.sha256,
            backend = "cpu",
            max_batch,
            "infer: model loaded"
        );
        Self { model, max_batch: max_batch.max(1), observer: Arc::new(crate::config::NoopObserver) }
    }

    /// Reports each model run (images, model time) to `observer`: the runtime's metrics.
    pub fn with_observer(mut self, observer: Arc<dyn crate::config::OperatorObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The model it runs.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }
}

#[async_trait]
impl Operator for Infer {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
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
        let mut scores: Vec<Vec<Vec<f32>>> = frames.iter().map(|&n| Vec::with_capacity(n)).collect();
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
                model.scores(&images, n).map(|scores| (scores, n, started.elapsed().as_secs_f64()))
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
                Ok(run_scores) => {
                    let mut next = run_scores.into_iter();
                    for part in &run {
                        scores[part.item].extend(next.by_ref().take(part.frames.len()));
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
        for (((mut envelope, _), scores), failure) in ready.into_iter().zip(scores).zip(failed) {
            let outcome = match failure {
                Some(error) => Outcome::Fail(error),
                None => {
                    let result = self.model.result(scores);
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
                    envelope.results = Some(Arc::new(result));
                    Outcome::Forward
                }
            };
            done.push(Processed { envelope, outcome });
        }
        done
    }
}

#[cfg(test)]
mod tests;
