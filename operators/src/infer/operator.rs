//! The running `infer` operator: batches of envelopes in, model runs, results attached.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use radstream_schemas::{ErrorClass, Priority};

use super::assembly::{self, Assembler, SeriesConfig, SeriesRun};
use super::model::{ImageRun, LoadedModel, VolumeRun};
use super::runs::{plan_runs, stack_series};
use crate::contract::{
    Batching, Envelope, InferenceResult, Operator, OperatorError, OperatorMetric, Outcome, Processed, Recorder,
};
use crate::preprocess::Tensor;

/// The default `max_delay_ms`: no wait for a batch to fill.
pub(crate) fn default_max_delay_ms() -> f64 {
    0.0
}

/// Rule name of a re-delivered copy of a held instance.
pub const DUPLICATE_DROP_RULE: &str = "duplicate_instance";

/// Runs a model on the tensors of each batch and attaches the results.
pub struct Infer {
    pub(super) model: Arc<LoadedModel>,
    pub(super) max_batch: usize,
    pub(super) max_delay: Duration,
    pub(super) observer: Arc<dyn Recorder>,
    /// Models of whole series: the series being gathered.
    pub(super) assembler: Option<Assembler>,
    /// The held count last reported to the observer.
    pub(super) reported_held: usize,
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
            observer: Arc::new(crate::contract::NoopRecorder),
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

    /// Records each model run (images, model time) in `observer`, the runtime's metrics, and
    /// where the model computes ([`OperatorMetric::ComputeBackend`] with operator `infer`).
    pub fn with_observer(mut self, observer: Arc<dyn Recorder>) -> Self {
        let (device, reason, _) = self.model.backend.placement();
        observer.record(OperatorMetric::ComputeBackend, &["infer", device, reason], 1.0);
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
            let change = held as f64 - self.reported_held as f64;
            self.observer.record(OperatorMetric::SeriesHeld, &[self.model.identity.name.as_str()], change);
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
                    record_model_run(self.observer.as_ref(), &self.model.identity.name, images, seconds);
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
        self.observer.record(OperatorMetric::SeriesRuns, &[name.as_str(), reason], 1.0);
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
                record_model_run(self.observer.as_ref(), &name, slice_instance.len(), seconds);
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

/// One model run of `images` images that took the model `seconds`: both histograms, by model.
fn record_model_run(observer: &dyn Recorder, model: &str, images: usize, seconds: f64) {
    observer.record(OperatorMetric::ModelBatchImages, &[model], images as f64);
    observer.record(OperatorMetric::ModelRunDuration, &[model], seconds);
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
            let waited = now.saturating_duration_since(envelope.queued_at).as_secs_f64();
            self.observer.record(OperatorMetric::ModelQueueDelay, &[name], waited);
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
