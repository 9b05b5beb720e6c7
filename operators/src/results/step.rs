//! `results`: the step of the chain that turns what a model said into DICOM objects for the
//! PACS: a TID 1500 structured report, a segmentation of the mask, and an overlay (a secondary
//! capture with the result burned in) per frame with a finding. A sink after it (`stow`)
//! delivers these objects instead of the instance, and acknowledges the instance only once the
//! PACS has accepted every one of them.
//!
//! * A result of one instance gets objects of its own. A result of a whole series gets one
//!   report for the series, built once and carried by every instance of the run, so that no
//!   instance of the series is committed before the report is in the PACS.
//! * Every object's UIDs derive from the source's UIDs and the model's identity, and its
//!   content time from the event (a series: its SeriesDate and SeriesTime), so a replayed event
//!   gives the same bytes under the same UIDs: the PACS keeps one copy.
//! * A result without findings gets a report that says "Negative" (`negatives = "report"`, the
//!   default), or is dropped on purpose and counted under the rule `no_findings`
//!   (`negatives = "drop"`, for models of single slices whose negative reports would bury the
//!   study).
//! * An instance that reaches the step without a model result is dead-lettered as `config`: an
//!   `infer` operator for its model is missing from the chain.
//!
//! Errors name objects by key and UIDs; the objects carry patient data, the messages never.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use radstream_schemas::ErrorClass;
use serde::{Deserialize, Serialize};

use super::overlay::{build_overlay, OverlayError, OverlayFinding, OverlaySource};
use super::seg::{build_seg, MaskShape, SegError, SegSource, SegmentConcept};
use super::sr::{build_sr, InstanceRef};
use crate::contract::envelope::content_time_ms;
use crate::contract::{InferenceResult, OperatorMetric, ResultKind, ResultObject, ResultSet};
use crate::{ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// The drop rule of a result without findings under `negatives = "drop"`.
pub const NO_FINDINGS_RULE: &str = "no_findings";

/// Series results kept built, for the other instances of their run.
const SERIES_CACHE: usize = 64;

/// Configuration of the `results` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsConfig {
    /// Make the TID 1500 structured report.
    #[serde(default = "yes")]
    pub sr: bool,
    /// Make a segmentation of the model's mask, where it has one and found something.
    #[serde(default = "yes")]
    pub seg: bool,
    /// Make an overlay per frame with a finding, for viewers that render neither SR nor SEG.
    #[serde(default = "yes")]
    pub overlay: bool,
    /// What a result without findings becomes: `report` (an SR that says Negative) or `drop`.
    #[serde(default)]
    pub negatives: Negatives,
}

fn yes() -> bool {
    true
}

/// What a result without findings becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Negatives {
    /// A structured report that says "Negative" (when `sr` is on).
    #[default]
    Report,
    /// Nothing: the instance is dropped on purpose, counted under `no_findings`.
    Drop,
}

impl Default for ResultsConfig {
    fn default() -> Self {
        Self { sr: true, seg: true, overlay: true, negatives: Negatives::Report }
    }
}

impl ResultsConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.sr || self.seg || self.overlay) {
            return Err(ConfigError::new("sr", "sr, seg and overlay are all off: the step would make nothing"));
        }
        Ok(())
    }

    /// Builds the step.
    pub fn build(&self) -> Result<ResultsStep, ConfigError> {
        self.validate()?;
        Ok(ResultsStep {
            config: self.clone(),
            series: VecDeque::new(),
            observer: Arc::new(crate::contract::NoopRecorder),
        })
    }
}

/// The running step.
pub struct ResultsStep {
    config: ResultsConfig,
    /// Built series reports, newest last: `(series UID, revision, model SHA-256)`.
    series: VecDeque<(SeriesKey, Arc<Vec<ResultObject>>)>,
    observer: Arc<dyn crate::contract::Recorder>,
}

impl ResultsStep {
    /// Records the objects it builds in `observer` ([`OperatorMetric::ResultObjects`]).
    pub fn with_observer(mut self, observer: Arc<dyn crate::contract::Recorder>) -> Self {
        self.observer = observer;
        self
    }
}

impl std::fmt::Debug for ResultsStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsStep").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A series run of a model: SeriesInstanceUID, revision, the model file's SHA-256.
type SeriesKey = (String, u32, String);

/// A failed build: the class and a reason that names UIDs only.
type BuildError = (ErrorClass, String);

