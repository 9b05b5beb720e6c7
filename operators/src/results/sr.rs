//! A model's result as a DICOM Comprehensive 3D SR (PS3.3 A.35.13), template TID 1500
//! "Measurement Report", as the IHE AI Results (AIR) profile asks.
//!
//! The document goes into the source's study as a new series, so the viewer shows it beside the
//! images it is about. Content tree:
//!
//! ```text
//! CONTAINER (126000, DCM, "Imaging Measurement Report")                       TID 1500
//!   HAS CONCEPT MOD  CODE (121049, DCM, "Language of Content Item and Descendants") = en-US
//!   HAS OBS CONTEXT  CODE (121005, DCM, "Observer Type") = (121007, DCM, "Device")
//!   HAS OBS CONTEXT  UIDREF (121012, DCM, "Device Observer UID")    from the model identity
//!   HAS OBS CONTEXT  TEXT (121013 Name), (121014 Manufacturer = "radstream"), (121015 Model Name)
//!   HAS CONCEPT MOD  CODE (121058, DCM, "Procedure reported") = (363679005, SCT, "Imaging procedure")
//!   CONTAINS CONTAINER (111028, DCM, "Image Library")
//!     CONTAINS CONTAINER (126200, DCM, "Image Library Group")
//!       CONTAINS IMAGE (260753009, SCT, "Source")                    one per source instance
//!   CONTAINS CONTAINER (126010, DCM, "Imaging Measurements")
//!     CONTAINS CONTAINER (125007, DCM, "Measurement Group")          TID 1501, one per finding
//!       HAS OBS CONTEXT  TEXT (112039 Tracking Identifier), UIDREF (112040 Tracking UID)
//!       CONTAINS CODE (121071, DCM, "Finding") = the finding's code
//!       HAS CONCEPT MOD  TEXT (111001 Algorithm Name), (111003 Algorithm Version)   TID 4019
//!       CONTAINS IMAGE (121112, DCM, "Source of Measurement")        the image (and frame)
//!       CONTAINS NUM (122157, DCM, "Probability") = the score, unit (1, UCUM, "no units")
//!       CONTAINS CODE the finding's code = (52101004, SCT, "Present")   qualitative evaluation
//! ```
//!
//! With no findings there is one group whose qualitative evaluation is
//! (121071, DCM, "Finding") = (260385009, SCT, "Negative"), referencing every source image.
//!
//! Everything in the document comes from the arguments: its UIDs are derived from the source's
//! and the model's identity ([`super::uids`]) and its content date and time from the timestamp
//! given, so the same inputs give the same bytes and a replay replaces the object in the PACS.
//! Patient and study attributes are copied from the source, because the PACS files the document
//! by them; they never appear in errors.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

use super::uids::{device_observer_uid, result_uid, tracking_uid, ObjectKind, UidRole};
use crate::contract::{Finding, InferenceResult};
use crate::dicom::datetime::utc_date_time;
use crate::dicom::elements::{code_item as code, copy_patient_and_study, long_string, sequence, text, Concept};
use crate::element_text;

/// Manufacturer (0008,0070) of the documents and of the device observer.
pub const MANUFACTURER: &str = "radstream";
/// Added to the source's SeriesNumber, so result series sort after the images (and apart from
/// the key object series, which add 9000).
const SERIES_NUMBER_OFFSET: i64 = 7000;

