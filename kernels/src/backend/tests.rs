use super::*;
use crate::modality::{modality_rescale, Rescale};
use crate::normalize::{normalize, replicate_channels, MeanStd, Normalization};
use crate::voi::{voi_window, OutputRange, VoiFunction, Window};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// The plan by way of the separate functions, one after the other.
fn separately<S: StoredSample>(plan: &Preprocess, stored: &[S], input: ImageSize) -> Vec<f32> {
    let mut image = vec![0.0; stored.len()];
    modality_rescale(stored, plan.rescale, &mut image).unwrap();
    if let Some(window) = &plan.window {
        let rescaled = image.clone();
        voi_window(&rescaled, window, &mut image).unwrap();
    }
    normalize(&mut image, &plan.normalization).unwrap();
    let target = plan.target.unwrap_or(input);
    let image = resample(&image, input, target).unwrap();
    replicate_channels(&image, plan.channels, &plan.channel_mean_std).unwrap()
}

/// A CT-like frame: values well below, inside and above a soft-tissue window.
fn ct_frame(input: ImageSize) -> Vec<i16> {
    let n = input.height * input.width;
    (0..n).map(|i| ((i * 7919) % 2600) as i16 - 1000).collect()
}

fn plans() -> Vec<Preprocess> {
    let imagenet = vec![
        MeanStd { mean: 0.485, std: 0.229 },
        MeanStd { mean: 0.456, std: 0.224 },
        MeanStd { mean: 0.406, std: 0.225 },
    ];
    let mut plans = Vec::new();
    for function in [None, Some(VoiFunction::Linear), Some(VoiFunction::LinearExact), Some(VoiFunction::Sigmoid)] {
        for normalization in [
            Normalization::None,
            Normalization::MeanStd(MeanStd { mean: 0.2, std: 0.3 }),
            Normalization::MinMax { min: 0.1, max: 0.9 },
            Normalization::MinMaxOfImage,
        ] {
            for target in [None, Some(ImageSize::new(7, 5)), Some(ImageSize::new(24, 30)), Some(ImageSize::new(9, 31))]
            {
                for (channels, per_channel) in [(1, vec![]), (3, vec![]), (3, imagenet.clone())] {
                    plans.push(Preprocess {
                        rescale: Rescale { slope: 1.5, intercept: -1024.0 },
                        window: function.map(|f| Window::new(40.0, 400.0, f, OutputRange::UNIT).unwrap()),
                        normalization,
                        target,
                        channels,
                        channel_mean_std: per_channel,
                    });
                }
            }
        }
    }
    plans
}

fn fused_plan_matches_the_separate_functions<B: PreprocessBackend>(device: &B) -> Result<(), PreprocessError> {
    let input = ImageSize::new(12, 17);
    let stored = ct_frame(input);
    for plan in plans() {
        let fused = device.preprocess(&plan, &stored, input.height, input.width)?;
        let diff = max_abs_diff(&fused, &separately(&plan, &stored, input));
        assert!(diff <= B::TOLERANCE, "{}: {diff} for {plan:?}", device.name());
    }
    Ok(())
}
test_device!(
    fused_plan_matches_the_separate_functions,
    fused_plan_matches_the_separate_functions_cpu,
    fused_plan_matches_the_separate_functions_cuda
);

fn every_stored_type_and_an_inverted_range<B: PreprocessBackend>(device: &B) -> Result<(), PreprocessError> {
    let plan = Preprocess {
        rescale: Rescale { slope: -0.75, intercept: 100.0 },
        window: Some(Window::new(20.0, 90.0, VoiFunction::Linear, OutputRange { min: 1.0, max: -1.0 })?),
        normalization: Normalization::MinMaxOfImage,
        target: Some(ImageSize::new(3, 2)),
        ..Preprocess::default()
    };
    let input = ImageSize::new(4, 4);
    fn check<B: PreprocessBackend, S: StoredSample>(device: &B, plan: &Preprocess, stored: &[S], input: ImageSize) {
        let fused = device.preprocess(plan, stored, input.height, input.width).unwrap();
        assert!(max_abs_diff(&fused, &separately(plan, stored, input)) <= B::TOLERANCE);
        let elementwise = device.elementwise(plan, stored).unwrap();
        let whole = Preprocess { target: None, ..plan.clone() };
        assert!(max_abs_diff(&elementwise, &separately(&whole, stored, input)) <= B::TOLERANCE);
    }
    let base: Vec<i32> = (0..16).map(|i| i * 13 - 60).collect();
    check(device, &plan, &base.iter().map(|&v| (v + 60) as u8).collect::<Vec<_>>(), input);
    check(device, &plan, &base.iter().map(|&v| v as i8).collect::<Vec<_>>(), input);
    check(device, &plan, &base.iter().map(|&v| (v + 60) as u16 * 300).collect::<Vec<_>>(), input);
    check(device, &plan, &base.iter().map(|&v| v as i16 * 5).collect::<Vec<_>>(), input);
    check(device, &plan, &base.iter().map(|&v| (v + 60) as u32).collect::<Vec<_>>(), input);
    check(device, &plan, &base, input);
    Ok(())
}
test_device!(
    every_stored_type_and_an_inverted_range,
    every_stored_type_and_an_inverted_range_cpu,
    every_stored_type_and_an_inverted_range_cuda
);

fn resampling_by_hand<B: PreprocessBackend>(device: &B) -> Result<(), PreprocessError> {
    let up = device.resample(&[0.0, 4.0, 8.0, 12.0], ImageSize::new(2, 2), ImageSize::new(4, 4))?;
    let expected = [0.0, 1.0, 3.0, 4.0, 2.0, 3.0, 5.0, 6.0, 6.0, 7.0, 9.0, 10.0, 8.0, 9.0, 11.0, 12.0];
    assert!(max_abs_diff(&up, &expected) <= B::TOLERANCE * 12.0);
    let down = device.resample(&up, ImageSize::new(4, 4), ImageSize::new(2, 2))?;
    assert!(max_abs_diff(&down, &[1.5, 4.5, 7.5, 10.5]) <= B::TOLERANCE * 12.0);
    Ok(())
}
test_device!(resampling_by_hand, resampling_by_hand_cpu, resampling_by_hand_cuda);
