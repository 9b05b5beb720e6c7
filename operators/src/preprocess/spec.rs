//! The preprocessing spec of a model (`models/*.preprocess.toml`): what a model expects as
//! input, in the terms a radiologist's physicist would use (window, size, channels), and
//! [`plan_for`], which turns it and one decoded frame into a kernel plan
//! ([`radstream_kernels::Preprocess`]).
//!
//! The model manifest carries the same fields, so a spec file is the preprocessing part of a
//! manifest on its own.

use std::fmt;
use std::path::Path;

use radstream_kernels::{
    stored_min_max, ImageSize, MeanStd, Normalization, OutputRange, Preprocess, PreprocessError, Rescale, StoredSample,
    VoiFunction, Window,
};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::dicom::decode::{DecodedImage, Samples};
use crate::ConfigError;

/// Largest side a spec may ask for: far beyond any model input, small enough that a tensor's
/// size never overflows.
const MAX_SIDE: usize = 16_384;

/// A model's preprocessing, as written in a spec file.
///
/// ```toml
/// name = "ct-head-bleed"
/// modalities = ["CT"]
/// input = "slice"
/// size = [256, 256]
/// window = { center = 40, width = 80 }
/// normalization = { kind = "min_max", min = 0, max = 1 }
/// channels = 1
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    /// The model's name, for logs and output names.
    pub name: String,
    /// Modalities (0008,0060) the model takes, e.g. `["CT"]`; instances of others are dropped.
    pub modalities: Vec<String>,
    /// Whether the model takes single slices or whole series.
    pub input: InputKind,
    /// `[height, width]` every frame is resampled to.
    pub size: [usize; 2],
    /// The VOI window: a fixed one, or `"from_image"` for the image's own.
    pub window: WindowSpec,
    /// Intensity normalization after the window; none when absent.
    #[serde(default)]
    pub normalization: NormalizationSpec,
    /// Output channels, 1 or 3 (the grayscale image replicated, for models trained on RGB).
    #[serde(default = "one_channel")]
    pub channels: usize,
    /// `[min, max]` the window maps onto (`y_min`, `y_max` of PS3.3 C.11.2.1.2.1), `min < max`;
    /// MONOCHROME1 images get it reversed, so that bright always means dense.
    #[serde(default = "unit_range")]
    pub output_range: [f64; 2],
}

fn one_channel() -> usize {
    1
}

fn unit_range() -> [f64; 2] {
    [0.0, 1.0]
}

/// What one model input is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// One 2D image: each frame of an instance becomes one image of the batch.
    Slice,
    /// A 3D volume of a whole series (not implemented yet).
    Series,
}

/// The VOI window of a spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowSpec {
    /// The same window for every image.
    Fixed(FixedWindow),
    /// Each frame's first Window Center/Width pair and VOI LUT Function; where a frame has none
    /// (or an unusable one, such as a zero width), a LINEAR_EXACT window spanning the frame's
    /// smallest to largest rescaled value.
    FromImage,
}

/// A fixed window, in rescaled units (Hounsfield units for CT).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixedWindow {
    /// Window Center.
    pub center: f64,
    /// Window Width: at least 1 for `linear`, above 0 otherwise.
    pub width: f64,
    /// VOI LUT Function; `linear` when absent.
    #[serde(default)]
    pub function: WindowFunction,
}

/// VOI LUT Function (0028,1056) of a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowFunction {
    /// LINEAR, PS3.3 C.11.2.1.2.1.
    #[default]
    Linear,
    /// LINEAR_EXACT, C.11.2.1.3.2.
    LinearExact,
    /// SIGMOID, C.11.2.1.3.1.
    Sigmoid,
}

impl From<WindowFunction> for VoiFunction {
    fn from(f: WindowFunction) -> Self {
        match f {
            WindowFunction::Linear => VoiFunction::Linear,
            WindowFunction::LinearExact => VoiFunction::LinearExact,
            WindowFunction::Sigmoid => VoiFunction::Sigmoid,
        }
    }
}

// The inverse of the deserializer below, so that a config round-trips through TOML.
impl Serialize for WindowSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WindowSpec::Fixed(window) => window.serialize(serializer),
            WindowSpec::FromImage => serializer.serialize_str("from_image"),
        }
    }
}