const IMAGING_MEASUREMENT_REPORT: Concept<'static> = ("126000", "DCM", "Imaging Measurement Report");
const LANGUAGE: Concept<'static> = ("121049", "DCM", "Language of Content Item and Descendants");
const ENGLISH_US: Concept<'static> = ("en-US", "RFC5646", "English (United States)");
const OBSERVER_TYPE: Concept<'static> = ("121005", "DCM", "Observer Type");
const DEVICE: Concept<'static> = ("121007", "DCM", "Device");
const DEVICE_OBSERVER_UID: Concept<'static> = ("121012", "DCM", "Device Observer UID");
const DEVICE_OBSERVER_NAME: Concept<'static> = ("121013", "DCM", "Device Observer Name");
const DEVICE_OBSERVER_MANUFACTURER: Concept<'static> = ("121014", "DCM", "Device Observer Manufacturer");
const DEVICE_OBSERVER_MODEL_NAME: Concept<'static> = ("121015", "DCM", "Device Observer Model Name");
const PROCEDURE_REPORTED: Concept<'static> = ("121058", "DCM", "Procedure reported");
const IMAGING_PROCEDURE: Concept<'static> = ("363679005", "SCT", "Imaging procedure");
const IMAGE_LIBRARY: Concept<'static> = ("111028", "DCM", "Image Library");
const IMAGE_LIBRARY_GROUP: Concept<'static> = ("126200", "DCM", "Image Library Group");
const SOURCE: Concept<'static> = ("260753009", "SCT", "Source");
const IMAGING_MEASUREMENTS: Concept<'static> = ("126010", "DCM", "Imaging Measurements");
const MEASUREMENT_GROUP: Concept<'static> = ("125007", "DCM", "Measurement Group");
const TRACKING_IDENTIFIER: Concept<'static> = ("112039", "DCM", "Tracking Identifier");
const TRACKING_UID: Concept<'static> = ("112040", "DCM", "Tracking Unique Identifier");
const FINDING: Concept<'static> = ("121071", "DCM", "Finding");
const ALGORITHM_NAME: Concept<'static> = ("111001", "DCM", "Algorithm Name");
const ALGORITHM_VERSION: Concept<'static> = ("111003", "DCM", "Algorithm Version");
const SOURCE_OF_MEASUREMENT: Concept<'static> = ("121112", "DCM", "Source of Measurement");
const PROBABILITY: Concept<'static> = ("122157", "DCM", "Probability");
const NO_UNITS: Concept<'static> = ("1", "UCUM", "no units");
const PRESENT: Concept<'static> = ("52101004", "SCT", "Present");
const NEGATIVE: Concept<'static> = ("260385009", "SCT", "Negative");

/// One instance of the source series, by its UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRef {
    /// SOPClassUID.
    pub sop_class_uid: String,
    /// SOPInstanceUID.
    pub sop_instance_uid: String,
}

/// Why a document could not be built. Never carries patient data: only attribute names.
#[derive(Debug, thiserror::Error)]
pub enum SrError {
    /// The source header lacks an attribute the document must reference.
    #[error("the source header has no {0}, so a structured report cannot reference it")]
    MissingAttribute(&'static str),
    /// A score is NaN or infinite: no DS value can hold it.
    #[error("finding {index} has a score that is not a finite number")]
    NonFiniteScore {
        /// The finding's place in the result.
        index: usize,
    },
    /// dicom-object refused the file meta or the encoding.
    #[error("{what} the structured report failed: {reason}")]
    Encoding {
        /// What was being done.
        what: &'static str,
        /// dicom-object's error.
        reason: String,
    },
}

/// A built document: the Part-10 object and the UIDs a sink matches the PACS's answer on.
#[derive(Debug, Clone)]
pub struct SrDocument {
    /// The document, with its file meta (explicit VR little endian).
    pub file: FileDicomObject<InMemDicomObject>,
    /// SeriesInstanceUID of the result series.
    pub series_instance_uid: String,
    /// SOPInstanceUID of the document.
    pub sop_instance_uid: String,
}

impl SrDocument {
    /// The Part-10 bytes (preamble, file meta, data set in explicit VR little endian).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SrError> {
        let mut bytes = Vec::with_capacity(8192);
        self.file.write_all(&mut bytes).map_err(|e| SrError::Encoding { what: "encoding", reason: e.to_string() })?;
        Ok(bytes)
    }
}

/// The source instance the result is about.
struct Source {
    study: String,
    series: String,
    instance: InstanceRef,
    multi_frame: bool,
}

