use super::*;

fn ramp(n: usize) -> Vec<f32> {
    // Values with no short binary expansion, so that an identity copy is really tested.
    (0..n).map(|i| (i as f32 * 0.37).sin() * 1000.0 + 0.1).collect()
}

/// Resampling as two whole passes, the straightforward form the streaming one must equal
/// bit for bit: every input row resampled horizontally into a `height × out_width` buffer,
/// then each output row summed over its vertical taps.
pub(crate) fn two_whole_passes(image: &[f32], from: ImageSize, to: ImageSize) -> Vec<f32> {
    let along_x = AxisWeights::new(from.width, to.width).unwrap();
    let along_y = AxisWeights::new(from.height, to.height).unwrap();
    let rows: Vec<f32> = if along_x.method() == AxisMethod::Identity {
        image.to_vec()
    } else {
        let mut rows = vec![0.0f32; from.height * to.width];
        for (src, dst) in image.chunks_exact(from.width).zip(rows.chunks_exact_mut(to.width)) {
            for (x, d) in dst.iter_mut().enumerate() {
                let (start, weights) = along_x.taps(x);
                let taps = &src[start..start + weights.len()];
                *d = taps.iter().zip(weights).fold(0.0f64, |acc, (&v, &w)| acc + w * f64::from(v)) as f32;
            }
        }
        rows
    };
    if along_y.method() == AxisMethod::Identity {
        return rows;
    }
    let mut out = vec![0.0f32; to.height * to.width];
    let mut acc = vec![0.0f64; to.width];
    for (y, dst) in out.chunks_exact_mut(to.width).enumerate() {
        let (start, weights) = along_y.taps(y);
        acc.fill(0.0);
        for (k, &w) in weights.iter().enumerate() {
            let src = &rows[(start + k) * to.width..][..to.width];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += w * f64::from(v);
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = a as f32;
        }
    }
    out
}

/// Whether two images hold the same bits (so -0.0 and 0.0 differ, and NaN equals itself).
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn streaming_equals_the_two_whole_passes_bit_for_bit() {
    // Every pairing of these lengths on each axis: identity, integer and awkward shrink
    // factors (uniform, block and ragged area taps), growths, and 1 either way.
    let lengths = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 31];
    let mut state = 7u32;
    let mut value = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        // Signed values over several magnitudes, and zeros of both signs now and then.
        match state >> 28 {
            0 => -0.0,
            1 => 0.0,
            _ => ((state >> 8) as f32 / (1 << 24) as f32 - 0.5) * [1.0, 1e-3, 1e3, 7.0][(state & 3) as usize],
        }
    };
    for &(h, w) in &[(1, 1), (5, 9), (13, 7), (16, 12), (9, 31)] {
        let from = ImageSize::new(h, w);
        let image: Vec<f32> = (0..h * w).map(|_| value()).collect();
        for &th in &lengths {
            for &tw in &lengths {
                let to = ImageSize::new(th, tw);
                let streamed = resample(&image, from, to).unwrap();
                assert!(same_bits(&streamed, &two_whole_passes(&image, from, to)), "{from:?} -> {to:?}");
            }
        }
    }
}

#[test]
fn identity_size_returns_the_input_bit_for_bit() {
    let size = ImageSize::new(5, 7);
    let image = ramp(35);
    assert_eq!(resample(&image, size, size).unwrap(), image);
}

#[test]
fn constant_images_stay_constant() {
    let sizes = [(1, 1), (3, 5), (4, 4), (7, 3), (10, 13), (2, 9)];
    for &(h, w) in &sizes {
        for &(th, tw) in &sizes {
            let image = vec![-123.456f32; h * w];
            let out = resample(&image, ImageSize::new(h, w), ImageSize::new(th, tw)).unwrap();
            assert!(out.iter().all(|&v| v == -123.456), "{h}x{w} -> {th}x{tw}: {out:?}");
        }
    }
}

