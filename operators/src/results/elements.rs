//! DICOM element helpers the result objects share.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

/// A coded concept: (code value, coding scheme designator, code meaning).
pub(crate) type Concept<'a> = (&'a str, &'a str, &'a str);

/// At most 64 characters (an LO value), without backslashes or control characters.
pub(crate) fn long_string(value: &str) -> String {
    value.chars().filter(|c| !c.is_control() && *c != '\\').take(64).collect()
}

/// `(YYYYMMDD, HHMMSS)` of a Unix time in milliseconds, in UTC.
pub(crate) fn utc_date_time(ms: i64) -> (String, String) {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = crate::calendar::civil_from_days(days);
    let (h, m, s) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    (format!("{year:04}{month:02}{day:02}"), format!("{h:02}{m:02}{s:02}"))
}

pub(crate) fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

pub(crate) fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Copies the source's element whole (its VR, all its values), so names keep their components.
pub(crate) fn copy_if_present(object: &mut InMemDicomObject, source: &InMemDicomObject, tag: Tag) -> bool {
    match source.element_opt(tag) {
        Ok(Some(element)) => {
            object.put(element.clone());
            true
        }
        _ => false,
    }
}

/// Copies the element, or puts it empty: these attributes are Type 2 (present, may be empty).
pub(crate) fn copy_or_empty(object: &mut InMemDicomObject, source: &InMemDicomObject, tag: Tag, vr: VR) {
    if !copy_if_present(object, source, tag) {
        object.put(DataElement::empty(tag, vr));
    }
}

/// A code sequence item.
pub(crate) fn code_item((value, scheme, meaning): Concept<'_>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        text(tags::CODE_MEANING, VR::LO, &long_string(meaning)),
    ])
}
