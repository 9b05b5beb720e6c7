//! `infer`: runs a model, named by its manifest ([`manifest`]), on the tensors the `preprocess`
//! operator attached, and attaches the result ([`Envelope::results`](crate::Envelope::results)).
//!
//! **Batching, per model.** The operator gives the runtime its own batching policy
//! ([`crate::contract::batching`]): a batch is handed over when `max_batch` envelopes are queued, or when
//! the oldest has waited `max_delay_ms`, whichever comes first, gathered across partitions and
//! studies, STAT-priority envelopes first. The operator cuts the batch's images into runs of at
//! most `max_batch` images ([`plan_runs`]; a multi-frame instance may span two runs) and runs
//! them one after the other on tokio's blocking pool. One model run per chunk rather than per
//! instance is the point: a CPU or GPU does a batch of 8 in far less than 8 times the time of
//! one. Queue delay (`radstream_model_queue_delay_seconds`), images per run and model time are
//! metrics.
//!
//! **Models of whole series** (manifest `input = "series"`): the operator gathers each series'
//! instances ([`assembly`]), runs the model once on the stacked volume `[1, C, D, H, W]` when
//! the series is complete, and forwards every instance of it with the same result. A late
//! instance re-runs its series; the new result's `revision` supersedes the earlier one.
//!
//! **Routing.** An envelope a routing rule sent to another model (`Envelope::model`) is
//! forwarded untouched; the runtime checks at start that every model a rule names has an
//! `infer` operator.
//!
//! **Result.** Each forwarded envelope carries an
//! [`InferenceResult`](crate::contract::InferenceResult): the model's name, version and SHA-256
//! (so every downstream result and audit record can say which model said it), a score per frame
//! for each of the manifest's findings, and the findings whose score reached their threshold. It is shared (`Arc`) because SR/SEG writers and the FHIR sink only read it.
//!
//! Outcomes:
//! * forwarded with its result, findings or none;
//! * dead-lettered as `config` when the envelope has no tensor (no `preprocess` before `infer`)
//!   or a tensor of another `[C, H, W]` than the model takes (the preprocess spec and the
//!   manifest disagree); the reason names the missing operator, or both shapes;
//! * dead-lettered as `internal` when the model fails on a run (every envelope of that run);
//! * for models of whole series: dropped as `duplicate_instance` when a re-delivered copy of a
//!   held instance replaces it; dead-lettered as `malformed_dicom` when the series' slices do
//!   not make one volume (another orientation or size), and as `late_instance` when an instance
//!   arrives after its series was run and its slices are no longer kept.
//!
//! **Backends** (`backend` in the config):
//! * `"tract"` (the default, [`cpu`]): pure Rust on the CPU, complete on its own.
//! * `"onnxruntime"` ([`ort`], feature `onnxruntime`, on in the binary): ONNX Runtime through
//!   `ort` with `default-features = false` and `load-dynamic`, its library opened at run time
//!   (`onnxruntime_lib` or `RADSTREAM_ONNXRUNTIME_LIB`). With `device = "auto"` it runs on ONNX
//!   Runtime's CUDA execution provider (the `onnxruntime-gpu` wheel's library) where a GPU
//!   starts, else on its CPU provider, and says why. Why this and not another GPU path:
//!   * it builds here without nvcc, a GPU or a download, and the binary built here runs on the
//!     GPU machines (CUDA 13, driver 580, onnxruntime installed, no Rust);
//!   * ONNX Runtime can bind device memory as input (`IoBinding`), so the tensor the
//!     preprocess kernels leave on the GPU can go into the model without a host round trip
//!     (not done yet: it needs a GPU to test);
//!   * it runs any ONNX graph a model author exports, with cuDNN/TensorRT-grade kernels;
//!   * candle's CUDA feature reads the CUDA version from nvcc at build time (there is none here)
//!     and links cudarc in a way that clashes with the dynamic loading our kernels use, and it
//!     runs only the ONNX operators candle implements; writing our own convolution kernels would
//!     be slower and a project of its own.
//!
//! Both backends give the same scores (tested to 1e-5 on the test and demo models).

pub mod assembly;
pub mod config;
pub mod cpu;
pub mod manifest;
pub mod model;
pub mod operator;
#[cfg(feature = "onnxruntime")]
pub mod ort;
pub mod runs;

pub use self::assembly::{Assembler, SeriesConfig, SeriesRun};
pub use self::config::InferConfig;
pub use self::cpu::{BackendError, CpuModel, Output};
pub use self::manifest::{FindingSpec, ModelManifest, Task, VerifiedModel};
pub use self::model::{
    BackendChoice, BackendKind, ImageRun, LoadedModel, ModelBackend, VolumeRun, ONNXRUNTIME_LIB_ENV,
};
pub use self::operator::{Infer, DUPLICATE_DROP_RULE};
pub use self::runs::{plan_runs, stack_series, RunPart, StackedSeries};

#[cfg(test)]
mod tests;
