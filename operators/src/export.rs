//! `export`: a sink that writes each instance's object to a bucket of the pipeline's object
//! store, under `{prefix}{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm`, optionally
//! announces the written object on a topic as an `InstanceEvent` (JSON, keyed by
//! StudyInstanceUID), then forwards the instance.
//!
//! The UIDs come from the envelope's header, so an object rewritten upstream (a pseudonymized
//! instance, a key object) is filed under its own UIDs. Writing the same instance again replaces
//! the object with the same bytes, so a replay is harmless.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dicom_dictionary_std::tags;
use radstream_schemas::{ErrorClass, InstanceEvent, ObjectLocation};
use serde::{Deserialize, Serialize};

use crate::contract::services::{ObjectWriter, ServiceError, TopicWriter};
use crate::dicom::uids::is_uid;
use crate::{element_text, BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// The `source` of announced events.
const SOURCE: &str = "export";

/// Configuration of the `export` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Bucket to write to, on the object store configured in `[objects]` (an S3 bucket name:
    /// 3-63 characters of a-z, 0-9, '.', '-').
    pub bucket: String,
    /// Prepended to every object key as is, for example `exports/`; must not start with '/'.
    #[serde(default)]
    pub prefix: String,
    /// Topic to announce each written object on, as a JSON `InstanceEvent` keyed by
    /// StudyInstanceUID; nothing is announced when absent. The topic must exist.
    #[serde(default)]
    pub announce_topic: Option<String>,
}

impl ExportConfig {
    /// Checks the configuration without touching the network or the store.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_bucket(&self.bucket)?;
        validate_prefix(&self.prefix)?;
        if let Some(topic) = &self.announce_topic {
            if topic.is_empty()
                || topic.len() > 249
                || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(ConfigError::new(
                    "announce_topic",
                    "a topic name is 1-249 characters of a-z, A-Z, 0-9, '.', '_', '-'",
                ));
            }
        }
        Ok(())
    }

    /// Builds the sink on the object store (and, with `announce_topic`, the topics) the runtime
    /// lends.
    pub fn build(&self, ctx: &BuildContext) -> Result<ExportSink, ConfigError> {
        self.validate()?;
        let objects = ctx.objects.clone().ok_or_else(|| {
            ConfigError::new("bucket", "the export operator needs an object store, and none is available here")
        })?;
        let announce = match &self.announce_topic {
            None => None,
            Some(topic) => {
                let topics = ctx.topics.clone().ok_or_else(|| {
                    ConfigError::new("announce_topic", "announcing needs a Kafka producer, and none is available here")
                })?;
                Some((topic.clone(), topics))
            }
        };
        Ok(ExportSink { bucket: self.bucket.clone(), prefix: self.prefix.clone(), objects, announce })
    }
}

/// S3's bucket naming rules, less the ones about IP-address-like names and reserved prefixes.
fn validate_bucket(bucket: &str) -> Result<(), ConfigError> {
    let problem = if !(3..=63).contains(&bucket.len()) {
        Some("must be 3-63 characters long")
    } else if !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
        Some("may hold only a-z, 0-9, '.' and '-'")
    } else if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("must start and end with a letter or digit")
    } else if bucket.contains("..") {
        Some("must not hold two dots in a row")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ConfigError::new("bucket", format!("{bucket:?} is not a valid bucket name: {problem}"))),
        None => Ok(()),
    }
}

/// A prefix is copied into every key: it must not make keys absolute or walk out of the bucket
/// on a filesystem store.
fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let problem = if prefix.starts_with('/') {
        Some("must not start with '/' (keys are relative to the bucket)")
    } else if prefix.contains("//") {
        Some("must not hold an empty path segment ('//')")
    } else if prefix.split('/').any(|segment| segment == "." || segment == "..") {
        Some("must not hold '.' or '..' path segments")
    } else if prefix.chars().any(|c| c.is_control() || c == '\\') {
        Some("must not hold control characters or '\\'")
    } else if prefix.len() > 512 {
        Some("must be at most 512 characters long")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ConfigError::new("prefix", problem)),
        None => Ok(()),
    }
}

/// The export sink.
pub struct ExportSink {
    bucket: String,
    prefix: String,
    objects: Arc<dyn ObjectWriter>,
    /// The announce topic and the producer to it.
    announce: Option<(String, Arc<dyn TopicWriter>)>,
}