/// Builds the TID 1500 Comprehensive 3D SR of `result`, made on `source` (its parsed header).
///
/// A result of a whole series (`result.series` is `Some`) gets one document per series that
/// references `series_instances` (in the order given; the source instance is added when it is
/// not among them); its findings reference the instances the model flagged
/// (`SeriesRecord::flagged_instances`), or every instance where it flagged none. A result of
/// one instance gets one document per instance and ignores `series_instances`; a finding on a
/// multi-frame instance names its frame. All referenced instances are taken to be of the
/// source's series.
///
/// `content_time_ms` (Unix time in milliseconds, written as UTC) becomes ContentDate and
/// ContentTime: pass the event's time, not the clock, so a replay gives the same bytes.
pub fn build_sr(
    source: &InMemDicomObject,
    result: &InferenceResult,
    series_instances: &[InstanceRef],
    content_time_ms: i64,
) -> Result<SrDocument, SrError> {
    let required = |tag: Tag, name: &'static str| element_text(source, tag).ok_or(SrError::MissingAttribute(name));
    let src = Source {
        study: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        instance: InstanceRef {
            sop_class_uid: required(tags::SOP_CLASS_UID, "SOPClassUID")?,
            sop_instance_uid: required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        },
        multi_frame: element_text(source, tags::NUMBER_OF_FRAMES)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 1),
    };
    if let Some(index) = result.findings.iter().position(|f| !f.score.is_finite()) {
        return Err(SrError::NonFiniteScore { index });
    }
    let model = &result.model;
    let series_uid = result_uid(UidRole::Series, ObjectKind::Sr, &src.series, model);
    let (sop_uid, library) = match &result.series {
        Some(record) => {
            // A later revision of the series' result (late instances) is another document: a
            // PACS keeps the first copy of a SOPInstanceUID, so reusing it would lose the
            // revision. Revision 1 keeps the series' own key.
            let key = match record.revision {
                0 | 1 => src.series.clone(),
                revision => format!("{}/revision/{revision}", src.series),
            };
            let mut library: Vec<InstanceRef> = Vec::with_capacity(series_instances.len() + 1);
            for instance in series_instances.iter().chain([&src.instance]) {
                if !library.iter().any(|i| i.sop_instance_uid == instance.sop_instance_uid) {
                    library.push(instance.clone());
                }
            }
            (result_uid(UidRole::SeriesResult, ObjectKind::Sr, &key, model), library)
        }
        None => (
            result_uid(UidRole::Instance, ObjectKind::Sr, &src.instance.sop_instance_uid, model),
            vec![src.instance.clone()],
        ),
    };
    let series_number = element_text(source, tags::SERIES_NUMBER)
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
        .saturating_add(SERIES_NUMBER_OFFSET)
        .clamp(0, i32::MAX as i64);
    let instance_number = match &result.series {
        Some(record) => i32::try_from(record.revision.max(1)).unwrap_or(i32::MAX),
        None => element_text(source, tags::INSTANCE_NUMBER)
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|n| *n >= 0)
            .unwrap_or(1),
    };
    let (content_date, content_time) = utc_date_time(content_time_ms);

    let mut sr = InMemDicomObject::new_empty();
    // SOP Common.
    sr.put(text(tags::SOP_CLASS_UID, VR::UI, uids::COMPREHENSIVE3_DSR_STORAGE));
    sr.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid));
    // Patient and General Study, with the character set of the names and IDs they copy.
    copy_patient_and_study(&mut sr, source, &src.study);
    // SR Document Series.
    sr.put(text(tags::MODALITY, VR::CS, "SR"));
    sr.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid));
    sr.put(text(tags::SERIES_NUMBER, VR::IS, &series_number.to_string()));
    let description = format!("AI results: {} {}", model.name, model.version);
    sr.put(text(tags::SERIES_DESCRIPTION, VR::LO, &long_string(&description)));
    sr.put(sequence(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, vec![]));
    // General Equipment.
    sr.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    // SR Document General. COMPLETE: the document says all the model said; UNVERIFIED and
    // PRELIMINARY: no person has checked it.
    sr.put(text(tags::INSTANCE_NUMBER, VR::IS, &instance_number.to_string()));
    sr.put(text(tags::CONTENT_DATE, VR::DA, &content_date));
    sr.put(text(tags::CONTENT_TIME, VR::TM, &content_time));
    sr.put(text(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
    sr.put(text(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
    sr.put(text(tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY"));
    sr.put(sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    sr.put(sequence(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![evidence(&src, &library)]));
    // SR Document Content: the root container.
    sr.put(text(tags::VALUE_TYPE, VR::CS, "CONTAINER"));
    sr.put(sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(IMAGING_MEASUREMENT_REPORT)]));
    sr.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    sr.put(sequence(tags::CONTENT_TEMPLATE_SEQUENCE, vec![template("1500")]));
    sr.put(sequence(tags::CONTENT_SEQUENCE, report_content(&src, result, &library, &sop_uid)));

    let file = sr
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| SrError::Encoding { what: "preparing the file meta of", reason: e.to_string() })?;
    Ok(SrDocument { file, series_instance_uid: series_uid, sop_instance_uid: sop_uid })
}

/// The root container's children (TID 1500 rows 2 to 6).
fn report_content(
    src: &Source,
    result: &InferenceResult,
    library: &[InstanceRef],
    sop_uid: &str,
) -> Vec<InMemDicomObject> {
    let model = &result.model;
    let mut items = vec![
        // TID 1204.
        code_item("HAS CONCEPT MOD", LANGUAGE, ENGLISH_US),
        // TID 1001 / 1002 / 1004: the model is the observer.
        code_item("HAS OBS CONTEXT", OBSERVER_TYPE, DEVICE),
        uidref_item("HAS OBS CONTEXT", DEVICE_OBSERVER_UID, &device_observer_uid(model)),
        text_item("HAS OBS CONTEXT", DEVICE_OBSERVER_NAME, &model.name),
        text_item("HAS OBS CONTEXT", DEVICE_OBSERVER_MANUFACTURER, MANUFACTURER),
        text_item("HAS OBS CONTEXT", DEVICE_OBSERVER_MODEL_NAME, &model.name),
        code_item("HAS CONCEPT MOD", PROCEDURE_REPORTED, IMAGING_PROCEDURE),
    ];
    // TID 1600: the images the report is about.
    let entries = library.iter().map(|i| image_item(SOURCE, i, None)).collect();
    let group = container("CONTAINS", IMAGE_LIBRARY_GROUP, None, entries);
    items.push(container("CONTAINS", IMAGE_LIBRARY, None, vec![group]));

    let groups = if result.findings.is_empty() {
        let images = library.iter().map(|i| image_item(SOURCE_OF_MEASUREMENT, i, None)).collect();
        vec![negative_group(result, images, sop_uid)]
    } else {
        result
            .findings
            .iter()
            .enumerate()
            .map(|(index, finding)| {
                let images = finding_images(src, result, library, finding);
                finding_group(result, finding, index, images, sop_uid)
            })
            .collect()
    };
    items.push(container("CONTAINS", IMAGING_MEASUREMENTS, None, groups));
    items
}

/// The IMAGE items a finding refers to: the source instance (and its frame, if it has several),
/// or the instances a series model flagged, else the whole series.
fn finding_images(
    src: &Source,
    result: &InferenceResult,
    library: &[InstanceRef],
    finding: &Finding,
) -> Vec<InMemDicomObject> {
    match &result.series {
        None => {
            let frame = src.multi_frame.then(|| finding.frame.saturating_add(1));
            vec![image_item(SOURCE_OF_MEASUREMENT, &src.instance, frame)]
        }
        Some(series) => {
            let flagged: Vec<&InstanceRef> =
                library.iter().filter(|i| series.flagged_instances.contains(&i.sop_instance_uid)).collect();
            let images: Vec<&InstanceRef> = if flagged.is_empty() { library.iter().collect() } else { flagged };
            images.into_iter().map(|i| image_item(SOURCE_OF_MEASUREMENT, i, None)).collect()
        }
    }
}

/// TID 1501 for one finding.
fn finding_group(
    result: &InferenceResult,
    finding: &Finding,
    index: usize,
    images: Vec<InMemDicomObject>,
    sop_uid: &str,
) -> InMemDicomObject {
    let model = &result.model;
    let finding_code = (finding.code.value.as_str(), finding.code.system.designator(), finding.code.meaning.as_str());
    let mut items = vec![
        text_item("HAS OBS CONTEXT", TRACKING_IDENTIFIER, &format!("finding {}: {}", index + 1, finding.label)),
        uidref_item("HAS OBS CONTEXT", TRACKING_UID, &tracking_uid(sop_uid, index, model)),
        code_item("CONTAINS", FINDING, finding_code),
        text_item("HAS CONCEPT MOD", ALGORITHM_NAME, &model.name),
        text_item("HAS CONCEPT MOD", ALGORITHM_VERSION, &model.version),
    ];
    items.extend(images);
    items.push(num_item("CONTAINS", PROBABILITY, &decimal_string(finding.score), NO_UNITS));
    items.push(code_item("CONTAINS", finding_code, PRESENT));
    container("CONTAINS", MEASUREMENT_GROUP, Some("1501"), items)
}

/// TID 1501 saying the model found nothing on the images.
fn negative_group(result: &InferenceResult, images: Vec<InMemDicomObject>, sop_uid: &str) -> InMemDicomObject {
    let model = &result.model;
    let mut items = vec![
        text_item("HAS OBS CONTEXT", TRACKING_IDENTIFIER, "no findings"),
        uidref_item("HAS OBS CONTEXT", TRACKING_UID, &tracking_uid(sop_uid, 0, model)),
        text_item("HAS CONCEPT MOD", ALGORITHM_NAME, &model.name),
        text_item("HAS CONCEPT MOD", ALGORITHM_VERSION, &model.version),
    ];
    items.extend(images);
    items.push(code_item("CONTAINS", FINDING, NEGATIVE));
    container("CONTAINS", MEASUREMENT_GROUP, Some("1501"), items)
}

/// A DS value (at most 16 characters) of a score: six decimals, trailing zeros dropped.
fn decimal_string(score: f32) -> String {
    let mut s = format!("{score:.6}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.push('0');
    }
    if s.len() > 16 {
        // Far outside [0, 1]: not a probability, but still a valid DS.
        s = format!("{score:.6e}");
    }
    s
}

fn template(id: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
        text(tags::TEMPLATE_IDENTIFIER, VR::CS, id),
    ])
}

/// A content item: relationship, value type, concept name, and its value's elements.
fn content_item(
    relationship: &str,
    value_type: &str,
    name: Option<Concept<'_>>,
    value: impl IntoIterator<Item = InMemElement>,
) -> InMemDicomObject {
    let mut item = InMemDicomObject::from_element_iter(value);
    item.put(text(tags::RELATIONSHIP_TYPE, VR::CS, relationship));
    item.put(text(tags::VALUE_TYPE, VR::CS, value_type));
    if let Some(name) = name {
        item.put(sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(name)]));
    }
    item
}

