//! `preprocess`: decodes an instance and turns it into the tensor a model expects.
//!
//! The model's [`PreprocessSpec`] (a `models/*.preprocess.toml` file, or the same fields inline
//! in the config) says what it wants: modalities, size, window, normalization, channels. Each
//! envelope's Pixel Data is decoded ([`decode::decode`]) and every frame run through the kernel
//! plan [`spec::plan_for`] makes for it; the `[frames, C, H, W]` result is attached to the
//! envelope as [`Envelope::tensor`]. Decoding and the transforms are CPU-heavy: they run on
//! tokio's blocking pool, one task per envelope.
//!
//! Outcomes:
//! * forwarded with its tensor;
//! * dropped (`preprocess_modality`) when the instance's modality is not one the spec lists:
//!   routing normally sends a model only what it takes, so such a drop is a routing mistake
//!   made visible in the drop counters rather than a tensor the model was never trained on;
//! * dead-lettered as `undecodable_pixels` when the pixel data cannot be decoded (the reason
//!   names the transfer syntax) or has a photometric interpretation the models do not take
//!   (the reason names it); as `malformed_dicom` when its codec stream declares another image
//!   than its attributes (the reason names both, e.g. a JPEG frame header of 65500×65500 in an
//!   object of 16×16: refused before anything is allocated, see [`decode`]) or when a spec of
//!   whole series gets an image without ImagePositionPatient/ImageOrientationPatient.
//!
//! Memory: one instance may decode to at most `max_decoded_bytes`, and the instances of a batch
//! decode side by side only while their decoded bytes together fit `decode_budget_bytes`; the
//! others wait for them (a [`DecodeBudget`] shared by the operator's tasks).
//!
//! A spec of whole series (`input = "series"`) makes the same per-frame tensor and also
//! attaches each frame's position and orientation ([`Envelope::geometry`]): the `infer`
//! operator's series assembly gathers the series and stacks the slices in patient order.
//! [`preprocess_series`] stacks a series of files at once (`radstream preprocess` on a folder).
//!
//! An envelope a routing rule sent to another model (`Envelope::model` is not the spec's name)
//! is forwarded untouched, so a chain can hold a `preprocess`/`infer` pair per model.
//!
//! The kernels run on the GPU when the build has the CUDA backend (feature `cuda`) and a GPU
//! starts, on the CPU otherwise ([`device`]); the operator says which, and why, once when it
//! is built.

pub mod device;
pub mod npy;
pub mod png;
pub mod series;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use radstream_schemas::ErrorClass;
use serde::{Deserialize, Serialize};

pub use radstream_kernels::Tensor;
pub use spec::{plan_for, InputKind, NormalizationSpec, PlanError, PreprocessSpec, WindowSpec};

pub use self::device::{ComputeDevice, DeviceChoice};
pub use self::series::{preprocess_series, SeriesTensor};
use crate::contract::{BuildContext, NoopRecorder, Recorder};
use crate::dicom::decode::{self, DecodeBudget, DecodeLimits, DecodedImage, Samples, MAX_DECODED_BYTES};
use crate::{ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// The drop rule of instances whose modality the spec does not list.
pub const MODALITY_DROP_RULE: &str = "preprocess_modality";

/// Configuration of the `preprocess` operator: the model's spec, from a file or inline.
///
/// ```toml
/// [[operators]]
/// type = "preprocess"
/// spec_file = "models/ct-head-bleed.preprocess.toml"
/// ```
/// or `[operators.spec]` with the spec's fields (see [`PreprocessSpec`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// A spec file (`models/*.preprocess.toml`), read when the operator is built; relative
    /// paths are relative to the working directory. Exactly one of `spec_file` and `spec`.
    #[serde(default)]
    pub spec_file: Option<PathBuf>,
    /// The spec inline, checked by `radstream validate` too.
    #[serde(default)]
    pub spec: Option<PreprocessSpec>,
    /// `"auto"` (the default): the GPU when this build has the CUDA backend and a GPU starts,
    /// else the CPU, with the reason in the log and in `radstream_compute_backend`. `"cpu"`:
    /// always the CPU. Both give the same numbers (to 1e-4).
    #[serde(default)]
    pub device: DeviceChoice,
    /// The most bytes one instance may decode to (all frames: Rows × Columns × SamplesPerPixel
    /// × BitsAllocated / 8 × NumberOfFrames); larger ones are dead-lettered as
    /// `undecodable_pixels`. Default and maximum 2 GiB (2147483648).
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: u64,
    /// The most decoded bytes the instances of a batch may hold at once: instances decode side
    /// by side while theirs fit together, the others wait; one larger than this decodes alone.
    /// Decoding holds two to three times these bytes (codec buffers, samples, a color
    /// conversion) plus the objects themselves.
    /// Default 1 GiB (1073741824): a batch of 16 can no longer hold 16 × 2 GiB.
    #[serde(default = "default_decode_budget_bytes")]
    pub decode_budget_bytes: u64,
}

