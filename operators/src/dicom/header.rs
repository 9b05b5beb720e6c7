//! The header of a Part-10 object: parsed once, up to (not including) Pixel Data, after the
//! pre-scan that keeps malformed input from costing the parser gigabytes.

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use radstream_schemas::{InstanceEvent, ObjectLocation, Priority};

use super::elements::element_text;

/// Parses a Part-10 object's file meta and its data set up to (not including) Pixel Data, which
/// is never decoded here. The preamble is optional. An object without a SOP Class UID or SOP
/// Instance UID is not an instance and is refused: nothing downstream (a sink, `export`) may
/// write it out as one. The error says what is wrong without quoting the data.
pub fn parse_header(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, String> {
    let header = parse_part10(bytes)?;
    for (tag, what) in
        [(tags::SOP_CLASS_UID, "SOP Class UID (0008,0016)"), (tags::SOP_INSTANCE_UID, "SOP Instance UID (0008,0018)")]
    {
        if element_text(&header, tag).is_none() {
            return Err(format!("not a DICOM instance: no {what}"));
        }
    }
    Ok(header)
}

fn parse_part10(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, String> {
    let body = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" { &bytes[128..] } else { bytes };
    if body.len() < 4 || &body[..4] != b"DICM" {
        return Err("no DICM magic code at byte 128 (or 0): not a Part-10 file".into());
    }
    // Checked first: a few hundred malformed bytes can otherwise cost the parser gigabytes and
    // a minute.
    super::part10::open_part10(body, true)?.ok_or_else(|| match super::part10::read_meta(body) {
        Ok(Ok(_)) => "the data set could not be parsed (its encoding may not match the transfer syntax)".into(),
        _ => "the file meta group is unreadable".into(),
    })
}

/// Builds the event of an object from its header (for S3 notifications, which only name the
/// object, and for `radstream publish`).
pub fn event_from_header(
    header: &InMemDicomObject,
    object: ObjectLocation,
    event_time_ms: i64,
    priority: Priority,
    source: Option<String>,
) -> Result<InstanceEvent, String> {
    let key = object.display_key();
    let required = |tag, name: &str| element_text(header, tag).ok_or_else(|| format!("object {key} has no {name}"));
    Ok(InstanceEvent {
        study_instance_uid: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_instance_uid: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop_instance_uid: required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        sop_class_uid: required(tags::SOP_CLASS_UID, "SOPClassUID")?,
        modality: element_text(header, tags::MODALITY).unwrap_or_default(),
        body_part_examined: element_text(header, tags::BODY_PART_EXAMINED),
        instance_number: element_text(header, tags::INSTANCE_NUMBER).and_then(|s| s.parse().ok()),
        expected_series_instances: None,
        priority,
        source,
        event_time_ms,
        object,
    })
}

#[cfg(test)]
mod tests;
