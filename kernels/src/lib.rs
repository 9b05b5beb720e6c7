//! Preprocessing kernels for the `preprocess` operator: stored pixel values in, a model's input
//! tensor out. This crate holds the CPU reference of each kernel and, with the feature `cuda`,
//! their CUDA twins (`src/cuda/preprocess.cu`, compiled by NVRTC at run time), which must match
//! it to 1e-4 ([`PreprocessBackend::TOLERANCE`]).
//!
//! Nothing here knows about DICOM files: the operator decodes Pixel Data and reads the
//! attributes, and hands over plain slices of stored values with plain numbers. The standard is
//! cited where it defines the arithmetic.
//!
//! | module | what | standard |
//! |---|---|---|
//! | [`sample`] | the stored integer types ([`StoredSample`]) | |
//! | [`modality`] | modality LUT by rescale: `v * slope + intercept`, per frame | PS3.3 C.11.1 |
//! | [`voi`] | VOI LUT window: LINEAR, LINEAR_EXACT, SIGMOID onto `[y_min, y_max]` | PS3.3 C.11.2.1.2, C.11.2.1.3 |
//! | [`normalize`](mod@normalize) | mean/std, min/max, channel replication | |
//! | [`resample`](mod@resample) | linear when an axis grows, area when it shrinks | |
//! | [`layout`] | CHW images, NCHW batches, slices sorted into a volume | PS3.3 C.7.6.2.1.1 |
//! | [`plan`] | [`Preprocess`]: all of the above fused, one pass over the pixels | |
//! | [`backend`] | [`PreprocessBackend`], [`CpuBackend`], [`test_device!`] | |
//! | `cuda` | `CudaBackend`: the same plan on the GPU (feature `cuda`) | |
//!
//! # Precision contract
//! Inside a step, arithmetic is `f64`; every step hands on `f32`. The fused plan rounds at the
//! same points as the separate functions, so on the CPU the two agree to the last bit (the tests
//! demand bit equality). The CUDA twin takes the same steps (`f64` inside, no FMA contraction)
//! and must agree to 1e-4.
//!
//! # Testing on devices
//! A test body generic over [`PreprocessBackend`] and registered with [`test_device!`] runs on
//! the CPU and, with `--features cuda`, on the GPU. Without a GPU the CUDA tests are skipped
//! through `radstream_test_gate::needs_device` (said on stderr, and counted apart and named by
//! `infra/test.sh`); `RADSTREAM_REQUIRE_GPU=1` makes them fail instead (the GPU check script
//! sets it), so a GPU run that did not happen is never reported as one.
//!
//! The CPU side is `std` only and allocation-free per pixel: buffers are sized once per image.

#[macro_use]
mod test_device;

pub mod backend;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod layout;
pub mod modality;
pub mod normalize;
pub mod plan;
pub mod resample;
pub mod sample;
pub mod voi;

pub use backend::{CpuBackend, PreprocessBackend};
#[cfg(feature = "cuda")]
pub use cuda::CudaBackend;
pub use error::PreprocessError;
pub use layout::{order_slices, stack_slices, ChwImage, SliceGeometry, SliceOrder, Tensor, Volume};
pub use modality::{modality_rescale, modality_rescale_frames, Rescale};
pub use normalize::{image_min_max, normalize, replicate_channels, replicate_channels_into, MeanStd, Normalization};
pub use plan::Preprocess;
pub use resample::{resample, resample_into, AxisMethod, AxisWeights, ImageSize};
pub use sample::{stored_min_max, SampleKind, StoredSample};
pub use voi::{voi_window, OutputRange, VoiFunction, Window};
