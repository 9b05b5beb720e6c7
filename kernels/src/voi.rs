//! VOI LUT by window: output of the modality LUT to a chosen output range
//! (PS3.3 C.11.2, VOI LUT Module; Window Center (0028,1050), Window Width (0028,1051) and
//! VOI LUT Function (0028,1056), C.11.2.1.2 and C.11.2.1.3).
//!
//! With `x` the input, `c` the center, `w` the width and `[y_min, y_max]` the output range:
//!
//! * LINEAR (C.11.2.1.2.1), the default when VOI LUT Function is absent; `w >= 1`:
//!   ```text
//!   if      x <= c - 0.5 - (w - 1) / 2  then y = y_min
//!   else if x >  c - 0.5 + (w - 1) / 2  then y = y_max
//!   else    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min
//!   ```
//!   With `w == 1` the last branch is never reached: a threshold at `c - 0.5`.
//! * LINEAR_EXACT (C.11.2.1.3.2); `w > 0`:
//!   ```text
//!   if      x <= c - w / 2  then y = y_min
//!   else if x >  c + w / 2  then y = y_max
//!   else    y = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
//!   ```
//! * SIGMOID (C.11.2.1.3.1, Equation C.11-1); `w > 0`:
//!   ```text
//!   y = (y_max - y_min) / (1 + exp(-4 * (x - c) / w)) + y_min
//!   ```
//!
//! The standard's output is an integer range for the Presentation LUT; a model wants floats, so
//! `[y_min, y_max]` is any finite pair (typically `0..1`) and nothing is rounded. `y_min > y_max`
//! is allowed and inverts the ramp (a MONOCHROME1 image shown as MONOCHROME2).
//!
//! Arithmetic is in `f64` on the `f32` input, rounded once to `f32`; the constants of each
//! formula are folded once per window, so no pixel divides. The linear ramps are clamped
//! to the output range so that rounding can never step outside it; this keeps the functions
//! monotone, which the fused plan relies on (see [`crate::Preprocess`]).

use crate::error::{check_len, finite, PreprocessError};

pub(crate) mod function;

pub use self::function::VoiFunction;

/// The range the window maps onto: `y_min` and `y_max` of C.11.2.1.2.1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputRange {
    /// `y_min`: the output for inputs at or below the window.
    pub min: f64,
    /// `y_max`: the output for inputs above the window.
    pub max: f64,
}

impl OutputRange {
    /// `0..1`, what most models want.
    pub const UNIT: Self = Self { min: 0.0, max: 1.0 };
}

impl Default for OutputRange {
    fn default() -> Self {
        Self::UNIT
    }
}

/// A validated window: center, width, VOI LUT function and output range.
///
/// Built only by [`Window::new`], so that a width the function does not allow never reaches a
/// kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    center: f64,
    width: f64,
    function: VoiFunction,
    range: OutputRange,
    /// Per-pixel constants, so that no pixel divides; see [`Ramp`].
    ramp: Ramp,
}

/// The formulas rearranged with their constants folded once per window: the linear ramps as
/// `(x - origin) * gain + base` between `lower` and `upper`, the sigmoid as
/// `(y_max - y_min) / (1 + exp((x - c) * gain)) + y_min`. The same functions up to `f64`
/// rounding, which the final rounding to `f32` hides.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ramp {
    lower: f64,
    upper: f64,
    origin: f64,
    gain: f64,
    base: f64,
}

impl Ramp {
    fn new(center: f64, width: f64, function: VoiFunction, range: OutputRange) -> Self {
        let span = range.max - range.min;
        let base = 0.5 * span + range.min;
        match function {
            // c - 0.5 ± (w - 1) / 2; with w == 1 the ramp is empty and its gain unused.
            VoiFunction::Linear => Self {
                lower: center - 0.5 - (width - 1.0) / 2.0,
                upper: center - 0.5 + (width - 1.0) / 2.0,
                origin: center - 0.5,
                gain: if width > 1.0 { span / (width - 1.0) } else { 0.0 },
                base,
            },
            VoiFunction::LinearExact => Self {
                lower: center - width / 2.0,
                upper: center + width / 2.0,
                origin: center,
                gain: span / width,
                base,
            },
            VoiFunction::Sigmoid => {
                Self { lower: f64::NEG_INFINITY, upper: f64::INFINITY, origin: center, gain: -4.0 / width, base }
            }
        }
    }
}