/// Default of [`PreprocessConfig::max_decoded_bytes`]: the most any decode accepts.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = MAX_DECODED_BYTES;
/// Default of [`PreprocessConfig::decode_budget_bytes`]: 1 GiB.
pub const DEFAULT_DECODE_BUDGET_BYTES: u64 = 1 << 30;

fn default_max_decoded_bytes() -> u64 {
    DEFAULT_MAX_DECODED_BYTES
}

fn default_decode_budget_bytes() -> u64 {
    DEFAULT_DECODE_BUDGET_BYTES
}

impl PreprocessConfig {
    /// Checks the configuration without reading the spec file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_DECODED_BYTES).contains(&self.max_decoded_bytes) {
            return Err(ConfigError::new(
                "max_decoded_bytes",
                format!("must be from 1 to {MAX_DECODED_BYTES} (2 GiB, the most any decode accepts)"),
            ));
        }
        if self.decode_budget_bytes == 0 {
            return Err(ConfigError::new(
                "decode_budget_bytes",
                format!("must be at least 1 (the default is {DEFAULT_DECODE_BUDGET_BYTES}, 1 GiB)"),
            ));
        }
        match (&self.spec_file, &self.spec) {
            (Some(_), Some(_)) => Err(ConfigError::new("spec", "give `spec_file` or `spec`, not both")),
            (None, None) => {
                Err(ConfigError::new("spec_file", "name the model's preprocessing spec file (or give `spec`)"))
            }
            (Some(path), None) if path.as_os_str().is_empty() => {
                Err(ConfigError::new("spec_file", "must not be empty"))
            }
            (Some(_), None) => Ok(()),
            (None, Some(spec)) => spec.validate().map_err(|e| e.within("spec")),
        }
    }

    /// Builds the operator: reads the spec file and picks the device.
    pub fn build(&self, ctx: &BuildContext) -> Result<Preprocessor, ConfigError> {
        self.validate()?;
        let spec = match (&self.spec_file, &self.spec) {
            (Some(path), _) => PreprocessSpec::load(path).map_err(|e| e.within("spec_file"))?,
            (None, Some(spec)) => spec.clone(),
            (None, None) => unreachable!("validate requires one of spec_file and spec"),
        };
        let device = ComputeDevice::select(self.device, ctx.observer.as_ref(), &spec.name);
        let limits = DecodeLimits {
            max_decoded_bytes: self.max_decoded_bytes,
            budget: Some(Arc::new(DecodeBudget::new(self.decode_budget_bytes))),
        };
        Ok(Preprocessor {
            spec: Arc::new(spec),
            device: Arc::new(device),
            observer: Arc::clone(&ctx.observer),
            limits: Arc::new(limits),
        })
    }
}

/// Decodes instances and attaches the model input tensor.
pub struct Preprocessor {
    spec: Arc<PreprocessSpec>,
    device: Arc<ComputeDevice>,
    observer: Arc<dyn Recorder>,
    /// The size limit of one instance and the decode budget the batch's tasks share.
    limits: Arc<DecodeLimits>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor").field("spec", &self.spec.name).field("device", &self.device).finish()
    }
}

impl Preprocessor {
    /// An operator for `spec` (already validated) on the CPU, with the default limits.
    pub fn new(spec: PreprocessSpec) -> Self {
        Self::with_limits(spec, DEFAULT_MAX_DECODED_BYTES, DEFAULT_DECODE_BUDGET_BYTES)
    }

