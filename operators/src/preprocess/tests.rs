//! Tests of the spec, the plans it makes and the operator, on images built by hand.

use bytes::Bytes;

use dicom_dictionary_std::uids;

use radstream_kernels::{Normalization, VoiFunction};
use radstream_schemas::ObjectLocation;

use super::*;
use crate::dicom::decode::FrameParams;
use crate::RetryHint;

const CT_HEAD: &str = include_str!("../../../models/ct-head-bleed.preprocess.toml");
const CXR: &str = include_str!("../../../models/cxr-generic.preprocess.toml");

fn ct_spec() -> PreprocessSpec {
    PreprocessSpec::from_toml(CT_HEAD).unwrap()
}

fn cxr_spec() -> PreprocessSpec {
    PreprocessSpec::from_toml(CXR).unwrap()
}

fn params(window: Option<(f64, f64)>) -> FrameParams {
    FrameParams { rescale_slope: 1.0, rescale_intercept: 0.0, window, ..FrameParams::default() }
}

/// A grayscale image of `frames` frames of `rows × columns` u16 values.
fn image(photometric: &str, rows: u32, columns: u32, values: Vec<u16>, frame_params: Vec<FrameParams>) -> DecodedImage {
    DecodedImage {
        rows,
        columns,
        frames: frame_params.len() as u32,
        samples_per_pixel: 1,
        photometric: photometric.into(),
        transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN.into(),
        samples: Samples::U16(values),
        frame_params,
    }
}

#[test]
fn the_example_specs_parse_and_validate() {
    let ct = ct_spec();
    assert_eq!((ct.name.as_str(), ct.input, ct.size, ct.channels), ("ct-head-bleed", InputKind::Slice, [256, 256], 1));
    assert!(matches!(ct.window, WindowSpec::Fixed(w) if w.center == 40.0 && w.width == 80.0));
    assert_eq!(ct.normalization, NormalizationSpec::MinMax { min: 0.0, max: 1.0 });
    assert!(ct.takes_modality("CT") && ct.takes_modality("ct") && !ct.takes_modality("MR"));

    let cxr = cxr_spec();
    assert_eq!((cxr.size, cxr.channels, cxr.window), ([224, 224], 3, WindowSpec::FromImage));
    assert_eq!(cxr.image_shape(), [3, 224, 224]);
    let (lo, hi) = cxr.value_range(0).unwrap();
    assert!((lo - (-0.485 / 0.229)).abs() < 1e-12 && (hi - (0.515 / 0.229)).abs() < 1e-12);
    assert_eq!(cxr.value_range(3), None);
    assert_eq!(ct.value_range(0), Some((0.0, 1.0)));
}

#[test]
fn bad_specs_are_refused_naming_the_key() {
    let with = |line: &str| {
        let base: String =
            CT_HEAD.lines().filter(|l| !l.starts_with(line.split('=').next().unwrap())).collect::<Vec<_>>().join("\n");
        PreprocessSpec::from_toml(&format!("{base}\n{line}\n"))
    };
    let key = |line: &str| with(line).unwrap_err().key;
    assert_eq!(key("channels = 2"), "channels");
    assert_eq!(key("size = [0, 256]"), "size");
    assert_eq!(key("output_range = [1, 0]"), "output_range");
    assert_eq!(key("modalities = []"), "modalities");
    assert_eq!(key("name = \" \""), "name");
    assert_eq!(key("window = { center = 40, width = 0.5 }"), "window");
    assert_eq!(key("normalization = { kind = \"min_max\", min = 1, max = 1 }"), "normalization");
    assert_eq!(key("normalization = { kind = \"mean_std\", mean = [0.5, 0.5], std = 0.2 }"), "normalization");
    assert_eq!(key("normalization = { kind = \"mean_std\", mean = 0.5, std = 0 }"), "normalization");
    // Parse errors: unknown keys, a window that is neither a table nor "from_image".
    assert!(with("colour = true").unwrap_err().problem.contains("colour"));
    assert!(with("window = { center = 40, width = 80, fn = \"linear\" }").unwrap_err().problem.contains("fn"));
    assert!(with("window = \"from_dicom\"").unwrap_err().problem.contains("from_image"));
    assert!(with("input = \"volume\"").is_err());
    assert!(with("window = { center = 40, width = 0.5, function = \"sigmoid\" }").is_ok());
    assert!(with("normalization = { kind = \"none\" }").is_ok());
    assert!(with("normalization = { kind = \"min_max_of_image\" }").is_ok());
}

