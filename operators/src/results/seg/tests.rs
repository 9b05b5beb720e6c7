//! Tests of the segmentation: its pixels and geometry, its determinism, and what external
//! readers (dciodvfy, pydicom, highdicom) say about it.

use super::*;
use crate::contract::CodeSystem;
use crate::parse_header;
use crate::results::test_support::{self, assert_no_dciodvfy_errors, items, txt};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.31";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.32";
const SOP: &str = "1.2.826.0.1.3680043.8.498.33";
const SOP_2: &str = "1.2.826.0.1.3680043.8.498.34";
const FRAME_OF_REFERENCE: &str = "1.2.826.0.1.3680043.8.498.35";
/// 2024-01-31T10:00:00Z.
const EVENT_TIME_MS: i64 = 1_706_695_200_000;
const MASK: MaskShape = MaskShape { rows: 256, columns: 256 };
/// The disc of the mask: centre row, centre column, radius (mask pixels).
const DISC: (i64, i64, i64) = (128, 100, 30);

/// A synthetic 512×512 axial CT slice at `z` mm.
fn ct_header(sop: &str, z: &str) -> InMemDicomObject {
    let mut header = test_support::ct_header(STUDY, SERIES, sop);
    for element in [
        text(tags::SLICE_THICKNESS, VR::DS, "5"),
        text(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("-128\\-128\\{z}")),
        text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"),
        text(tags::FRAME_OF_REFERENCE_UID, VR::UI, FRAME_OF_REFERENCE),
        text(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512u16)),
        text(tags::PIXEL_SPACING, VR::DS, "0.5\\0.5"),
    ] {
        header.put(element);
    }
    header
}

/// A 256×256 mask: `inside` in the disc `(row, column, radius)`, a little below elsewhere.
fn disc_mask((row, column, radius): (i64, i64, i64), inside: f32) -> Vec<f32> {
    (0..256 * 256)
        .map(|i| {
            let (r, c) = (i / 256 - row, i % 256 - column);
            if r * r + c * c <= radius * radius {
                inside
            } else {
                0.1
            }
        })
        .collect()
}

fn disc_pixels(disc: (i64, i64, i64)) -> usize {
    disc_mask(disc, 1.0).iter().filter(|v| **v >= 0.5).count()
}

fn bleed_code() -> Code {
    Code { system: CodeSystem::SnomedCt, value: "1386000".into(), meaning: "Intracranial hemorrhage".into() }
}

fn model(version: &str) -> ModelIdentity {
    ModelIdentity { name: "ct-head-bleed-seg".into(), version: version.into(), sha256: "0f".repeat(32) }
}

