use super::*;

#[test]
fn mean_std_by_hand() {
    let mut data = [0.0, 0.5, 1.0];
    normalize(&mut data, &Normalization::MeanStd(MeanStd { mean: 0.5, std: 0.25 })).unwrap();
    assert_eq!(data, [-2.0, 0.0, 2.0]);
}

#[test]
fn min_max_given_clamps_to_the_unit_range() {
    let mut data = [-1000.0, 0.0, 500.0, 1000.0, 2000.0, -3000.0];
    normalize(&mut data, &Normalization::MinMax { min: -1000.0, max: 1000.0 }).unwrap();
    assert_eq!(data, [0.0, 0.5, 0.75, 1.0, 1.0, 0.0]);
}

#[test]
fn min_max_of_the_image_itself() {
    let mut data = [6.0, 2.0, 10.0, 4.0];
    normalize(&mut data, &Normalization::MinMaxOfImage).unwrap();
    assert_eq!(data, [0.5, 0.0, 1.0, 0.25]);

    let mut constant = [7.0; 4];
    normalize(&mut constant, &Normalization::MinMaxOfImage).unwrap();
    assert_eq!(constant, [0.0; 4]);

    assert_eq!(image_min_max(&[f32::NAN, 3.0, -1.0]), Some((-1.0, 3.0)));
    assert_eq!(image_min_max(&[f32::NAN]), None);
    assert_eq!(image_min_max(&[]), None);
}

#[test]
fn bad_constants_are_errors() {
    let mut data = [1.0];
    for bad in [
        Normalization::MeanStd(MeanStd { mean: 0.0, std: 0.0 }),
        Normalization::MeanStd(MeanStd { mean: 0.0, std: -1.0 }),
        Normalization::MeanStd(MeanStd { mean: f64::NAN, std: 1.0 }),
        Normalization::MinMax { min: 1.0, max: 1.0 },
        Normalization::MinMax { min: 0.0, max: f64::INFINITY },
    ] {
        assert!(normalize(&mut data, &bad).is_err(), "{bad:?}");
    }
    assert_eq!(data, [1.0]);
}

#[test]
fn replication_copies_or_standardizes_each_plane() {
    assert_eq!(replicate_channels(&[1.0, 2.0], 3, &[]).unwrap(), [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    let per_channel =
        [MeanStd { mean: 0.0, std: 1.0 }, MeanStd { mean: 1.0, std: 2.0 }, MeanStd { mean: 0.5, std: 0.5 }];
    assert_eq!(replicate_channels(&[1.0, 2.0], 3, &per_channel).unwrap(), [1.0, 2.0, 0.0, 0.5, 1.0, 3.0]);
    assert_eq!(replicate_channels(&[4.0], 1, &[]).unwrap(), [4.0]);
}

#[test]
fn bad_channel_requests_are_errors() {
    assert!(matches!(replicate_channels(&[1.0], 0, &[]), Err(PreprocessError::InvalidChannels { .. })));
    let one = [MeanStd { mean: 0.0, std: 1.0 }];
    assert!(matches!(
        replicate_channels(&[1.0], 3, &one),
        Err(PreprocessError::InvalidChannels { channels: 3, per_channel: 1 })
    ));
    assert!(replicate_channels_into(&[1.0, 2.0], 2, &[], &mut [0.0; 3]).is_err());
}
