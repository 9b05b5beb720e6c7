//! The `infer` operator's configuration: which model, how it batches, which backend runs it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::assembly::SeriesConfig;
use super::cpu;
use super::model::{BackendChoice, BackendKind, LoadedModel};
use super::operator::{default_max_delay_ms, Infer};
use crate::contract::ConfigError;

/// Largest `max_batch`: beyond it a batch of 256×256 images would be over a gigabyte.
const MAX_BATCH: usize = 4096;

fn default_max_batch() -> usize {
    8
}

/// Configuration of the `infer` operator.
///
/// ```toml
/// [[operators]]
/// type = "infer"
/// model = "models/ct-head-bleed.model.toml"
/// max_batch = 8
/// max_delay_ms = 0
/// ```
///
/// A model of whole series takes a `[operators.series]` table ([`SeriesConfig`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InferConfig {
    /// The model manifest (`models/*.model.toml`), read when the operator is built (the ONNX
    /// file it names is read and its SHA-256 checked then); relative to the working directory.
    pub model: PathBuf,
    /// Most images per model run; the runtime's batch of envelopes is cut into runs of this
    /// many images (default 8).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest an image waits for its batch to fill, from when it was queued, in milliseconds.
    /// The default, 0, hands over whatever is queued as soon as the model is free: a busy
    /// model still gets full batches (images queue while it runs). A wait rounds up to tokio's
    /// 1 ms timer tick, so 1 ms means up to about 2 ms of added latency at light load. A busy model fills its batches anyway (images queue while it runs), so a
    /// longer wait only helps at moderate load, at the cost of latency at every load.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: f64,
    /// Series assembly, for a model of whole series (defaults apply when absent).
    #[serde(default)]
    pub series: Option<SeriesConfig>,
    /// Which library runs the model: `"tract"` (the default, pure Rust, CPU) or
    /// `"onnxruntime"` (ONNX Runtime, opened at run time; GPU or CPU).
    #[serde(default)]
    pub backend: BackendKind,
    /// `backend = "onnxruntime"` only: `"auto"` (the default) runs on ONNX Runtime's CUDA
    /// provider where a GPU starts, else on its CPU provider; `"cpu"` always on the CPU.
    #[serde(default)]
    pub device: crate::preprocess::device::DeviceChoice,
    /// `backend = "onnxruntime"` only: ONNX Runtime's shared library (for example pip's
    /// `onnxruntime/capi/libonnxruntime.so.1.22.0`); default `$RADSTREAM_ONNXRUNTIME_LIB`.
    #[serde(default)]
    pub onnxruntime_lib: Option<PathBuf>,
}

impl InferConfig {
    /// Checks the configuration without reading the manifest.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.as_os_str().is_empty() {
            return Err(ConfigError::new("model", "name the model manifest, e.g. models/ct-head-bleed.model.toml"));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(ConfigError::new("max_batch", format!("must be between 1 and {MAX_BATCH}")));
        }
        if !(self.max_delay_ms.is_finite() && (0.0..=60_000.0).contains(&self.max_delay_ms)) {
            return Err(ConfigError::new("max_delay_ms", "must be between 0 and 60000"));
        }
        if let Some(series) = &self.series {
            series.validate().map_err(|e| e.within("series"))?;
        }
        if self.backend == BackendKind::Tract && self.onnxruntime_lib.is_some() {
            return Err(ConfigError::new("onnxruntime_lib", "is for backend = \"onnxruntime\""));
        }
        if self.backend == BackendKind::Tract && self.device != crate::preprocess::device::DeviceChoice::Auto {
            return Err(ConfigError::new(
                "device",
                "tract runs on the CPU only; `device` is for backend = \"onnxruntime\"",
            ));
        }
        if self.backend == BackendKind::Onnxruntime && !cfg!(feature = "onnxruntime") {
            return Err(ConfigError::new(
                "backend",
                "this build has no ONNX Runtime backend (cargo feature `onnxruntime`); use backend = \"tract\"",
            ));
        }
        Ok(())
    }

    /// The backend this configuration asks for.
    pub fn backend_choice(&self) -> BackendChoice {
        BackendChoice { kind: self.backend, device: self.device, library: self.onnxruntime_lib.clone() }
    }

    /// Builds the operator: reads the manifest, checks the model file's hash, loads the model.
    pub fn build(&self) -> Result<Infer, ConfigError> {
        self.validate()?;
        let model = LoadedModel::load_on(&self.model, &self.backend_choice()).map_err(|e| e.within("model"))?;
        if self.series.is_some() && !model.is_series() {
            return Err(ConfigError::new(
                "series",
                format!(
                    "model {} takes slices (input = \"slice\"); [series] is for models of whole series",
                    model.identity.name
                ),
            ));
        }
        if !model.is_series() {
            // Every batch size up to max_batch gets its plan now, not on its first batch.
            let sizes = 1..=self.max_batch.min(cpu::PLANS_KEPT / 2);
            model.backend.prepare(sizes).map_err(|e| ConfigError::new("model", e.to_string()))?;
        }
        let delay = Duration::from_secs_f64(self.max_delay_ms / 1e3);
        Ok(Infer::new(Arc::new(model), self.max_batch)
            .with_max_delay(delay)
            .with_series(self.series.clone().unwrap_or_default()))
    }
}

impl crate::contract::OperatorSpec for InferConfig {
    const KIND: &'static str = "infer";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        InferConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(InferConfig::build(self)?.with_observer(Arc::clone(&ctx.observer))))
    }

    fn example() -> &'static str {
        r#"
model = "../models/ct-head-bleed.model.toml"
max_batch = 8
"#
    }
}
