//! Records the pipeline writes: dead letters and per-instance outcomes. JSON on the wire.
//! Neither carries patient data: instances are named by object key and UIDs only.

use serde::{Deserialize, Serialize};

/// Why an instance could not be processed. The values are a bounded set, safe as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The Kafka message could not be decoded as an event in the topic's format.
    MalformedEvent,
    /// The object is not a readable DICOM Part-10 file.
    MalformedDicom,
    /// The object the event names does not exist.
    MissingObject,
    /// The object is larger than the configured limit.
    ObjectTooLarge,
    /// The object store failed (after retries).
    ObjectStore,
    /// The event and the object disagree (for example on SOPInstanceUID).
    EventMismatch,
    /// The PACS refused the instance (a 4xx or a failed-SOP entry); retrying will not help.
    PacsRejected,
    /// The PACS stayed unreachable or kept failing until the retry deadline.
    PacsUnavailable,
    /// The FHIR server refused the bundle (a 4xx other than 408 and 429, or a
    /// transaction-response entry with a status other than 2xx); retrying will not help.
    FhirRejected,
    /// The FHIR server stayed unreachable or kept failing (5xx, 408, 429, timeouts) until the
    /// retry deadline.
    FhirUnavailable,
    /// Producing a record to a side-output topic (for example an announcement) failed.
    OutputTopic,
    /// Pixel data is or may be burned in with text (BurnedInAnnotation YES, or absent on a
    /// modality that commonly burns text) and the policy sends such instances here.
    BurnedInText,
    /// A result names a pseudonymized study or UID for which the trusted side holds no
    /// re-identification link.
    UnknownLink,
    /// Pixel data could not be decoded (an unsupported transfer syntax, a damaged stream) or is
    /// in a form the model's preprocessing does not take (an unsupported photometric
    /// interpretation); the reason names which.
    UndecodablePixels,
    /// An instance of a series arrived after its series was run by a model of whole series,
    /// too late for its slices to be kept: re-send the whole series to run it again.
    LateInstance,
    /// A configuration problem surfaced while processing.
    Config,
    /// A bug in radstream.
    Internal,
}

impl ErrorClass {
    /// The snake_case name, used as a metric label and in dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::MalformedEvent => "malformed_event",
            ErrorClass::MalformedDicom => "malformed_dicom",
            ErrorClass::MissingObject => "missing_object",
            ErrorClass::ObjectTooLarge => "object_too_large",
            ErrorClass::ObjectStore => "object_store",
            ErrorClass::EventMismatch => "event_mismatch",
            ErrorClass::PacsRejected => "pacs_rejected",
            ErrorClass::PacsUnavailable => "pacs_unavailable",
            ErrorClass::FhirRejected => "fhir_rejected",
            ErrorClass::FhirUnavailable => "fhir_unavailable",
            ErrorClass::OutputTopic => "output_topic",
            ErrorClass::BurnedInText => "burned_in_text",
            ErrorClass::UnknownLink => "unknown_link",
            ErrorClass::UndecodablePixels => "undecodable_pixels",
            ErrorClass::LateInstance => "late_instance",
            ErrorClass::Config => "config",
            ErrorClass::Internal => "internal",
        }
    }
}

/// A dead letter: the original event and what a human needs to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic the original event was read from.
    pub source_topic: String,
    /// Partition of the original event.
    pub source_partition: i32,
    /// Offset of the original event.
    pub source_offset: i64,
    /// The original message value, base64-encoded, so it can be replayed byte for byte.
    pub original_value_base64: String,
    /// The original message key (the StudyInstanceUID), if any.
    #[serde(default)]
    pub original_key: Option<String>,
    /// Error class.
    pub error_class: ErrorClass,
    /// What went wrong and what to do about it. Never contains patient data.
    pub reason: String,
    /// Operator (or runtime stage: `decode`, `fetch`, `parse`) that failed.
    pub operator: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// Object key (`bucket/key`), when known.
    #[serde(default)]
    pub object_key: Option<String>,
    /// SOPInstanceUID, when known.
    #[serde(default)]
    pub sop_instance_uid: Option<String>,
    /// When the dead letter was written (ms since the epoch).
    pub time_ms: i64,
}

/// The end state of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The destination (the PACS) acknowledged it.
    Delivered,
    /// An operator dropped it on purpose (for example no routing rule wanted it).
    Dropped,
    /// It went to the dead-letter topic.
    DeadLettered,
}

impl OutcomeKind {
    /// The snake_case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Dropped => "dropped",
            OutcomeKind::DeadLettered => "dead_lettered",
        }
    }
}

/// One outcome event per instance, on the outcome topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEvent {
    /// What happened.
    pub outcome: OutcomeKind,
    /// Topic/partition/offset of the source event.
    pub source_topic: String,
    /// Partition of the source event.
    pub source_partition: i32,
    /// Offset of the source event.
    pub source_offset: i64,
    /// Object key (`bucket/key`).
    pub object_key: Option<String>,
    /// StudyInstanceUID, when known.
    pub study_instance_uid: Option<String>,
    /// SOPInstanceUID, when known.
    pub sop_instance_uid: Option<String>,
    /// Routing branch, when routed.
    pub branch: Option<String>,
    /// Dropping rule or error class, when not delivered.
    pub detail: Option<String>,
    /// Event time to outcome, in milliseconds.
    pub end_to_end_ms: f64,
    /// Time spent inside the pipeline (from the Kafka read), in milliseconds.
    pub pipeline_ms: f64,
    /// When the outcome was reached (ms since the epoch).
    pub time_ms: i64,
    /// What a model said of the instance, when an `infer` operator ran on it (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<ModelResults>,
    /// Time the instance spent in each stage it reached (its queue and the operator's work), in
    /// chain order: the per-stage latencies of the analytics lake.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageLatency>,
}