impl<'de> Deserialize<'de> for WindowSpec {
    /// A table is a fixed window; the string `"from_image"` the image's own. Written out rather
    /// than `untagged`, so that a mistyped key in the table is reported as such.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowVisitor;

        impl<'de> Visitor<'de> for WindowVisitor {
            type Value = WindowSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`\"from_image\"` or a table `{ center, width, function }`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WindowSpec, E> {
                match value {
                    "from_image" => Ok(WindowSpec::FromImage),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WindowSpec, A::Error> {
                FixedWindow::deserialize(de::value::MapAccessDeserializer::new(map)).map(WindowSpec::Fixed)
            }
        }

        deserializer.deserialize_any(WindowVisitor)
    }
}

/// Intensity normalization after the window, by `kind`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NormalizationSpec {
    /// Values left as the window made them.
    #[default]
    None,
    /// `(x - mean) / std`. One number each applies before channel replication; a list of one
    /// per channel applies per channel (the ImageNet convention), a single number then standing
    /// for every channel.
    MeanStd {
        /// Subtracted first.
        mean: PerChannel,
        /// Divided by next; every value above 0.
        std: PerChannel,
    },
    /// `(x - min) / (max - min)`, clamped to `[0, 1]`.
    MinMax {
        /// Maps to 0.
        min: f64,
        /// Maps to 1; above `min`.
        max: f64,
    },
    /// Like `min_max` with each frame's own smallest and largest windowed value.
    MinMaxOfImage,
}

/// One number for all channels, or one per channel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PerChannel {
    /// The same for every channel.
    One(f64),
    /// One per channel.
    Each(Vec<f64>),
}

impl PerChannel {
    /// The values for `channels` channels, or `None` when a list has another length.
    fn for_channels(&self, channels: usize) -> Option<Vec<f64>> {
        match self {
            Self::One(v) => Some(vec![*v; channels]),
            Self::Each(values) if values.len() == channels => Some(values.clone()),
            Self::Each(_) => None,
        }
    }
}

/// Why no plan could be made for a frame. Names what the image has; never a value from it
/// beyond its photometric interpretation and sizes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The photometric interpretation (or the samples per pixel) is not one the spec can take.
    #[error(
        "photometric interpretation {photometric} with {samples_per_pixel} sample(s) per pixel is not supported: \
         models take MONOCHROME1 or MONOCHROME2 images"
    )]
    UnsupportedPhotometric {
        /// Photometric Interpretation after decoding.
        photometric: String,
        /// Samples per pixel after decoding.
        samples_per_pixel: u16,
    },
    /// The spec wants a whole series and was given one image to make a model input of.
    #[error(
        "model {model} takes a whole series (input = \"series\"): one image is not its input; stack the \
         series' slices (`preprocess_series`, or `radstream preprocess` on a series folder)"
    )]
    SeriesNotYet {
        /// The spec's name.
        model: String,
    },
    /// The decoded image is inconsistent (sample count, frame parameters) or asks for a frame it
    /// does not have.
    #[error("{0}")]
    Geometry(String),
    /// A kernel refused the parameters (for example a rescale slope that is not finite).
    #[error("preprocessing parameters: {0}")]
    Kernel(#[from] PreprocessError),
}

