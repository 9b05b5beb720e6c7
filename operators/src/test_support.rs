//! Helpers shared by the operators' unit tests.

use bytes::Bytes;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// A CT-class Part-10 object with only the identifying header (no pixels): `sop` and `modality`
/// as given, fixed study and series UIDs.
pub(crate) fn header_only_part10(sop: &str, modality: &str) -> Bytes {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let dataset = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::MODALITY, VR::CS, modality),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2"),
    ]);
    let file = dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}
