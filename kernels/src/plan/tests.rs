use super::*;
use crate::normalize::replicate_channels;
use crate::resample::tests::{same_bits, two_whole_passes};
use crate::voi::OutputRange;

/// The plan computed the straightforward way, as it was before the value table and the
/// row-streaming resampling: every stored value through the per-value function into a
/// full-size image, the two whole resampling passes, then channel replication.
fn reference<S: StoredSample>(plan: &Preprocess, stored: &[S], input: ImageSize) -> Vec<f32> {
    let norm = plan.pixel_norm(|| stored_min_max(stored).map(|(lo, hi)| (lo.to_f64(), hi.to_f64())));
    let voi = |s: S| {
        let x = plan.rescale.apply(s);
        match &plan.window {
            None => x,
            Some(w) if w.function() == VoiFunction::Sigmoid => w.sigmoid(x),
            Some(w) => w.linear(x),
        }
    };
    let image: Vec<f32> = stored
        .iter()
        .map(|&s| match norm {
            PixelNorm::Identity => voi(s),
            PixelNorm::Standardize(ms) => ms.apply(voi(s)),
            PixelNorm::UnitRange { min, scale } => PixelNorm::to_unit_range(voi(s), min, scale),
            PixelNorm::Zero => 0.0,
        })
        .collect();
    let target = plan.target.unwrap_or(input);
    let image = if target == input { image } else { two_whole_passes(&image, input, target) };
    replicate_channels(&image, plan.channels, &plan.channel_mean_std).unwrap()
}

/// Plans over every window function (LINEAR of width 1 too), normalization, rescale sign and
/// channel layout, for `target`.
fn plans(target: Option<ImageSize>) -> Vec<Preprocess> {
    let per_channel = vec![
        MeanStd { mean: 0.485, std: 0.229 },
        MeanStd { mean: 0.456, std: 0.224 },
        MeanStd { mean: 0.406, std: 0.225 },
    ];
    let windows = [
        None,
        Some(Window::new(40.0, 400.0, VoiFunction::Linear, OutputRange::UNIT).unwrap()),
        Some(Window::new(3.0, 1.0, VoiFunction::Linear, OutputRange::UNIT).unwrap()),
        Some(Window::new(-20.0, 90.0, VoiFunction::LinearExact, OutputRange { min: 1.0, max: -1.0 }).unwrap()),
        Some(Window::new(10.0, 60.0, VoiFunction::Sigmoid, OutputRange::UNIT).unwrap()),
    ];
    let normalizations = [
        Normalization::None,
        Normalization::MeanStd(MeanStd { mean: 0.2, std: 0.3 }),
        Normalization::MinMax { min: 0.1, max: 0.9 },
        Normalization::MinMaxOfImage,
    ];
    let rescales = [Rescale { slope: 1.5, intercept: -24.0 }, Rescale { slope: -0.75, intercept: 3.0 }];
    let mut plans = Vec::new();
    for window in windows {
        for normalization in normalizations {
            for rescale in rescales {
                for (channels, channel_mean_std) in [(1, vec![]), (3, vec![]), (3, per_channel.clone())] {
                    plans.push(Preprocess { rescale, window, normalization, target, channels, channel_mean_std });
                }
            }
        }
    }
    plans
}

/// Stored values from a seed: over `span` values from `lowest` (a narrow span takes the
/// value table, a wide one the per-pixel function).
fn values(n: usize, lowest: i64, span: i64, seed: u32) -> impl Iterator<Item = i64> {
    let mut state = seed;
    (0..n).map(move |_| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        lowest + i64::from(state >> 8) % span
    })
}

fn check<S: StoredSample + TryFrom<i64>>(plan: &Preprocess, input: ImageSize, lowest: i64, span: i64) {
    let n = input.height * input.width;
    let stored: Vec<S> = values(n, lowest, span, n as u32).map(|v| S::try_from(v).ok().unwrap()).collect();
    let streamed = plan.run_cpu(&stored, input.height, input.width).unwrap();
    let expected = reference(plan, &stored, input);
    assert!(same_bits(&streamed, &expected), "{input:?}, values {lowest}+{span}, {plan:?}");
}

#[test]
fn streamed_plan_equals_the_straightforward_computation_bit_for_bit() {
    // Odd sizes; each axis grows, shrinks (block, uniform and ragged taps) or stays.
    let inputs = [ImageSize::new(1, 1), ImageSize::new(7, 1), ImageSize::new(9, 13), ImageSize::new(16, 12)];
    let targets = [None, Some(ImageSize::new(3, 4)), Some(ImageSize::new(20, 5)), Some(ImageSize::new(5, 26))];
    for target in targets {
        for plan in plans(target) {
            for input in inputs {
                // A narrow span (the table, when the image is large enough), then a wide one.
                for span in [3, 300] {
                    check::<u8>(&plan, input, 0, span.min(256));
                    check::<i8>(&plan, input, -100, span.min(200));
                    check::<u16>(&plan, input, 60_000, span);
                    check::<i16>(&plan, input, -150, span);
                    check::<u32>(&plan, input, 4_000_000_000, span);
                    check::<i32>(&plan, input, -2_000_000_000, span);
                }
            }
        }
    }
}