#[test]
fn plan_combines_the_spec_with_the_frame() {
    let spec = ct_spec();
    let frame = FrameParams { rescale_slope: 2.0, rescale_intercept: -1024.0, ..params(Some((400.0, 1500.0))) };
    let img = image("MONOCHROME2", 2, 2, vec![0; 4], vec![frame]);
    let plan = plan_for(&spec, &img, 0).unwrap();
    assert_eq!((plan.rescale.slope, plan.rescale.intercept), (2.0, -1024.0));
    let window = plan.window.unwrap();
    // The spec's window, not the image's.
    assert_eq!((window.center(), window.width(), window.function()), (40.0, 80.0, VoiFunction::Linear));
    assert_eq!((window.range().min, window.range().max), (0.0, 1.0));
    assert_eq!(plan.normalization, Normalization::MinMax { min: 0.0, max: 1.0 });
    assert_eq!(plan.output_shape(radstream_kernels::ImageSize::new(2, 2)), [1, 256, 256]);
    assert!(matches!(plan_for(&spec, &img, 1), Err(PlanError::Geometry(_))));
}

#[test]
fn monochrome1_inverts_the_output_range() {
    let spec = ct_spec();
    let plan = plan_for(&spec, &image("MONOCHROME1", 1, 1, vec![0], vec![params(None)]), 0).unwrap();
    let range = plan.window.unwrap().range();
    assert_eq!((range.min, range.max), (1.0, 0.0));
    // Values: below the window is white, above it black.
    let tensor = preprocess_image(
        &PreprocessSpec { size: [1, 2], ..spec },
        &image("MONOCHROME1", 1, 2, vec![0, 1000], vec![params(None)]),
    )
    .unwrap();
    assert_eq!(tensor.data(), [1.0, 0.0]);
}

#[test]
fn from_image_uses_the_frames_window_and_falls_back_to_its_range() {
    let spec = PreprocessSpec { size: [1, 3], channels: 1, normalization: NormalizationSpec::None, ..cxr_spec() };
    let with_window = FrameParams { voi_function: Some("SIGMOID".into()), ..params(Some((100.0, 50.0))) };
    let plan = plan_for(&spec, &image("MONOCHROME2", 1, 3, vec![0, 5, 10], vec![with_window]), 0).unwrap();
    let window = plan.window.unwrap();
    assert_eq!((window.center(), window.width(), window.function()), (100.0, 50.0, VoiFunction::Sigmoid));

    // No window: the rescaled min..max, LINEAR_EXACT, so the ends map onto the output range.
    let rescaled = FrameParams { rescale_slope: 2.0, rescale_intercept: 10.0, ..params(None) };
    let img = image("MONOCHROME2", 1, 3, vec![10, 20, 30], vec![rescaled.clone()]);
    let window = plan_for(&spec, &img, 0).unwrap().window.unwrap();
    assert_eq!((window.center(), window.width(), window.function()), (50.0, 40.0, VoiFunction::LinearExact));
    assert_eq!(preprocess_image(&spec, &img).unwrap().data(), [0.0, 0.5, 1.0]);

    // An unusable window (LINEAR needs width >= 1) falls back too; a constant frame stays valid.
    let zero_width = FrameParams { window: Some((20.0, 0.0)), ..rescaled };
    let window = plan_for(&spec, &image("MONOCHROME2", 1, 3, vec![7; 3], vec![zero_width]), 0).unwrap().window.unwrap();
    assert_eq!((window.center(), window.width()), (24.0, 1.0));
}

