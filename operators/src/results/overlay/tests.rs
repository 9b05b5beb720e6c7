//! Tests of the overlay: its pixels (window, outline, box, text), its determinism, its errors,
//! and what external readers (dciodvfy, pydicom) say about it.

use super::*;
use crate::parse_header;
use crate::results::test_support::{self, assert_no_dciodvfy_errors, items, txt};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.41";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.42";
const SOP: &str = "1.2.826.0.1.3680043.8.498.43";
/// 2024-01-31T10:00:00Z.
const EVENT_TIME_MS: i64 = 1_706_695_200_000;
const MASK: MaskShape = MaskShape { rows: 256, columns: 256 };
/// The disc of the mask (and the bright disc of the image): centre row, centre column, radius
/// in mask pixels; on the 512×512 image it covers rows 196..=317 and columns 140..=261.
const DISC: (usize, usize, usize) = (128, 100, 30);
/// The source's window.
const WINDOW: (f64, f64) = (40.0, 80.0);
/// The fake patient data of `test_support::ct_header`, which no error may repeat.
const PHI: [&str; 5] = ["Synthetic^Patient", "SYNTH-0001", "19700101", "SYNTH-ACC-1", "Synthetic^Referrer"];

/// Whether pixel `(r, c)` of a 512×512 image is in the disc of the 256×256 mask, as nearest
/// neighbour resampling puts it.
fn in_disc(r: usize, c: usize) -> bool {
    let (dr, dc) = ((r / 2) as i64 - DISC.0 as i64, (c / 2) as i64 - DISC.1 as i64);
    dr * dr + dc * dc <= (DISC.2 * DISC.2) as i64
}

/// The synthetic head's Hounsfield units: air outside a circle, a ramp inside (so the window
/// maps it to many grey levels), the bright disc at 80 HU.
fn head_hu(r: usize, c: usize) -> i32 {
    let (dr, dc) = (r as i64 - 256, c as i64 - 256);
    if dr * dr + dc * dc > 230 * 230 {
        -1000
    } else if in_disc(r, c) {
        80
    } else {
        ((r + 2 * c) % 100) as i32 - 10
    }
}

/// PS3.3 C.11.2.1.2.1, written out again for the test.
fn windowed(hu: f64, (center, width): (f64, f64)) -> f64 {
    if hu <= center - 0.5 - (width - 1.0) / 2.0 {
        0.0
    } else if hu > center - 0.5 + (width - 1.0) / 2.0 {
        255.0
    } else {
        ((hu - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    }
}

/// A synthetic CT Part-10 object (MONOCHROME2, 12 of 16 bits, HU = stored - 1024) with
/// `frames` frames of `rows`×`columns` whose HU `hu(frame, r, c)` gives, and the window when
/// `window`; and its parsed header.
fn ct_object(
    rows: u16,
    columns: u16,
    frames: usize,
    window: bool,
    hu: impl Fn(usize, usize, usize) -> i32,
) -> (Vec<u8>, InMemDicomObject) {
    let mut obj = test_support::ct_header(STUDY, SERIES, SOP);
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    for element in [
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, columns),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 12),
        us(tags::HIGH_BIT, 11),
        us(tags::PIXEL_REPRESENTATION, 0),
        text(tags::PIXEL_SPACING, VR::DS, "0.5\\0.5"),
        text(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
        text(tags::RESCALE_SLOPE, VR::DS, "1"),
    ] {
        obj.put(element);
    }
    if window {
        obj.put(text(tags::WINDOW_CENTER, VR::DS, "40\\400"));
        obj.put(text(tags::WINDOW_WIDTH, VR::DS, "80\\2000"));
    }
    if frames > 1 {
        // A frame number is only for multi-frame SOP classes.
        obj.put(text(tags::SOP_CLASS_UID, VR::UI, uids::ENHANCED_CT_IMAGE_STORAGE));
        obj.put(text(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string()));
    }
    let (rows, columns) = (usize::from(rows), usize::from(columns));
    let stored: Vec<u16> = (0..frames * rows * columns)
        .map(|i| {
            let (f, p) = (i / (rows * columns), i % (rows * columns));
            (hu(f, p / columns, p % columns) + 1024) as u16
        })
        .collect();
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(stored.into())));
    let file = obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    let header = parse_header(&bytes).unwrap().into_inner();
    (bytes, header)
}

