//! The envelope that carries one DICOM instance through the operator chain.

use std::time::Instant;

use bytes::Bytes;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use radstream_schemas::{InstanceEvent, ObjectLocation, Priority};

/// One DICOM instance on its way through the chain.
#[derive(Debug)]
pub struct Envelope {
    /// Opaque runtime handle (the runtime maps it to a Kafka partition and offset). Operators
    /// must carry it through unchanged.
    pub ticket: u64,
    /// The event that announced the instance, completed from the object header when the source
    /// only knew the object key (S3 notifications).
    pub event: InstanceEvent,
    /// The whole Part-10 object as fetched. Operators that rewrite the header replace it.
    pub object: Bytes,
    /// The parsed header: file meta and the data set up to (not including) Pixel Data, which is
    /// never decoded here.
    pub header: FileDicomObject<InMemDicomObject>,
    /// Branch chosen by routing (for example the model name), if routed.
    pub branch: Option<String>,
    /// The model a routing rule chose for the instance (the manifest's `name`); `None` when no
    /// rule named one, and then every `preprocess`/`infer` pair of the chain takes it.
    pub model: Option<String>,
    /// When the runtime read the event from the source.
    pub received_at: Instant,
    /// When it was queued for the operator it is waiting for (set by the runtime on each hand
    /// over): the start of its queue delay.
    pub queued_at: Instant,
    /// The model input the `preprocess` operator made from the pixel data (`[N, C, H, W]`, one
    /// image per frame); `None` before it runs. Shared, so that handing it to inference copies
    /// nothing.
    pub tensor: Option<std::sync::Arc<radstream_kernels::Tensor>>,
    /// What the `infer` operator's model said about the instance (model identity, per-frame
    /// scores, findings); `None` before it runs. Shared: result writers only read it.
    pub results: Option<std::sync::Arc<crate::infer::InferenceResult>>,
    /// Where each image of `tensor` lies in the patient (position and orientation per frame),
    /// set by `preprocess` for a model of whole series: series assembly sorts slices by it.
    pub geometry: Option<std::sync::Arc<[radstream_kernels::SliceGeometry]>>,
    /// The result objects the `results` step made of `results` (SR, SEG, overlays), which a
    /// sink delivers instead of the instance itself; `None` before it runs. Shared: every
    /// instance of a series carries its series' objects.
    pub outputs: Option<std::sync::Arc<crate::results::ResultSet>>,
    /// Time spent in each stage so far (its queue and its operator), in milliseconds, in chain
    /// order; set by the runtime for the outcome record.
    pub stage_ms: Vec<(&'static str, f64)>,
}

impl Envelope {
    /// An envelope for a whole Part-10 object, its event built from the header (routine
    /// priority, no source, time 0): for tools and tests that have a file rather than an event.
    pub fn from_part10(ticket: u64, location: ObjectLocation, object: Bytes) -> Result<Envelope, String> {
        let header = parse_header(&object)?;
        let event = event_from_header(&header, location, 0, Priority::Routine, None)?;
        Ok(Envelope {
            ticket,
            event,
            object,
            header,
            branch: None,
            model: None,
            received_at: Instant::now(),
            queued_at: Instant::now(),
            tensor: None,
            results: None,
            geometry: None,
            outputs: None,
            stage_ms: Vec::new(),
        })
    }

    /// `bucket/key` of the object: the identifier to use in logs and errors.
    pub fn object_key(&self) -> String {
        self.event.object.display_key()
    }
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

/// Parses a Part-10 object's file meta and its data set up to (not including) Pixel Data, which
/// is never decoded here. The preamble is optional. The error says what is wrong without quoting
/// the data.
pub fn parse_header(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, String> {
    let body = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" { &bytes[128..] } else { bytes };
    if body.len() < 4 || &body[..4] != b"DICM" {
        return Err("no DICM magic code at byte 128 (or 0): not a Part-10 file".into());
    }
    // Checked first: a few hundred malformed bytes can otherwise cost the parser gigabytes and
    // a minute.
    crate::preprocess::decode::open_part10(body, true).map_err(|e| e.to_string())?.ok_or_else(|| {
        match dicom_object::FileMetaTable::from_reader(body) {
            Ok(_) => "the data set could not be parsed (its encoding may not match the transfer syntax)".into(),
            Err(_) => "the file meta group is unreadable".into(),
        }
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
