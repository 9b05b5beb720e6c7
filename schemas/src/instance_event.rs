//! The `InstanceEvent` v1 record.

use serde::{Deserialize, Serialize};

/// The Avro schema of [`InstanceEvent`] version 1, as committed in `avro/instance_event.v1.avsc`.
pub const INSTANCE_EVENT_V1_AVSC: &str = include_str!("../avro/instance_event.v1.avsc");

/// Where the DICOM Part-10 object of an instance lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLocation {
    /// Bucket (S3) or top-level folder (local filesystem store).
    pub bucket: String,
    /// Object key inside the bucket, not URL-encoded.
    pub key: String,
    /// Size in bytes, when the producer knows it.
    #[serde(default)]
    pub size: Option<i64>,
    /// ETag of the object version the event describes, when known.
    #[serde(default)]
    pub etag: Option<String>,
}

impl ObjectLocation {
    /// `bucket/key`, or the bucket and a keyed hash of the key where the process hashes object
    /// keys ([`crate::object_names`]): the identifier used in logs, errors and dead-letter
    /// reasons (never a patient attribute).
    pub fn display_key(&self) -> String {
        crate::object_names::object_name(&self.bucket, &self.key)
    }
}

/// Reading priority of the study the instance belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// Normal worklist order.
    #[default]
    Routine,
    /// Urgent: processed ahead of routine work.
    Stat,
}

impl Priority {
    /// Label value for metrics (`routine` / `stat`).
    pub fn as_label(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Stat => "stat",
        }
    }
}

/// One DICOM instance that landed in object storage. Kafka producers key it by
/// `study_instance_uid`, so every instance of a study lands on one partition, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEvent {
    /// Where the Part-10 object is.
    pub object: ObjectLocation,
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
    /// SOPClassUID (0008,0016).
    pub sop_class_uid: String,
    /// Modality (0008,0060).
    pub modality: String,
    /// BodyPartExamined (0018,0015), when present.
    #[serde(default)]
    pub body_part_examined: Option<String>,
    /// InstanceNumber (0020,0013), when present.
    #[serde(default)]
    pub instance_number: Option<i32>,
    /// Number of instances the series will have, when the sender knows it.
    #[serde(default)]
    pub expected_series_instances: Option<i32>,
    /// Reading priority.
    #[serde(default)]
    pub priority: Priority,
    /// Sending AE title or other source name.
    #[serde(default)]
    pub source: Option<String>,
    /// When the instance landed, in milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
}