#[test]
fn every_frame_becomes_one_image_of_the_batch() {
    let spec = PreprocessSpec { size: [2, 2], ..cxr_spec() };
    let frames = vec![params(Some((50.0, 100.0))), params(Some((150.0, 100.0)))];
    let img = image("MONOCHROME2", 2, 2, (0..8).map(|v| v * 10).collect(), frames);
    let tensor = preprocess_image(&spec, &img).unwrap();
    assert_eq!(tensor.shape(), [2, 3, 2, 2]);
    assert!(tensor.data().iter().all(|v| v.is_finite()));
    // Per-channel ImageNet statistics: the channels differ although the planes are copies.
    assert_ne!(tensor.data()[..4], tensor.data()[4..8]);
}

#[test]
fn images_the_spec_cannot_take_are_named() {
    let spec = ct_spec();
    let mut rgb = image("RGB", 1, 1, vec![0; 3], vec![params(None)]);
    rgb.samples_per_pixel = 3;
    let err = preprocess_image(&spec, &rgb).unwrap_err();
    assert!(err.to_string().contains("RGB"), "{err}");
    let short = image("MONOCHROME2", 2, 2, vec![0; 3], vec![params(None)]);
    assert!(matches!(preprocess_image(&spec, &short), Err(PlanError::Geometry(_))));
    let series = PreprocessSpec { input: InputKind::Series, ..spec };
    let err = preprocess_image(&series, &image("MONOCHROME2", 1, 1, vec![0], vec![params(None)])).unwrap_err();
    assert!(err.to_string().contains("whole series"), "{err}");
    assert_eq!(PreprocessFailure::Plan(err).class(), ErrorClass::Config);
}

#[test]
fn config_takes_a_file_or_an_inline_spec() {
    let file: PreprocessConfig = toml::from_str("spec_file = \"models/ct.toml\"").unwrap();
    file.validate().unwrap();
    let inline: PreprocessConfig = toml::from_str(&format!("[spec]\n{CT_HEAD}")).unwrap();
    inline.validate().unwrap();
    assert_eq!(inline.build(&BuildContext::default()).unwrap().spec().name, "ct-head-bleed");
    let neither: PreprocessConfig = toml::from_str("").unwrap();
    assert_eq!(neither.validate().unwrap_err().key, "spec_file");
    let both = PreprocessConfig { spec: inline.spec.clone(), ..file.clone() };
    assert!(both.validate().is_err());
    let bad = PreprocessConfig { spec: Some(PreprocessSpec { channels: 4, ..ct_spec() }), ..inline.clone() };
    assert_eq!(bad.validate().unwrap_err().key, "spec.channels");
    let missing = PreprocessConfig { spec_file: Some("/nonexistent/spec.toml".into()), ..file.clone() };
    assert!(missing.build(&BuildContext::default()).unwrap_err().to_string().contains("/nonexistent/spec.toml"));
    let chain: crate::OperatorConfig = toml::from_str("type = \"preprocess\"\nspec_file = \"m.toml\"").unwrap();
    assert_eq!(chain.kind(), "preprocess");
}

fn part10(modality: &str) -> Bytes {
    crate::test_support::header_only_part10("1.2.3.4", modality)
}