fn head() -> (Vec<u8>, InMemDicomObject) {
    ct_object(512, 512, 1, true, |_, r, c| head_hu(r, c))
}

fn disc_mask() -> Vec<f32> {
    let (row, column, radius) = (DISC.0 as i64, DISC.1 as i64, DISC.2 as i64);
    (0..256 * 256)
        .map(|i| {
            let (r, c) = (i / 256 - row, i % 256 - column);
            if r * r + c * c <= radius * radius {
                0.875
            } else {
                0.125
            }
        })
        .collect()
}

fn model(version: &str) -> ModelIdentity {
    ModelIdentity { name: "ct-head-bleed".into(), version: version.into(), sha256: "0f".repeat(32) }
}

const BLEED: OverlayFinding<'static> =
    OverlayFinding { label: "intracranial hemorrhage", score: 0.9375, threshold: 0.5 };

fn build(bytes: &[u8], header: &InMemDicomObject, mask: Option<&[f32]>, version: &str) -> OverlayDocument {
    let source = OverlaySource { header, object: bytes, frame: 0 };
    build_overlay(&source, mask.map(|m| (m, MASK)), &[BLEED], &model(version), EVENT_TIME_MS).unwrap()
}

/// The overlay's pixels, one `[r, g, b]` a pixel.
fn pixels(doc: &OverlayDocument) -> Vec<[u8; 3]> {
    let data = doc.file.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
}

fn is_grey([r, g, b]: [u8; 3]) -> bool {
    r == g && g == b
}

/// Rows 0..TEXT_ROWS hold the text (3 lines of 20 pixels from row 8, shadow included) and a margin.
const TEXT_ROWS: usize = 90;

