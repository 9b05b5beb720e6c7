//! Resampling a single-channel image (row-major `f32`, `height × width`) to another size.
//!
//! Each axis is resampled on its own, by whether it grows or shrinks:
//!
//! * **grows: linear**, pixel centers aligned (PyTorch `interpolate(mode="bilinear",
//!   align_corners=False)`, OpenCV `INTER_LINEAR`). Output index `i` samples the input at
//!   `s = (i + 0.5) * in / out - 0.5`, clamped below at 0; with `i0 = floor(s)` and `f = s - i0`
//!   the value is `(1 - f) * v[i0] + f * v[min(i0 + 1, in - 1)]`. The borders therefore repeat the
//!   edge pixel, as both libraries do.
//! * **shrinks: area** (OpenCV `INTER_AREA` when shrinking): output index `i` covers the input
//!   interval `[i * in / out, (i + 1) * in / out)`; each input pixel `[j, j + 1)` weighs by the
//!   length of its overlap with it, and the weights are divided by their sum (`in / out`). For
//!   an integer factor this is the plain block mean. OpenCV drops overlaps under 1e-3 of a pixel;
//!   here only overlaps under 1e-9 are dropped, a difference well below the 1e-4 tolerance.
//! * **same length: identity**, the values copied untouched.
//!
//! Both axes together are the separable product of their weights: a horizontal pass over each
//! input row, then a vertical pass over the resampled rows. Weights are `f64` and sums are taken
//! in `f64` over the taps in order, rounded to `f32` after each pass; so a constant image stays
//! exactly constant and the identity size returns the input bit for bit. The passes stream: an
//! input row is resampled horizontally as soon as the vertical taps reach it, and only the few
//! rows those taps span are kept (`resample_rows_into`), so no `height × out_width` buffer is
//! written and read back, and the fused plan never holds its full-size intermediate either. A
//! GPU twin may do both passes in one kernel in `f32`: the difference is far below 1e-4.
//! [`AxisWeights`] is public so that it can upload the very same tables instead of recomputing
//! them.

use crate::error::{check_len, PreprocessError};

/// Height and width of a single-channel image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageSize {
    /// A size of `height` rows and `width` columns.
    pub const fn new(height: usize, width: usize) -> Self {
        Self { height, width }
    }

    /// Number of pixels; an error for a zero side or a count that overflows `usize`.
    pub fn pixels(&self) -> Result<usize, PreprocessError> {
        match self.height.checked_mul(self.width) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(PreprocessError::InvalidSize { height: self.height, width: self.width }),
        }
    }
}

/// How one axis is resampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AxisMethod {
    /// Same length: copied.
    Identity,
    /// Longer output: linear interpolation between pixel centers.
    Linear,
    /// Shorter output: area averaging.
    Area,
}

impl AxisMethod {
    /// The method for an axis of `src_len` input pixels and `dst_len` output pixels.
    pub fn for_lengths(src_len: usize, dst_len: usize) -> Self {
        use std::cmp::Ordering::*;
        match dst_len.cmp(&src_len) {
            Equal => Self::Identity,
            Greater => Self::Linear,
            Less => Self::Area,
        }
    }
}

/// The weights of one axis: for each output index, a run of consecutive input indices and
/// their weights (which sum to 1).
#[derive(Clone, Debug, PartialEq)]
pub struct AxisWeights {
    src_len: usize,
    dst_len: usize,
    method: AxisMethod,
    /// First input index of each output index.
    starts: Vec<usize>,
    /// `weights[offsets[i]..offsets[i + 1]]` are output index `i`'s weights.
    offsets: Vec<usize>,
    weights: Vec<f64>,
}

