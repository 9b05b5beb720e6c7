//! The lake's rows: one per processed instance and one per verdict, with every UID
//! pseudonymized as the `pseudonymize` operator does, and the partition values of their files.

use radstream_operators::dicom::calendar::civil_from_days;
use radstream_operators::pseudonymize::{DeidKey, Deidentifier, KeyError, ProfileOptions};
use radstream_schemas::records::Feedback;
use radstream_schemas::{FindingRecord, OutcomeEvent, StageLatency};

use crate::config::LakeConfig;

/// The partition value of rows without a model result.
pub const NO_MODEL: &str = "none";

/// Pseudonymizes UIDs exactly as the `pseudonymize` operator does with the same key.
pub struct UidPseudonymizer(Deidentifier);

impl std::fmt::Debug for UidPseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UidPseudonymizer")
    }
}

impl UidPseudonymizer {
    /// A pseudonymizer with `key`.
    pub fn new(key: DeidKey) -> Self {
        Self(Deidentifier::new(key, ProfileOptions::default()))
    }

    /// From the lake section's `key_file` or `key_env`.
    pub fn from_config(lake: &LakeConfig) -> Result<Self, KeyError> {
        let key = match (&lake.key_file, &lake.key_env) {
            (Some(path), _) => DeidKey::from_file(path)?,
            (None, Some(var)) => DeidKey::from_env(var)?,
            (None, None) => {
                return Err(KeyError { source_name: "lake".into(), problem: "set key_file or key_env".into() })
            }
        };
        Ok(Self::new(key))
    }

    /// The pseudonym of `uid`.
    pub fn uid(&self, uid: &str) -> String {
        self.0.pseudonymize_uid(uid.trim_end_matches(['\0', ' ']).as_bytes())
    }
}

/// The UTC date (`YYYY-MM-DD`) of `time_ms` (ms since the epoch).
pub fn utc_date(time_ms: i64) -> String {
    let (year, month, day) = civil_from_days(time_ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// A Hive partition value: bytes other than `A-Z a-z 0-9 . _ -` percent-encoded, as Hive and
/// Spark escape them (DuckDB and Spark decode them back).
pub fn partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// One processed instance, as the lake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    /// When the outcome was reached (ms since the epoch).
    pub time_ms: i64,
    /// `delivered`, `dropped` or `dead_lettered`.
    pub outcome: &'static str,
    /// Dropping rule or error class, when not delivered.
    pub detail: Option<String>,
    /// Routing branch, when routed.
    pub branch: Option<String>,
    /// Pseudonymized StudyInstanceUID.
    pub study_uid_pseudo: Option<String>,
    /// Pseudonymized SOPInstanceUID.
    pub sop_uid_pseudo: Option<String>,
    /// The model's name; `None` when no model ran (partition `model=none`).
    pub model: Option<String>,
    /// The model's version.
    pub model_version: Option<String>,
    /// SHA-256 of the model file.
    pub model_sha256: Option<String>,
    /// The findings that reached their threshold.
    pub findings: Vec<FindingRecord>,
    /// Event time to outcome, in milliseconds.
    pub end_to_end_ms: f64,
    /// Kafka read to outcome, in milliseconds.
    pub pipeline_ms: f64,
    /// Time in each stage, in chain order.
    pub stages: Vec<StageLatency>,
    /// Pseudonymized SeriesInstanceUID, for a model of whole series.
    pub series_uid_pseudo: Option<String>,
    /// The series run's revision, for a model of whole series.
    pub series_revision: Option<u32>,
    /// Partition of the outcome topic the row was read from.
    pub outcome_partition: i32,
    /// Offset there: with the partition, the row's identity for de-duplication.
    pub outcome_offset: i64,
}

impl OutcomeRow {
    /// The row of `event`, read at `partition`/`offset` of the outcome topic, with every UID
    /// pseudonymized. The object key is left out: it may hold original UIDs.
    pub fn new(event: &OutcomeEvent, partition: i32, offset: i64, uids: &UidPseudonymizer) -> Self {
        let results = event.results.as_ref();
        let series = results.and_then(|r| r.series.as_ref());
        Self {
            time_ms: event.time_ms,
            outcome: event.outcome.as_str(),
            detail: event.detail.clone(),
            branch: event.branch.clone(),
            study_uid_pseudo: event.study_instance_uid.as_deref().map(|u| uids.uid(u)),
            sop_uid_pseudo: event.sop_instance_uid.as_deref().map(|u| uids.uid(u)),
            model: results.map(|r| r.model.clone()),
            model_version: results.map(|r| r.version.clone()),
            model_sha256: results.map(|r| r.sha256.clone()),
            findings: results.map(|r| r.findings.clone()).unwrap_or_default(),
            end_to_end_ms: event.end_to_end_ms,
            pipeline_ms: event.pipeline_ms,
            stages: event.stages.clone(),
            series_uid_pseudo: series.map(|s| uids.uid(&s.series_instance_uid)),
            series_revision: series.map(|s| s.revision),
            outcome_partition: partition,
            outcome_offset: offset,
        }
    }

    /// The `model` partition value (`none` without a model).
    pub fn model_partition(&self) -> &str {
        self.model.as_deref().unwrap_or(NO_MODEL)
    }

    /// About how much memory the row holds, for the buffer's bound.
    pub fn approx_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let findings: usize = self
            .findings
            .iter()
            .map(|f| std::mem::size_of::<FindingRecord>() + f.label.len() + f.code_system.len() + f.code.len())
            .sum();
        let stages: usize = self.stages.iter().map(|s| std::mem::size_of::<StageLatency>() + s.operator.len()).sum();
        std::mem::size_of::<Self>()
            + [
                &self.detail,
                &self.branch,
                &self.study_uid_pseudo,
                &self.sop_uid_pseudo,
                &self.model,
                &self.model_version,
                &self.model_sha256,
                &self.series_uid_pseudo,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>()
            + findings
            + stages
    }
}

/// One verdict, as the lake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    /// The verdict.
    pub feedback: Feedback,
    /// Partition of the feedback topic.
    pub feedback_partition: i32,
    /// Offset there.
    pub feedback_offset: i64,
}

impl FeedbackRow {
    /// About how much memory the row holds, for the buffer's bound.
    pub fn approx_bytes(&self) -> usize {
        let f = &self.feedback;
        std::mem::size_of::<Self>() + f.sop_uid_pseudo.len() + f.model.len() + f.version.len() + f.finding_code.len()
    }
}

#[cfg(test)]
mod tests;
