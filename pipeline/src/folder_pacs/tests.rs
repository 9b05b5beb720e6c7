use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::uids;
use dicom_object::FileMetaTableBuilder;
use radstream_operators::stow::multipart::RelatedBody;
use radstream_operators::stow::StowConfig;
use radstream_operators::{BuildContext, Envelope, Operator, Outcome};
use radstream_schemas::ObjectLocation;

use super::*;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.2";

fn part10(sop_instance_uid: &str) -> (dicom_object::FileDicomObject<InMemDicomObject>, Vec<u8>) {
    let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let object = InMemDicomObject::from_element_iter([
        element(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
        element(tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid),
        element(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        element(tags::SERIES_INSTANCE_UID, VR::UI, SERIES),
        element(tags::MODALITY, VR::CS, "OT"),
    ])
    .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
    .unwrap();
    let mut bytes = Vec::new();
    object.write_all(&mut bytes).unwrap();
    (object, bytes)
}

async fn post(pacs: &FolderPacs, payload: &[u8]) -> (u16, Value) {
    let body = RelatedBody::single_dicom(payload);
    let response = reqwest::Client::new()
        .post(format!("{}/studies", pacs.base_url()))
        .header(CONTENT_TYPE, body.content_type())
        .body(body.body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn stores_an_instance_where_dicomweb_would_and_answers_like_a_pacs() {
    let root = tempfile::tempdir().unwrap();
    let pacs = FolderPacs::start(root.path().to_path_buf()).await.unwrap();
    let (_, bytes) = part10("1.2.826.0.1.3680043.8.498.3");

    let (status, response) = post(&pacs, &bytes).await;
    assert_eq!(status, 200);
    let item = &response["00081199"]["Value"][0];
    assert_eq!(item["00081155"]["Value"][0], "1.2.826.0.1.3680043.8.498.3");
    assert_eq!(item["00081150"]["Value"][0], uids::SECONDARY_CAPTURE_IMAGE_STORAGE);
    let path = root.path().join(format!("studies/{STUDY}/series/{SERIES}/instances/1.2.826.0.1.3680043.8.498.3.dcm"));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(pacs.stored(), 1);

    // Storing it again replaces the file and is not counted twice.
    assert_eq!(post(&pacs, &bytes).await.0, 200);
    assert_eq!(pacs.stored(), 1);
    pacs.stop().await;
}

#[tokio::test]
async fn answers_409_with_cannot_understand_for_an_unreadable_part() {
    let root = tempfile::tempdir().unwrap();
    let pacs = FolderPacs::start(root.path().to_path_buf()).await.unwrap();
    let (status, response) = post(&pacs, b"not a DICOM file at all").await;
    assert_eq!(status, 409);
    assert_eq!(response["00081198"]["Value"][0]["00081197"]["Value"][0], 0xC000);
    assert_eq!(pacs.stored(), 0);
}

#[tokio::test]
async fn refuses_uids_that_are_not_path_safe() {
    let root = tempfile::tempdir().unwrap();
    let pacs = FolderPacs::start(root.path().to_path_buf()).await.unwrap();
    let (_, bytes) = part10("../../escape");
    let (status, _) = post(&pacs, &bytes).await;
    assert_eq!(status, 409);
    assert_eq!(pacs.stored(), 0);
}

#[tokio::test]
async fn the_stow_sink_delivers_to_it() {
    let root = tempfile::tempdir().unwrap();
    let pacs = FolderPacs::start(root.path().to_path_buf()).await.unwrap();
    let mut sink = StowConfig::new(pacs.base_url()).build(&BuildContext::default()).unwrap();
    let batch = (0..4)
        .map(|i| {
            let sop = format!("1.2.826.0.1.3680043.8.498.3.{i}");
            let (_, bytes) = part10(&sop);
            let location = ObjectLocation { bucket: "demo".into(), key: format!("{i}.dcm"), size: None, etag: None };
            Envelope::from_part10(i, location, Bytes::from(bytes)).unwrap()
        })
        .collect();
    let processed = sink.process_batch(batch).await;
    assert!(processed.iter().all(|p| matches!(p.outcome, Outcome::Forward)), "{processed:?}");
    assert_eq!(pacs.stored(), 4);
    drop(pacs);
}

#[tokio::test]
async fn rejects_a_request_that_is_not_multipart_related() {
    let root = tempfile::tempdir().unwrap();
    let pacs = FolderPacs::start(root.path().to_path_buf()).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/studies", pacs.base_url()))
        .header(CONTENT_TYPE, "application/dicom")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}
