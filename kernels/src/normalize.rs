//! Intensity normalization and channel replication: what a model expects after the VOI LUT.
//!
//! * mean/std: `(x - mean) / std`, with constants from the model's training;
//! * min/max: `(x - min) / (max - min)` clamped to `[0, 1]`, with `min` and `max` given, or
//!   taken from the image itself (then a constant image maps to 0);
//! * channel replication: a grayscale image copied into the `C` planes of a CHW image for models
//!   trained on RGB, each plane optionally standardized with its own mean/std (the ImageNet
//!   convention).
//!
//! Arithmetic is in `f64` on the `f32` input, rounded once to `f32`.

use crate::error::{check_len, finite, PreprocessError};

/// Standardization constants: `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanStd {
    /// Subtracted first.
    pub mean: f64,
    /// Divided by next; must be positive.
    pub std: f64,
}

impl MeanStd {
    /// Checks that both are finite and `std > 0`.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        finite("normalization mean", self.mean)?;
        if finite("normalization std", self.std)? <= 0.0 {
            return Err(PreprocessError::InvalidNormalization { reason: "std must be positive" });
        }
        Ok(())
    }

    /// `(x - mean) / std`, as `(x - mean) * (1 / std)`: the reciprocal is hoisted out of
    /// loops.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        ((f64::from(x) - self.mean) * (1.0 / self.std)) as f32
    }
}

/// How intensities are normalized after the VOI LUT.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Normalization {
    /// Values left as they are.
    #[default]
    None,
    /// `(x - mean) / std`.
    MeanStd(MeanStd),
    /// `(x - min) / (max - min)`, clamped to `[0, 1]`; `max > min`.
    MinMax {
        /// Maps to 0.
        min: f64,
        /// Maps to 1.
        max: f64,
    },
    /// Like [`Normalization::MinMax`] with the smallest and largest value of the image itself
    /// (before resampling); a constant image maps to 0.
    MinMaxOfImage,
}

impl Normalization {
    /// Checks the constants.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        match *self {
            Self::None | Self::MinMaxOfImage => Ok(()),
            Self::MeanStd(ms) => ms.validate(),
            Self::MinMax { min, max } => {
                finite("normalization minimum", min)?;
                finite("normalization maximum", max)?;
                if max > min {
                    Ok(())
                } else {
                    Err(PreprocessError::InvalidNormalization { reason: "max must be greater than min" })
                }
            }
        }
    }

    /// The per-pixel map, with `image_range` (smallest and largest value, `None` for an image
    /// without a number) asked for only by [`Normalization::MinMaxOfImage`].
    pub(crate) fn resolve(&self, image_range: impl FnOnce() -> Option<(f32, f32)>) -> PixelNorm {
        match *self {
            Self::None => PixelNorm::Identity,
            Self::MeanStd(ms) => PixelNorm::Standardize(ms),
            Self::MinMax { min, max } => PixelNorm::unit_range(min, max),
            Self::MinMaxOfImage => match image_range() {
                Some((lo, hi)) if hi > lo => PixelNorm::unit_range(f64::from(lo), f64::from(hi)),
                Some(_) => PixelNorm::Zero,
                None => PixelNorm::Identity,
            },
        }
    }
}

/// A normalization with its constants known: what the per-pixel loops apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PixelNorm {
    Identity,
    Standardize(MeanStd),
    /// `(x - min) * scale` clamped to `[0, 1]`, `scale = 1 / (max - min)`.
    UnitRange {
        min: f64,
        scale: f64,
    },
    Zero,
}

impl PixelNorm {
    fn unit_range(min: f64, max: f64) -> Self {
        Self::UnitRange { min, scale: 1.0 / (max - min) }
    }

    #[inline(always)]
    pub(crate) fn to_unit_range(x: f32, min: f64, scale: f64) -> f32 {
        ((f64::from(x) - min) * scale).clamp(0.0, 1.0) as f32
    }
}

/// The smallest and largest value, NaN ignored; `None` if there is no other value.
pub fn image_min_max(data: &[f32]) -> Option<(f32, f32)> {
    let (lo, hi) = data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    (lo <= hi).then_some((lo, hi))
}

/// Normalizes `data` in place.
pub fn normalize(data: &mut [f32], normalization: &Normalization) -> Result<(), PreprocessError> {
    normalization.validate()?;
    fn each(data: &mut [f32], f: impl Fn(f32) -> f32) {
        for v in data {
            *v = f(*v);
        }
    }
    match normalization.resolve(|| image_min_max(data)) {
        PixelNorm::Identity => {}
        PixelNorm::Standardize(ms) => each(data, |x| ms.apply(x)),
        PixelNorm::UnitRange { min, scale } => each(data, |x| PixelNorm::to_unit_range(x, min, scale)),
        PixelNorm::Zero => data.fill(0.0),
    }
    Ok(())
}

/// Checks a channel count and its optional per-channel mean/std (empty: none).
pub(crate) fn validate_channels(channels: usize, per_channel: &[MeanStd]) -> Result<(), PreprocessError> {
    if channels == 0 || !(per_channel.is_empty() || per_channel.len() == channels) {
        return Err(PreprocessError::InvalidChannels { channels, per_channel: per_channel.len() });
    }
    per_channel.iter().try_for_each(MeanStd::validate)
}

/// Copies a single-channel image into `channels` planes (CHW), standardizing plane `c` with
/// `per_channel[c]` when `per_channel` is not empty.
pub fn replicate_channels(
    image: &[f32],
    channels: usize,
    per_channel: &[MeanStd],
) -> Result<Vec<f32>, PreprocessError> {
    let len = image
        .len()
        .checked_mul(channels)
        .ok_or(PreprocessError::InvalidChannels { channels, per_channel: per_channel.len() })?;
    let mut out = vec![0.0; len];
    replicate_channels_into(image, channels, per_channel, &mut out)?;
    Ok(out)
}

/// [`replicate_channels`] into `out`, which holds `channels * image.len()` values.
pub fn replicate_channels_into(
    image: &[f32],
    channels: usize,
    per_channel: &[MeanStd],
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    validate_channels(channels, per_channel)?;
    check_len("channel planes", image.len().saturating_mul(channels), out.len())?;
    if image.is_empty() {
        return Ok(());
    }
    for (c, plane) in out.chunks_exact_mut(image.len()).enumerate() {
        match per_channel.get(c) {
            None => plane.copy_from_slice(image),
            Some(ms) => {
                for (o, &x) in plane.iter_mut().zip(image) {
                    *o = ms.apply(x);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