impl std::fmt::Debug for ExportSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportSink")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("announce_topic", &self.announce.as_ref().map(|(topic, _)| topic))
            .finish_non_exhaustive()
    }
}

/// The UIDs an exported object is filed under.
struct InstanceUids {
    study: String,
    series: String,
    sop: String,
}

impl ExportSink {
    /// Writes one instance and announces it.
    async fn export(&self, envelope: &Envelope) -> Result<(), OperatorError> {
        let uids = instance_uids(envelope)?;
        let key = format!("{}{}/{}/{}.dcm", self.prefix, uids.study, uids.series, uids.sop);
        self.objects
            .put(&self.bucket, &key, vec![envelope.object().clone()])
            .await
            .map_err(|e| service_failure(ErrorClass::ObjectStore, envelope, "writing", e))?;
        if let Some((topic, topics)) = &self.announce {
            let event = self.announcement(envelope, uids, key);
            let key = event.study_instance_uid.clone();
            topics
                .send(topic, &key, radstream_schemas::wire::encode_json(&event))
                .await
                .map_err(|e| service_failure(ErrorClass::OutputTopic, envelope, "announcing", e))?;
        }
        Ok(())
    }

    /// The event that describes the written object, from its header.
    fn announcement(&self, envelope: &Envelope, uids: InstanceUids, key: String) -> InstanceEvent {
        let header = envelope.header();
        InstanceEvent {
            object: ObjectLocation {
                bucket: self.bucket.clone(),
                key,
                size: Some(envelope.object().len() as i64),
                etag: None,
            },
            study_instance_uid: uids.study,
            series_instance_uid: uids.series,
            sop_instance_uid: uids.sop,
            sop_class_uid: element_text(header, tags::SOP_CLASS_UID)
                .unwrap_or_else(|| envelope.event.sop_class_uid.clone()),
            modality: element_text(header, tags::MODALITY).unwrap_or_else(|| envelope.event.modality.clone()),
            body_part_examined: element_text(header, tags::BODY_PART_EXAMINED),
            instance_number: element_text(header, tags::INSTANCE_NUMBER).and_then(|s| s.parse().ok()),
            expected_series_instances: None,
            priority: envelope.event.priority,
            source: Some(SOURCE.into()),
            event_time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
        }
    }
}

/// Study, series and SOP instance UIDs from the header, checked to be UIDs: they become path
/// segments of the key.
fn instance_uids(envelope: &Envelope) -> Result<InstanceUids, OperatorError> {
    let uid = |tag, name: &str| {
        element_text(envelope.header(), tag).filter(|uid| is_uid(uid)).ok_or_else(|| {
            OperatorError::dead_letter(
                ErrorClass::MalformedDicom,
                format!(
                    "{}: the header has no valid {name}, so the export key cannot be formed; fix the sender or \
                     the operator that rewrote the object",
                    envelope.object_key()
                ),
            )
        })
    };
    Ok(InstanceUids {
        study: uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series: uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop: uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
    })
}

/// A side output failed: retry what may pass later, dead-letter the rest. The reason names the
/// instance by its source object key and the destination by topic or `bucket/key`.
fn service_failure(class: ErrorClass, envelope: &Envelope, doing: &str, error: ServiceError) -> OperatorError {
    let reason = format!("{doing} {} failed: {error}", envelope.object_key());
    if error.retryable {
        OperatorError::retry(class, reason, None)
    } else {
        OperatorError::dead_letter(class, reason)
    }
}

#[async_trait]
impl Operator for ExportSink {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let sink = &*self;
        futures::future::join_all(batch.into_iter().map(|envelope| async move {
            let outcome = match sink.export(&envelope).await {
                Ok(()) => Outcome::Forward,
                Err(error) => Outcome::Fail(error),
            };
            Processed { envelope, outcome }
        }))
        .await
    }

    fn is_sink(&self) -> bool {
        true
    }
}

impl crate::contract::OperatorSpec for ExportConfig {
    const KIND: &'static str = "export";
    const IS_SINK: bool = true;

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        ExportConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(ExportConfig::build(self, ctx)?))
    }

    fn example() -> &'static str {
        r#"
bucket = "exports"
prefix = "out/"
announce_topic = "exported"
"#
    }
}

#[cfg(test)]
mod tests;
