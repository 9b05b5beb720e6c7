//! A segmentation model's mask as a DICOM Segmentation (SEG Storage, PS3.3 A.51): a binary
//! segmentation with one segment, in a new series of the source's study.
//!
//! What goes in:
//!
//! * **Pixels.** The model's mask (its own size, e.g. 256×256) is thresholded and resampled
//!   with nearest neighbour to the source image's Rows and Columns, so the segmentation shares
//!   the source's pixel grid: its PixelSpacing, ImagePositionPatient and ImageOrientationPatient
//!   are the source frame's, and a viewer overlays it without resampling. Frames are 1-bit
//!   packed (SegmentationType BINARY), one per source frame whose mask is not empty.
//! * **The segment.** Label and description from the finding's label, property category
//!   (49755003, SCT, "Morphologically abnormal structure"), property type the finding's code,
//!   algorithm type AUTOMATIC, and the model as the algorithm (family
//!   (123110, DCM, "Artificial Intelligence"), name, version).
//! * **Functional groups.** Per frame: the source image (and frame) it derives from
//!   (DerivationImageSequence), the segment it shows, its plane position, and its dimension
//!   index values (segment number, position). Shared where every source agrees, else per frame:
//!   plane orientation and pixel measures. The dimension organization is segment, then
//!   ImagePositionPatient (segment only where the sources have no position).
//! * **References.** ReferencedSeriesSequence names every source instance; FrameOfReferenceUID,
//!   patient and study attributes are copied from the source, because the PACS files the object
//!   by them; they never appear in errors.
//!
//! An all-empty mask is refused ([`SegError::Empty`]): a segmentation of nothing says less than
//! the SR's "Negative", and a SEG without frames is not valid.
//!
//! UIDs are derived from the source's UIDs and the model's identity, as for the SR: a
//! segmentation of one instance (all sources are frames of it) is keyed by that instance's
//! SOPInstanceUID, one of several instances by the series' UID; the series is keyed by the
//! source series. The content date and time come from the argument, so the same inputs give the
//! same bytes and a replay replaces the object in the PACS.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

use super::uids::{result_uid, ObjectKind, UidRole};
use crate::contract::{Code, Finding, ModelIdentity};
use crate::dicom::datetime::utc_date_time;
use crate::dicom::elements::{code_item, copy_or_empty, copy_patient_and_study, long_string, sequence, text, Concept};
use crate::element_text;
use crate::infer::manifest::FindingSpec;

/// Manufacturer (0008,0070) of the segmentations.
const MANUFACTURER: &str = super::sr::MANUFACTURER;
/// Added to the source's SeriesNumber: after the images, apart from the SR (7000) and key
/// object (9000) series.
const SERIES_NUMBER_OFFSET: i64 = 8000;
/// The only segment's number.
const SEGMENT_NUMBER: u16 = 1;

const MORPHOLOGICALLY_ABNORMAL_STRUCTURE: Concept<'static> = ("49755003", "SCT", "Morphologically abnormal structure");
const ARTIFICIAL_INTELLIGENCE: Concept<'static> = ("123110", "DCM", "Artificial Intelligence");
const SOURCE_IMAGE_FOR_PROCESSING: Concept<'static> = ("121322", "DCM", "Source image for image processing operation");
const SEGMENTATION_DERIVATION: Concept<'static> = ("113076", "DCM", "Segmentation");

/// One source frame and the model's mask on it.
#[derive(Debug, Clone, Copy)]
pub struct SegSource<'a> {
    /// The source instance's parsed header (no pixel data needed).
    pub header: &'a InMemDicomObject,
    /// The frame of it the mask is of, 0-based (0 for single-frame images).
    pub frame: usize,
    /// The model's mask, row-major, at the model's size ([`MaskShape`]); a value at or above
    /// the threshold is in the segment, NaN is not.
    pub mask: &'a [f32],
}

/// The size of the model's masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskShape {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
}