    /// An operator for `spec` on the CPU whose instances decode to at most `max_decoded_bytes`
    /// each and `decode_budget_bytes` together (see [`PreprocessConfig`]).
    pub fn with_limits(spec: PreprocessSpec, max_decoded_bytes: u64, decode_budget_bytes: u64) -> Self {
        let limits = DecodeLimits { max_decoded_bytes, budget: Some(Arc::new(DecodeBudget::new(decode_budget_bytes))) };
        Self {
            spec: Arc::new(spec),
            device: Arc::new(ComputeDevice::cpu()),
            observer: Arc::new(NoopRecorder),
            limits: Arc::new(limits),
        }
    }

    /// The decode budget its tasks share.
    pub fn decode_budget(&self) -> Option<&Arc<DecodeBudget>> {
        self.limits.budget.as_ref()
    }

    /// Where it computes: `"cuda"` or `"cpu"`.
    pub fn backend(&self) -> &'static str {
        self.device.backend_name()
    }

    /// The spec it applies.
    pub fn spec(&self) -> &PreprocessSpec {
        &self.spec
    }
}

/// Why an object could not be preprocessed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessFailure {
    /// Pixel data could not be decoded.
    #[error("cannot decode pixel data: {0}")]
    Decode(#[from] decode::DecodeError),
    /// The decoded image does not fit the spec, or the spec asks for what is not implemented.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A frame of an image for a model of whole series cannot be placed in a volume.
    #[error("frame {frame} has no ImagePositionPatient or ImageOrientationPatient: it cannot be placed in the series' volume")]
    NoGeometry {
        /// The frame (0-based).
        frame: usize,
    },
}

impl PreprocessFailure {
    /// The error class of the dead letter.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Plan(PlanError::SeriesNotYet { .. }) => ErrorClass::Config,
            Self::NoGeometry { .. } => ErrorClass::MalformedDicom,
            Self::Decode(e) if e.is_malformed() => ErrorClass::MalformedDicom,
            Self::Decode(_) | Self::Plan(_) => ErrorClass::UndecodablePixels,
        }
    }
}

/// Decodes a Part-10 object and preprocesses every frame on the CPU: `[frames, C, H, W]`.
pub fn preprocess_object(spec: &PreprocessSpec, object: &[u8]) -> Result<Tensor, PreprocessFailure> {
    preprocess_object_on(&ComputeDevice::cpu(), &NoopRecorder, spec, object)
}

/// [`preprocess_object`] on `device`; `observer` records it if the GPU has to be given up.
pub fn preprocess_object_on(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    object: &[u8],
) -> Result<Tensor, PreprocessFailure> {
    preprocess_object_within(device, observer, spec, object, &DecodeLimits::default())
}

/// [`preprocess_object_on`] within `limits`: the decoded bytes stay reserved from its budget
/// until the tensor is made.
pub fn preprocess_object_within(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    object: &[u8],
    limits: &DecodeLimits,
) -> Result<Tensor, PreprocessFailure> {
    if spec.input == InputKind::Series {
        // Before decoding: nothing the pixels hold changes the answer.
        return Err(PlanError::SeriesNotYet { model: spec.name.clone() }.into());
    }
    let (image, _reserved) = decode::decode_reserved(object, limits)?;
    Ok(preprocess_image_on(device, observer, spec, &image)?)
}

/// Preprocesses every frame of a decoded image on the CPU, each with its own plan:
/// `[frames, C, H, W]`.
pub fn preprocess_image(spec: &PreprocessSpec, image: &DecodedImage) -> Result<Tensor, PlanError> {
    preprocess_image_on(&ComputeDevice::cpu(), &NoopRecorder, spec, image)
}

/// [`preprocess_image`] on `device`.
pub fn preprocess_image_on(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    image: &DecodedImage,
) -> Result<Tensor, PlanError> {
    if spec.input == InputKind::Series {
        return Err(PlanError::SeriesNotYet { model: spec.name.clone() });
    }
    frames_on(device, observer, spec, image)
}

/// One slice of a series for a model of whole series: every frame preprocessed like a 2D image
/// (`[frames, C, H, W]`) and where each lies, for series assembly to stack.
pub fn preprocess_slices_on(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    object: &[u8],
) -> Result<(Tensor, Vec<radstream_kernels::SliceGeometry>), PreprocessFailure> {
    preprocess_slices_within(device, observer, spec, object, &DecodeLimits::default())
}