/// Time an instance spent in one stage of the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    /// The operator kind (`route`, `preprocess`, `infer`, `stow`, ...).
    pub operator: String,
    /// Milliseconds from being queued for the stage to leaving it.
    pub ms: f64,
}

/// A model's findings on one instance, with the model's identity: what travels with every
/// result. Labels, codes and scores only; nothing about the patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResults {
    /// The model's name (its manifest's).
    pub model: String,
    /// The model's version.
    pub version: String,
    /// SHA-256 of the model file that ran.
    pub sha256: String,
    /// The findings whose score reached their threshold; empty when none did.
    pub findings: Vec<FindingRecord>,
    /// For a model of whole series: which run of which series this is. A later revision of the
    /// same series supersedes every earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesRecord>,
}

/// A critical finding, on the alert topic, for a worklist to move the study up: the model said
/// something a radiologist must see at once. UIDs and codes only; nothing about the patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalAlert {
    /// StudyInstanceUID (as the event names it; also the record's key).
    pub study_instance_uid: String,
    /// SeriesInstanceUID.
    pub series_instance_uid: String,
    /// SOPInstanceUID of the instance (for a series model, the instance that completed or
    /// re-ran the series).
    pub sop_instance_uid: String,
    /// The object, as `bucket/key`.
    pub object_key: String,
    /// The study's priority for the worklist: always `STAT`.
    pub priority: String,
    /// The priority the instance's event had.
    pub event_priority: String,
    /// The model, with only its critical findings.
    pub results: ModelResults,
    /// When the instance landed (the event's time), ms since the epoch.
    pub event_time_ms: i64,
    /// When the alert was sent, ms since the epoch.
    pub time_ms: i64,
}

/// The series run a [`ModelResults`] of a model of whole series comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    /// The series' SeriesInstanceUID.
    pub series_instance_uid: String,
    /// 1 for the first run of the series; each re-run (a late instance) adds one and
    /// supersedes the earlier results.
    pub revision: u32,
    /// Why the series was run: `expected_count`, `quiet_time` or `capacity` on the stream;
    /// `all_files` from `radstream infer`.
    pub reason: String,
    /// Instances in the run (every one of the series so far, earlier runs' included).
    pub instances: usize,
    /// The expected count, when the event or the header said it.
    pub expected: Option<usize>,
    /// Slices (frames) in the volume.
    pub slices: usize,
    /// The instances with a slice whose per-slice score reached the first finding's threshold
    /// (models with a per-slice output only), in slice order, by the SOPInstanceUID their
    /// events name.
    pub flagged_instances: Vec<String>,
}

/// One finding of [`ModelResults`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// The manifest's label, e.g. `intracranial hemorrhage`.
    pub label: String,
    /// Coding Scheme Designator (`SCT`, `RADLEX`).
    pub code_system: String,
    /// The code value.
    pub code: String,
    /// The frame of the instance it was found on.
    pub frame: usize,
    /// The model's score.
    pub score: f32,
    /// Whether it needs a critical result notification.
    pub critical: bool,
}

/// A radiologist's verdict on one finding of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The finding is right.
    Accept,
    /// The finding is wrong.
    Reject,
    /// The finding is right in part and was corrected.
    Modify,
}

impl Verdict {
    /// The snake_case name, used as a metric label and in the lake.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Modify => "modify",
        }
    }
}

/// One verdict on the feedback topic, for the analytics lake (`radstream lake`). It names the
/// instance by its pseudonymized SOPInstanceUID (as the PACS holds it), so it carries nothing
/// about the patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Pseudonymized SOPInstanceUID of the instance the finding is on.
    pub sop_uid_pseudo: String,
    /// The model's name.
    pub model: String,
    /// The model's version.
    pub version: String,
    /// The code value of the finding judged.
    pub finding_code: String,
    /// What the radiologist said.
    pub verdict: Verdict,
    /// When it was said (ms since the epoch).
    pub time_ms: i64,
}

/// What the `pseudonymize` operator did with one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// De-identified and passed on.
    Pseudonymized,
    /// Held back for review (burned-in text) in the quarantine location.
    Quarantined,
    /// Sent to the dead-letter topic (burned-in text under that policy, or unreadable).
    Rejected,
}

/// One audit event per instance that reached the `pseudonymize` operator, on the audit topic.
/// Carries no patient data: the input is named by its object key, the output by pseudonymized
/// UIDs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Record format version.
    pub v: u32,
    /// When the decision was made (ms since the epoch).
    pub time_ms: i64,
    /// The operator (`pseudonymize`).
    pub operator: String,
    /// radstream's version.
    pub operator_version: String,
    /// The profile and the standard's edition it was generated from.
    pub profile: String,
    /// The profile options in use (their `radstream deid --option` names).
    pub options: Vec<String>,
    /// The id of the pseudonymization key.
    pub key_id: String,
    /// What happened.
    pub outcome: AuditOutcome,
    /// Why it was not pseudonymized, when it was not.
    #[serde(default)]
    pub error_class: Option<ErrorClass>,
    /// The input object (`bucket/key`).
    pub object_key: String,
    /// Pseudonymized StudyInstanceUID, when produced.
    #[serde(default)]
    pub pseudonymized_study_instance_uid: Option<String>,
    /// Pseudonymized SOPInstanceUID, when produced.
    #[serde(default)]
    pub pseudonymized_sop_instance_uid: Option<String>,
}

#[cfg(test)]
mod tests;
