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
//!
//! On the CPU, step 1 runs row by row into the resampling ([`crate::resample`]'s row-streaming
//! form), and the output's first plane is written directly; no full-size intermediate image is
//! made. Stored values in a narrow range (any 8-bit image, a CT slice) go through a table of
//! step 1's result for each value in the range, built with the very function the pixels would
//! be run through: the same numbers, one look-up per pixel instead of the `f64` arithmetic.

use crate::error::{check_len, PreprocessError};
use crate::modality::Rescale;
use crate::normalize::{image_min_max, validate_channels, MeanStd, Normalization, PixelNorm};
use crate::resample::{resample_rows_into, ImageSize};
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
        let plane_len = target.pixels()?;
        check_len("preprocessed output", plane_len.saturating_mul(self.channels), out.len())?;

        let pixelwise = Pixelwise::new(self, stored);
        let (plane, other_planes) = out.split_at_mut(plane_len);
        if target == input {
            pixelwise.map(stored, plane);
        } else {
            resample_rows_into(input, target, |y, row| pixelwise.map(&stored[y * width..][..width], row), plane)?;
        }
        replicate_first_plane(plane, other_planes, &self.channel_mean_std);
        Ok(())
    }

    /// Step 1 alone: modality, window and normalization of every stored value, into `out`
    /// (as long as `stored`). The first kernel a GPU twin is compared on.
    pub fn elementwise_cpu<S: StoredSample>(&self, stored: &[S], out: &mut [f32]) -> Result<(), PreprocessError> {
        self.rescale.validate()?;
        self.normalization.validate()?;
        check_len("elementwise output", stored.len(), out.len())?;
        Pixelwise::new(self, stored).map(stored, out);
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
}

/// The most entries a table of step 1 may have (256 KiB of `f32`): every 8- and 16-bit range.
const TABLE_MAX: usize = 1 << 16;

/// Step 1 of one image with every choice made once: the normalization's constants and, when
/// the stored values span at most [`TABLE_MAX`] values and at most half as many as there are
/// pixels, the table of step 1's result for each value in the span.
struct Pixelwise<'p> {
    plan: &'p Preprocess,
    norm: PixelNorm,
    /// [`table_key`] of the smallest stored value, and the result for it and each value above.
    table: Option<(u64, Vec<f32>)>,
}

/// A stored value (an integer of at most 32 bits, widened to `f64`) plus 1.5 × 2^52: the sum is
/// exact, and every such sum has the same exponent, so the integer sits in the low bits of its
/// representation. The difference of two keys is the difference of the values, with no
/// float-to-integer conversion (whose saturation checks cost more than the look-up itself).
#[inline(always)]
fn table_key(stored: f64) -> u64 {
    (stored + 6_755_399_441_055_744.0).to_bits()
}

impl<'p> Pixelwise<'p> {
    fn new<S: StoredSample>(plan: &'p Preprocess, stored: &[S]) -> Self {
        let range = stored_min_max(stored).map(|(lo, hi)| (lo.to_f64(), hi.to_f64()));
        let mut pixelwise = Self { plan, norm: plan.pixel_norm(|| range), table: None };
        if let Some((lo, hi)) = range {
            // Exact: stored values are integers of at most 32 bits.
            let span = hi - lo + 1.0;
            if span <= TABLE_MAX as f64 && span <= (stored.len() / 2) as f64 {
                let table = pixelwise.dispatch(TableOf { lowest: lo, len: span as usize });
                pixelwise.table = Some((table_key(lo), table));
            }
        }
        pixelwise
    }

    /// Step 1 of `stored` (some of the image's values) into `out`, as long.
    fn map<S: StoredSample>(&self, stored: &[S], out: &mut [f32]) {
        match &self.table {
            Some((lowest, table)) => {
                each(stored, out, |s| table[table_key(s.to_f64()).wrapping_sub(*lowest) as usize]);
            }
            None => self.dispatch(EachValue { stored, out }),
        }
    }

    /// Hands `visitor` the per-value function of this plan; every choice is made here, once,
    /// so that the loop the visitor runs is straight-line.
    fn dispatch<V: ValueVisitor>(&self, visitor: V) -> V::Output {
        let rescale = self.plan.rescale;
        match &self.plan.window {
            None => with_norm(visitor, self.norm, move |s| rescale.apply_f64(s)),
            Some(w) => match w.function() {
                VoiFunction::Linear | VoiFunction::LinearExact => {
                    with_norm(visitor, self.norm, move |s| w.linear(rescale.apply_f64(s)))
                }
                VoiFunction::Sigmoid => with_norm(visitor, self.norm, move |s| w.sigmoid(rescale.apply_f64(s))),
            },
        }
    }
}

/// Something run with the per-value function of step 1, which takes a stored value widened to
/// `f64` (exact for every [`StoredSample`]).
trait ValueVisitor {
    type Output;
    fn visit(self, f: impl Fn(f64) -> f32) -> Self::Output;
}

/// The table of `len` stored values from `lowest` up.
struct TableOf {
    lowest: f64,
    len: usize,
}

impl ValueVisitor for TableOf {
    type Output = Vec<f32>;
    fn visit(self, f: impl Fn(f64) -> f32) -> Vec<f32> {
        (0..self.len).map(|i| f(self.lowest + i as f64)).collect()
    }
}

/// Every value of `stored` into `out`.
struct EachValue<'a, S> {
    stored: &'a [S],
    out: &'a mut [f32],
}

impl<S: StoredSample> ValueVisitor for EachValue<'_, S> {
    type Output = ();
    #[inline(always)]
    fn visit(self, f: impl Fn(f64) -> f32) {
        each(self.stored, self.out, |s| f(s.to_f64()));
    }
}

#[inline(always)]
fn with_norm<V: ValueVisitor>(visitor: V, norm: PixelNorm, voi: impl Fn(f64) -> f32) -> V::Output {
    match norm {
        PixelNorm::Identity => visitor.visit(voi),
        PixelNorm::Standardize(ms) => visitor.visit(move |s| ms.apply(voi(s))),
        PixelNorm::UnitRange { min, scale } => visitor.visit(move |s| PixelNorm::to_unit_range(voi(s), min, scale)),
        PixelNorm::Zero => visitor.visit(|_| 0.0),
    }
}

#[inline(always)]
fn each<S: StoredSample>(stored: &[S], out: &mut [f32], f: impl Fn(S) -> f32) {
    for (o, &s) in out.iter_mut().zip(stored) {
        *o = f(s);
    }
}

/// Step 3 with plane 0 already written: copies it into each of `other_planes`, standardizing
/// plane `c` with `per_channel[c]` when there are per-channel constants (plane 0 last, in place).
/// The same values as [`crate::replicate_channels`].
fn replicate_first_plane(first: &mut [f32], other_planes: &mut [f32], per_channel: &[MeanStd]) {
    for (c, plane) in other_planes.chunks_exact_mut(first.len()).enumerate() {
        match per_channel.get(c + 1) {
            None => plane.copy_from_slice(first),
            Some(ms) => {
                for (o, &x) in plane.iter_mut().zip(&*first) {
                    *o = ms.apply(x);
                }
            }
        }
    }
    if let Some(ms) = per_channel.first() {
        for x in first {
            *x = ms.apply(*x);
        }
    }
}

#[cfg(test)]
mod tests;
