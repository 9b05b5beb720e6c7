//! The fused preprocessing plan: everything between stored pixel values and a model's input.
//!
//! Order, per image:
//! 1. per pixel, in one pass: modality LUT ([`crate::modality`]) → VOI LUT window
//!    ([`crate::voi`], optional) → normalization ([`crate::normalize`](mod@crate::normalize));
//! 2. resampling to the target size ([`crate::resample`](mod@crate::resample), optional);
//! 3. channel replication, with optional per-channel mean/std.
//!
//! Each step's result is an `f32`, exactly what the separate functions produce, so
//! [`Preprocess::run_cpu`] equals calling them one after the other. Normalization before
//! resampling: mean/std is affine and resampling weights sum to 1, so the order does not matter
//! for it; min/max of the image is the range of the full-resolution image.
//!
//! [`Normalization::MinMaxOfImage`] needs the image's range before the pass that normalizes.
//! Rather than writing the windowed image and passing over it again, the plan takes the range
//! of the *stored* values (a read-only pass over the narrower input) and maps its two ends
//! through the modality and VOI steps: both are monotone (a rescale is linear, every VOI
//! function is non-decreasing for `y_min < y_max` and non-increasing otherwise, and the ramps
//! are clamped), so the ends land on the smallest and largest windowed values. A GPU twin does
//! the same: a reduction kernel, then the fused kernel.

use crate::error::{check_len, PreprocessError};
use crate::modality::Rescale;
use crate::normalize::{image_min_max, replicate_channels_into, validate_channels, MeanStd, Normalization, PixelNorm};
use crate::resample::{resample, ImageSize};
use crate::sample::{stored_min_max, StoredSample};
use crate::voi::{VoiFunction, Window};

/// What to do to one frame of stored values to make a model's input.
///
/// Plain data: a GPU backend reads the same fields and must produce the same values (within
/// [`crate::PreprocessBackend::TOLERANCE`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Modality LUT: Rescale Slope and Intercept of this frame.
    pub rescale: Rescale,
    /// VOI LUT window; `None` passes the modality output on unchanged.
    pub window: Option<Window>,
    /// Intensity normalization after the window.
    pub normalization: Normalization,
    /// Size to resample to; `None` keeps the input size.
    pub target: Option<ImageSize>,
    /// Number of output channels: the image is replicated into each.
    pub channels: usize,
    /// Per-channel mean/std applied while replicating (ImageNet style); empty for none, else
    /// one per channel.
    pub channel_mean_std: Vec<MeanStd>,
}

impl Default for Preprocess {
    /// Identity rescale, no window, no normalization, input size, one channel.
    fn default() -> Self {
        Self {
            rescale: Rescale::IDENTITY,
            window: None,
            normalization: Normalization::None,
            target: None,
            channels: 1,
            channel_mean_std: Vec::new(),
        }
    }
}