#[test]
fn area_4x4_to_2x2_is_the_mean_of_each_block() {
    #[rustfmt::skip]
        let image = [
            1.0, 2.0,   10.0, 20.0,
            3.0, 4.0,   30.0, 40.0,
            -1.0, -1.0, 0.0, 8.0,
            -1.0, -5.0, 0.0, 0.0,
        ];
    let out = resample(&image, ImageSize::new(4, 4), ImageSize::new(2, 2)).unwrap();
    assert_eq!(out, [2.5, 25.0, -2.0, 2.0]);
}

#[test]
fn bilinear_2x2_to_4x4_by_hand() {
    // Along one axis, 2 -> 4 samples at s = (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25,
    // 0.75, 1.25 (i0 = 1, the last pixel): [a, 0.75a + 0.25b, 0.25a + 0.75b, b].
    // Rows [0, 4] -> [0, 1, 3, 4] and [8, 12] -> [8, 9, 11, 12]; then the same down columns.
    let image = [0.0, 4.0, 8.0, 12.0];
    let out = resample(&image, ImageSize::new(2, 2), ImageSize::new(4, 4)).unwrap();
    #[rustfmt::skip]
        let expected = [
            0.0, 1.0, 3.0, 4.0,
            2.0, 3.0, 5.0, 6.0,
            6.0, 7.0, 9.0, 10.0,
            8.0, 9.0, 11.0, 12.0,
        ];
    assert_eq!(out, expected);
}

#[test]
fn linear_3_to_5_follows_pixel_centers() {
    // s = (i + 0.5) * 0.6 - 0.5 = -0.2 (-> 0), 0.4, 1.0, 1.6, 2.2 (i0 = 2, the last pixel).
    let out = resample(&[0.0, 10.0, 20.0], ImageSize::new(1, 3), ImageSize::new(1, 5)).unwrap();
    let expected = [0.0, 4.0, 10.0, 16.0, 20.0];
    for (o, e) in out.iter().zip(expected) {
        assert!((o - e).abs() < 1e-5, "{out:?}");
    }
}

#[test]
fn area_3_to_2_weighs_the_shared_pixel_by_half() {
    // Output 0 covers [0, 1.5): pixel 0 whole, pixel 1 half -> (2/3, 1/3); output 1 the rest.
    let out = resample(&[0.0, 3.0, 6.0], ImageSize::new(1, 3), ImageSize::new(1, 2)).unwrap();
    assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] - 5.0).abs() < 1e-6, "{out:?}");
    let table = AxisWeights::new(3, 2).unwrap();
    assert_eq!(table.method(), AxisMethod::Area);
    let (start, weights) = table.taps(1);
    assert_eq!(start, 1);
    assert!((weights[0] - 1.0 / 3.0).abs() < 1e-12 && (weights[1] - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn each_axis_picks_its_own_method() {
    // Height 2 -> 4 grows (linear), width 4 -> 2 shrinks (area).
    let image = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0];
    let out = resample(&image, ImageSize::new(2, 4), ImageSize::new(4, 2)).unwrap();
    assert_eq!(out, [1.0, 5.0, 3.0, 7.0, 7.0, 11.0, 9.0, 13.0]);
}

#[test]
fn weights_sum_to_one_for_awkward_ratios() {
    for (src, dst) in [(512, 224), (7, 3), (3, 7), (1000, 999), (224, 512), (1, 9), (9, 1)] {
        let table = AxisWeights::new(src, dst).unwrap();
        for i in 0..dst {
            let (start, weights) = table.taps(i);
            assert!(start + weights.len() <= src);
            assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{src}->{dst} at {i}");
            assert!(weights.iter().all(|&w| w > 0.0));
        }
    }
}

#[test]
fn bad_sizes_are_errors() {
    assert!(resample(&[], ImageSize::new(0, 4), ImageSize::new(2, 2)).is_err());
    assert!(resample(&[1.0; 4], ImageSize::new(2, 2), ImageSize::new(2, 0)).is_err());
    assert!(matches!(
        resample(&[1.0; 3], ImageSize::new(2, 2), ImageSize::new(2, 2)),
        Err(PreprocessError::LengthMismatch { expected: 4, actual: 3, .. })
    ));
    assert!(ImageSize::new(usize::MAX, 2).pixels().is_err());
    assert_eq!(AxisWeights::new(0, 3), Err(PreprocessError::Empty { what: "resampling axis" }));
}