/// What the segment is: the finding's label and coded concept.
#[derive(Debug, Clone, Copy)]
pub struct SegmentConcept<'a> {
    /// SegmentLabel and SegmentDescription.
    pub label: &'a str,
    /// SegmentedPropertyTypeCodeSequence.
    pub code: &'a Code,
}

impl<'a> From<&'a Finding> for SegmentConcept<'a> {
    fn from(finding: &'a Finding) -> Self {
        Self { label: &finding.label, code: &finding.code }
    }
}

impl<'a> From<&'a FindingSpec> for SegmentConcept<'a> {
    fn from(spec: &'a FindingSpec) -> Self {
        Self { label: &spec.label, code: &spec.code }
    }
}

/// Why a segmentation could not be built. Never carries patient data: only attribute names and
/// indices.
#[derive(Debug, thiserror::Error)]
pub enum SegError {
    /// No source was given.
    #[error("a segmentation needs at least one source image")]
    NoSources,
    /// A source header lacks an attribute the segmentation must reference or copy.
    #[error("source {index} has no {attribute}, so a segmentation cannot reference it")]
    MissingAttribute {
        /// The source's place in the arguments.
        index: usize,
        /// The attribute's keyword.
        attribute: &'static str,
    },
    /// Sources disagree on something one segmentation has once.
    #[error("source {index} has another {attribute} than source 0; one segmentation cannot hold both")]
    Mismatch {
        /// The source's place in the arguments.
        index: usize,
        /// The attribute's keyword.
        attribute: &'static str,
    },
    /// A source's frame is not in its instance.
    #[error("source {index} names frame {frame} (0-based) of an instance of {frames} frames")]
    FrameOutOfRange {
        /// The source's place in the arguments.
        index: usize,
        /// The frame named.
        frame: usize,
        /// NumberOfFrames of the instance.
        frames: usize,
    },
    /// A mask has another length than `rows * columns`, or the shape is empty.
    #[error("mask {index} has {actual} values, the mask shape {rows}x{columns} needs {expected}")]
    MaskSize {
        /// The source's place in the arguments.
        index: usize,
        /// Mask rows.
        rows: usize,
        /// Mask columns.
        columns: usize,
        /// `rows * columns`.
        expected: usize,
        /// The mask's length.
        actual: usize,
    },
    /// The threshold is NaN or infinite.
    #[error("the mask threshold is not a finite number")]
    NonFiniteThreshold,
    /// No mask value reached the threshold: nothing to segment.
    #[error("no mask value reached the threshold on any of the {sources} source frames; write no segmentation")]
    Empty {
        /// How many source frames were given.
        sources: usize,
    },
    /// dicom-object refused the file meta or the encoding.
    #[error("{what} the segmentation failed: {reason}")]
    Encoding {
        /// What was being done.
        what: &'static str,
        /// dicom-object's error.
        reason: String,
    },
}

/// A built segmentation: the Part-10 object and the UIDs a sink matches the PACS's answer on.
#[derive(Debug, Clone)]
pub struct SegDocument {
    /// The object, with its file meta (explicit VR little endian).
    pub file: FileDicomObject<InMemDicomObject>,
    /// SeriesInstanceUID of the result series.
    pub series_instance_uid: String,
    /// SOPInstanceUID of the segmentation.
    pub sop_instance_uid: String,
    /// How many frames it holds (source frames whose mask was not empty).
    pub frames: usize,
}

impl SegDocument {
    /// The Part-10 bytes (preamble, file meta, data set in explicit VR little endian).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SegError> {
        let mut bytes = Vec::with_capacity(8192);
        self.file.write_all(&mut bytes).map_err(|e| SegError::Encoding { what: "encoding", reason: e.to_string() })?;
        Ok(bytes)
    }
}

/// What the segmentation takes from one source.
struct Source {
    study: String,
    series: String,
    sop_class: String,
    sop_instance: String,
    /// 1-based, where the instance has several frames.
    frame_number: Option<usize>,
    rows: usize,
    columns: usize,
    frame_of_reference: Option<String>,
    position: Option<String>,
    orientation: Option<String>,
    pixel_spacing: Option<String>,
    slice_thickness: Option<String>,
}

