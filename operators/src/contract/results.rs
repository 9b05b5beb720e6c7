//! What envelopes carry between operators: what a model said about an instance
//! ([`InferenceResult`], set by `infer`) and the result objects made of it ([`ResultSet`], set
//! by `results`, delivered by a sink). Here rather than in either operator so that writers and
//! readers of an envelope share the types without importing each other.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A coded concept: coding scheme, code value, code meaning.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The coding scheme.
    pub system: CodeSystem,
    /// The code value, e.g. `1386000` (SNOMED CT) or `RID4700` (RadLex).
    pub value: String,
    /// The code meaning.
    pub meaning: String,
}

/// Coding schemes, by their DICOM Coding Scheme Designator (PS3.16 Section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum CodeSystem {
    /// SNOMED CT (`SCT`).
    #[serde(rename = "SCT")]
    SnomedCt,
    /// RadLex (`RADLEX`).
    #[serde(rename = "RADLEX")]
    RadLex,
}

impl CodeSystem {
    /// The Coding Scheme Designator.
    pub fn designator(self) -> &'static str {
        match self {
            Self::SnomedCt => "SCT",
            Self::RadLex => "RADLEX",
        }
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

/// What a result object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// A TID 1500 structured report.
    Sr,
    /// A segmentation.
    Seg,
    /// A secondary capture with the result burned in.
    Overlay,
}

impl ResultKind {
    /// `sr`, `seg` or `overlay`: bounded, safe as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sr => "sr",
            Self::Seg => "seg",
            Self::Overlay => "overlay",
        }
    }
}

/// One result object, ready to store.
#[derive(Debug, Clone)]
pub struct ResultObject {
    /// What it is.
    pub kind: ResultKind,
    /// Its SOPInstanceUID.
    pub sop_instance_uid: String,
    /// Its SeriesInstanceUID.
    pub series_instance_uid: String,
    /// The Part-10 bytes.
    pub bytes: Bytes,
}

/// The result objects of one instance, or of the series it belongs to.
#[derive(Debug, Clone)]
pub struct ResultSet {
    /// The objects, report first.
    pub objects: Vec<ResultObject>,
    /// SeriesInstanceUID and revision for a result of a whole series, so that sinks deliver
    /// the series' objects once for all its instances.
    pub series: Option<(String, u32)>,
}

impl ResultSet {
    /// The structured report's SOPInstanceUID, when there is one.
    pub fn sr_sop_instance_uid(&self) -> Option<&str> {
        self.objects.iter().find(|o| o.kind == ResultKind::Sr).map(|o| o.sop_instance_uid.as_str())
    }
}