impl PreprocessSpec {
    /// Parses a spec from TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let spec: Self = toml::from_str(text).map_err(|e| ConfigError::new("", e.message().to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads, parses and validates a spec file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read the spec: {e}")))?;
        Self::from_toml(&text).map_err(|e| e.within(&path.display().to_string()))
    }

    /// Checks every field; pure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        if self.modalities.is_empty() {
            return Err(ConfigError::new("modalities", "list at least one modality, e.g. [\"CT\"]"));
        }
        if let Some(bad) = self.modalities.iter().find(|m| m.is_empty() || m.len() > 16 || m.trim() != m.as_str()) {
            return Err(ConfigError::new("modalities", format!("`{bad}` is not a modality code such as CT or CR")));
        }
        if self.size.iter().any(|&side| side == 0 || side > MAX_SIDE) {
            return Err(ConfigError::new("size", format!("both sides must be between 1 and {MAX_SIDE}")));
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(ConfigError::new("channels", "must be 1 or 3"));
        }
        let [lo, hi] = self.output_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(ConfigError::new("output_range", "must be two finite numbers [min, max] with min < max"));
        }
        if let WindowSpec::Fixed(w) = self.window {
            Window::new(w.center, w.width, w.function.into(), self.range())
                .map_err(|e| ConfigError::new("window", e.to_string()))?;
        }
        let (normalization, per_channel) = self.normalization()?;
        normalization.validate().map_err(|e| ConfigError::new("normalization", e.to_string()))?;
        for ms in &per_channel {
            ms.validate().map_err(|e| ConfigError::new("normalization", e.to_string()))?;
        }
        Ok(())
    }

    /// The output range as the spec gives it (MONOCHROME2).
    fn range(&self) -> OutputRange {
        OutputRange { min: self.output_range[0], max: self.output_range[1] }
    }

    /// The kernel normalization and the per-channel mean/std.
    fn normalization(&self) -> Result<(Normalization, Vec<MeanStd>), ConfigError> {
        Ok(match &self.normalization {
            NormalizationSpec::None => (Normalization::None, Vec::new()),
            NormalizationSpec::MinMax { min, max } => (Normalization::MinMax { min: *min, max: *max }, Vec::new()),
            NormalizationSpec::MinMaxOfImage => (Normalization::MinMaxOfImage, Vec::new()),
            NormalizationSpec::MeanStd { mean: PerChannel::One(mean), std: PerChannel::One(std) } => {
                (Normalization::MeanStd(MeanStd { mean: *mean, std: *std }), Vec::new())
            }
            NormalizationSpec::MeanStd { mean, std } => {
                let wrong = || {
                    ConfigError::new(
                        "normalization",
                        format!("mean and std need one value, or one per channel ({})", self.channels),
                    )
                };
                let means = mean.for_channels(self.channels).ok_or_else(wrong)?;
                let stds = std.for_channels(self.channels).ok_or_else(wrong)?;
                let per_channel = means.into_iter().zip(stds).map(|(mean, std)| MeanStd { mean, std }).collect();
                (Normalization::None, per_channel)
            }
        })
    }

    /// Whether an instance of `modality` is for this model (exact, case-insensitive match).
    pub fn takes_modality(&self, modality: &str) -> bool {
        self.modalities.iter().any(|m| m.eq_ignore_ascii_case(modality.trim()))
    }

    /// `[C, H, W]` of one output image.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.size[0], self.size[1]]
    }

    /// The interval the values of `channel` fall in (for previews): the output range carried
    /// through the normalization. `None` for a channel the spec does not have.
    pub fn value_range(&self, channel: usize) -> Option<(f64, f64)> {
        if channel >= self.channels {
            return None;
        }
        let [lo, hi] = self.output_range;
        let standardized = |mean: f64, std: f64| ((lo - mean) / std, (hi - mean) / std);
        Some(match &self.normalization {
            NormalizationSpec::None => (lo, hi),
            NormalizationSpec::MinMax { .. } | NormalizationSpec::MinMaxOfImage => (0.0, 1.0),
            NormalizationSpec::MeanStd { mean, std } => {
                let pick = |p: &PerChannel| match p {
                    PerChannel::One(v) => Some(*v),
                    PerChannel::Each(values) => values.get(channel).copied(),
                };
                standardized(pick(mean)?, pick(std)?)
            }
        })
    }
}

