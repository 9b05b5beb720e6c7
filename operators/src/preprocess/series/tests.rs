use super::super::spec::{FixedWindow, InputKind, NormalizationSpec, WindowFunction, WindowSpec};
use super::*;
use crate::contract::NoopRecorder;
use crate::dicom::decode::FrameParams;

fn spec() -> PreprocessSpec {
    PreprocessSpec {
        name: "ct-volume".into(),
        modalities: vec!["CT".into()],
        input: InputKind::Series,
        size: [2, 2],
        window: WindowSpec::Fixed(FixedWindow { center: 50.0, width: 100.0, function: WindowFunction::LinearExact }),
        normalization: NormalizationSpec::default(),
        channels: 1,
        output_range: [0.0, 1.0],
    }
}

/// A 4 x 4 axial slice at height `z` whose every value is `value` HU (intercept -1024).
fn slice(z: f64, value: i16) -> DecodedImage {
    DecodedImage {
        rows: 4,
        columns: 4,
        frames: 1,
        samples_per_pixel: 1,
        photometric: "MONOCHROME2".into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        samples: Samples::I16(vec![value + 1024; 16]),
        frame_params: vec![FrameParams {
            rescale_slope: 1.0,
            rescale_intercept: -1024.0,
            position: Some([-10.0, -10.0, z]),
            orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: Some([0.5, 0.75]),
            ..FrameParams::default()
        }],
    }
}

#[test]
fn slices_are_stacked_by_position_not_by_input_order() {
    // Given out of order: z = 5, -5, 0 with values 100, 0, 50 HU -> window [0, 100] -> 1, 0, 0.5.
    let images = [slice(5.0, 100), slice(-5.0, 0), slice(0.0, 50)];
    let volume = preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &spec(), &images).unwrap();
    assert_eq!(volume.shape, [1, 1, 3, 2, 2]);
    let firsts: Vec<f32> = volume.data.chunks(4).map(|plane| plane[0]).collect();
    assert_eq!(firsts, [0.0, 0.5, 1.0]);
    assert_eq!(volume.slices, [(1, 0), (2, 0), (0, 0)]);
    // 5 mm between slices; 4 pixels of 0.5 x 0.75 mm resampled to 2: 1.0 x 1.5 mm.
    assert_eq!(volume.spacing_mm, [Some(5.0), Some(1.0), Some(1.5)]);
    assert!(!volume.order.irregular_spacing);
}

#[test]
fn a_gap_is_reported_and_three_channels_are_planes_of_the_volume() {
    let images = [slice(0.0, 0), slice(5.0, 50), slice(20.0, 100)];
    let three = PreprocessSpec { channels: 3, ..spec() };
    let volume = preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &three, &images).unwrap();
    assert!(volume.order.irregular_spacing);
    assert_eq!(volume.shape, [1, 3, 3, 2, 2]);
    let per_channel = 3 * 4;
    for channel in volume.data.chunks(per_channel) {
        assert_eq!(channel, &volume.data[..per_channel]);
    }
}

#[test]
fn what_is_not_one_volume_is_refused_with_the_reason() {
    let mut no_position = slice(0.0, 0);
    no_position.frame_params[0].position = None;
    let err =
        preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &spec(), &[slice(1.0, 0), no_position]).unwrap_err();
    assert!(err.to_string().contains("ImagePositionPatient"), "{err}");

    let mut tilted = slice(2.0, 0);
    tilted.frame_params[0].orientation = Some([1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    let err = preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &spec(), &[slice(1.0, 0), tilted]);
    assert!(err.is_err());

    let mut small = slice(2.0, 0);
    small.rows = 2;
    let err = preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &spec(), &[slice(1.0, 0), small]).unwrap_err();
    assert!(err.to_string().contains("not one volume"), "{err}");
    assert!(preprocess_series(&ComputeDevice::cpu(), &NoopRecorder, &spec(), &[]).is_err());
}
