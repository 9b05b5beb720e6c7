//! The envelope that carries one DICOM instance through the operator chain.

use std::time::Instant;

use bytes::Bytes;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use radstream_schemas::InstanceEvent;

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
    /// When the runtime read the event from the source.
    pub received_at: Instant,
}

impl Envelope {
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
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .read_until(tags::PIXEL_DATA)
        .from_reader(body)
        .map_err(|e| e.to_string())
}