impl Source {
    fn read(index: usize, source: &SegSource<'_>) -> Result<Self, SegError> {
        let header = source.header;
        let required = |tag: Tag, attribute: &'static str| {
            element_text(header, tag).ok_or(SegError::MissingAttribute { index, attribute })
        };
        let number = |tag: Tag, attribute: &'static str| {
            required(tag, attribute)?
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=usize::from(u16::MAX)).contains(n))
                .ok_or(SegError::MissingAttribute { index, attribute })
        };
        let frames = element_text(header, tags::NUMBER_OF_FRAMES).and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
        if source.frame >= frames {
            return Err(SegError::FrameOutOfRange { index, frame: source.frame, frames });
        }
        let geometry = |group: Tag, tag: Tag| frame_value(header, source.frame, group, tag);
        Ok(Self {
            study: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
            series: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            sop_class: required(tags::SOP_CLASS_UID, "SOPClassUID")?,
            sop_instance: required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
            frame_number: (frames > 1).then_some(source.frame + 1),
            rows: number(tags::ROWS, "Rows")?,
            columns: number(tags::COLUMNS, "Columns")?,
            frame_of_reference: element_text(header, tags::FRAME_OF_REFERENCE_UID),
            position: geometry(tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT),
            orientation: geometry(tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT),
            pixel_spacing: geometry(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING),
            slice_thickness: geometry(tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS),
        })
    }
}