#[tokio::test]
async fn the_operator_drops_other_modalities_and_dead_letters_what_it_cannot_decode() {
    let mut op = Preprocessor::new(ct_spec());
    let location = |key: &str| ObjectLocation { bucket: "in".into(), key: key.into(), size: None, etag: None };
    let mr = Envelope::from_part10(1, location("mr.dcm"), part10("MR")).unwrap();
    // A CT header without Pixel Data: nothing to decode.
    let ct = Envelope::from_part10(2, location("ct.dcm"), part10("CT")).unwrap();
    let mut out = op.process_batch(vec![mr, ct]).await;
    out.sort_by_key(|p| p.envelope.ticket);
    assert!(matches!(&out[0].outcome, Outcome::Drop { rule } if rule == MODALITY_DROP_RULE));
    match &out[1].outcome {
        Outcome::Fail(e) => {
            assert_eq!((e.class, e.retry), (ErrorClass::UndecodablePixels, RetryHint::DeadLetter));
            assert!(e.reason.starts_with("in/ct.dcm: model ct-head-bleed: cannot decode pixel data"), "{}", e.reason);
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert!(out.iter().all(|p| p.envelope.tensor.is_none()));
    assert_eq!(ErrorClass::UndecodablePixels.as_str(), "undecodable_pixels");
}

/// A 2 x 2 CT slice with pixels (HU = stored - 1024); with a position and orientation when
/// `z` is given.
fn ct_slice(sop: &str, z: Option<f64>) -> Bytes {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let mut elements = vec![
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2"),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(2u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(2u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)),
        text(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
        text(tags::RESCALE_SLOPE, VR::DS, "1"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![1024, 1064, 1084, 2000].into())),
    ];
    if let Some(z) = z {
        elements.push(text(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("0\\0\\{z}")));
        elements.push(text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"));
    }
    let file = InMemDicomObject::from_element_iter(elements)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}

#[tokio::test]
async fn a_series_spec_attaches_each_slice_and_its_position_and_other_models_pass_untouched() {
    let series = PreprocessSpec { input: InputKind::Series, size: [2, 2], ..ct_spec() };
    let mut op = Preprocessor::new(series);
    let location = |key: &str| ObjectLocation { bucket: "in".into(), key: key.into(), size: None, etag: None };
    let placed = Envelope::from_part10(1, location("a.dcm"), ct_slice("1.2.3.4.1", Some(7.5))).unwrap();
    let unplaced = Envelope::from_part10(2, location("b.dcm"), ct_slice("1.2.3.4.2", None)).unwrap();
    let mut elsewhere = Envelope::from_part10(3, location("c.dcm"), ct_slice("1.2.3.4.3", Some(0.0))).unwrap();
    elsewhere.model = Some("another-model".into());
    let mut out = op.process_batch(vec![placed, unplaced, elsewhere]).await;
    out.sort_by_key(|p| p.envelope.ticket);
    assert!(matches!(out[0].outcome, Outcome::Forward), "{:?}", out[0].outcome);
    assert_eq!(out[0].envelope.tensor.as_ref().unwrap().shape(), [1, 1, 2, 2]);
    let geometry = out[0].envelope.geometry.as_ref().unwrap();
    assert_eq!(geometry.len(), 1);
    assert_eq!(geometry[0].position, [0.0, 0.0, 7.5]);
    assert_eq!(geometry[0].orientation, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    match &out[1].outcome {
        Outcome::Fail(e) => {
            assert_eq!(e.class, ErrorClass::MalformedDicom);
            assert!(e.reason.contains("in/b.dcm") && e.reason.contains("ImagePositionPatient"), "{}", e.reason);
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert!(matches!(out[2].outcome, Outcome::Forward));
    assert!(
        out[2].envelope.tensor.is_none() && out[2].envelope.geometry.is_none(),
        "another model's instance is not touched"
    );
}

#[test]
fn config_bounds_decode_memory_per_instance_and_per_batch() {
    let file: PreprocessConfig = toml::from_str("spec_file = \"models/ct.toml\"").unwrap();
    assert_eq!((file.max_decoded_bytes, file.decode_budget_bytes), (2 << 30, 1 << 30), "the documented defaults");
    let set: PreprocessConfig =
        toml::from_str("spec_file = \"m.toml\"\nmax_decoded_bytes = 1000\ndecode_budget_bytes = 4000").unwrap();
    set.validate().unwrap();
    for (key, value) in [("max_decoded_bytes", 0u64), ("max_decoded_bytes", (2 << 30) + 1), ("decode_budget_bytes", 0)]
    {
        let config: PreprocessConfig = toml::from_str(&format!("spec_file = \"m.toml\"\n{key} = {value}")).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, key, "{err}");
    }
    let inline: PreprocessConfig = toml::from_str(&format!("decode_budget_bytes = 4000\n[spec]\n{CT_HEAD}")).unwrap();
    let op = inline.build(&BuildContext::default()).unwrap();
    assert_eq!(op.decode_budget().map(|b| b.capacity()), Some(4000));
}

/// A 16 x 16 CT object whose one JPEG baseline fragment is `stream`.
fn ct_jpeg(stream: &[u8]) -> Bytes {
    use dicom_core::value::{PixelFragmentSequence, Value};
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let mut stream = stream.to_vec();
    stream.resize(stream.len().next_multiple_of(2), 0);
    let elements = vec![
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.9"),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2"),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        us(tags::ROWS, 16),
        us(tags::COLUMNS, 16),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![stream])),
        ),
    ];
    let file = InMemDicomObject::from_element_iter(elements)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::JPEG_BASELINE8_BIT))
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    Bytes::from(bytes)
}

