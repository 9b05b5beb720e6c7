//! Reading and building data elements: the helpers every operator that reads attributes or
//! writes objects shares.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

/// A coded concept: (code value, coding scheme designator, code meaning).
pub type Concept<'a> = (&'a str, &'a str, &'a str);

/// At most 64 characters (an LO value), without backslashes or control characters.
pub fn long_string(value: &str) -> String {
    value.chars().filter(|c| !c.is_control() && *c != '\\').take(64).collect()
}

/// A data element of one text value.
pub fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A sequence element of `items`.
pub fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Copies the source's element whole (its VR, all its values), so names keep their components.
pub fn copy_if_present(object: &mut InMemDicomObject, source: &InMemDicomObject, tag: Tag) -> bool {
    match source.element_opt(tag) {
        Ok(Some(element)) => {
            object.put(element.clone());
            true
        }
        _ => false,
    }
}

/// Copies the element, or puts it empty: these attributes are Type 2 (present, may be empty).
pub fn copy_or_empty(object: &mut InMemDicomObject, source: &InMemDicomObject, tag: Tag, vr: VR) {
    if !copy_if_present(object, source, tag) {
        object.put(DataElement::empty(tag, vr));
    }
}

/// Copies what places a new object in its source's patient and study: the Patient module and
/// the General Study module (PS3.3 C.7.1.1 and C.7.2.1, their Type 2 attributes present even
/// when the source lacks them) under `study_uid`, and the source's Specific Character Set, which
/// the copied names and IDs are written in. Every result object and key object starts so.
pub fn copy_patient_and_study(object: &mut InMemDicomObject, source: &InMemDicomObject, study_uid: &str) {
    copy_if_present(object, source, tags::SPECIFIC_CHARACTER_SET);
    copy_or_empty(object, source, tags::PATIENT_NAME, VR::PN);
    copy_or_empty(object, source, tags::PATIENT_ID, VR::LO);
    copy_or_empty(object, source, tags::PATIENT_BIRTH_DATE, VR::DA);
    copy_or_empty(object, source, tags::PATIENT_SEX, VR::CS);
    object.put(text(tags::STUDY_INSTANCE_UID, VR::UI, study_uid));
    copy_or_empty(object, source, tags::STUDY_DATE, VR::DA);
    copy_or_empty(object, source, tags::STUDY_TIME, VR::TM);
    copy_or_empty(object, source, tags::REFERRING_PHYSICIAN_NAME, VR::PN);
    copy_or_empty(object, source, tags::STUDY_ID, VR::SH);
    copy_or_empty(object, source, tags::ACCESSION_NUMBER, VR::SH);
}

/// A code sequence item.
pub fn code_item((value, scheme, meaning): Concept<'_>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        text(tags::CODE_MEANING, VR::LO, &long_string(meaning)),
    ])
}

/// The text of a header attribute, without DICOM padding; `None` when absent or empty.
pub fn element_text(header: &InMemDicomObject, tag: Tag) -> Option<String> {
    header
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}