fn build(sources: &[SegSource<'_>], version: &str) -> Result<SegDocument, SegError> {
    let code = bleed_code();
    let segment = SegmentConcept { label: "intracranial hemorrhage", code: &code };
    build_seg(sources, MASK, 0.5, segment, &model(version), EVENT_TIME_MS)
}

fn bytes_of(doc: &SegDocument) -> Vec<u8> {
    doc.to_bytes().unwrap()
}

/// The frames' pixels unpacked, one byte per pixel.
fn unpacked(doc: &SegDocument) -> Vec<u8> {
    let data = doc.file.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let n = doc.frames * 512 * 512;
    (0..n).map(|i| (data[i / 8] >> (i % 8)) & 1).collect()
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> &InMemDicomObject {
    &items(obj, tag)[0]
}

#[test]
fn one_slice_seg_has_the_upsampled_disc_and_passes_dciodvfy() {
    let header = ct_header(SOP, "40");
    let mask = disc_mask(DISC, 0.875);
    let doc = build(&[SegSource { header: &header, frame: 0, mask: &mask }], "1.0.0").unwrap();
    assert_eq!(doc.frames, 1);
    let pixels = unpacked(&doc);
    assert_eq!(pixels.iter().filter(|p| **p == 1).count(), 4 * disc_pixels(DISC), "each mask pixel is 2x2");
    // Nearest neighbour: output pixel (r, c) is mask pixel (r / 2, c / 2).
    for (i, pixel) in pixels.iter().enumerate() {
        let (r, c) = (i / 512, i % 512);
        assert_eq!(*pixel, u8::from(mask[r / 2 * 256 + c / 2] >= 0.5), "pixel ({r}, {c})");
    }

    let bytes = bytes_of(&doc);
    let seg = parse_header(&bytes).unwrap();
    assert_eq!(seg.meta().media_storage_sop_class_uid(), uids::SEGMENTATION_STORAGE);
    assert_eq!(txt(&seg, tags::SOP_INSTANCE_UID), Some(doc.sop_instance_uid.clone()));
    assert_eq!(txt(&seg, tags::SERIES_INSTANCE_UID), Some(doc.series_instance_uid.clone()));
    assert_eq!(txt(&seg, tags::STUDY_INSTANCE_UID).as_deref(), Some(STUDY));
    assert_eq!(txt(&seg, tags::PATIENT_ID).as_deref(), Some("SYNTH-0001"));
    assert_eq!(txt(&seg, tags::MODALITY).as_deref(), Some("SEG"));
    assert_eq!(txt(&seg, tags::SERIES_NUMBER).as_deref(), Some("8003"));
    assert_eq!(txt(&seg, tags::FRAME_OF_REFERENCE_UID).as_deref(), Some(FRAME_OF_REFERENCE));
    assert_eq!(txt(&seg, tags::ROWS).as_deref(), Some("512"));
    assert_eq!(txt(&seg, tags::NUMBER_OF_FRAMES).as_deref(), Some("1"));
    assert_eq!(txt(&seg, tags::SEGMENTATION_TYPE).as_deref(), Some("BINARY"));
    assert_eq!(txt(&seg, tags::CONTENT_DATE).as_deref(), Some("20240131"));

    let segment = first_item(&seg, tags::SEGMENT_SEQUENCE);
    assert_eq!(txt(segment, tags::SEGMENT_LABEL).as_deref(), Some("intracranial hemorrhage"));
    assert_eq!(txt(segment, tags::SEGMENT_ALGORITHM_TYPE).as_deref(), Some("AUTOMATIC"));
    assert_eq!(txt(segment, tags::SEGMENT_ALGORITHM_NAME).as_deref(), Some("ct-head-bleed-seg"));
    let property = first_item(segment, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE);
    assert_eq!(txt(property, tags::CODE_VALUE).as_deref(), Some("1386000"));
    let category = first_item(segment, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE);
    assert_eq!(txt(category, tags::CODE_VALUE).as_deref(), Some("49755003"));
    let algorithm = first_item(segment, tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE);
    assert_eq!(txt(algorithm, tags::ALGORITHM_VERSION).as_deref(), Some("1.0.0"));

    let shared = first_item(&seg, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let measures = first_item(shared, tags::PIXEL_MEASURES_SEQUENCE);
    assert_eq!(txt(measures, tags::PIXEL_SPACING).as_deref(), Some("0.5\\0.5"));
    assert_eq!(txt(measures, tags::SLICE_THICKNESS).as_deref(), Some("5"));
    let orientation = first_item(shared, tags::PLANE_ORIENTATION_SEQUENCE);
    assert_eq!(txt(orientation, tags::IMAGE_ORIENTATION_PATIENT).as_deref(), Some("1\\0\\0\\0\\1\\0"));
    let frame = first_item(&seg, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let position = first_item(frame, tags::PLANE_POSITION_SEQUENCE);
    assert_eq!(txt(position, tags::IMAGE_POSITION_PATIENT).as_deref(), Some("-128\\-128\\40"));
    let source = first_item(first_item(frame, tags::DERIVATION_IMAGE_SEQUENCE), tags::SOURCE_IMAGE_SEQUENCE);
    assert_eq!(txt(source, tags::REFERENCED_SOP_INSTANCE_UID).as_deref(), Some(SOP));
    assert_eq!(txt(source, tags::REFERENCED_FRAME_NUMBER), None, "a single-frame source names no frame");
    let series = first_item(&seg, tags::REFERENCED_SERIES_SEQUENCE);
    assert_eq!(txt(series, tags::SERIES_INSTANCE_UID).as_deref(), Some(SERIES));

    assert_no_dciodvfy_errors("SEG", "Segmentation", "one-slice", &bytes);
}

#[test]
fn two_slice_seg_has_a_frame_per_slice_and_passes_dciodvfy() {
    let (upper, lower) = (ct_header(SOP_2, "45"), ct_header(SOP, "40"));
    let small = (120, 110, 12);
    let (upper_mask, lower_mask) = (disc_mask(small, 0.75), disc_mask(DISC, 0.875));
    // Given top slice first: the position index still counts along the normal (+z).
    let sources = [
        SegSource { header: &upper, frame: 0, mask: &upper_mask },
        SegSource { header: &lower, frame: 0, mask: &lower_mask },
    ];
    let doc = build(&sources, "1.0.0").unwrap();
    assert_eq!(doc.frames, 2);
    let pixels = unpacked(&doc);
    let per_frame: Vec<usize> = pixels.chunks(512 * 512).map(|f| f.iter().filter(|p| **p == 1).count()).collect();
    assert_eq!(per_frame, vec![4 * disc_pixels(small), 4 * disc_pixels(DISC)]);

    let bytes = bytes_of(&doc);
    let seg = parse_header(&bytes).unwrap();
    assert_eq!(txt(&seg, tags::NUMBER_OF_FRAMES).as_deref(), Some("2"));
    let frames = items(&seg, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let index_values: Vec<String> = frames
        .iter()
        .map(|f| txt(first_item(f, tags::FRAME_CONTENT_SEQUENCE), tags::DIMENSION_INDEX_VALUES).unwrap())
        .collect();
    assert_eq!(index_values, ["1\\2", "1\\1"]);
    let referenced: Vec<String> =
        items(first_item(&seg, tags::REFERENCED_SERIES_SEQUENCE), tags::REFERENCED_INSTANCE_SEQUENCE)
            .iter()
            .map(|i| txt(i, tags::REFERENCED_SOP_INSTANCE_UID).unwrap())
            .collect();
    assert_eq!(referenced, [SOP_2, SOP]);
    assert_eq!(
        doc.sop_instance_uid,
        seg_uid(UidRole::SeriesResult, SERIES, &model("1.0.0")),
        "a segmentation of several instances is the series'"
    );
    assert_no_dciodvfy_errors("SEG", "Segmentation", "two-slice", &bytes);

    // An empty mask gets no frame, but its slice stays referenced.
    let empty = disc_mask(DISC, 0.0);
    let sources = [
        SegSource { header: &upper, frame: 0, mask: &empty },
        SegSource { header: &lower, frame: 0, mask: &lower_mask },
    ];
    let doc = build(&sources, "1.0.0").unwrap();
    assert_eq!(doc.frames, 1);
    assert_eq!(unpacked(&doc).iter().filter(|p| **p == 1).count(), 4 * disc_pixels(DISC));
    let seg = parse_header(&bytes_of(&doc)).unwrap();
    let frame = first_item(&seg, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let source = first_item(first_item(frame, tags::DERIVATION_IMAGE_SEQUENCE), tags::SOURCE_IMAGE_SEQUENCE);
    assert_eq!(txt(source, tags::REFERENCED_SOP_INSTANCE_UID).as_deref(), Some(SOP));
    assert_no_dciodvfy_errors("SEG", "Segmentation", "two-slice-one-empty", &bytes_of(&doc));
}

#[test]
fn multi_frame_sources_name_their_frame_and_take_its_geometry() {
    let mut header = ct_header(SOP, "0");
    header.remove_element(tags::IMAGE_POSITION_PATIENT);
    header.put(text(tags::SOP_CLASS_UID, VR::UI, uids::ENHANCED_CT_IMAGE_STORAGE));
    header.put(text(tags::NUMBER_OF_FRAMES, VR::IS, "3"));
    let frame_group = |z: &str| {
        InMemDicomObject::from_element_iter([sequence(
            tags::PLANE_POSITION_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([text(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &format!("0\\0\\{z}"),
            )])],
        )])
    };
    header.put(sequence(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![frame_group("0"), frame_group("2"), frame_group("4")],
    ));
    let mask = disc_mask(DISC, 1.0);
    let doc = build(&[SegSource { header: &header, frame: 2, mask: &mask }], "1.0.0").unwrap();
    let seg = parse_header(&bytes_of(&doc)).unwrap();
    let frame = first_item(&seg, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let position = first_item(frame, tags::PLANE_POSITION_SEQUENCE);
    assert_eq!(txt(position, tags::IMAGE_POSITION_PATIENT).as_deref(), Some("0\\0\\4"));
    let source = first_item(first_item(frame, tags::DERIVATION_IMAGE_SEQUENCE), tags::SOURCE_IMAGE_SEQUENCE);
    assert_eq!(txt(source, tags::REFERENCED_FRAME_NUMBER).as_deref(), Some("3"));
    assert_eq!(doc.sop_instance_uid, seg_uid(UidRole::Instance, SOP, &model("1.0.0")));
    assert_no_dciodvfy_errors("SEG", "Segmentation", "multi-frame", &bytes_of(&doc));

    let error = build(&[SegSource { header: &header, frame: 3, mask: &mask }], "1.0.0").unwrap_err();
    assert!(matches!(error, SegError::FrameOutOfRange { index: 0, frame: 3, frames: 3 }), "{error}");
}

/// What the Python readers check: pydicom reads it; highdicom parses it as a binary SEG whose
/// one segment has the finding's code, and whose pixels on each source instance are the disc
/// of the mask upsampled 2x by nearest neighbour.
const READERS_SCRIPT: &str = r#"
import sys
import numpy as np
import pydicom
path, study = sys.argv[1:3]
slices = [arg.split(":") for arg in sys.argv[3:]]  # sop:row:column:radius
ds = pydicom.dcmread(path)
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", ds.SOPClassUID
assert ds.StudyInstanceUID == study
try:
    import highdicom as hd
except ImportError:
    print("highdicom: not installed")
    sys.exit(0)
seg = hd.seg.segread(path)
assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY, seg.segmentation_type
assert seg.number_of_segments == 1, seg.number_of_segments
description = seg.get_segment_description(1)
assert description.segmented_property_type.value == "1386000", description.segmented_property_type
assert description.segmented_property_category.value == "49755003"
assert description.segment_label == "intracranial hemorrhage", description.segment_label
assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
assert description.algorithm_identification[0].AlgorithmName == "ct-head-bleed-seg"
r, c = np.mgrid[0:256, 0:256]
for sop, row, column, radius in slices:
    disc = ((r - int(row)) ** 2 + (c - int(column)) ** 2 <= int(radius) ** 2).astype(np.uint8)
    expected = np.kron(disc, np.ones((2, 2), dtype=np.uint8))
    pixels = seg.get_pixels_by_source_instance([sop], segment_numbers=[1])
    assert pixels.shape == (1, 512, 512, 1), pixels.shape
    assert np.array_equal(pixels[0, :, :, 0], expected), (int(pixels.sum()), int(expected.sum()))
    print("highdicom:", sop, "segment", description.segmented_property_type.value, "pixels", int(pixels.sum()), "= 4 x", int(disc.sum()))
"#;

/// pydicom reads the object; highdicom, where installed (pip install highdicom), parses it.
fn assert_python_readers_agree(name: &str, bytes: &[u8], slices: &[(&str, (i64, i64, i64))]) {
    let mut args = vec![STUDY.to_string()];
    args.extend(slices.iter().map(|(sop, (row, column, radius))| format!("{sop}:{row}:{column}:{radius}")));
    test_support::assert_python_readers_agree("SEG", name, bytes, READERS_SCRIPT, &args);
}

#[test]
fn pydicom_and_highdicom_read_it() {
    let header = ct_header(SOP, "40");
    let mask = disc_mask(DISC, 0.875);
    let doc = build(&[SegSource { header: &header, frame: 0, mask: &mask }], "1.0.0").unwrap();
    assert_python_readers_agree("one-slice", &bytes_of(&doc), &[(SOP, DISC)]);

    let upper = ct_header(SOP_2, "45");
    let small = (120, 110, 12);
    let upper_mask = disc_mask(small, 0.75);
    let sources = [
        SegSource { header: &header, frame: 0, mask: &mask },
        SegSource { header: &upper, frame: 0, mask: &upper_mask },
    ];
    let doc = build(&sources, "1.0.0").unwrap();
    assert_python_readers_agree("two-slice", &bytes_of(&doc), &[(SOP, DISC), (SOP_2, small)]);
}

#[test]
fn same_inputs_same_bytes_other_version_other_uids() {
    let header = ct_header(SOP, "40");
    let mask = disc_mask(DISC, 0.875);
    let sources = [SegSource { header: &header, frame: 0, mask: &mask }];
    let a = build(&sources, "1.0.0").unwrap();
    let b = build(&sources, "1.0.0").unwrap();
    assert_eq!(bytes_of(&a), bytes_of(&b), "a replay gives the same bytes");
    assert_eq!((&a.series_instance_uid, &a.sop_instance_uid), (&b.series_instance_uid, &b.sop_instance_uid));
    assert!(a.sop_instance_uid.starts_with("2.25.") && a.sop_instance_uid.len() <= 64);
    assert_ne!(a.sop_instance_uid, a.series_instance_uid);

    let other = build(&sources, "1.0.1").unwrap();
    assert_ne!(a.series_instance_uid, other.series_instance_uid);
    assert_ne!(a.sop_instance_uid, other.sop_instance_uid);

    // Not the SR's UIDs of the same source and model.
    let model = model("1.0.0");
    assert_ne!(a.sop_instance_uid, result_uid(UidRole::Instance, ObjectKind::Sr, SOP, &model));
    assert_ne!(a.series_instance_uid, result_uid(UidRole::Series, ObjectKind::Sr, SERIES, &model));

    // Another slice of the series: same result series, another object.
    let next = ct_header(SOP_2, "45");
    let c = build(&[SegSource { header: &next, frame: 0, mask: &mask }], "1.0.0").unwrap();
    assert_eq!(a.series_instance_uid, c.series_instance_uid);
    assert_ne!(a.sop_instance_uid, c.sop_instance_uid);
}

#[test]
fn bad_inputs_are_errors_without_patient_data() {
    let header = ct_header(SOP, "40");
    let mask = disc_mask(DISC, 1.0);
    let one = |header: &InMemDicomObject, mask: &[f32]| {
        build(&[SegSource { header, frame: 0, mask }], "1.0.0").map(|_| ()).unwrap_err()
    };

    let error = one(&header, &disc_mask(DISC, 0.0));
    assert!(matches!(error, SegError::Empty { sources: 1 }), "{error}");
    let error = one(&header, &mask[..100]);
    assert!(matches!(error, SegError::MaskSize { index: 0, expected: 65536, actual: 100, .. }), "{error}");
    let mut no_sop = ct_header(SOP, "40");
    no_sop.remove_element(tags::SOP_INSTANCE_UID);
    let error = one(&no_sop, &mask);
    assert!(matches!(error, SegError::MissingAttribute { index: 0, attribute: "SOPInstanceUID" }), "{error}");
    assert!(!error.to_string().contains("SYNTH"));
    let mut no_rows = ct_header(SOP, "40");
    no_rows.remove_element(tags::ROWS);
    assert!(matches!(one(&no_rows, &mask), SegError::MissingAttribute { attribute: "Rows", .. }));

    let mut smaller = ct_header(SOP_2, "45");
    smaller.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(256u16)));
    let sources =
        [SegSource { header: &header, frame: 0, mask: &mask }, SegSource { header: &smaller, frame: 0, mask: &mask }];
    let error = build(&sources, "1.0.0").unwrap_err();
    assert!(matches!(error, SegError::Mismatch { index: 1, attribute: "Rows" }), "{error}");

    assert!(matches!(build(&[], "1.0.0").unwrap_err(), SegError::NoSources));
    let code = bleed_code();
    let segment = SegmentConcept { label: "x", code: &code };
    let sources = [SegSource { header: &header, frame: 0, mask: &mask }];
    let error = build_seg(&sources, MASK, f32::NAN, segment, &model("1"), EVENT_TIME_MS).unwrap_err();
    assert!(matches!(error, SegError::NonFiniteThreshold));
}

#[test]
fn pixel_helpers() {
    let mut bits = PackedBits::with_capacity(16);
    for bit in [1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1] {
        bits.push(bit == 1);
    }
    bits.truncate(9);
    assert_eq!(bits.bits, 9);
    assert_eq!(bits.into_even_bytes(), vec![0x81, 0x01], "truncated, padded to an even length");
    let unpack = |bits: PackedBits| -> Vec<u8> { (0..bits.bits).map(|i| (bits.bytes[i / 8] >> (i % 8)) & 1).collect() };
    // 2x2 to 3x3: pixel centres pick the nearest mask pixel; NaN is not in the segment.
    let mut out = PackedBits::with_capacity(9);
    let shape = MaskShape { rows: 2, columns: 2 };
    assert!(append_resampled(&mut out, &[1.0, 0.0, 0.0, f32::NAN], shape, 0.5, 3, 3));
    assert_eq!(unpack(out), vec![1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Downsampling works too.
    let mut out = PackedBits::with_capacity(2);
    assert!(append_resampled(&mut out, &[0.0, 1.0, 0.0, 0.0], MaskShape { rows: 1, columns: 4 }, 0.5, 1, 2));
    assert_eq!(unpack(out), vec![1, 0]);
    assert_eq!(decimals::<3>("1\\2.5\\-3"), Some([1.0, 2.5, -3.0]));
    assert_eq!(decimals::<3>("1\\2"), None);
}
