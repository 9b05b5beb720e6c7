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
use serde::Deserialize;

use crate::services::{ObjectWriter, ServiceError, TopicWriter};
use crate::{element_text, BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// The `source` of announced events.
const SOURCE: &str = "export";

/// Configuration of the `export` operator.
#[derive(Debug, Clone, Deserialize)]
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
            .put(&self.bucket, &key, vec![envelope.object.clone()])
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
        let header = &envelope.header;
        InstanceEvent {
            object: ObjectLocation {
                bucket: self.bucket.clone(),
                key,
                size: Some(envelope.object.len() as i64),
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
        element_text(&envelope.header, tag).filter(|uid| is_uid(uid)).ok_or_else(|| {
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

/// PS3.5 9.1: at most 64 characters, digits in dot-separated components.
fn is_uid(text: &str) -> bool {
    text.len() <= 64 && text.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use bytes::Bytes;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use radstream_schemas::Priority;

    use super::*;
    use crate::RetryHint;

    const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";
    const SERIES: &str = "1.2.826.0.1.3680043.8.498.2";
    const PATIENT_NAME: &str = "Doe^Jane";

    /// An object store in memory; fails every write with `failure` when set.
    #[derive(Default)]
    struct MemoryStore {
        objects: Mutex<HashMap<String, Vec<u8>>>,
        failure: Mutex<Option<ServiceError>>,
    }

    #[async_trait]
    impl ObjectWriter for MemoryStore {
        async fn put(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<(), ServiceError> {
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                return Err(failure);
            }
            self.objects.lock().unwrap().insert(format!("{bucket}/{key}"), parts.concat());
            Ok(())
        }
    }

    /// Topics in memory: `(topic, key, value)` in the order sent.
    #[derive(Default)]
    struct MemoryTopics {
        records: Mutex<Vec<(String, String, Vec<u8>)>>,
        failure: Mutex<Option<ServiceError>>,
    }

    #[async_trait]
    impl TopicWriter for MemoryTopics {
        async fn send(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), ServiceError> {
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                return Err(failure);
            }
            self.records.lock().unwrap().push((topic.into(), key.into(), value));
            Ok(())
        }
    }

    fn envelope(n: u32) -> Envelope {
        let sop = format!("1.2.826.0.1.3680043.8.498.10.{n}");
        let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let dataset = InMemDicomObject::from_element_iter([
            element(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
            element(tags::SOP_INSTANCE_UID, VR::UI, &sop),
            element(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
            element(tags::SERIES_INSTANCE_UID, VR::UI, SERIES),
            element(tags::MODALITY, VR::CS, "CT"),
            element(tags::BODY_PART_EXAMINED, VR::CS, "HEAD"),
            element(tags::INSTANCE_NUMBER, VR::IS, &n.to_string()),
            element(tags::PATIENT_NAME, VR::PN, PATIENT_NAME),
        ]);
        let header =
            dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
        let mut object = Vec::new();
        header.write_all(&mut object).unwrap();
        let location = ObjectLocation { bucket: "incoming".into(), key: format!("in/{n}.dcm"), size: None, etag: None };
        let mut envelope = Envelope::from_part10(n as u64, location, Bytes::from(object)).unwrap();
        envelope.event.priority = Priority::Stat;
        envelope.event.source = Some("CT_SCANNER_1".into());
        envelope
    }

    fn config(json: serde_json::Value) -> ExportConfig {
        serde_json::from_value(json).unwrap()
    }

    struct Fixture {
        sink: ExportSink,
        store: Arc<MemoryStore>,
        topics: Arc<MemoryTopics>,
    }

    fn fixture(json: serde_json::Value) -> Fixture {
        let store = Arc::new(MemoryStore::default());
        let topics = Arc::new(MemoryTopics::default());
        let ctx = BuildContext {
            objects: Some(store.clone() as Arc<dyn ObjectWriter>),
            topics: Some(topics.clone() as Arc<dyn TopicWriter>),
            ..Default::default()
        };
        Fixture { sink: config(json).build(&ctx).unwrap(), store, topics }
    }

    fn failure(processed: &Processed) -> &OperatorError {
        match &processed.outcome {
            Outcome::Fail(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn export_writes_by_uids_announces_and_forwards() {
        let mut f = fixture(serde_json::json!({
            "bucket": "exports", "prefix": "ai/", "announce_topic": "radstream.exported"
        }));
        let batch: Vec<Envelope> = (1..=3).map(envelope).collect();
        let sizes: Vec<usize> = batch.iter().map(|e| e.object.len()).collect();
        let processed = f.sink.process_batch(batch).await;
        assert_eq!(processed.len(), 3);
        assert!(processed.iter().all(|p| matches!(p.outcome, Outcome::Forward)));

        let objects = f.store.objects.lock().unwrap();
        let key = format!("ai/{STUDY}/{SERIES}/1.2.826.0.1.3680043.8.498.10.2.dcm");
        assert_eq!(objects[&format!("exports/{key}")].len(), sizes[1]);
        assert_eq!(objects.len(), 3);

        let records = f.topics.records.lock().unwrap();
        assert_eq!(records.len(), 3);
        let (topic, record_key, value) =
            records.iter().find(|(_, _, v)| String::from_utf8_lossy(v).contains(&key)).unwrap();
        assert_eq!((topic.as_str(), record_key.as_str()), ("radstream.exported", STUDY));
        let event: InstanceEvent = serde_json::from_slice(value).unwrap();
        assert_eq!(
            event.object,
            ObjectLocation { bucket: "exports".into(), key, size: Some(sizes[1] as i64), etag: None }
        );
        assert_eq!(event.sop_instance_uid, "1.2.826.0.1.3680043.8.498.10.2");
        assert_eq!((event.sop_class_uid.as_str(), event.modality.as_str()), (uids::CT_IMAGE_STORAGE, "CT"));
        assert_eq!(event.body_part_examined.as_deref(), Some("HEAD"));
        assert_eq!(event.instance_number, Some(2));
        assert_eq!(event.priority, Priority::Stat);
        assert_eq!(event.source.as_deref(), Some("export"));
        assert!(!String::from_utf8_lossy(value).contains(PATIENT_NAME));
    }

    #[tokio::test]
    async fn export_without_announce_topic_only_writes() {
        let mut f = fixture(serde_json::json!({ "bucket": "exports" }));
        let processed = f.sink.process_batch(vec![envelope(1)]).await;
        assert!(matches!(processed[0].outcome, Outcome::Forward));
        let key = format!("exports/{STUDY}/{SERIES}/1.2.826.0.1.3680043.8.498.10.1.dcm");
        assert!(f.store.objects.lock().unwrap().contains_key(&key));
        assert!(f.topics.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn store_failures_retry_or_dead_letter_by_the_service_hint() {
        let mut f = fixture(serde_json::json!({ "bucket": "exports", "announce_topic": "announced" }));
        let failing = |retryable| ServiceError {
            destination: "exports/some/key.dcm".into(),
            message: "store unavailable".into(),
            retryable,
        };
        *f.store.failure.lock().unwrap() = Some(failing(true));
        let processed = f.sink.process_batch(vec![envelope(1)]).await;
        let error = failure(&processed[0]);
        assert_eq!(error.class, ErrorClass::ObjectStore);
        assert_eq!(error.retry, RetryHint::Retry { after: None });
        assert!(error.reason.contains("incoming/in/1.dcm") && error.reason.contains("exports/some/key.dcm"));
        assert!(!error.reason.contains(PATIENT_NAME));
        assert!(f.topics.records.lock().unwrap().is_empty(), "nothing is announced before the object is written");

        *f.store.failure.lock().unwrap() = Some(failing(false));
        let processed = f.sink.process_batch(vec![envelope(1)]).await;
        assert_eq!(failure(&processed[0]).retry, RetryHint::DeadLetter);
    }

    #[tokio::test]
    async fn announce_failures_are_output_topic_errors() {
        let mut f = fixture(serde_json::json!({ "bucket": "exports", "announce_topic": "announced" }));
        *f.topics.failure.lock().unwrap() =
            Some(ServiceError { destination: "announced".into(), message: "timed out".into(), retryable: true });
        let processed = f.sink.process_batch(vec![envelope(1)]).await;
        let error = failure(&processed[0]);
        assert_eq!((error.class, error.retry), (ErrorClass::OutputTopic, RetryHint::Retry { after: None }));
        assert!(error.reason.contains("announced"), "{}", error.reason);
    }

    #[tokio::test]
    async fn a_header_without_uids_is_dead_lettered() {
        let mut f = fixture(serde_json::json!({ "bucket": "exports" }));
        let mut e = envelope(1);
        e.header.remove_element(tags::SERIES_INSTANCE_UID);
        let processed = f.sink.process_batch(vec![e]).await;
        let error = failure(&processed[0]);
        assert_eq!((error.class, error.retry), (ErrorClass::MalformedDicom, RetryHint::DeadLetter));
        assert!(error.reason.contains("SeriesInstanceUID"), "{}", error.reason);
        assert!(f.store.objects.lock().unwrap().is_empty());
    }

    #[test]
    fn build_names_the_missing_service() {
        let err = config(serde_json::json!({ "bucket": "exports" })).build(&BuildContext::default()).unwrap_err();
        assert_eq!(err.key, "bucket");
        let ctx = BuildContext {
            objects: Some(Arc::new(MemoryStore::default()) as Arc<dyn ObjectWriter>),
            ..Default::default()
        };
        assert!(config(serde_json::json!({ "bucket": "exports" })).build(&ctx).is_ok());
        let err = config(serde_json::json!({ "bucket": "exports", "announce_topic": "t" })).build(&ctx).unwrap_err();
        assert_eq!(err.key, "announce_topic");
    }

    #[test]
    fn validation_names_the_key() {
        let key = |json| config(json).validate().map_err(|e| e.key);
        assert_eq!(key(serde_json::json!({ "bucket": "exports", "prefix": "a/b-" })), Ok(()));
        for bucket in ["", "ab", "Exports", "ex_ports", "-exports", "ex..ports", &"x".repeat(64)] {
            assert_eq!(key(serde_json::json!({ "bucket": bucket })), Err("bucket".into()), "{bucket:?}");
        }
        for prefix in ["/abs/", "a//b/", "../up/", "a/./b", "tab\t/"] {
            assert_eq!(key(serde_json::json!({ "bucket": "exports", "prefix": prefix })), Err("prefix".into()));
        }
        let bad_topic = serde_json::json!({ "bucket": "exports", "announce_topic": "has space" });
        assert_eq!(key(bad_topic), Err("announce_topic".into()));
        let unknown = serde_json::from_value::<ExportConfig>(serde_json::json!({ "bucket": "b", "bukket": "c" }));
        assert!(unknown.unwrap_err().to_string().contains("bukket"));
    }
}