/// Builds the binary segmentation of `segment` that `model` drew on `sources`.
///
/// Each source's mask (`shape`, row-major) is thresholded at `threshold` and resampled with
/// nearest neighbour to the source's Rows×Columns; sources whose mask is empty get no frame,
/// and if every mask is empty the answer is [`SegError::Empty`]. The sources must share the
/// study, Rows, Columns and FrameOfReferenceUID; they may be frames of one instance, slices of
/// a series, or of several series of the study.
///
/// `content_time_ms` (Unix time in milliseconds, written as UTC) becomes ContentDate and
/// ContentTime: pass the event's time, not the clock, so a replay gives the same bytes.
pub fn build_seg(
    sources: &[SegSource<'_>],
    shape: MaskShape,
    threshold: f32,
    segment: SegmentConcept<'_>,
    model: &ModelIdentity,
    content_time_ms: i64,
) -> Result<SegDocument, SegError> {
    let first_header = sources.first().ok_or(SegError::NoSources)?.header;
    if !threshold.is_finite() {
        return Err(SegError::NonFiniteThreshold);
    }
    let srcs = sources.iter().enumerate().map(|(i, s)| Source::read(i, s)).collect::<Result<Vec<_>, _>>()?;
    let first = &srcs[0];
    for (index, src) in srcs.iter().enumerate().skip(1) {
        let mismatch = |attribute| Err(SegError::Mismatch { index, attribute });
        if src.study != first.study {
            return mismatch("StudyInstanceUID");
        }
        if src.rows != first.rows {
            return mismatch("Rows");
        }
        if src.columns != first.columns {
            return mismatch("Columns");
        }
        if src.frame_of_reference != first.frame_of_reference {
            return mismatch("FrameOfReferenceUID");
        }
    }
    let expected = shape.rows.saturating_mul(shape.columns);
    for (index, source) in sources.iter().enumerate() {
        if expected == 0 || source.mask.len() != expected {
            let (rows, columns, actual) = (shape.rows, shape.columns, source.mask.len());
            return Err(SegError::MaskSize { index, rows, columns, expected, actual });
        }
    }

    // Frames: the source frames whose resampled mask has a pixel in the segment.
    let (rows, columns) = (first.rows, first.columns);
    let mut pixels = PackedBits::with_capacity(sources.len() * rows * columns);
    let mut framed: Vec<&Source> = Vec::new();
    for (source, src) in sources.iter().zip(&srcs) {
        if append_resampled(&mut pixels, source.mask, shape, threshold, rows, columns) {
            framed.push(src);
        } else {
            pixels.truncate(framed.len() * rows * columns);
        }
    }
    if framed.is_empty() {
        return Err(SegError::Empty { sources: sources.len() });
    }

    // One instance (all sources are frames of it) or several: as the SR, keyed by the instance
    // or by the series.
    let sop_uid = if srcs.iter().all(|s| s.sop_instance == first.sop_instance) {
        seg_uid(UidRole::Instance, &first.sop_instance, model)
    } else {
        seg_uid(UidRole::SeriesResult, &first.series, model)
    };
    let series_uid = seg_uid(UidRole::Series, &first.series, model);
    let dimension_uid = seg_uid(UidRole::Tracking, &format!("{sop_uid}/dimension-organization"), model);
    let series_number = element_text(first_header, tags::SERIES_NUMBER)
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
        .saturating_add(SERIES_NUMBER_OFFSET)
        .clamp(0, i32::MAX as i64);
    let (content_date, content_time) = utc_date_time(content_time_ms);

    let mut seg = InMemDicomObject::new_empty();
    // SOP Common.
    seg.put(text(tags::SOP_CLASS_UID, VR::UI, uids::SEGMENTATION_STORAGE));
    seg.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid));
    // Patient and General Study, with the character set of the names and IDs they copy.
    copy_patient_and_study(&mut seg, first_header, &first.study);
    // General Series, Segmentation Series.
    seg.put(text(tags::MODALITY, VR::CS, "SEG"));
    seg.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid));
    seg.put(text(tags::SERIES_NUMBER, VR::IS, &series_number.to_string()));
    let description = long_string(&format!("AI segmentation: {} {}", model.name, model.version));
    seg.put(text(tags::SERIES_DESCRIPTION, VR::LO, &description));
    // Frame of Reference.
    if let Some(frame_of_reference) = &first.frame_of_reference {
        seg.put(text(tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference));
        copy_or_empty(&mut seg, first_header, tags::POSITION_REFERENCE_INDICATOR, VR::LO);
    }
    // General Equipment, Enhanced General Equipment: the model is the device.
    seg.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    seg.put(text(tags::MANUFACTURER_MODEL_NAME, VR::LO, &long_string(&model.name)));
    seg.put(text(tags::DEVICE_SERIAL_NUMBER, VR::LO, &long_string(&model.sha256)));
    seg.put(text(tags::SOFTWARE_VERSIONS, VR::LO, &long_string(&model.version)));
    // General Image, Segmentation Image, Image Pixel.
    seg.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    seg.put(text(tags::CONTENT_DATE, VR::DA, &content_date));
    seg.put(text(tags::CONTENT_TIME, VR::TM, &content_time));
    seg.put(text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"));
    seg.put(text(tags::CONTENT_LABEL, VR::CS, "AI_SEGMENTATION"));
    seg.put(text(tags::CONTENT_DESCRIPTION, VR::LO, &description));
    seg.put(DataElement::empty(tags::CONTENT_CREATOR_NAME, VR::PN));
    seg.put(text(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"));
    seg.put(text(tags::SEGMENTS_OVERLAP, VR::CS, "NO"));
    seg.put(sequence(tags::SEGMENT_SEQUENCE, vec![segment_item(segment, model)]));
    seg.put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    seg.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)));
    seg.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    seg.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16)));
    seg.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(columns as u16)));
    seg.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1u16)));
    seg.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(1u16)));
    seg.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(0u16)));
    seg.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)));
    // Multi-frame Functional Groups, Multi-frame Dimension.
    seg.put(text(tags::NUMBER_OF_FRAMES, VR::IS, &framed.len().to_string()));
    functional_groups(&mut seg, &framed);
    dimensions(&mut seg, &dimension_uid, framed.iter().all(|s| s.position.is_some()));
    // Common Instance Reference.
    seg.put(sequence(tags::REFERENCED_SERIES_SEQUENCE, referenced_series(&srcs)));
    seg.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels.into_even_bytes())));

    let file = seg
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| SegError::Encoding { what: "preparing the file meta of", reason: e.to_string() })?;
    Ok(SegDocument { file, series_instance_uid: series_uid, sop_instance_uid: sop_uid, frames: framed.len() })
}