fn code_item(relationship: &str, name: Concept<'_>, value: Concept<'_>) -> InMemDicomObject {
    content_item(relationship, "CODE", Some(name), [sequence(tags::CONCEPT_CODE_SEQUENCE, vec![code(value)])])
}

fn text_item(relationship: &str, name: Concept<'_>, value: &str) -> InMemDicomObject {
    content_item(relationship, "TEXT", Some(name), [text(tags::TEXT_VALUE, VR::UT, value)])
}

fn uidref_item(relationship: &str, name: Concept<'_>, uid: &str) -> InMemDicomObject {
    content_item(relationship, "UIDREF", Some(name), [text(tags::UID, VR::UI, uid)])
}

fn num_item(relationship: &str, name: Concept<'_>, value: &str, unit: Concept<'_>) -> InMemDicomObject {
    let measured = InMemDicomObject::from_element_iter([
        sequence(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code(unit)]),
        text(tags::NUMERIC_VALUE, VR::DS, value),
    ]);
    content_item(relationship, "NUM", Some(name), [sequence(tags::MEASURED_VALUE_SEQUENCE, vec![measured])])
}

/// An IMAGE item; `frame` is 1-based.
fn image_item(name: Concept<'_>, instance: &InstanceRef, frame: Option<usize>) -> InMemDicomObject {
    let mut reference = sop_reference(instance);
    if let Some(frame) = frame {
        reference.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &frame.to_string()));
    }
    content_item("CONTAINS", "IMAGE", Some(name), [sequence(tags::REFERENCED_SOP_SEQUENCE, vec![reference])])
}

fn container(
    relationship: &str,
    name: Concept<'_>,
    template_id: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut elements =
        vec![text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"), sequence(tags::CONTENT_SEQUENCE, children)];
    if let Some(id) = template_id {
        elements.push(sequence(tags::CONTENT_TEMPLATE_SEQUENCE, vec![template(id)]));
    }
    content_item(relationship, "CONTAINER", Some(name), elements)
}

/// A ReferencedSOPSequence item naming an instance.
fn sop_reference(instance: &InstanceRef) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &instance.sop_class_uid),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &instance.sop_instance_uid),
    ])
}

/// A CurrentRequestedProcedureEvidenceSequence item: the source's study, series and the
/// referenced instances.
fn evidence(src: &Source, library: &[InstanceRef]) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        sequence(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                sequence(tags::REFERENCED_SOP_SEQUENCE, library.iter().map(sop_reference).collect()),
                text(tags::SERIES_INSTANCE_UID, VR::UI, &src.series),
            ])],
        ),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &src.study),
    ])
}

#[cfg(test)]
mod tests;