impl Window {
    /// Checks the parameters: all finite, `width >= 1` for LINEAR, `width > 0` for
    /// LINEAR_EXACT and SIGMOID.
    pub fn new(center: f64, width: f64, function: VoiFunction, range: OutputRange) -> Result<Self, PreprocessError> {
        finite("window center", center)?;
        finite("window width", width)?;
        finite("output range minimum", range.min)?;
        finite("output range maximum", range.max)?;
        let allowed = match function {
            VoiFunction::Linear => width >= 1.0,
            VoiFunction::LinearExact | VoiFunction::Sigmoid => width > 0.0,
        };
        if !allowed {
            return Err(PreprocessError::WindowWidth { function, width });
        }
        Ok(Self { center, width, function, range, ramp: Ramp::new(center, width, function, range) })
    }

    /// Window Center.
    pub fn center(&self) -> f64 {
        self.center
    }

    /// Window Width.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// VOI LUT Function.
    pub fn function(&self) -> VoiFunction {
        self.function
    }

    /// Output range.
    pub fn range(&self) -> OutputRange {
        self.range
    }

    /// The folded constants `(lower, upper, origin, gain, base)` the per-pixel formulas use,
    /// for a GPU twin to apply the very same arithmetic.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn ramp_constants(&self) -> (f64, f64, f64, f64, f64) {
        let Ramp { lower, upper, origin, gain, base } = self.ramp;
        (lower, upper, origin, gain, base)
    }

    /// The window applied to one value, by its function.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        match self.function {
            VoiFunction::Linear | VoiFunction::LinearExact => self.linear(x),
            VoiFunction::Sigmoid => self.sigmoid(x),
        }
    }

    /// LINEAR (C.11.2.1.2.1) or LINEAR_EXACT (C.11.2.1.3.2), by the ramp's constants:
    /// `y_min` at or below `lower`, `y_max` above `upper`, the ramp between.
    #[inline(always)]
    pub(crate) fn linear(&self, x: f32) -> f32 {
        let x = f64::from(x);
        let Ramp { lower, upper, origin, gain, base } = self.ramp;
        let y = if x <= lower {
            self.range.min
        } else if x > upper {
            self.range.max
        } else {
            self.clamp((x - origin) * gain + base)
        };
        y as f32
    }

    /// SIGMOID, C.11.2.1.3.1.
    #[inline(always)]
    pub(crate) fn sigmoid(&self, x: f32) -> f32 {
        let OutputRange { min, max } = self.range;
        let Ramp { origin, gain, .. } = self.ramp;
        ((max - min) / (1.0 + ((f64::from(x) - origin) * gain).exp()) + min) as f32
    }

    /// Clamps a ramp value into the output range, whichever way round it is.
    #[inline(always)]
    fn clamp(&self, y: f64) -> f64 {
        let OutputRange { min, max } = self.range;
        y.clamp(min.min(max), min.max(max))
    }
}

/// Applies `window` to every value of `input`, writing `out`.
pub fn voi_window(input: &[f32], window: &Window, out: &mut [f32]) -> Result<(), PreprocessError> {
    check_len("VOI output", input.len(), out.len())?;
    // One loop per function, chosen once: no per-pixel dispatch.
    fn each(input: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
        for (o, &x) in out.iter_mut().zip(input) {
            *o = f(x);
        }
    }
    match window.function {
        VoiFunction::Linear | VoiFunction::LinearExact => each(input, out, |x| window.linear(x)),
        VoiFunction::Sigmoid => each(input, out, |x| window.sigmoid(x)),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
