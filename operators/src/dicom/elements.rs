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