/// A UID of the segmentation.
fn seg_uid(role: UidRole, key: &str, model: &ModelIdentity) -> String {
    result_uid(role, ObjectKind::Seg, key, model)
}

/// The SegmentSequence item.
fn segment_item(segment: SegmentConcept<'_>, model: &ModelIdentity) -> InMemDicomObject {
    let code = segment.code;
    let property = (code.value.as_str(), code.system.designator(), code.meaning.as_str());
    let label = long_string(segment.label);
    let algorithm = InMemDicomObject::from_element_iter([
        sequence(tags::ALGORITHM_FAMILY_CODE_SEQUENCE, vec![code_item(ARTIFICIAL_INTELLIGENCE)]),
        text(tags::ALGORITHM_NAME, VR::LO, &long_string(&model.name)),
        text(tags::ALGORITHM_VERSION, VR::LO, &long_string(&model.version)),
    ]);
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(SEGMENT_NUMBER)),
        text(tags::SEGMENT_LABEL, VR::LO, &label),
        text(tags::SEGMENT_DESCRIPTION, VR::ST, &label),
        text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, &long_string(&model.name)),
        sequence(tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE, vec![algorithm]),
        sequence(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code_item(MORPHOLOGICALLY_ABNORMAL_STRUCTURE)]),
        sequence(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code_item(property)]),
    ])
}

/// Shared and per-frame functional groups. Orientation and pixel measures are shared where
/// every frame has the same, else per frame.
fn functional_groups(seg: &mut InMemDicomObject, framed: &[&Source]) {
    let orientation = |s: &Source| s.orientation.clone().map(|o| text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &o));
    let measures = |s: &Source| {
        let elements: Vec<InMemElement> = [
            s.pixel_spacing.as_deref().map(|v| text(tags::PIXEL_SPACING, VR::DS, v)),
            s.slice_thickness.as_deref().map(|v| text(tags::SLICE_THICKNESS, VR::DS, v)),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!elements.is_empty()).then_some(elements)
    };
    let first = framed[0];
    let shared_orientation = framed.iter().all(|s| s.orientation == first.orientation);
    let shared_measures =
        framed.iter().all(|s| s.pixel_spacing == first.pixel_spacing && s.slice_thickness == first.slice_thickness);

    let mut shared = InMemDicomObject::new_empty();
    if shared_orientation {
        if let Some(element) = orientation(framed[0]) {
            shared
                .put(sequence(tags::PLANE_ORIENTATION_SEQUENCE, vec![InMemDicomObject::from_element_iter([element])]));
        }
    }
    if shared_measures {
        if let Some(elements) = measures(framed[0]) {
            shared.put(sequence(tags::PIXEL_MEASURES_SEQUENCE, vec![InMemDicomObject::from_element_iter(elements)]));
        }
    }
    seg.put(sequence(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));

    let position_index = position_indices(framed);
    let per_frame = framed
        .iter()
        .zip(&position_index)
        .map(|(src, position)| {
            let mut group = InMemDicomObject::new_empty();
            group.put(sequence(tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation(src)]));
            let mut index_values = vec![u32::from(SEGMENT_NUMBER)];
            index_values.extend(position);
            group.put(sequence(
                tags::FRAME_CONTENT_SEQUENCE,
                vec![InMemDicomObject::from_element_iter([DataElement::new(
                    tags::DIMENSION_INDEX_VALUES,
                    VR::UL,
                    PrimitiveValue::U32(index_values.into_iter().collect()),
                )])],
            ));
            if let Some(position) = &src.position {
                let item = InMemDicomObject::from_element_iter([text(tags::IMAGE_POSITION_PATIENT, VR::DS, position)]);
                group.put(sequence(tags::PLANE_POSITION_SEQUENCE, vec![item]));
            }
            if !shared_orientation {
                if let Some(element) = orientation(src) {
                    let item = InMemDicomObject::from_element_iter([element]);
                    group.put(sequence(tags::PLANE_ORIENTATION_SEQUENCE, vec![item]));
                }
            }
            if !shared_measures {
                if let Some(elements) = measures(src) {
                    let item = InMemDicomObject::from_element_iter(elements);
                    group.put(sequence(tags::PIXEL_MEASURES_SEQUENCE, vec![item]));
                }
            }
            let segment = InMemDicomObject::from_element_iter([DataElement::new(
                tags::REFERENCED_SEGMENT_NUMBER,
                VR::US,
                PrimitiveValue::from(SEGMENT_NUMBER),
            )]);
            group.put(sequence(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![segment]));
            group
        })
        .collect();
    seg.put(sequence(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
}

/// The 1-based index of each frame's ImagePositionPatient among the distinct positions, in
/// order along the slice normal (order of appearance where a position or orientation does not
/// parse); `None` for every frame unless all have a position.
fn position_indices(framed: &[&Source]) -> Vec<Option<u32>> {
    let positions: Option<Vec<&str>> = framed.iter().map(|s| s.position.as_deref()).collect();
    let Some(positions) = positions else { return vec![None; framed.len()] };
    let normal = framed[0]
        .orientation
        .as_deref()
        .and_then(decimals::<6>)
        .map(|o| [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]]);
    let along = |position: &str| -> Option<f64> {
        let (p, n) = (decimals::<3>(position)?, normal?);
        Some(p[0] * n[0] + p[1] * n[1] + p[2] * n[2])
    };
    let mut distinct: Vec<&str> = Vec::new();
    for position in &positions {
        if !distinct.contains(position) {
            distinct.push(position);
        }
    }
    if distinct.iter().all(|p| along(p).is_some_and(f64::is_finite)) {
        // Stable: equal projections keep their order of appearance.
        distinct.sort_by(|a, b| along(a).unwrap_or(0.0).total_cmp(&along(b).unwrap_or(0.0)));
    }
    positions.iter().map(|p| distinct.iter().position(|d| d == p).map(|i| i as u32 + 1)).collect()
}