impl AxisWeights {
    /// The weights for resampling `src_len` pixels to `dst_len`; both must be positive.
    pub fn new(src_len: usize, dst_len: usize) -> Result<Self, PreprocessError> {
        if src_len == 0 || dst_len == 0 {
            return Err(PreprocessError::Empty { what: "resampling axis" });
        }
        let method = AxisMethod::for_lengths(src_len, dst_len);
        let mut table = Self {
            src_len,
            dst_len,
            method,
            starts: Vec::with_capacity(dst_len),
            offsets: Vec::with_capacity(dst_len + 1),
            weights: Vec::with_capacity(dst_len * 2),
        };
        table.offsets.push(0);
        let (src, dst) = (src_len as f64, dst_len as f64);
        for i in 0..dst_len {
            match method {
                AxisMethod::Identity => table.push(i, &[1.0]),
                AxisMethod::Linear => {
                    let s = ((i as f64 + 0.5) * src / dst - 0.5).max(0.0);
                    let i0 = (s.floor() as usize).min(src_len - 1);
                    let f = s - i0 as f64;
                    if f == 0.0 || i0 + 1 == src_len {
                        table.push(i0, &[1.0]);
                    } else {
                        table.push(i0, &[1.0 - f, f]);
                    }
                }
                AxisMethod::Area => {
                    // One division each, so that integer factors give integer bounds exactly.
                    let a = (i * src_len) as f64 / dst;
                    let b = (((i + 1) * src_len) as f64 / dst).min(src);
                    let first = a.floor() as usize;
                    let last = (b.ceil() as usize).min(src_len);
                    let mut start = None;
                    let at = table.weights.len();
                    for j in first..last {
                        let overlap = b.min(j as f64 + 1.0) - a.max(j as f64);
                        if overlap > 1e-9 {
                            start.get_or_insert(j);
                            table.weights.push(overlap);
                        } else if start.is_some() {
                            break;
                        }
                    }
                    let total: f64 = table.weights[at..].iter().sum();
                    for w in &mut table.weights[at..] {
                        *w /= total;
                    }
                    table.starts.push(start.unwrap_or(first));
                    table.offsets.push(table.weights.len());
                }
            }
        }
        Ok(table)
    }

    fn push(&mut self, start: usize, weights: &[f64]) {
        self.starts.push(start);
        self.weights.extend_from_slice(weights);
        self.offsets.push(self.weights.len());
    }

    /// Input length.
    pub fn src_len(&self) -> usize {
        self.src_len
    }

    /// Output length.
    pub fn dst_len(&self) -> usize {
        self.dst_len
    }

    /// The method chosen for this axis.
    pub fn method(&self) -> AxisMethod {
        self.method
    }

    /// The raw tables: first input index per output index, offsets into the weights (one more
    /// than outputs), the weights; what a GPU twin uploads.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn tables(&self) -> (&[usize], &[usize], &[f64]) {
        (&self.starts, &self.offsets, &self.weights)
    }

    /// Output index `dst`'s first input index and the weights of it and the indices after it.
    ///
    /// # Panics
    /// If `dst >= self.dst_len()`.
    #[inline]
    pub fn taps(&self, dst: usize) -> (usize, &[f64]) {
        (self.starts[dst], &self.weights[self.offsets[dst]..self.offsets[dst + 1]])
    }
}

/// Resamples `image` (row-major, `from.height × from.width`) to `to`.
pub fn resample(image: &[f32], from: ImageSize, to: ImageSize) -> Result<Vec<f32>, PreprocessError> {
    let mut out = vec![0.0; to.pixels()?];
    resample_into(image, from, to, &mut out)?;
    Ok(out)
}

/// Resamples `image` (row-major, `from.height × from.width`) to `to`, writing `out`.
pub fn resample_into(image: &[f32], from: ImageSize, to: ImageSize, out: &mut [f32]) -> Result<(), PreprocessError> {
    check_len("image to resample", from.pixels()?, image.len())?;
    resample_rows_into(from, to, |y, row| row.copy_from_slice(&image[y * from.width..][..from.width]), out)
}

/// [`resample_into`] of an image that is produced row by row: `source_row(y, row)` writes input
/// row `y` (`from.width` values) into `row`. Rows are asked for in ascending order, each at most
/// once, and only those some output row needs.
///
/// The result is that of the two whole passes: each output row's vertical sum starts at 0 and
/// adds its taps in order, and each tap reads the horizontally resampled row it would read
/// there; the rows a vertical tap run spans (at most the longest run) are kept in a ring.
pub(crate) fn resample_rows_into(
    from: ImageSize,
    to: ImageSize,
    mut source_row: impl FnMut(usize, &mut [f32]),
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    from.pixels()?;
    check_len("resampled image", to.pixels()?, out.len())?;
    let along_x = AxisWeights::new(from.width, to.width)?;
    let along_y = AxisWeights::new(from.height, to.height)?;
    let horizontal = along_x.line_kernel();
    // Input row `y` before the horizontal pass; unused when that pass is the identity.
    let mut input = vec![0.0f32; if horizontal.is_identity() { 0 } else { from.width }];
    let mut resample_row = |y: usize, dst: &mut [f32]| {
        if horizontal.is_identity() {
            source_row(y, dst);
        } else {
            source_row(y, &mut input);
            horizontal.apply(&input, dst);
        }
    };

    if along_y.method == AxisMethod::Identity {
        for (y, dst) in out.chunks_exact_mut(to.width).enumerate() {
            resample_row(y, dst);
        }
        return Ok(());
    }
    let span = (0..to.height).map(|y| along_y.taps(y).1.len()).max().unwrap_or(1).max(1);
    // Horizontally resampled row `y` lives in slot `y % span`.
    let mut ring = vec![0.0f32; span * to.width];
    let mut next = 0;
    let mut acc = vec![0.0f64; to.width];
    for (y, dst) in out.chunks_exact_mut(to.width).enumerate() {
        let (start, weights) = along_y.taps(y);
        // Tap runs start in ascending order; rows no run covers are never produced.
        next = next.max(start);
        while next < start + weights.len() {
            resample_row(next, &mut ring[(next % span) * to.width..][..to.width]);
            next += 1;
        }
        acc.fill(0.0);
        for (k, &w) in weights.iter().enumerate() {
            let src = &ring[((start + k) % span) * to.width..][..to.width];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += w * f64::from(v);
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = a as f32;
        }
    }
    Ok(())
}