#[test]
fn overlay_outlines_the_mask_boxes_it_writes_the_text_and_passes_dciodvfy() {
    let (bytes, header) = head();
    let mask = disc_mask();
    let doc = build(&bytes, &header, Some(&mask), "1.0.0");
    let px = pixels(&doc);
    assert_eq!(px.len(), 512 * 512);
    let at = |r: usize, c: usize| px[r * 512 + c];
    let expected = |r: usize, c: usize| windowed(f64::from(head_hu(r, c)), WINDOW);

    // The outline: every disc pixel with a neighbour outside the disc is red; the inside two
    // pixels in from the edge is the windowed source, untouched.
    let (mut edge, mut inside) = (0, 0);
    for r in 1..511 {
        for c in 1..511 {
            if !in_disc(r, c) {
                continue;
            }
            let on_edge = !(in_disc(r - 1, c) && in_disc(r + 1, c) && in_disc(r, c - 1) && in_disc(r, c + 1));
            let deep = (r - 3..=r + 3).all(|rr| (c - 3..=c + 3).all(|cc| in_disc(rr, cc)));
            if on_edge {
                assert_eq!(at(r, c), OUTLINE_COLOUR, "edge pixel ({r}, {c})");
                edge += 1;
            } else if deep {
                assert!(is_grey(at(r, c)), "inside pixel ({r}, {c}) is {:?}", at(r, c));
                assert!((f64::from(at(r, c)[0]) - expected(r, c)).abs() <= 1.0, "inside pixel ({r}, {c})");
                inside += 1;
            }
        }
    }
    assert!(edge > 300 && inside > 9000, "{edge} edge and {inside} inside pixels");
    // The box: 6 pixels outside the disc's extent (rows 196..=317, columns 140..=261), 2 wide.
    let (top, left, bottom, right) = (190, 134, 323, 267);
    for c in left..=right {
        for r in [top, top + 1, bottom - 1, bottom] {
            assert_eq!(at(r, c), BOX_COLOUR, "box pixel ({r}, {c})");
        }
    }
    for r in top..=bottom {
        for c in [left, left + 1, right - 1, right] {
            assert_eq!(at(r, c), BOX_COLOUR, "box pixel ({r}, {c})");
        }
    }
    // Colour only in the box; below the text and outside the box, the windowed source.
    for r in 0..512 {
        for c in 0..512 {
            let in_box = (top..=bottom).contains(&r) && (left..=right).contains(&c);
            assert!(in_box || is_grey(at(r, c)), "({r}, {c}) is {:?} outside the box", at(r, c));
            if !in_box && r >= TEXT_ROWS {
                assert!((f64::from(at(r, c)[0]) - expected(r, c)).abs() <= 1.0, "({r}, {c})");
            }
        }
    }
    // The text: white where the source is dark (the head's top is air and dark ramp).
    let white_text = (0..TEXT_ROWS)
        .flat_map(|r| (0..512).map(move |c| (r, c)))
        .filter(|&(r, c)| at(r, c) == TEXT_COLOUR && expected(r, c) < 250.0)
        .count();
    assert!(white_text > 2000, "{white_text} text pixels");

    let bytes = doc.to_bytes().unwrap();
    let sc = parse_header(&bytes).unwrap();
    assert_eq!(sc.meta().media_storage_sop_class_uid(), uids::SECONDARY_CAPTURE_IMAGE_STORAGE);
    assert_eq!(sc.meta().transfer_syntax(), uids::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(txt(&sc, tags::SOP_INSTANCE_UID), Some(doc.sop_instance_uid.clone()));
    assert_eq!(txt(&sc, tags::SERIES_INSTANCE_UID), Some(doc.series_instance_uid.clone()));
    assert_eq!(txt(&sc, tags::STUDY_INSTANCE_UID).as_deref(), Some(STUDY));
    assert_eq!(txt(&sc, tags::PATIENT_ID).as_deref(), Some("SYNTH-0001"));
    assert_eq!(txt(&sc, tags::ACCESSION_NUMBER).as_deref(), Some("SYNTH-ACC-1"));
    assert_eq!(txt(&sc, tags::MODALITY).as_deref(), Some("OT"));
    assert_eq!(txt(&sc, tags::SERIES_NUMBER).as_deref(), Some("9303"));
    assert_eq!(txt(&sc, tags::SERIES_DESCRIPTION).as_deref(), Some("AI overlay: ct-head-bleed 1.0.0"));
    assert_eq!(txt(&sc, tags::CONVERSION_TYPE).as_deref(), Some("WSD"));
    assert_eq!(txt(&sc, tags::BURNED_IN_ANNOTATION).as_deref(), Some("YES"));
    assert_eq!(txt(&sc, tags::IMAGE_TYPE).as_deref(), Some("DERIVED\\SECONDARY"));
    assert_eq!(txt(&sc, tags::PHOTOMETRIC_INTERPRETATION).as_deref(), Some("RGB"));
    assert_eq!(txt(&sc, tags::PIXEL_SPACING).as_deref(), Some("0.5\\0.5"));
    assert_eq!(txt(&sc, tags::CONTENT_DATE).as_deref(), Some("20240131"));
    assert_eq!(txt(&sc, tags::CONTENT_TIME).as_deref(), Some("100000"));
    assert!(txt(&sc, tags::DERIVATION_DESCRIPTION).unwrap().contains("ct-head-bleed 1.0.0"));
    let source = &items(&sc, tags::SOURCE_IMAGE_SEQUENCE)[0];
    assert_eq!(txt(source, tags::REFERENCED_SOP_CLASS_UID).as_deref(), Some(uids::CT_IMAGE_STORAGE));
    assert_eq!(txt(source, tags::REFERENCED_SOP_INSTANCE_UID).as_deref(), Some(SOP));
    assert_eq!(txt(source, tags::REFERENCED_FRAME_NUMBER), None, "single frame: no frame number");
    assert_eq!(doc.series_instance_uid, result_uid(UidRole::Series, ObjectKind::Overlay, SERIES, &model("1.0.0")));
    assert_no_dciodvfy_errors("SC", "SCImage", "disc", &bytes);
    assert_python_readers_agree("disc", &bytes, true);
}

/// What pydicom reads back: the attributes, and pixels recomputed from the synthetic head's
/// formula: grey and windowed away from the disc's box and the text, red on a ring at the
/// disc's edge, grey and windowed well inside it, white text where the source is dark.
const READERS_SCRIPT: &str = r#"
import sys
import numpy as np
import pydicom
path, study, sop, with_mask = sys.argv[1:5]
with_mask = with_mask == "1"
ds = pydicom.dcmread(path)
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7", ds.SOPClassUID
assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
assert (ds.Rows, ds.Columns) == (512, 512), (ds.Rows, ds.Columns)
assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3 and ds.PlanarConfiguration == 0
assert ds.BitsAllocated == 8 and ds.BitsStored == 8
assert ds.BurnedInAnnotation == "YES"
assert ds.StudyInstanceUID == study
assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == sop
assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sop
assert ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == sop
px = ds.pixel_array.astype(np.int32)
assert px.shape == (512, 512, 3), px.shape
r, c = np.mgrid[0:512, 0:512]
disc = ((r // 2 - 128) ** 2 + (c // 2 - 100) ** 2) <= 30 ** 2
hu = np.where(disc, 80, (r + 2 * c) % 100 - 10)
hu = np.where((r - 256) ** 2 + (c - 256) ** 2 > 230 ** 2, -1000, hu).astype(np.float64)
center, width = 40.0, 80.0
lin = ((hu - (center - 0.5)) / (width - 1) + 0.5) * 255
expected = np.where(hu <= center - 0.5 - (width - 1) / 2, 0, np.where(hu > center - 0.5 + (width - 1) / 2, 255, lin))
grey = (px[..., 0] == px[..., 1]) & (px[..., 1] == px[..., 2])
coloured = ~grey
box = (r >= 180) & (r <= 335) & (c >= 124) & (c <= 280)
text = r < 90
far = ~box & ~text
assert grey[far].all(), int((~grey[far]).sum())
assert (np.abs(px[..., 0] - expected)[far] <= 1).all(), float(np.abs(px[..., 0] - expected)[far].max())
white = (px == 255).all(axis=2) & (expected < 250) & text
assert white.sum() > 2000, int(white.sum())
if with_mask:
    # The disc's centre on the 512 grid and a ray in each of 16 directions.
    cy, cx, radius = 256.5, 200.5, 61.0
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        ring = [(int(cy + t * np.sin(angle)), int(cx + t * np.cos(angle))) for t in np.arange(radius - 4, radius + 2, 0.5)]
        hits = [p for p in ring if coloured[p] and px[p][0] == 255 and px[p][1] == 0]
        assert hits, ("no outline on the ray at", angle)
    deep = ((r - cy) ** 2 + (c - cx) ** 2) <= 50 ** 2
    assert grey[deep].all() and (np.abs(px[..., 0] - expected)[deep] <= 1).all(), "the inside is untouched"
    assert coloured[box].sum() > 1000, int(coloured[box].sum())
else:
    assert grey.all(), "no mask, no colour"
print("pydicom: overlay", ds.Rows, "x", ds.Columns, "RGB,", int(coloured.sum()), "coloured,", int(white.sum()), "text pixels")
"#;

fn assert_python_readers_agree(name: &str, bytes: &[u8], with_mask: bool) {
    let args = [STUDY.to_string(), SOP.to_string(), if with_mask { "1" } else { "0" }.to_string()];
    test_support::assert_python_readers_agree("SC", name, bytes, READERS_SCRIPT, &args);
}

#[test]
fn without_a_mask_only_the_text_is_drawn() {
    let (bytes, header) = head();
    let doc = build(&bytes, &header, None, "1.0.0");
    let px = pixels(&doc);
    assert!(px.iter().all(|&p| is_grey(p)), "no mask, no colour");
    let changed = (0..512 * 512)
        .filter(|&i| (f64::from(px[i][0]) - windowed(f64::from(head_hu(i / 512, i % 512)), WINDOW)).abs() > 1.0)
        .collect::<Vec<_>>();
    assert!(changed.len() > 2000, "the text changes pixels");
    assert!(changed.iter().all(|i| i / 512 < TEXT_ROWS), "and nothing below it");
    // A mask that reaches the threshold nowhere draws no more than none.
    let empty = vec![0.25f32; 256 * 256];
    assert_eq!(pixels(&build(&bytes, &header, Some(&empty), "1.0.0")), px);

    let bytes = doc.to_bytes().unwrap();
    assert_no_dciodvfy_errors("SC", "SCImage", "text-only", &bytes);
    assert_python_readers_agree("text-only", &bytes, false);
}

#[test]
fn same_inputs_same_bytes_other_version_other_uids() {
    let (bytes, header) = head();
    let mask = disc_mask();
    let a = build(&bytes, &header, Some(&mask), "1.0.0");
    let b = build(&bytes, &header, Some(&mask), "1.0.0");
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    assert_eq!((&a.series_instance_uid, &a.sop_instance_uid), (&b.series_instance_uid, &b.sop_instance_uid));
    let other = build(&bytes, &header, Some(&mask), "1.0.1");
    assert_ne!(a.series_instance_uid, other.series_instance_uid);
    assert_ne!(a.sop_instance_uid, other.sop_instance_uid);
    assert_ne!(a.to_bytes().unwrap(), other.to_bytes().unwrap(), "the version is written on the image too");
    // Not the SEG's or SR's UIDs for the same source.
    assert_ne!(a.series_instance_uid, result_uid(UidRole::Series, ObjectKind::Seg, SERIES, &model("1.0.0")));
}

#[test]
fn a_frame_of_a_multi_frame_image_without_window_is_shown_over_its_range() {
    // Frame 0 flat, frame 1 a ramp of -24..=231 HU across the columns.
    let (bytes, header) = ct_object(64, 256, 2, false, |f, _, c| if f == 0 { 0 } else { c as i32 - 24 });
    let source = OverlaySource { header: &header, object: &bytes, frame: 1 };
    let doc = build_overlay(&source, None, &[BLEED], &model("1.0.0"), EVENT_TIME_MS).unwrap();
    let px = pixels(&doc);
    assert_eq!(px.len(), 64 * 256);
    // Below the text (3 lines of 10 pixels from row 4 at this size).
    let bottom = &px[63 * 256..];
    assert_eq!((bottom[0], bottom[255]), ([0; 3], [255; 3]), "minimum black, maximum white");
    assert!(bottom.windows(2).all(|w| w[0][0] <= w[1][0]), "the ramp stays a ramp");
    let sc = parse_header(&doc.to_bytes().unwrap()).unwrap();
    let reference = &items(&sc, tags::SOURCE_IMAGE_SEQUENCE)[0];
    assert_eq!(txt(reference, tags::REFERENCED_FRAME_NUMBER).as_deref(), Some("2"));
    assert_eq!((txt(&sc, tags::ROWS).as_deref(), txt(&sc, tags::COLUMNS).as_deref()), (Some("64"), Some("256")));
    let frame_0 = build_overlay(&OverlaySource { frame: 0, ..source }, None, &[BLEED], &model("1.0.0"), EVENT_TIME_MS);
    assert_ne!(frame_0.unwrap().sop_instance_uid, doc.sop_instance_uid, "each frame its own overlay");
    assert_no_dciodvfy_errors("SC", "SCImage", "multi-frame", &doc.to_bytes().unwrap());
    // The source's ImageLaterality stands for the series' Laterality.
    let mut lateral = header.clone();
    lateral.put(text(tags::IMAGE_LATERALITY, VR::CS, "U"));
    let sided = OverlaySource { header: &lateral, ..source };
    let sided = build_overlay(&sided, None, &[], &model("1.0.0"), EVENT_TIME_MS).unwrap().to_bytes().unwrap();
    let sc = parse_header(&sided).unwrap();
    assert_eq!(
        (txt(&sc, tags::IMAGE_LATERALITY).as_deref(), sc.element_opt(tags::LATERALITY).unwrap()),
        (Some("U"), None)
    );
    assert_no_dciodvfy_errors("SC", "SCImage", "image-laterality", &sided);

    let error = build_overlay(&OverlaySource { frame: 2, ..source }, None, &[BLEED], &model("1.0.0"), EVENT_TIME_MS)
        .unwrap_err();
    assert!(matches!(&error, OverlayError::FrameOutOfRange { frame: 2, frames: 2, .. }), "{error}");
    assert_no_patient_data(&error);
}

fn assert_no_patient_data(error: &OverlayError) {
    let message = format!("{error} {error:?}");
    for phi in PHI {
        assert!(!message.contains(phi), "{phi:?} in {message}");
    }
}

#[test]
fn errors_name_no_patient_data() {
    let (bytes, header) = head();
    let run = |object: &[u8], mask: Option<(&[f32], MaskShape)>, findings: &[OverlayFinding<'_>]| {
        let source = OverlaySource { header: &header, object, frame: 0 };
        build_overlay(&source, mask, findings, &model("1.0.0"), EVENT_TIME_MS).unwrap_err()
    };
    // The header alone: no pixel data to draw on.
    let header_only = test_support::ct_header(STUDY, SERIES, SOP)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap();
    let mut no_pixels = Vec::new();
    header_only.write_all(&mut no_pixels).unwrap();
    let error = run(&no_pixels, None, &[BLEED]);
    assert!(matches!(&error, OverlayError::Decode { sop_instance_uid, .. } if sop_instance_uid == SOP), "{error}");
    assert!(error.to_string().contains("no Pixel Data"), "{error}");
    assert_no_patient_data(&error);

    let error = run(b"not dicom", None, &[]);
    assert!(matches!(error, OverlayError::Decode { .. }), "{error}");
    assert_no_patient_data(&error);

    let short = vec![0.9f32; 100];
    let error = run(&bytes, Some((&short, MASK)), &[BLEED]);
    assert!(matches!(error, OverlayError::MaskSize { expected: 65536, actual: 100, .. }), "{error}");

    let mask = disc_mask();
    let nan = OverlayFinding { threshold: f32::NAN, ..BLEED };
    assert!(matches!(run(&bytes, Some((&mask, MASK)), &[nan]), OverlayError::NonFiniteThreshold));

    let mut anonymous = header.clone();
    anonymous.remove_element(tags::STUDY_INSTANCE_UID);
    let source = OverlaySource { header: &anonymous, object: &bytes, frame: 0 };
    let error = build_overlay(&source, None, &[], &model("1.0.0"), EVENT_TIME_MS).unwrap_err();
    assert!(matches!(error, OverlayError::MissingAttribute { attribute: "StudyInstanceUID" }), "{error}");
}

#[test]
fn text_is_upper_case_wrapped_and_in_the_font() {
    assert_eq!(glyph_text("Hemorrhage ü 0.93 [x]"), "HEMORRHAGE   0.93  X ");
    assert_eq!(wrap("AI RESULT - NOT FOR DIAGNOSTIC", 12), ["AI RESULT -", "NOT FOR", "DIAGNOSTIC"]);
    assert_eq!(wrap("ABCDEFGHIJ", 4), ["ABCD", "EFGH", "IJ"]);
    assert_eq!(wrap("", 4), [""]);
    // Every glyph is drawn and no two are alike.
    let chars: Vec<char> = ('A'..='Z').chain('0'..='9').chain("-.,:/()%_+=<>".chars()).collect();
    for (i, &a) in chars.iter().enumerate() {
        assert_ne!(glyph(a), [0; GLYPH_HEIGHT], "{a}");
        assert!(glyph(a).iter().all(|row| *row < 1 << GLYPH_WIDTH), "{a} is 5 wide");
        for &b in &chars[i + 1..] {
            assert_ne!(glyph(a), glyph(b), "{a} and {b}");
        }
    }
}

#[test]
fn the_window_functions_follow_ps3_3() {
    let linear = Voi::Linear { center: 40.0, width: 80.0 };
    assert_eq!((linear.apply(0.0), linear.apply(40.0), linear.apply(80.0)), (0, 129, 255));
    let exact = Voi::LinearExact { center: 40.0, width: 80.0 };
    assert_eq!((exact.apply(0.0), exact.apply(40.0), exact.apply(80.0)), (0, 128, 255));
    let sigmoid = Voi::Sigmoid { center: 40.0, width: 80.0 };
    assert_eq!(sigmoid.apply(40.0), 128);
    assert!(sigmoid.apply(0.0) < 40 && sigmoid.apply(80.0) > 215);
    let params = FrameParams { window: Some((40.0, 0.5)), ..FrameParams::default() };
    assert!(matches!(Voi::choose(&params, &[-5.0, 7.0]), Voi::Range { low: -5.0, high: 7.0 }), "no usable width");
    assert_eq!(Voi::Range { low: 3.0, high: 3.0 }.apply(3.0), 0, "a flat frame");
}

#[test]
fn monochrome1_is_inverted_so_it_looks_as_the_source_does() {
    let (bytes, _) = ct_object(64, 256, 1, false, |_, _, c| c as i32 - 24);
    let mut obj = dicom_object::from_reader(&bytes[128..]).unwrap();
    obj.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME1"));
    let mut inverted = Vec::new();
    obj.write_all(&mut inverted).unwrap();
    let header = parse_header(&inverted).unwrap().into_inner();
    let source = OverlaySource { header: &header, object: &inverted, frame: 0 };
    let doc = build_overlay(&source, None, &[], &model("1.0.0"), EVENT_TIME_MS).unwrap();
    let bottom = &pixels(&doc)[63 * 256..];
    assert_eq!((bottom[0], bottom[255]), ([255; 3], [0; 3]), "the minimum white, the maximum black");
}
