//! The one error type of the preprocessing kernels.
//!
//! Every failure is a caller mistake (bad parameters or mismatched buffers): nothing here does
//! I/O, so there is nothing to retry. The `preprocess` operator maps these to dead letters.

use std::fmt;

use crate::voi::function::VoiFunction;

/// Why a preprocessing kernel refused its input.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PreprocessError {
    /// A parameter that must be a finite number is NaN or infinite.
    NonFinite {
        /// Which parameter, e.g. `"rescale slope"`.
        parameter: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The window width is below what its VOI LUT function allows (PS3.3 C.11.2.1.2.1 and
    /// C.11.2.1.3: LINEAR needs `width >= 1`, LINEAR_EXACT and SIGMOID need `width > 0`).
    WindowWidth {
        /// The VOI LUT function the width was given for.
        function: VoiFunction,
        /// The offending width.
        width: f64,
    },
    /// Normalization parameters that cannot be applied (`std <= 0`, `max <= min`).
    InvalidNormalization {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// An image size with a zero side, or one whose pixel count overflows `usize`.
    InvalidSize {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// A buffer whose length does not match the size it was given with.
    LengthMismatch {
        /// Which buffer, e.g. `"stored pixels"`.
        what: &'static str,
        /// The length the size implies.
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A channel count of zero, or per-channel statistics for a different number of channels.
    InvalidChannels {
        /// Channels asked for.
        channels: usize,
        /// Per-channel mean/std pairs given (0 means none).
        per_channel: usize,
    },
    /// A batch member whose `[C, H, W]` differs from the first member's.
    BatchShapeMismatch {
        /// Position of the offending member in the batch.
        index: usize,
        /// The first member's shape.
        expected: [usize; 3],
        /// The offending member's shape.
        actual: [usize; 3],
    },
    /// A batch, a slice stack or a resampling axis with no members.
    Empty {
        /// What was empty, e.g. `"batch"`.
        what: &'static str,
    },
    /// An image orientation whose row and column directions are parallel or zero, so that
    /// it has no slice normal.
    DegenerateOrientation {
        /// Position of the slice in the caller's list.
        index: usize,
    },
    /// A slice whose orientation is not parallel to the first slice's, so that the slices do
    /// not form one stack.
    InconsistentOrientation {
        /// Position of the slice in the caller's list.
        index: usize,
    },
    /// The GPU could not be used or failed (no driver, no NVRTC, a failed compile, launch or
    /// copy). Only the CUDA backend returns it; callers fall back to the CPU.
    Device {
        /// What failed, in the driver's words.
        message: String,
    },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonFinite { parameter, value } => write!(f, "{parameter} must be finite, got {value}"),
            Self::WindowWidth { function, width } => {
                let bound = match function {
                    VoiFunction::Linear => ">= 1",
                    VoiFunction::LinearExact | VoiFunction::Sigmoid => "> 0",
                };
                write!(f, "window width {width} is invalid for {function:?}: it must be {bound}")
            }
            Self::InvalidNormalization { reason } => write!(f, "invalid normalization: {reason}"),
            Self::InvalidSize { height, width } => write!(f, "invalid image size {height}x{width}"),
            Self::LengthMismatch { what, expected, actual } => {
                write!(f, "{what} has {actual} values where its size implies {expected}")
            }
            Self::InvalidChannels { channels, per_channel } => {
                write!(f, "invalid channels: {channels} channels with {per_channel} per-channel mean/std pairs")
            }
            Self::BatchShapeMismatch { index, expected, actual } => {
                write!(f, "batch member {index} has shape {actual:?}, the first has {expected:?}")
            }
            Self::Empty { what } => write!(f, "{what} is empty"),
            Self::DegenerateOrientation { index } => {
                write!(f, "slice {index}: image orientation has no normal (row and column directions are parallel)")
            }
            Self::InconsistentOrientation { index } => {
                write!(f, "slice {index}: image orientation is not parallel to the first slice's")
            }
            Self::Device { message } => write!(f, "GPU: {message}"),
        }
    }
}

impl std::error::Error for PreprocessError {}

/// Checks that `value` is finite, naming it in the error.
pub(crate) fn finite(parameter: &'static str, value: f64) -> Result<f64, PreprocessError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(PreprocessError::NonFinite { parameter, value })
    }
}

/// Checks that a buffer has the length its size implies.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), PreprocessError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PreprocessError::LengthMismatch { what, expected, actual })
    }
}