/// One axis's weights laid out for resampling whole lines: when every output index has the
/// same number of taps (integer shrink factors, most growths), the weights are read in fixed
/// strides and the per-output sum is unrolled.
enum LineKernel<'a> {
    Identity,
    /// Output `x` reads the `taps` inputs from `x * taps` (an integer shrink factor): the inputs
    /// are read as consecutive chunks, with no index per output.
    Blocks {
        taps: usize,
        weights: &'a [f64],
    },
    Uniform {
        taps: usize,
        starts: &'a [usize],
        weights: &'a [f64],
    },
    Ragged(&'a AxisWeights),
}

impl LineKernel<'_> {
    fn is_identity(&self) -> bool {
        matches!(self, Self::Identity)
    }

    /// Resamples the line `src` into `dst`: each output is `0 + w0 * v0 + w1 * v1 + ...` in
    /// `f64`, in tap order, rounded to `f32`.
    fn apply(&self, src: &[f32], dst: &mut [f32]) {
        match *self {
            Self::Identity => dst.copy_from_slice(src),
            Self::Blocks { taps: 2, weights } => blocks::<2>(weights, src, dst),
            Self::Blocks { taps: 3, weights } => blocks::<3>(weights, src, dst),
            Self::Blocks { taps: 4, weights } => blocks::<4>(weights, src, dst),
            Self::Blocks { taps, weights } => {
                for ((d, values), weights) in dst.iter_mut().zip(src.chunks_exact(taps)).zip(weights.chunks_exact(taps))
                {
                    *d = dot(weights, values);
                }
            }
            Self::Uniform { taps: 1, starts, weights } => fixed_taps::<1>(starts, weights, src, dst),
            Self::Uniform { taps: 2, starts, weights } => fixed_taps::<2>(starts, weights, src, dst),
            Self::Uniform { taps: 3, starts, weights } => fixed_taps::<3>(starts, weights, src, dst),
            Self::Uniform { taps: 4, starts, weights } => fixed_taps::<4>(starts, weights, src, dst),
            Self::Uniform { taps, starts, weights } => {
                for ((d, &start), weights) in dst.iter_mut().zip(starts).zip(weights.chunks_exact(taps)) {
                    *d = dot(weights, &src[start..start + taps]);
                }
            }
            Self::Ragged(axis) => {
                for (x, d) in dst.iter_mut().enumerate() {
                    let (start, weights) = axis.taps(x);
                    *d = dot(weights, &src[start..start + weights.len()]);
                }
            }
        }
    }
}

#[inline(always)]
fn dot(weights: &[f64], values: &[f32]) -> f32 {
    values.iter().zip(weights).fold(0.0f64, |acc, (&v, &w)| acc + w * f64::from(v)) as f32
}

#[inline(always)]
fn fixed_taps<const N: usize>(starts: &[usize], weights: &[f64], src: &[f32], dst: &mut [f32]) {
    let (weights, _) = weights.as_chunks::<N>();
    for ((d, &start), weights) in dst.iter_mut().zip(starts).zip(weights) {
        let values: &[f32; N] = src[start..start + N].try_into().expect("N taps");
        *d = dot(weights, values);
    }
}

#[inline(always)]
fn blocks<const N: usize>(weights: &[f64], src: &[f32], dst: &mut [f32]) {
    for ((d, values), weights) in dst.iter_mut().zip(src.as_chunks::<N>().0).zip(weights.as_chunks::<N>().0) {
        *d = dot(weights, values);
    }
}

impl AxisWeights {
    fn line_kernel(&self) -> LineKernel<'_> {
        if self.method == AxisMethod::Identity {
            return LineKernel::Identity;
        }
        let taps = self.offsets[1] - self.offsets[0];
        if taps > 0 && self.offsets.windows(2).all(|pair| pair[1] - pair[0] == taps) {
            if self.starts.iter().enumerate().all(|(x, &start)| start == x * taps) {
                return LineKernel::Blocks { taps, weights: &self.weights };
            }
            LineKernel::Uniform { taps, starts: &self.starts, weights: &self.weights }
        } else {
            LineKernel::Ragged(self)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