/// [`preprocess_slices_on`] within `limits` (see [`preprocess_object_within`]).
pub fn preprocess_slices_within(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    object: &[u8],
    limits: &DecodeLimits,
) -> Result<(Tensor, Vec<radstream_kernels::SliceGeometry>), PreprocessFailure> {
    let (image, _reserved) = decode::decode_reserved(object, limits)?;
    let geometry = image
        .frame_params
        .iter()
        .enumerate()
        .map(|(frame, p)| match (p.position, p.orientation) {
            (Some(position), Some(orientation)) => Ok(radstream_kernels::SliceGeometry { position, orientation }),
            _ => Err(PreprocessFailure::NoGeometry { frame }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tensor = frames_on(device, observer, spec, &image)?;
    Ok((tensor, geometry))
}

fn frames_on(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    image: &DecodedImage,
) -> Result<Tensor, PlanError> {
    let (pixels, frames) = spec::frame_layout(image)?;
    let [c, h, w] = spec.image_shape();
    let per_image = c * h * w;
    let mut data = vec![0.0f32; frames * per_image];
    let (rows, columns) = (image.rows as usize, image.columns as usize);
    for (frame, out) in data.chunks_exact_mut(per_image).enumerate() {
        let plan = plan_for(spec, image, frame)?;
        let stored = frame * pixels..(frame + 1) * pixels;
        match &image.samples {
            Samples::U8(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
            Samples::I8(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
            Samples::U16(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
            Samples::I16(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
            Samples::U32(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
            Samples::I32(v) => device.run_into(&plan, &v[stored.clone()], rows, columns, out, observer),
        }?;
    }
    Ok(Tensor::new([frames, c, h, w], data)?)
}

#[async_trait]
impl Operator for Preprocessor {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let mut done = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        for envelope in batch {
            if envelope.model.as_deref().is_some_and(|model| model != self.spec.name) {
                // Routed to another model: that model's preprocess takes it.
                done.push(Processed::forward(envelope));
                continue;
            }
            if !self.spec.takes_modality(&envelope.event.modality) {
                done.push(Processed { envelope, outcome: Outcome::Drop { rule: MODALITY_DROP_RULE.into() } });
                continue;
            }
            let (spec, object) = (Arc::clone(&self.spec), envelope.object().clone());
            let (device, observer) = (Arc::clone(&self.device), Arc::clone(&self.observer));
            let limits = Arc::clone(&self.limits);
            // Each task waits in the blocking pool for its share of the decode budget.
            let task = tokio::task::spawn_blocking(move || {
                if spec.input == InputKind::Series {
                    preprocess_slices_within(&device, observer.as_ref(), &spec, &object, &limits)
                        .map(|(t, g)| (t, Some(g)))
                } else {
                    preprocess_object_within(&device, observer.as_ref(), &spec, &object, &limits).map(|t| (t, None))
                }
            });
            pending.push((envelope, task));
        }
        for (mut envelope, task) in pending {
            let outcome = match task.await {
                Ok(Ok((tensor, geometry))) => {
                    envelope.tensor = Some(Arc::new(tensor));
                    envelope.geometry = geometry.map(Arc::from);
                    Outcome::Forward
                }
                Ok(Err(failure)) => Outcome::Fail(OperatorError::dead_letter(
                    failure.class(),
                    format!("{}: model {}: {failure}", envelope.object_key(), self.spec.name),
                )),
                Err(e) => Outcome::Fail(OperatorError::dead_letter(
                    ErrorClass::Internal,
                    format!("{}: the preprocessing task failed: {e}", envelope.object_key()),
                )),
            };
            done.push(Processed { envelope, outcome });
        }
        done
    }
}

impl crate::contract::OperatorSpec for PreprocessConfig {
    const KIND: &'static str = "preprocess";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        PreprocessConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(PreprocessConfig::build(self, ctx)?))
    }

    fn example() -> &'static str {
        r#"
spec_file = "../models/ct-head-bleed.preprocess.toml"
"#
    }
}

#[cfg(test)]
mod tests;
