use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radstream_schemas::ObjectLocation;
use tokio::sync::mpsc;

use super::*;
use crate::runtime::tests::{test_shared, track_instance};

/// A CT header with a private attribute of `padding` bytes, as a Part-10 file.
fn object(sop: &str, padding: usize) -> Vec<u8> {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let mut dataset = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2"),
    ]);
    dataset.put(DataElement::new(dicom_core::Tag(0x0009, 0x1010), VR::OB, PrimitiveValue::from(vec![0u8; padding])));
    let file = dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

/// The bytes of fetched objects held at once stay within `runtime.max_in_flight_bytes`: with
/// room for one 700 KiB object in a budget of 1 MiB, the second waits (its size from the store,
/// the third's from its event) until the first instance's outcome gives its share back. Before
/// the budget, all three were fetched at once (up to 16 × 2 GiB with the defaults).
#[tokio::test]
async fn fetched_objects_hold_their_bytes_until_their_outcome() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("b")).unwrap();
    let objects = format!("\n[objects]\nkind = \"local\"\nroot = {:?}\n", root.path());
    let shared = test_shared("max_in_flight_bytes = 1048576", &objects);
    let (items, rx) = mpsc::channel(8);
    let (next, mut envelopes) = mpsc::channel(8);
    let (completions, mut finished) = mpsc::unbounded_channel();
    for ticket in 0..3u64 {
        let key = format!("{ticket}.dcm");
        std::fs::write(root.path().join("b").join(&key), object(&format!("1.2.3.{ticket}"), 700 << 10)).unwrap();
        track_instance(&shared, ticket);
        let size = (ticket == 2).then_some(720 << 10);
        let location = ObjectLocation { bucket: "b".into(), key, size, etag: None };
        items.send(FetchItem { ticket, location, event: None, event_time_ms: 0 }).await.unwrap();
    }
    let stage = tokio::spawn(fetch_stage(shared.clone(), rx, next, completions));
    let first = envelopes.recv().await.expect("the first object is fetched");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), envelopes.recv()).await.is_err(),
        "a second 700 KiB object was fetched while the first held 700 KiB of a 1 MiB budget"
    );
    assert!(finished.try_recv().is_err(), "nothing failed: {:?}", finished.try_recv());
    // The first instance's outcome: its in-flight entry goes, and with it its share.
    shared.abandon(first.ticket);
    drop(first);
    let second = envelopes.recv().await.expect("the second object is fetched once the first is done");
    assert!(tokio::time::timeout(Duration::from_millis(300), envelopes.recv()).await.is_err());
    shared.abandon(second.ticket);
    envelopes.recv().await.expect("the third follows the second");
    drop(items);
    stage.await.unwrap();
}