/// `N` decimal values of a multi-valued DS text.
fn decimals<const N: usize>(value: &str) -> Option<[f64; N]> {
    let mut out = [0.0; N];
    let mut parts = value.split('\\');
    for slot in &mut out {
        *slot = parts.next()?.trim().parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// DimensionOrganizationSequence and DimensionIndexSequence: segment, then position.
fn dimensions(seg: &mut InMemDicomObject, dimension_uid: &str, with_position: bool) {
    seg.put(sequence(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([text(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_uid)])],
    ));
    let index = |pointer: Tag, group: Tag, label: &str| {
        InMemDicomObject::from_element_iter([
            text(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_uid),
            DataElement::new(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags([pointer].into_iter().collect()),
            ),
            DataElement::new(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags([group].into_iter().collect()),
            ),
            text(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    let mut indices =
        vec![index(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "Segment Number")];
    if with_position {
        indices.push(index(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "Image Position Patient"));
    }
    seg.put(sequence(tags::DIMENSION_INDEX_SEQUENCE, indices));
}

/// A DerivationImageSequence item: the source image (and frame) the frame was segmented on.
fn derivation(src: &Source) -> InMemDicomObject {
    let mut source_image = InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &src.sop_instance),
        sequence(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE, vec![code_item(SOURCE_IMAGE_FOR_PROCESSING)]),
        // The mask is resampled onto the source's pixel grid.
        text(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
    ]);
    if let Some(frame) = src.frame_number {
        source_image.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &frame.to_string()));
    }
    InMemDicomObject::from_element_iter([
        sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image]),
        sequence(tags::DERIVATION_CODE_SEQUENCE, vec![code_item(SEGMENTATION_DERIVATION)]),
    ])
}

