//! Re-linking is scoped to the object's own study, and unreadable link records are logged
//! without their values.

use std::time::Duration;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::DataElement;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use radstream_schemas::ObjectLocation;

use super::*;
use crate::contract::services::ServiceError;
use crate::{element_text, RetryHint};

// Pseudonymized (`2.25.…`) and original UIDs of two studies, A and B.
const A_STUDY: &str = "2.25.100";
const A_SERIES: &str = "2.25.101";
const A_SOP: &str = "2.25.102";
const B_STUDY: &str = "2.25.200";
const B_SERIES: &str = "2.25.201";
const B_SOP: &str = "2.25.202";

struct CaughtUp;

#[async_trait]
impl TableFollower for CaughtUp {
    async fn catch_up(&self, _: Duration) -> Result<(), ServiceError> {
        Ok(())
    }
}

fn record(study: &str, uids: &[(&str, &str)]) -> LinkRecord {
    LinkRecord {
        v: 1,
        key_id: "k".into(),
        study: study.into(),
        patient: "PSEUDO".into(),
        uids: uids.iter().map(|(p, o)| (p.to_string(), o.to_string())).collect(),
        attributes: vec![],
    }
}

/// Links of one instance of study A and one of study B.
fn index() -> Arc<LinkIndex> {
    let index = Arc::new(LinkIndex::default());
    index.insert(record(A_STUDY, &[(A_STUDY, "1.2.1"), (A_SERIES, "1.2.1.1"), (A_SOP, "1.2.1.1.1")]));
    index.insert(record(B_STUDY, &[(B_STUDY, "1.2.2"), (B_SERIES, "1.2.2.1"), (B_SOP, "1.2.2.1.1")]));
    index
}

/// A result of study A (its own new SOP Instance UID) referencing `series`/`sop`.
fn result_of_a(series: &str, sop: &str) -> Envelope {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let sop_ref = InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop),
    ]);
    let series_ref = InMemDicomObject::from_element_iter([
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        DataElement::new(tags::REFERENCED_SOP_SEQUENCE, VR::SQ, DataSetSequence::from(vec![sop_ref])),
    ]);
    let dataset = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.88.22"),
        text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.999"),
        text(tags::MODALITY, VR::CS, "SR"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, A_STUDY),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "2.25.998"),
        DataElement::new(tags::REFERENCED_SERIES_SEQUENCE, VR::SQ, DataSetSequence::from(vec![series_ref])),
    ]);
    let file = dataset
        .with_meta(dicom_object::meta::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    let location = ObjectLocation { bucket: "results".into(), key: "sr/1.dcm".into(), size: None, etag: None };
    Envelope::from_part10(1, location, Bytes::from(bytes)).unwrap()
}

fn referenced(h: &InMemDicomObject) -> (String, String) {
    let series = h.element(tags::REFERENCED_SERIES_SEQUENCE).unwrap().items().unwrap()[0].clone();
    let sop = series.element(tags::REFERENCED_SOP_SEQUENCE).unwrap().items().unwrap()[0].clone();
    (
        element_text(&series, tags::SERIES_INSTANCE_UID).unwrap(),
        element_text(&sop, tags::REFERENCED_SOP_INSTANCE_UID).unwrap(),
    )
}

#[tokio::test]
async fn the_uids_of_the_objects_own_study_are_restored() {
    let mut relink = Relink::with_index(index(), Arc::new(CaughtUp), "links");
    let p = relink.process_batch(vec![result_of_a(A_SERIES, A_SOP)]).await.pop().unwrap();
    assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
    let h = p.envelope.header();
    assert_eq!(element_text(h, tags::STUDY_INSTANCE_UID).as_deref(), Some("1.2.1"));
    assert_eq!(referenced(h), ("1.2.1.1".to_string(), "1.2.1.1.1".to_string()));
    // The result's own new UIDs are in no link: kept.
    assert_eq!(element_text(h, tags::SOP_INSTANCE_UID).as_deref(), Some("2.25.999"));
}

#[tokio::test]
async fn a_pseudonym_of_another_study_is_refused_as_unknown_link() {
    let mut relink = Relink::with_index(index(), Arc::new(CaughtUp), "links");
    for (series, sop) in [(A_SERIES, B_SOP), (B_SERIES, A_SOP)] {
        let p = relink.process_batch(vec![result_of_a(series, sop)]).await.pop().unwrap();
        let Outcome::Fail(e) = &p.outcome else { panic!("{:?}", p.outcome) };
        assert_eq!((e.class, e.retry), (ErrorClass::UnknownLink, RetryHint::DeadLetter));
        let foreign = if series == B_SERIES { B_SERIES } else { B_SOP };
        assert!(e.reason.contains(foreign) && e.reason.contains(A_STUDY), "{}", e.reason);
        assert!(e.reason.contains("another study"), "{}", e.reason);
        // Nothing of B's originals is in the reason.
        assert!(!e.reason.contains("1.2.2"), "{}", e.reason);
    }
}

#[tokio::test]
async fn a_uid_linked_under_both_studies_is_restored_for_either() {
    // The same original in two studies has the same pseudonym (a shared frame of reference).
    let index = index();
    index.insert(record(B_STUDY, &[(A_SOP, "1.2.1.1.1")]));
    let mut relink = Relink::with_index(index, Arc::new(CaughtUp), "links");
    let p = relink.process_batch(vec![result_of_a(A_SERIES, A_SOP)]).await.pop().unwrap();
    assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
}

const PHI: &str = "DOE^JOHN";

#[test]
fn an_unreadable_link_record_is_described_without_its_values() {
    // The patient's name where the version number belongs: serde_json's message quotes it.
    let mut json = serde_json::to_value(record(A_STUDY, &[])).unwrap();
    json["v"] = serde_json::Value::String(PHI.into());
    let bytes = serde_json::to_vec(&json).unwrap();
    let raw = serde_json::from_slice::<LinkRecord>(&bytes).unwrap_err();
    assert!(raw.to_string().contains(PHI), "the test must exercise a quoting error");
    let error = unreadable_record(&raw);
    let text = error.to_string();
    assert!(!text.contains(PHI) && !format!("{error:?}").contains(PHI), "{text}");
    assert!(text.contains("link record") && text.contains("data error"), "{text}");

    let raw = serde_json::from_slice::<LinkRecord>(b"{\"patient\": DOE^JOHN}").unwrap_err();
    assert!(!unreadable_record(&raw).to_string().contains(PHI));

    // The record is skipped and counted.
    let index = LinkIndex::default();
    index.apply(b"k", Some(&bytes));
    assert_eq!(index.inner.lock().unwrap().unreadable, 1);
}