impl ResultsStep {
    /// The result objects of one envelope; `None` for a negative result to drop. Building runs
    /// on a blocking thread (decoding, resampling and encoding take milliseconds). A series'
    /// report is built once and kept for the other instances of its run; each flagged instance
    /// of a series adds its own segmentation and overlay, from the mask of its slice.
    async fn objects_of(&mut self, envelope: Envelope) -> (Envelope, Result<Option<Arc<ResultSet>>, BuildError>) {
        let result = envelope.results.clone().expect("checked by the caller");
        if result.findings.is_empty() && self.config.negatives == Negatives::Drop {
            return (envelope, Ok(None));
        }
        let key = result
            .series
            .as_ref()
            .map(|series| (series.series_instance_uid.clone(), series.revision, result.model.sha256.clone()));
        let cached = key.as_ref().and_then(|k| self.series.iter().find(|(c, _)| c == k).map(|(_, o)| Arc::clone(o)));
        let cached_hit = cached.is_some();
        let series = result.series.as_ref().map(|s| (s.series_instance_uid.clone(), s.revision));
        let config = self.config.clone();
        let task = tokio::task::spawn_blocking(move || {
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let shared = match (&result.series, cached) {
                    (Some(_), Some(report)) => Some(report),
                    (Some(_), None) => Some(Arc::new(build_series_report(&config, &envelope, &result)?)),
                    (None, _) => None,
                };
                let own = match &result.series {
                    None => build_own(&config, &envelope, &result, true)?,
                    Some(series) if series.flagged_instances.contains(&envelope.event.sop_instance_uid) => {
                        build_own(&config, &envelope, &result, false)?
                    }
                    Some(_) => Vec::new(),
                };
                Ok((shared, own))
            }))
            .unwrap_or_else(|_| {
                Err((ErrorClass::Internal, format!("{}: building the result objects panicked", envelope.object_key())))
            });
            (envelope, built)
        });
        let (envelope, built) = task.await.expect("a blocking task that catches its panics runs to its end");
        let (shared, own) = match built {
            Ok(built) => built,
            Err(e) => return (envelope, Err(e)),
        };
        if let (Some(key), Some(report)) = (key, &shared) {
            if !self.series.iter().any(|(k, _)| *k == key) {
                if self.series.len() == SERIES_CACHE {
                    self.series.pop_front();
                }
                self.series.push_back((key, Arc::clone(report)));
            }
        }
        let fresh_report = if cached_hit { 0 } else { shared.as_ref().map_or(0, |r| r.len()) };
        for object in own.iter().chain(shared.iter().flat_map(|r| r.iter()).take(fresh_report)) {
            self.observer.record(OperatorMetric::ResultObjects, &[object.kind.as_str()], 1.0);
        }
        let objects = shared.iter().flat_map(|report| report.iter().cloned()).chain(own).collect();
        (envelope, Ok(Some(Arc::new(ResultSet { objects, series }))))
    }
}

/// The report of a series result, shared by every instance of the run.
fn build_series_report(
    config: &ResultsConfig,
    envelope: &Envelope,
    result: &InferenceResult,
) -> Result<Vec<ResultObject>, BuildError> {
    let record = result.series.as_ref().expect("a series result");
    let mut objects = Vec::new();
    if config.sr {
        let class = envelope.event.sop_class_uid.clone();
        let flagged: Vec<InstanceRef> = record
            .flagged_instances
            .iter()
            .map(|sop| InstanceRef { sop_class_uid: class.clone(), sop_instance_uid: sop.clone() })
            .collect();
        let time = content_time_ms(envelope, result);
        let sr = build_sr(envelope.header(), result, &flagged, time).map_err(|e| sr_failed(envelope, e))?;
        objects.push(ResultObject {
            kind: ResultKind::Sr,
            bytes: Bytes::from(sr.to_bytes().map_err(|e| sr_failed(envelope, e))?),
            sop_instance_uid: sr.sop_instance_uid,
            series_instance_uid: sr.series_instance_uid,
        });
    }
    Ok(objects)
}

