//! Where kernels run: the backend trait and its CPU reference. `test_device!` (in
//! test_device.rs) runs one test body on every backend compiled in (the pattern of candle's
//! `candle-core/src/test_utils.rs`).
//!
//! [`CpuBackend`] is the reference; `CudaBackend` (feature `cuda`, in `cuda.rs`) implements
//! [`PreprocessBackend`] with kernels that read the same [`Preprocess`] plan and the same
//! [`crate::AxisWeights`] tables; every test written with `test_device!` runs on the GPU too,
//! against the same expectations.

use crate::error::PreprocessError;
use crate::plan::Preprocess;
use crate::resample::{resample, ImageSize};
use crate::sample::StoredSample;

/// A device that can run the preprocessing kernels. Host slices in, host vectors out: a GPU
/// backend copies both ways, which is what tests compare; keeping results on the device for
/// inference is the GPU backend's own, additional API.
pub trait PreprocessBackend {
    /// The largest absolute difference from the CPU reference this backend promises, for
    /// outputs of order 1: none for the CPU (the fused plan rounds where the separate functions
    /// do, so it equals them bit for bit), 1e-4 for a GPU (`f32` arithmetic, other summation
    /// order, FMA contraction, a different `exp`).
    const TOLERANCE: f32;

    /// A short name for messages, e.g. `"cpu"`.
    fn name(&self) -> &'static str;

    /// Step 1 of the plan (modality, window, normalization) on every stored value.
    fn elementwise<S: StoredSample>(&self, plan: &Preprocess, stored: &[S]) -> Result<Vec<f32>, PreprocessError>;

    /// Resamples a single-channel image from `from` to `to`.
    fn resample(&self, image: &[f32], from: ImageSize, to: ImageSize) -> Result<Vec<f32>, PreprocessError>;

    /// The whole plan on one `height × width` frame: a CHW image of
    /// [`Preprocess::output_shape`].
    fn preprocess<S: StoredSample>(
        &self,
        plan: &Preprocess,
        stored: &[S],
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>, PreprocessError>;
}

/// The CPU reference: what every other backend is measured against.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl PreprocessBackend for CpuBackend {
    const TOLERANCE: f32 = 0.0;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn elementwise<S: StoredSample>(&self, plan: &Preprocess, stored: &[S]) -> Result<Vec<f32>, PreprocessError> {
        let mut out = vec![0.0; stored.len()];
        plan.elementwise_cpu(stored, &mut out)?;
        Ok(out)
    }

    fn resample(&self, image: &[f32], from: ImageSize, to: ImageSize) -> Result<Vec<f32>, PreprocessError> {
        resample(image, from, to)
    }

    fn preprocess<S: StoredSample>(
        &self,
        plan: &Preprocess,
        stored: &[S],
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        plan.run_cpu(stored, height, width)
    }
}

#[cfg(test)]
mod tests;
