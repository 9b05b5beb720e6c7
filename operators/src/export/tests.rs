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
    let sizes: Vec<usize> = batch.iter().map(|e| e.object().len()).collect();
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
    assert_eq!(event.object, ObjectLocation { bucket: "exports".into(), key, size: Some(sizes[1] as i64), etag: None });
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
    // Only the parsed header loses the UID: the sink reads the UIDs from the header.
    let mut header = e.header().clone();
    header.remove_element(tags::SERIES_INSTANCE_UID);
    e.replace_object(e.object().clone(), header);
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
    let ctx =
        BuildContext { objects: Some(Arc::new(MemoryStore::default()) as Arc<dyn ObjectWriter>), ..Default::default() };
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