/// The objects of one instance: its report (`with_sr`, for a result of the instance alone),
/// the segmentation of its mask and an overlay per frame with a finding. For an instance of a
/// series result, its findings are the series' and its mask its own slice's.
fn build_own(
    config: &ResultsConfig,
    envelope: &Envelope,
    result: &InferenceResult,
    with_sr: bool,
) -> Result<Vec<ResultObject>, BuildError> {
    let time = content_time_ms(envelope, result);
    let mut objects = Vec::new();
    if config.sr && with_sr {
        let sr = build_sr(envelope.header(), result, &[], time).map_err(|e| sr_failed(envelope, e))?;
        objects.push(ResultObject {
            kind: ResultKind::Sr,
            bytes: Bytes::from(sr.to_bytes().map_err(|e| sr_failed(envelope, e))?),
            sop_instance_uid: sr.sop_instance_uid,
            series_instance_uid: sr.series_instance_uid,
        });
    }
    let mut frames: Vec<usize> = result.findings.iter().map(|f| f.frame).collect();
    frames.dedup();
    let masks = match (&result.masks, result.mask_size) {
        (Some(masks), Some([rows, columns])) => Some((masks, MaskShape { rows, columns })),
        _ => None,
    };
    if let (true, Some((masks, shape)), Some(first)) = (config.seg, masks, result.findings.first()) {
        let sources: Vec<SegSource<'_>> = frames
            .iter()
            .filter_map(|&frame| masks.get(frame).map(|mask| SegSource { header: envelope.header(), frame, mask }))
            .collect();
        match build_seg(&sources, shape, first.threshold, SegmentConcept::from(first), &result.model, time) {
            Ok(seg) => objects.push(ResultObject {
                kind: ResultKind::Seg,
                bytes: Bytes::from(seg.to_bytes().map_err(|e| seg_failed(envelope, e))?),
                sop_instance_uid: seg.sop_instance_uid,
                series_instance_uid: seg.series_instance_uid,
            }),
            // A score over its threshold with no pixel over it: the report says what was found,
            // there is nothing to outline.
            Err(SegError::Empty { .. }) => tracing::debug!(
                object = %envelope.object_key(),
                sop_instance_uid = %envelope.event.sop_instance_uid,
                "results: the mask is empty at the threshold; no segmentation"
            ),
            Err(e) => return Err(seg_failed(envelope, e)),
        }
    }
    if config.overlay {
        for &frame in &frames {
            let findings: Vec<OverlayFinding<'_>> = result
                .findings
                .iter()
                .filter(|f| f.frame == frame)
                .map(|f| OverlayFinding { label: &f.label, score: f.score, threshold: f.threshold })
                .collect();
            let mask = masks.and_then(|(masks, shape)| masks.get(frame).map(|m| (&m[..], shape)));
            let source = OverlaySource { header: envelope.header(), object: envelope.object(), frame };
            let overlay = build_overlay(&source, mask, &findings, &result.model, time).map_err(|e| {
                // A codec stream that contradicts the attributes is a malformed object, not one
                // this decoder cannot read.
                let class = match &e {
                    OverlayError::Decode { reason, .. } if reason.is_malformed() => ErrorClass::MalformedDicom,
                    _ => ErrorClass::UndecodablePixels,
                };
                (class, format!("{}: the overlay cannot be made: {e}", envelope.object_key()))
            })?;
            let bytes = overlay.to_bytes().map_err(|e| {
                (ErrorClass::Internal, format!("{}: encoding the overlay failed: {e}", envelope.object_key()))
            })?;
            objects.push(ResultObject {
                kind: ResultKind::Overlay,
                bytes: Bytes::from(bytes),
                sop_instance_uid: overlay.sop_instance_uid,
                series_instance_uid: overlay.series_instance_uid,
            });
        }
    }
    Ok(objects)
}

fn sr_failed(envelope: &Envelope, e: super::sr::SrError) -> BuildError {
    let class = match e {
        super::sr::SrError::MissingAttribute(_) => ErrorClass::MalformedDicom,
        _ => ErrorClass::Internal,
    };
    (class, format!("{}: the structured report cannot be made: {e}", envelope.object_key()))
}

fn seg_failed(envelope: &Envelope, e: SegError) -> BuildError {
    (ErrorClass::MalformedDicom, format!("{}: the segmentation cannot be made: {e}", envelope.object_key()))
}

#[async_trait]
impl Operator for ResultsStep {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let mut done = Vec::with_capacity(batch.len());
        for envelope in batch {
            if envelope.results.is_none() {
                let reason = format!(
                    "{}: no model result reached the results step; the chain needs an infer operator for the \
                     instance's model before it",
                    envelope.object_key()
                );
                done.push(Processed {
                    envelope,
                    outcome: Outcome::Fail(OperatorError::dead_letter(ErrorClass::Config, reason)),
                });
                continue;
            }
            let (mut envelope, built) = self.objects_of(envelope).await;
            let outcome = match built {
                Ok(Some(set)) => {
                    tracing::debug!(
                        object = %envelope.object_key(),
                        sop_instance_uid = %envelope.event.sop_instance_uid,
                        objects = set.objects.len(),
                        "results: objects built"
                    );
                    envelope.outputs = Some(set);
                    Outcome::Forward
                }
                Ok(None) => Outcome::Drop { rule: NO_FINDINGS_RULE.into() },
                Err((class, reason)) => Outcome::Fail(OperatorError::dead_letter(class, reason)),
            };
            done.push(Processed { envelope, outcome });
        }
        done
    }
}

impl crate::contract::OperatorSpec for ResultsConfig {
    const KIND: &'static str = "results";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        ResultsConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(ResultsConfig::build(self)?.with_observer(Arc::clone(&ctx.observer))))
    }

    fn example() -> &'static str {
        r#"
negatives = "drop"
"#
    }
}

#[cfg(test)]
mod tests;
