//! Modality LUT by rescale: stored values to output units (PS3.3 C.11.1, Modality LUT Module;
//! Rescale Slope (0028,1053) and Rescale Intercept (0028,1052), C.11.1.1.2).
//!
//! `output = stored * slope + intercept`, computed in `f64` and rounded once to `f32`. A Modality
//! LUT Sequence (a table instead of a rescale) is not handled here.

use crate::error::{check_len, finite, PreprocessError};
use crate::sample::StoredSample;

/// Rescale Slope and Rescale Intercept of one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale {
    /// Rescale Slope (0028,1053); 1 when absent.
    pub slope: f64,
    /// Rescale Intercept (0028,1052); 0 when absent.
    pub intercept: f64,
}

impl Default for Rescale {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Rescale {
    /// Slope 1, intercept 0: what an absent rescale means.
    pub const IDENTITY: Self = Self { slope: 1.0, intercept: 0.0 };

    /// Checks that slope and intercept are finite.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        finite("rescale slope", self.slope)?;
        finite("rescale intercept", self.intercept)?;
        Ok(())
    }

    /// `stored * slope + intercept` in `f64`, rounded to `f32`.
    ///
    /// Two roundings in `f64` (no fused multiply-add), so the result is the same on every CPU;
    /// a GPU twin that contracts to FMA differs by far less than the 1e-4 it must match.
    #[inline(always)]
    pub fn apply<S: StoredSample>(self, stored: S) -> f32 {
        self.apply_f64(stored.to_f64())
    }

    /// [`Rescale::apply`] of a stored value already widened to `f64` (exact for every
    /// [`StoredSample`]), e.g. one a GPU reduction returned.
    #[inline(always)]
    pub fn apply_f64(self, stored: f64) -> f32 {
        (stored * self.slope + self.intercept) as f32
    }
}

/// Applies one rescale to every stored value of a frame, writing `out`.
pub fn modality_rescale<S: StoredSample>(
    stored: &[S],
    rescale: Rescale,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    rescale.validate()?;
    check_len("modality output", stored.len(), out.len())?;
    rescale_frame(stored, rescale, out);
    Ok(())
}

/// Applies a rescale per frame to a multi-frame buffer of `per_frame.len()` frames of
/// `frame_len` values each (frame after frame, as in Pixel Data), writing `out`.
///
/// Multi-frame objects can carry a different slope and intercept in each frame's Pixel Value
/// Transformation functional group (C.7.6.16.2.9); the caller resolves them.
pub fn modality_rescale_frames<S: StoredSample>(
    stored: &[S],
    frame_len: usize,
    per_frame: &[Rescale],
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    let total = frame_len.checked_mul(per_frame.len()).ok_or(PreprocessError::LengthMismatch {
        what: "stored frames",
        expected: usize::MAX,
        actual: stored.len(),
    })?;
    check_len("stored frames", total, stored.len())?;
    check_len("modality output", total, out.len())?;
    for rescale in per_frame {
        rescale.validate()?;
    }
    if frame_len == 0 {
        return Ok(());
    }
    for ((frame, out), &rescale) in stored.chunks_exact(frame_len).zip(out.chunks_exact_mut(frame_len)).zip(per_frame) {
        rescale_frame(frame, rescale, out);
    }
    Ok(())
}

/// The loop itself: lengths already checked.
#[inline]
fn rescale_frame<S: StoredSample>(stored: &[S], rescale: Rescale, out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(stored) {
        *o = rescale.apply(s);
    }
}

#[cfg(test)]
mod tests;