#[tokio::test]
async fn a_jpeg_bomb_is_dead_lettered_as_malformed_naming_both_sizes() {
    let baseline = include_bytes!("../dicom/decode/testdata/bomb_baseline_u8.jpg");
    let mut bomb = baseline.to_vec();
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]); // 65500 x 65500
    let mut op = Preprocessor::new(ct_spec());
    let location = |key: &str| ObjectLocation { bucket: "in".into(), key: key.into(), size: None, etag: None };
    let good = Envelope::from_part10(1, location("good.dcm"), ct_jpeg(baseline)).unwrap();
    let bomb = Envelope::from_part10(2, location("bomb.dcm"), ct_jpeg(&bomb)).unwrap();
    let mut out = op.process_batch(vec![good, bomb]).await;
    out.sort_by_key(|p| p.envelope.ticket);
    assert!(matches!(out[0].outcome, Outcome::Forward), "{:?}", out[0].outcome);
    match &out[1].outcome {
        Outcome::Fail(e) => {
            assert_eq!((e.class, e.retry), (ErrorClass::MalformedDicom, RetryHint::DeadLetter), "{}", e.reason);
            assert!(
                e.reason.starts_with("in/bomb.dcm: model ct-head-bleed: cannot decode pixel data")
                    && e.reason
                        .contains("JPEG frame header declares 65500\u{d7}65500, the DICOM attributes say 16\u{d7}16"),
                "{}",
                e.reason
            );
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_decodes_within_its_budget_and_an_instance_over_the_limit_is_dead_lettered() {
    // Each 2 x 2 slice decodes to 8 bytes; a budget of 16 lets at most two decode at once.
    let spec = PreprocessSpec { size: [2, 2], ..ct_spec() };
    let mut op = Preprocessor::with_limits(spec.clone(), 8, 16);
    let location = |key: &str| ObjectLocation { bucket: "in".into(), key: key.into(), size: None, etag: None };
    let batch: Vec<Envelope> = (0..16)
        .map(|i| {
            Envelope::from_part10(i, location(&format!("{i}.dcm")), ct_slice(&format!("1.2.3.4.{i}"), None)).unwrap()
        })
        .collect();
    let out = op.process_batch(batch).await;
    assert!(out.iter().all(|p| matches!(p.outcome, Outcome::Forward)), "{:?}", out[0].outcome);
    let budget = op.decode_budget().unwrap();
    assert_eq!(budget.available(), 16, "every reservation was given back");
    assert!((8..=16).contains(&budget.peak()), "at most the budget at once: {}", budget.peak());

    let mut small = Preprocessor::with_limits(spec, 7, 16);
    let out = small
        .process_batch(vec![Envelope::from_part10(1, location("a.dcm"), ct_slice("1.2.3.5", None)).unwrap()])
        .await;
    match &out[0].outcome {
        Outcome::Fail(e) => {
            assert_eq!(e.class, ErrorClass::UndecodablePixels);
            assert!(
                e.reason.contains("would be 8 bytes") && e.reason.contains("size limit of 7 bytes"),
                "{}",
                e.reason
            );
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
}