/// The kernel plan for frame `frame` of `image`: the spec's size, channels and normalization
/// with the frame's rescale, and the spec's window (or the frame's own, for
/// [`WindowSpec::FromImage`]). MONOCHROME1 reverses the output range, so that the model always
/// sees bright as dense.
pub fn plan_for(spec: &PreprocessSpec, image: &DecodedImage, frame: usize) -> Result<Preprocess, PlanError> {
    let monochrome1 = match (image.photometric.trim(), image.samples_per_pixel) {
        ("MONOCHROME1", 1) => true,
        ("MONOCHROME2", 1) => false,
        (photometric, samples_per_pixel) => {
            return Err(PlanError::UnsupportedPhotometric { photometric: photometric.to_string(), samples_per_pixel })
        }
    };
    let params = image.frame_params.get(frame).ok_or_else(|| {
        PlanError::Geometry(format!(
            "frame {frame} asked for, but the image has parameters for {} frame(s)",
            image.frame_params.len()
        ))
    })?;
    let rescale = Rescale { slope: params.rescale_slope, intercept: params.rescale_intercept };
    rescale.validate()?;
    let range =
        if monochrome1 { OutputRange { min: spec.output_range[1], max: spec.output_range[0] } } else { spec.range() };

    let window = match spec.window {
        WindowSpec::Fixed(w) => Window::new(w.center, w.width, w.function.into(), range)?,
        WindowSpec::FromImage => {
            let function = params.voi_function.as_deref().map_or(VoiFunction::Linear, voi_function);
            match params.window.and_then(|(center, width)| Window::new(center, width, function, range).ok()) {
                Some(window) => window,
                None => {
                    let (lo, hi) = frame_min_max(image, frame, rescale)?;
                    let (lo, hi) = (f64::from(lo.min(hi)), f64::from(lo.max(hi)));
                    // A constant frame still gets a valid window; it maps to the middle.
                    let width = if hi > lo { hi - lo } else { 1.0 };
                    Window::new((lo + hi) / 2.0, width, VoiFunction::LinearExact, range)?
                }
            }
        }
    };
    let (normalization, channel_mean_std) =
        spec.normalization().map_err(|e| PlanError::Geometry(format!("invalid spec: {e}")))?;
    let plan = Preprocess {
        rescale,
        window: Some(window),
        normalization,
        target: Some(ImageSize::new(spec.size[0], spec.size[1])),
        channels: spec.channels,
        channel_mean_std,
    };
    plan.validate()?;
    Ok(plan)
}

/// VOI LUT Function by its defined term; anything else is read as LINEAR, as PS3.3 C.11.2.1.2
/// makes LINEAR the default.
fn voi_function(term: &str) -> VoiFunction {
    match term.trim() {
        "LINEAR_EXACT" => VoiFunction::LinearExact,
        "SIGMOID" => VoiFunction::Sigmoid,
        _ => VoiFunction::Linear,
    }
}

/// Pixels per frame and the number of frames, checked against the samples held.
pub(crate) fn frame_layout(image: &DecodedImage) -> Result<(usize, usize), PlanError> {
    let pixels = (image.rows as usize)
        .checked_mul(image.columns as usize)
        .and_then(|p| p.checked_mul(usize::from(image.samples_per_pixel)))
        .filter(|&p| p > 0)
        .ok_or_else(|| PlanError::Geometry(format!("an image of {} x {} has no pixels", image.rows, image.columns)))?;
    let frames = image.frames as usize;
    let held = image.samples.len();
    if pixels.checked_mul(frames) != Some(held) {
        return Err(PlanError::Geometry(format!(
            "{frames} frame(s) of {} x {} x {} need {} samples, the pixel data holds {held}",
            image.rows,
            image.columns,
            image.samples_per_pixel,
            pixels.saturating_mul(frames)
        )));
    }
    if image.frame_params.len() != frames {
        return Err(PlanError::Geometry(format!("{frames} frame(s) but parameters for {}", image.frame_params.len())));
    }
    Ok((pixels, frames))
}

/// The smallest and largest stored value of one frame, through the modality LUT (not sorted:
/// a negative slope swaps them).
fn frame_min_max(image: &DecodedImage, frame: usize, rescale: Rescale) -> Result<(f32, f32), PlanError> {
    let min_max = |values: &dyn MinMax| values.rescaled_min_max(rescale);
    let (pixels, frames) = frame_layout(image)?;
    if frame >= frames {
        return Err(PlanError::Geometry(format!("frame {frame} asked for, the image has {frames}")));
    }
    let range = frame * pixels..(frame + 1) * pixels;
    let found = match &image.samples {
        Samples::U8(v) => min_max(&&v[range]),
        Samples::I8(v) => min_max(&&v[range]),
        Samples::U16(v) => min_max(&&v[range]),
        Samples::I16(v) => min_max(&&v[range]),
        Samples::U32(v) => min_max(&&v[range]),
        Samples::I32(v) => min_max(&&v[range]),
    };
    found.ok_or_else(|| PlanError::Geometry("an empty frame has no range".into()))
}

/// A slice of stored values of any type, for [`frame_min_max`].
trait MinMax {
    fn rescaled_min_max(&self, rescale: Rescale) -> Option<(f32, f32)>;
}

impl<S: StoredSample> MinMax for &[S] {
    fn rescaled_min_max(&self, rescale: Rescale) -> Option<(f32, f32)> {
        stored_min_max(self).map(|(lo, hi)| (rescale.apply(lo), rescale.apply(hi)))
    }
}