impl Preprocess {
    /// Checks every parameter; pure. The window was checked when it was built.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        self.rescale.validate()?;
        self.normalization.validate()?;
        if let Some(target) = self.target {
            target.pixels()?;
        }
        validate_channels(self.channels, &self.channel_mean_std)
    }

    /// `[C, H, W]` of the output for an input of `input`.
    pub fn output_shape(&self, input: ImageSize) -> [usize; 3] {
        let ImageSize { height, width } = self.target.unwrap_or(input);
        [self.channels, height, width]
    }

    /// Runs the plan on one frame of `height × width` stored values, row-major; returns the
    /// CHW image of [`Preprocess::output_shape`].
    pub fn run_cpu(
        &self,
        stored: &[impl StoredSample],
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        let [c, h, w] = self.output_shape(ImageSize::new(height, width));
        let len = [c, h, w]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or(PreprocessError::InvalidSize { height: h, width: w })?;
        let mut out = vec![0.0; len];
        self.run_cpu_into(stored, height, width, &mut out)?;
        Ok(out)
    }

    /// [`Preprocess::run_cpu`] into `out`, e.g. one image's slot of a batch tensor.
    pub fn run_cpu_into<S: StoredSample>(
        &self,
        stored: &[S],
        height: usize,
        width: usize,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.validate()?;
        let input = ImageSize::new(height, width);
        let pixels = input.pixels()?;
        check_len("stored pixels", pixels, stored.len())?;
        let target = self.target.unwrap_or(input);
        check_len("preprocessed output", target.pixels()?.saturating_mul(self.channels), out.len())?;

        if target == input && self.channels == 1 && self.channel_mean_std.is_empty() {
            self.fused_pass(stored, out);
            return Ok(());
        }
        let mut plane = vec![0.0; pixels];
        self.fused_pass(stored, &mut plane);
        let plane = if target == input { plane } else { resample(&plane, input, target)? };
        replicate_channels_into(&plane, self.channels, &self.channel_mean_std, out)
    }

    /// Step 1 alone: modality, window and normalization of every stored value, into `out`
    /// (as long as `stored`). The first kernel a GPU twin is compared on.
    pub fn elementwise_cpu<S: StoredSample>(&self, stored: &[S], out: &mut [f32]) -> Result<(), PreprocessError> {
        self.rescale.validate()?;
        self.normalization.validate()?;
        check_len("elementwise output", stored.len(), out.len())?;
        self.fused_pass(stored, out);
        Ok(())
    }

    /// Modality then window of one stored value, widened to `f64`.
    fn modality_voi(&self, stored: f64) -> f32 {
        let x = self.rescale.apply_f64(stored);
        self.window.map_or(x, |w| w.apply(x))
    }

    /// The per-pixel normalization for an image whose stored values span `stored_range`
    /// (asked for only by [`Normalization::MinMaxOfImage`]): its ends mapped through the
    /// modality and VOI steps, which are monotone. Shared with the GPU twin, whose reduction
    /// kernel supplies the range.
    pub(crate) fn pixel_norm(&self, stored_range: impl FnOnce() -> Option<(f64, f64)>) -> PixelNorm {
        self.normalization.resolve(|| {
            let (lo, hi) = stored_range()?;
            image_min_max(&[self.modality_voi(lo), self.modality_voi(hi)])
        })
    }

    /// The one pass; parameters already checked, lengths equal.
    fn fused_pass<S: StoredSample>(&self, stored: &[S], out: &mut [f32]) {
        let norm = self.pixel_norm(|| stored_min_max(stored).map(|(lo, hi)| (lo.to_f64(), hi.to_f64())));
        let rescale = self.rescale;
        // Every choice is made here, once, so that each of the loops below is straight-line.
        match &self.window {
            None => with_norm(stored, out, norm, |s| rescale.apply(s)),
            Some(w) => match w.function() {
                VoiFunction::Linear | VoiFunction::LinearExact => {
                    with_norm(stored, out, norm, |s| w.linear(rescale.apply(s)))
                }
                VoiFunction::Sigmoid => with_norm(stored, out, norm, |s| w.sigmoid(rescale.apply(s))),
            },
        }
    }
}

#[inline(always)]
fn with_norm<S: StoredSample>(stored: &[S], out: &mut [f32], norm: PixelNorm, voi: impl Fn(S) -> f32) {
    match norm {
        PixelNorm::Identity => each(stored, out, voi),
        PixelNorm::Standardize(ms) => each(stored, out, |s| ms.apply(voi(s))),
        PixelNorm::UnitRange { min, scale } => each(stored, out, |s| PixelNorm::to_unit_range(voi(s), min, scale)),
        PixelNorm::Zero => out.fill(0.0),
    }
}

#[inline(always)]
fn each<S: StoredSample>(stored: &[S], out: &mut [f32], f: impl Fn(S) -> f32) {
    for (o, &s) in out.iter_mut().zip(stored) {
        *o = f(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voi::OutputRange;

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
        let bad_norm =
            Preprocess { normalization: Normalization::MinMax { min: 1.0, max: 0.0 }, ..Preprocess::default() };
        assert!(bad_norm.run_cpu(&[0u8; 4], 2, 2).is_err());
        assert!(plan.run_cpu_into(&[0u8; 4], 2, 2, &mut [0.0; 3]).is_err());
    }
}