/// ReferencedSeriesSequence: every source instance once, by series, in order of appearance.
fn referenced_series(srcs: &[Source]) -> Vec<InMemDicomObject> {
    let mut series: Vec<(&str, Vec<&Source>)> = Vec::new();
    for src in srcs {
        match series.iter_mut().find(|(uid, _)| *uid == src.series) {
            Some((_, instances)) => {
                if !instances.iter().any(|i| i.sop_instance == src.sop_instance) {
                    instances.push(src);
                }
            }
            None => series.push((&src.series, vec![src])),
        }
    }
    series
        .into_iter()
        .map(|(uid, instances)| {
            let instances = instances
                .into_iter()
                .map(|i| {
                    InMemDicomObject::from_element_iter([
                        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &i.sop_class),
                        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &i.sop_instance),
                    ])
                })
                .collect();
            InMemDicomObject::from_element_iter([
                sequence(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
                text(tags::SERIES_INSTANCE_UID, VR::UI, uid),
            ])
        })
        .collect()
}

/// Appends the mask thresholded and resampled to `rows`×`columns` ([`resampled`]); says
/// whether any pixel is set.
fn append_resampled(
    out: &mut PackedBits,
    mask: &[f32],
    shape: MaskShape,
    threshold: f32,
    rows: usize,
    columns: usize,
) -> bool {
    let mut any = false;
    for set in resampled(mask, shape, threshold, rows, columns) {
        any |= set;
        out.push(set);
    }
    any
}

/// The mask thresholded and resampled (nearest neighbour, pixel centres) onto
/// `rows`×`columns`, row by row: what the SEG stores and the overlay outlines.
pub(super) fn resampled(
    mask: &[f32],
    shape: MaskShape,
    threshold: f32,
    rows: usize,
    columns: usize,
) -> impl Iterator<Item = bool> + '_ {
    // The mask column of each output column, computed once.
    let source_columns: Vec<usize> = (0..columns).map(|c| (2 * c + 1) * shape.columns / (2 * columns)).collect();
    (0..rows).flat_map(move |r| {
        let mask_row = &mask[(2 * r + 1) * shape.rows / (2 * rows) * shape.columns..][..shape.columns];
        source_columns.clone().into_iter().map(move |c| mask_row[c] >= threshold)
    })
}

/// Pixels packed 1 bit each (PS3.5 8.1.1 and D.2): they follow each other across frames
/// without padding, the first in a byte's least significant bit.
struct PackedBits {
    bytes: Vec<u8>,
    bits: usize,
}

impl PackedBits {
    fn with_capacity(bits: usize) -> Self {
        Self { bytes: Vec::with_capacity(bits.div_ceil(8) + 1), bits: 0 }
    }

    fn push(&mut self, bit: bool) {
        if self.bits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            *self.bytes.last_mut().expect("a byte was pushed") |= 1 << (self.bits % 8);
        }
        self.bits += 1;
    }

    /// Drops the bits from `bits` on.
    fn truncate(&mut self, bits: usize) {
        if bits >= self.bits {
            return;
        }
        self.bytes.truncate(bits.div_ceil(8));
        if let (Some(last), rest @ 1..) = (self.bytes.last_mut(), bits % 8) {
            *last &= (1u8 << rest) - 1;
        }
        self.bits = bits;
    }

    /// The bytes, padded to an even length (a value's length is even).
    fn into_even_bytes(mut self) -> Vec<u8> {
        if self.bytes.len() % 2 == 1 {
            self.bytes.push(0);
        }
        self.bytes
    }
}

/// The value of `tag` for `frame`: the top-level attribute of a single-frame image, else the
/// one in the frame's or the shared functional group `group`.
fn frame_value(header: &InMemDicomObject, frame: usize, group: Tag, tag: Tag) -> Option<String> {
    let in_group = |groups: Tag, index: usize| {
        let item = header.element_opt(groups).ok()??.items()?.get(index)?;
        let inner = item.element_opt(group).ok()??.items()?.first()?;
        element_text(inner, tag)
    };
    element_text(header, tag)
        .or_else(|| in_group(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame))
        .or_else(|| in_group(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0))
}

#[cfg(test)]
mod tests;
