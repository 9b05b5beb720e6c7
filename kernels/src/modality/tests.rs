use super::*;

#[test]
fn ct_rescale_of_signed_and_unsigned_values() {
    let ct = Rescale { slope: 1.0, intercept: -1024.0 };
    let mut out = [0.0f32; 3];
    modality_rescale(&[0u16, 1024, 4095], ct, &mut out).unwrap();
    assert_eq!(out, [-1024.0, 0.0, 3071.0]);

    modality_rescale(&[-2000i16, 0, 2000], Rescale { slope: 0.5, intercept: 10.0 }, &mut out).unwrap();
    assert_eq!(out, [-990.0, 10.0, 1010.0]);
}

#[test]
fn every_stored_type_is_accepted() {
    let r = Rescale { slope: 2.0, intercept: 1.0 };
    let mut out = [0.0f32; 2];
    modality_rescale(&[0u8, 255], r, &mut out).unwrap();
    assert_eq!(out, [1.0, 511.0]);
    modality_rescale(&[-128i8, 127], r, &mut out).unwrap();
    assert_eq!(out, [-255.0, 255.0]);
    modality_rescale(&[0u32, 1_000_000], r, &mut out).unwrap();
    assert_eq!(out, [1.0, 2_000_001.0]);
    modality_rescale(&[-1_000_000i32, 3], r, &mut out).unwrap();
    assert_eq!(out, [-1_999_999.0, 7.0]);
}

#[test]
fn per_frame_parameters_apply_to_their_own_frame() {
    let stored = [1u16, 2, 3, 1, 2, 3];
    let frames = [Rescale { slope: 1.0, intercept: 0.0 }, Rescale { slope: 10.0, intercept: -5.0 }];
    let mut out = [0.0f32; 6];
    modality_rescale_frames(&stored, 3, &frames, &mut out).unwrap();
    assert_eq!(out, [1.0, 2.0, 3.0, 5.0, 15.0, 25.0]);
}

#[test]
fn mismatched_lengths_and_non_finite_parameters_are_errors() {
    let mut out = [0.0f32; 2];
    assert!(matches!(
        modality_rescale(&[1u8, 2, 3], Rescale::IDENTITY, &mut out),
        Err(PreprocessError::LengthMismatch { expected: 3, actual: 2, .. })
    ));
    assert!(matches!(
        modality_rescale(&[1u8, 2], Rescale { slope: f64::NAN, intercept: 0.0 }, &mut out),
        Err(PreprocessError::NonFinite { parameter: "rescale slope", .. })
    ));
    let mut out = [0.0f32; 5];
    assert!(modality_rescale_frames(&[0u16; 5], 3, &[Rescale::IDENTITY; 2], &mut out).is_err());
}
