//! The VOI LUT functions, apart from the window arithmetic so that errors can name one
//! without depending on it.

/// VOI LUT Function (0028,1056), defined terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VoiFunction {
    /// `LINEAR`, C.11.2.1.2.1; also what an absent VOI LUT Function means.
    #[default]
    Linear,
    /// `LINEAR_EXACT`, C.11.2.1.3.2.
    LinearExact,
    /// `SIGMOID`, C.11.2.1.3.1.
    Sigmoid,
}
