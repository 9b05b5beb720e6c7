//! `key_object`: replaces each instance with a Key Object Selection document (PS3.3 A.35.4,
//! template TID 2010 "Key Object Selection", title (113000, DCM, "Of Interest")) that references
//! it, in the same study, so that a viewer flags the instance for the radiologist.
//!
//! The document is deterministic: its Series and SOP Instance UIDs are derived from the source's
//! (`2.25.` and 128 bits of a SHA-256 over a domain string and the source UID), and its content
//! date and time are copied from the source, so a replayed instance yields the same bytes and a
//! PACS keeps one copy. One key object series is made per source series.
//!
//! Patient and study attributes are copied from the source header, because the PACS files the
//! document by them; they never appear in errors or logs.

use async_trait::async_trait;
use bytes::Bytes;
use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use radstream_schemas::ErrorClass;
use serde::{Deserialize, Serialize};

use crate::dicom::datetime::{is_da, is_tm, utc_date_time};
use crate::dicom::elements::{code_item, copy_patient_and_study, sequence, text};
use crate::dicom::header::parse_header;
use crate::{element_text, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// Domain of the derived SeriesInstanceUID: changing it changes every key object series.
const SERIES_UID_DOMAIN: &str = "radstream key_object SeriesInstanceUID v1";
/// Domain of the derived SOPInstanceUID.
const SOP_UID_DOMAIN: &str = "radstream key_object SOPInstanceUID v1";
/// Added to the source's SeriesNumber, so key object series sort after the images they flag.
const SERIES_NUMBER_OFFSET: i64 = 9000;
/// Manufacturer (0008,0070) of the documents: radstream is the equipment that creates them.
const MANUFACTURER: &str = "radstream";

/// Configuration of the `key_object` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyObjectConfig {
    /// SeriesDescription (0008,103E) of the key object series, at most 64 characters; empty
    /// leaves it out.
    #[serde(default = "default_series_description")]
    pub series_description: String,
}

fn default_series_description() -> String {
    "radstream key objects".into()
}

impl Default for KeyObjectConfig {
    fn default() -> Self {
        Self { series_description: default_series_description() }
    }
}

impl KeyObjectConfig {
    /// Checks the configuration (a LO value: at most 64 characters, no '\\' or control
    /// characters).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.series_description;
        if d.chars().count() > 64 {
            return Err(ConfigError::new("series_description", "must be at most 64 characters long"));
        }
        if d.chars().any(|c| c.is_control() || c == '\\') {
            return Err(ConfigError::new("series_description", "must not hold '\\' or control characters"));
        }
        Ok(())
    }

    /// Builds the operator.
    pub fn build(&self) -> Result<KeyObjectGenerator, ConfigError> {
        self.validate()?;
        Ok(KeyObjectGenerator { series_description: self.series_description.trim().to_string() })
    }
}

/// Replaces instances with key objects that reference them.
#[derive(Debug)]
pub struct KeyObjectGenerator {
    series_description: String,
}

/// What the key object is about: the source instance's identity.
struct SourceInstance {
    study: String,
    series: String,
    sop_class: String,
    sop_instance: String,
}

/// A built key object: its Part-10 bytes, parsed header and identity.
struct KeyObject {
    bytes: Bytes,
    header: FileDicomObject<InMemDicomObject>,
    series_uid: String,
    sop_uid: String,
    instance_number: i32,
}

impl KeyObjectGenerator {
    /// Builds the key object for one envelope's instance.
    fn key_object(&self, envelope: &Envelope) -> Result<KeyObject, OperatorError> {
        let source = envelope.header();
        let required = |tag, name: &str| {
            element_text(source, tag).ok_or_else(|| {
                OperatorError::dead_letter(
                    ErrorClass::MalformedDicom,
                    format!("{}: the header has no {name}, so a key object cannot reference it", envelope.object_key()),
                )
            })
        };
        let instance = SourceInstance {
            study: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
            series: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            sop_class: required(tags::SOP_CLASS_UID, "SOPClassUID")?,
            sop_instance: required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        };
        let series_uid = derived_uid(SERIES_UID_DOMAIN, &instance.series);
        let sop_uid = derived_uid(SOP_UID_DOMAIN, &instance.sop_instance);
        let series_number = element_text(source, tags::SERIES_NUMBER)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
            .saturating_add(SERIES_NUMBER_OFFSET)
            .clamp(0, i32::MAX as i64);
        let instance_number = element_text(source, tags::INSTANCE_NUMBER)
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|n| *n >= 0)
            .unwrap_or(1);
        let (content_date, content_time) = content_date_time(source, envelope.event.event_time_ms);