#[test]
fn the_value_table_is_taken_only_for_narrow_spans() {
    let plan = Preprocess::default();
    assert!(Pixelwise::new(&plan, &[5u8, 6, 5, 6]).table.is_some());
    assert!(Pixelwise::new(&plan, &[5u8, 7, 5, 6]).table.is_none());
    assert!(Pixelwise::new(&plan, &[0i32, 1 << 16, 5, 6].repeat(1 << 16)).table.is_none());
    let wide: Vec<u16> = (0..=u16::MAX).chain(0..=u16::MAX).collect();
    assert_eq!(Pixelwise::new(&plan, &wide).table.map(|(_, t)| t.len()), Some(1 << 16));
}

#[test]
fn overflowing_rescales_give_the_same_infinities_and_nans() {
    // f32 overflow on the rescale: ±inf, and with min/max of the image, inf * 0 = NaN.
    let plan = Preprocess {
        rescale: Rescale { slope: 1e38, intercept: 0.0 },
        normalization: Normalization::MinMaxOfImage,
        target: Some(ImageSize::new(3, 2)),
        ..Preprocess::default()
    };
    let input = ImageSize::new(6, 4);
    let stored: Vec<i8> = (0..24).map(|i| (i % 9 - 4) as i8).collect();
    let streamed = plan.run_cpu(&stored, 6, 4).unwrap();
    assert!(streamed.iter().any(|v| v.is_nan()));
    assert!(same_bits(&streamed, &reference(&plan, &stored, input)));
}

#[test]
fn ct_soft_tissue_by_hand() {
    // Stored u16 with intercept -1024: [-1024, 0, 40, 1024] HU. LINEAR_EXACT c = 40, w = 400
    // maps [-160, 240] onto 0..1: [0, 0.4, 0.5, 1]. Then (x - 0.5) / 0.5: [-1, -0.2, 0, 1].
    let plan = Preprocess {
        rescale: Rescale { slope: 1.0, intercept: -1024.0 },
        window: Some(Window::new(40.0, 400.0, VoiFunction::LinearExact, OutputRange::UNIT).unwrap()),
        normalization: Normalization::MeanStd(MeanStd { mean: 0.5, std: 0.5 }),
        ..Preprocess::default()
    };
    let out = plan.run_cpu(&[0u16, 1024, 1064, 2048], 2, 2).unwrap();
    let expected = [-1.0, -0.2, 0.0, 1.0];
    assert!(out.iter().zip(expected).all(|(o, e)| (o - e).abs() < 1e-6), "{out:?}");
}

#[test]
fn shrink_then_three_channels_by_hand() {
    // 2x4 -> 1x2 is the mean of each 2x2 block; then three identical planes.
    let plan = Preprocess { target: Some(ImageSize::new(1, 2)), channels: 3, ..Preprocess::default() };
    let out = plan.run_cpu(&[1i8, 3, -4, -8, 5, 7, 0, 0], 2, 4).unwrap();
    assert_eq!(plan.output_shape(ImageSize::new(2, 4)), [3, 1, 2]);
    assert_eq!(out, [4.0, -3.0, 4.0, -3.0, 4.0, -3.0]);
}

#[test]
fn min_max_of_image_follows_a_negative_slope() {
    // Slope -2: stored [0, 1, 3] -> [0, -2, -6]; the largest stored value gives the minimum.
    let plan = Preprocess {
        rescale: Rescale { slope: -2.0, intercept: 0.0 },
        normalization: Normalization::MinMaxOfImage,
        ..Preprocess::default()
    };
    let out = plan.run_cpu(&[0u8, 1, 3], 1, 3).unwrap();
    assert!(out.iter().zip([1.0, 2.0 / 3.0, 0.0]).all(|(o, e)| (o - e).abs() < 1e-6), "{out:?}");
    assert_eq!(plan.run_cpu(&[9u8; 4], 2, 2).unwrap(), [0.0; 4]);
}

#[test]
fn bad_plans_and_buffers_are_errors() {
    let plan = Preprocess::default();
    assert!(matches!(plan.run_cpu(&[0u8; 3], 2, 2), Err(PreprocessError::LengthMismatch { .. })));
    assert!(matches!(plan.run_cpu(&[] as &[u8], 0, 2), Err(PreprocessError::InvalidSize { .. })));
    let zero_target = Preprocess { target: Some(ImageSize::new(0, 3)), ..Preprocess::default() };
    assert!(zero_target.run_cpu(&[0u8; 4], 2, 2).is_err());
    let no_channels = Preprocess { channels: 0, ..Preprocess::default() };
    assert!(no_channels.run_cpu(&[0u8; 4], 2, 2).is_err());
    let bad_norm = Preprocess { normalization: Normalization::MinMax { min: 1.0, max: 0.0 }, ..Preprocess::default() };
    assert!(bad_norm.run_cpu(&[0u8; 4], 2, 2).is_err());
    assert!(plan.run_cpu_into(&[0u8; 4], 2, 2, &mut [0.0; 3]).is_err());
}
