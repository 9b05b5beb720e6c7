//! The operator and its trusted-side twin `relink`, with in-memory side outputs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use radstream_schemas::{AuditEvent, AuditOutcome, ErrorClass, ObjectLocation};

use super::*;
use crate::contract::services::{ObjectWriter, ServiceError, TableFollower, TopicWriter};
use crate::relink::{LinkIndex, Relink};
use crate::{element_text, Envelope, Operator, Outcome, RetryHint};

#[derive(Default)]
struct Recorder {
    records: Mutex<Vec<(String, String, Vec<u8>)>>,
    objects: Mutex<Vec<(String, String, usize)>>,
}

#[async_trait]
impl TopicWriter for Recorder {
    async fn send(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), ServiceError> {
        self.records.lock().unwrap().push((topic.into(), key.into(), value));
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for Recorder {
    async fn put(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<(), ServiceError> {
        self.objects.lock().unwrap().push((bucket.into(), key.into(), parts.iter().map(Bytes::len).sum()));
        Ok(())
    }
}

struct CaughtUp;

#[async_trait]
impl TableFollower for CaughtUp {
    async fn catch_up(&self, _: Duration) -> Result<(), ServiceError> {
        Ok(())
    }
}

fn key_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, DeidKey::generate_file_text("test-key").as_bytes()).unwrap();
    f
}

fn config(key: &tempfile::NamedTempFile, extra: &str) -> PseudonymizeConfig {
    let text = format!(
        "key_file = {:?}\nlink_topic = \"links\"\naudit_topic = \"audit\"\n{extra}",
        key.path().display().to_string()
    );
    toml::from_str(&text).unwrap()
}

fn envelope(burned_in: Option<&str>, modality: &str) -> Envelope {
    let mut header = dicom_object::InMemDicomObject::new_empty();
    let put = |h: &mut dicom_object::InMemDicomObject, tag, vr, v: &str| {
        h.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    put(&mut header, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
    put(&mut header, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.9.1");
    put(&mut header, tags::MODALITY, VR::CS, modality);
    put(&mut header, tags::PATIENT_NAME, VR::PN, "DOE^JANE");
    put(&mut header, tags::PATIENT_ID, VR::LO, "MRN77");
    put(&mut header, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.9");
    put(&mut header, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.9.0");
    if let Some(b) = burned_in {
        put(&mut header, tags::BURNED_IN_ANNOTATION, VR::CS, b);
    }
    let file = header
        .with_meta(dicom_object::meta::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap();
    let mut object = Vec::new();
    file.write_all(&mut object).unwrap();
    let location = ObjectLocation { bucket: "dicom".into(), key: "in/1.dcm".into(), size: None, etag: None };
    Envelope::from_part10(1, location, Bytes::from(object)).unwrap()
}

fn context(recorder: &Arc<Recorder>) -> BuildContext {
    BuildContext { topics: Some(recorder.clone()), objects: Some(recorder.clone()), ..Default::default() }
}

fn audits(recorder: &Recorder) -> Vec<AuditEvent> {
    let records = recorder.records.lock().unwrap();
    records.iter().filter(|r| r.0 == "audit").map(|r| serde_json::from_slice(&r.2).unwrap()).collect()
}

#[tokio::test]
async fn forwards_pseudonymized_instances_after_link_and_audit() {
    let key = key_file();
    let recorder = Arc::new(Recorder::default());
    let mut op = config(&key, "").build(&context(&recorder)).unwrap();
    let mut done = op.process_batch(vec![envelope(Some("NO"), "CT")]).await;
    let p = done.pop().unwrap();
    assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
    let sop = element_text(p.envelope.header(), tags::SOP_INSTANCE_UID).unwrap();
    assert!(sop.starts_with("2.25."));
    assert!(!p.envelope.object().windows(5).any(|w| w == b"MRN77"));
    let records = recorder.records.lock().unwrap().clone();
    assert_eq!(records[0].0, "links");
    assert_eq!(records[0].1, sop, "links are keyed by the pseudonymized SOPInstanceUID");
    let links: LinkRecord = serde_json::from_slice(&records[0].2).unwrap();
    assert!(links.uids.iter().any(|(p, o)| *p == sop && o == "1.2.3.9.1"));
    let audit = &audits(&recorder)[0];
    assert_eq!((audit.outcome, audit.key_id.as_str()), (AuditOutcome::Pseudonymized, "test-key"));
    assert_eq!(audit.pseudonymized_sop_instance_uid.as_deref(), Some(sop.as_str()));
    let text = String::from_utf8(records[1].2.clone()).unwrap();
    assert!(!text.contains("MRN77") && !text.contains("DOE") && !text.contains("1.2.3.9"), "{text}");
}

#[tokio::test]
async fn burned_in_text_is_dead_lettered_by_default() {
    let key = key_file();
    let recorder = Arc::new(Recorder::default());
    let mut op = config(&key, "").build(&context(&recorder)).unwrap();
    let done = op.process_batch(vec![envelope(Some("YES"), "CT"), envelope(None, "US"), envelope(None, "CT")]).await;
    for p in &done[..2] {
        let Outcome::Fail(e) = &p.outcome else { panic!("{:?}", p.outcome) };
        assert_eq!((e.class, e.retry), (ErrorClass::BurnedInText, RetryHint::DeadLetter));
        assert!(!e.reason.contains("DOE"));
    }
    assert!(done[1].outcome_reason().contains("modality US"));
    assert!(matches!(done[2].outcome, Outcome::Forward), "a CT without the attribute is not suspected");
    let outcomes: Vec<AuditOutcome> = audits(&recorder).iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [AuditOutcome::Rejected, AuditOutcome::Rejected, AuditOutcome::Pseudonymized]);
    assert_eq!(recorder.records.lock().unwrap().iter().filter(|r| r.0 == "links").count(), 1);
}

#[tokio::test]
async fn burned_in_text_can_be_quarantined() {
    let key = key_file();
    let recorder = Arc::new(Recorder::default());
    let cfg = config(&key, "[burned_in]\naction = \"quarantine\"\nquarantine_bucket = \"review\"");
    let mut op = cfg.build(&context(&recorder)).unwrap();
    let p = op.process_batch(vec![envelope(Some("YES"), "CT")]).await.pop().unwrap();
    assert!(matches!(&p.outcome, Outcome::Drop { rule } if rule == "burned_in_quarantine"), "{:?}", p.outcome);
    let objects = recorder.objects.lock().unwrap().clone();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].0, "review");
    assert!(objects[0].1.starts_with("quarantine/2.25."), "{}", objects[0].1);
    assert_eq!(audits(&recorder)[0].outcome, AuditOutcome::Quarantined);
}

#[tokio::test]
async fn unreadable_objects_are_dead_lettered_and_audited() {
    let key = key_file();
    let recorder = Arc::new(Recorder::default());
    let mut op = config(&key, "").build(&context(&recorder)).unwrap();
    let mut e = envelope(None, "CT");
    // A truncated object under its intact header: the parse of the whole object must fail.
    let (truncated, header) = (e.object().slice(0..e.object().len() - 7), e.header().clone());
    e.replace_object(truncated, header);
    let p = op.process_batch(vec![e]).await.pop().unwrap();
    let Outcome::Fail(err) = &p.outcome else { panic!("{:?}", p.outcome) };
    assert_eq!(err.class, ErrorClass::MalformedDicom);
    assert!(err.reason.contains("dicom/in/1.dcm"), "{}", err.reason);
    assert_eq!(audits(&recorder)[0].outcome, AuditOutcome::Rejected);
}

#[test]
fn config_problems_name_the_key() {
    let key = key_file();
    let mut c = config(&key, "");
    c.key_file = None;
    assert_eq!(c.validate().unwrap_err().key, "key_file");
    let c = config(&key, "[burned_in]\naction = \"quarantine\"");
    assert_eq!(c.validate().unwrap_err().key, "burned_in.quarantine_bucket");
    let c = config(&key, "");
    assert_eq!(c.build(&BuildContext::default()).err().unwrap().key, "link_topic");
}

#[tokio::test]
async fn relink_restores_the_original_identifiers() {
    let key = key_file();
    let recorder = Arc::new(Recorder::default());
    let mut op = config(&key, "").build(&context(&recorder)).unwrap();
    let original = envelope(Some("NO"), "CT");
    let pseudonymized = op.process_batch(vec![original]).await.pop().unwrap().envelope;
    let index = Arc::new(LinkIndex::default());
    for (topic, key, value) in recorder.records.lock().unwrap().iter() {
        if topic == "links" {
            crate::contract::services::TableSubscriber::apply(&*index, key.as_bytes(), Some(value));
        }
    }
    let mut relink = Relink::with_index(index, Arc::new(CaughtUp), "links");
    let p = relink.process_batch(vec![pseudonymized]).await.pop().unwrap();
    assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
    let h = p.envelope.header();
    assert_eq!(element_text(h, tags::SOP_INSTANCE_UID).as_deref(), Some("1.2.3.9.1"));
    assert_eq!(element_text(h, tags::STUDY_INSTANCE_UID).as_deref(), Some("1.2.3.9"));
    assert_eq!(element_text(h, tags::PATIENT_ID).as_deref(), Some("MRN77"));
    assert_eq!(element_text(h, tags::PATIENT_NAME).as_deref(), Some("DOE^JANE"));
    assert!(element_text(h, tags::PATIENT_IDENTITY_REMOVED).is_none());
    assert_eq!(h.meta().media_storage_sop_instance_uid(), "1.2.3.9.1");
}

#[tokio::test]
async fn relink_dead_letters_results_of_unknown_studies() {
    let index = Arc::new(LinkIndex::default());
    let mut relink = Relink::with_index(index, Arc::new(CaughtUp), "links");
    let p = relink.process_batch(vec![envelope(None, "KO")]).await.pop().unwrap();
    let Outcome::Fail(e) = &p.outcome else { panic!("{:?}", p.outcome) };
    assert_eq!((e.class, e.retry), (ErrorClass::UnknownLink, RetryHint::DeadLetter));
    assert!(e.reason.contains("1.2.3.9") && e.reason.contains("links"), "{}", e.reason);
}

trait Reason {
    fn outcome_reason(&self) -> String;
}

impl Reason for crate::Processed {
    fn outcome_reason(&self) -> String {
        match &self.outcome {
            Outcome::Fail(e) => e.reason.clone(),
            other => format!("{other:?}"),
        }
    }
}