        let mut ko = InMemDicomObject::new_empty();
        // SOP Common.
        ko.put(text(tags::SOP_CLASS_UID, VR::UI, uids::KEY_OBJECT_SELECTION_DOCUMENT_STORAGE));
        ko.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid));
        // Patient and General Study, with the character set of the names and IDs they copy.
        copy_patient_and_study(&mut ko, source, &instance.study);
        // Key Object Document Series.
        ko.put(text(tags::MODALITY, VR::CS, "KO"));
        ko.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid));
        ko.put(text(tags::SERIES_NUMBER, VR::IS, &series_number.to_string()));
        if !self.series_description.is_empty() {
            ko.put(text(tags::SERIES_DESCRIPTION, VR::LO, &self.series_description));
        }
        ko.put(sequence(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, vec![]));
        // General Equipment.
        ko.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
        // Key Object Document.
        ko.put(text(tags::INSTANCE_NUMBER, VR::IS, &instance_number.to_string()));
        ko.put(text(tags::CONTENT_DATE, VR::DA, &content_date));
        ko.put(text(tags::CONTENT_TIME, VR::TM, &content_time));
        ko.put(sequence(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![evidence(&instance)]));
        // SR Document Content: the root CONTAINER with one IMAGE item.
        ko.put(text(tags::VALUE_TYPE, VR::CS, "CONTAINER"));
        ko.put(sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(("113000", "DCM", "Of Interest"))]));
        ko.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
        ko.put(sequence(
            tags::CONTENT_TEMPLATE_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
                text(tags::TEMPLATE_IDENTIFIER, VR::CS, "2010"),
            ])],
        ));
        ko.put(sequence(
            tags::CONTENT_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS"),
                text(tags::VALUE_TYPE, VR::CS, "IMAGE"),
                sequence(tags::REFERENCED_SOP_SEQUENCE, vec![sop_reference(&instance)]),
            ])],
        ));

        let internal = |what: &str, e: &dyn std::fmt::Display| {
            OperatorError::dead_letter(
                ErrorClass::Internal,
                format!("{}: {what} the key object failed: {e}", envelope.object_key()),
            )
        };
        let file = ko
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .map_err(|e| internal("preparing the file meta of", &e))?;
        let mut bytes = Vec::with_capacity(4096);
        file.write_all(&mut bytes).map_err(|e| internal("encoding", &e))?;
        let header = parse_header(&bytes).map_err(|e| internal("reading back", &e))?;
        Ok(KeyObject { bytes: Bytes::from(bytes), header, series_uid, sop_uid, instance_number })
    }
}

#[async_trait]
impl Operator for KeyObjectGenerator {
    /// Builds on the executor: a key object is a few dozen elements without pixel data, cheaper
    /// to build than a hop to the blocking pool.
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        batch
            .into_iter()
            .map(|mut envelope| match self.key_object(&envelope) {
                Ok(ko) => {
                    // The event now describes the document: downstream sinks match the
                    // destination's answer against its SOPInstanceUID.
                    let event = &mut envelope.event;
                    event.series_instance_uid = ko.series_uid;
                    event.sop_instance_uid = ko.sop_uid;
                    event.sop_class_uid = uids::KEY_OBJECT_SELECTION_DOCUMENT_STORAGE.into();
                    event.modality = "KO".into();
                    event.body_part_examined = None;
                    event.instance_number = Some(ko.instance_number);
                    envelope.replace_object(ko.bytes, ko.header);
                    Processed::forward(envelope)
                }
                Err(error) => Processed { envelope, outcome: Outcome::Fail(error) },
            })
            .collect()
    }
}

/// `2.25.` followed by the decimal value of the first 128 bits of SHA-256(domain, 0x00, uid):
/// a UID (PS3.5 B.2) that is the same for the same source UID and no one else's.
pub fn derived_uid(domain: &str, uid: &str) -> String {
    crate::dicom::uids::uid_of_domain(domain, uid)
}

/// ContentDate and ContentTime: the source's content, series or study date with its time,
/// whichever pair is complete first, else the event time (UTC), so that a replay of the same
/// event gives the same document.
fn content_date_time(source: &InMemDicomObject, event_time_ms: i64) -> (String, String) {
    [
        (tags::CONTENT_DATE, tags::CONTENT_TIME),
        (tags::SERIES_DATE, tags::SERIES_TIME),
        (tags::STUDY_DATE, tags::STUDY_TIME),
    ]
    .into_iter()
    .find_map(|(date, time)| {
        let date = element_text(source, date).filter(|d| is_da(d))?;
        let time = element_text(source, time).filter(|t| is_tm(t))?;
        Some((date, time))
    })
    .unwrap_or_else(|| utc_date_time(event_time_ms))
}

/// A ReferencedSOPSequence item naming the source instance.
fn sop_reference(instance: &SourceInstance) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &instance.sop_class),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &instance.sop_instance),
    ])
}

/// A CurrentRequestedProcedureEvidenceSequence item: the source's study, series and instance.
fn evidence(instance: &SourceInstance) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        sequence(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                sequence(tags::REFERENCED_SOP_SEQUENCE, vec![sop_reference(instance)]),
                text(tags::SERIES_INSTANCE_UID, VR::UI, &instance.series),
            ])],
        ),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &instance.study),
    ])
}

impl crate::contract::OperatorSpec for KeyObjectConfig {
    const KIND: &'static str = "key_object";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        KeyObjectConfig::validate(self)
    }

    fn build(
        &self,
        _ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(KeyObjectConfig::build(self)?))
    }

    fn example() -> &'static str {
        r#"
series_description = "Key images"
"#
    }
}

#[cfg(test)]
mod tests;
