//! Where the `preprocess` operator runs its kernels: the GPU when this build has the CUDA
//! backend (feature `cuda`, on by default in the `radstream` binary) and a GPU can be started,
//! the CPU otherwise.
//!
//! Choosing never fails: a missing driver, a missing NVRTC, no device or a failed start all end
//! on the CPU, said once in the log (with the reason) and in the metric
//! `radstream_compute_backend` (see [`OperatorMetric::ComputeBackend`]). A GPU
//! that fails later, on one frame, is not trusted again: that frame and every one after it run
//! on the CPU, again said once.

#[cfg(feature = "cuda")]
use std::sync::atomic::{AtomicBool, Ordering};

use radstream_kernels::{Preprocess, PreprocessError, StoredSample};
use serde::{Deserialize, Serialize};

use crate::contract::{OperatorMetric, Recorder};

/// Which device the operator may use (`device` in its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU when one can be started, else the CPU (the default).
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
}

/// Why the operator runs where it runs: the `reason` label of `radstream_compute_backend`.
/// Bounded values only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendReason {
    /// The GPU started.
    GpuStarted,
    /// The config says `device = "cpu"`.
    CpuRequested,
    /// This build has no CUDA backend (built without the `cuda` feature).
    NotBuilt,
    /// CUDA could not start: no driver, no NVRTC, no device, or a failed compile.
    GpuUnavailable,
    /// The GPU failed on a frame after starting; everything since runs on the CPU.
    GpuFailed,
}

impl BackendReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GpuStarted => "gpu_started",
            Self::CpuRequested => "cpu_requested",
            Self::NotBuilt => "cuda_not_built",
            Self::GpuUnavailable => "gpu_unavailable",
            Self::GpuFailed => "gpu_failed",
        }
    }
}

/// The device one operator instance computes on.
pub struct ComputeDevice {
    #[cfg(feature = "cuda")]
    cuda: Option<radstream_kernels::CudaBackend>,
    /// Set once the GPU failed on a frame.
    #[cfg(feature = "cuda")]
    gpu_failed: AtomicBool,
    /// What the log and metrics are told about, e.g. the model name.
    context: String,
}

impl std::fmt::Debug for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeDevice").field("backend", &self.backend_name()).finish_non_exhaustive()
    }
}

impl ComputeDevice {
    /// The CPU, without telling anyone (tools and tests).
    pub fn cpu() -> Self {
        Self {
            #[cfg(feature = "cuda")]
            cuda: None,
            #[cfg(feature = "cuda")]
            gpu_failed: AtomicBool::new(false),
            context: String::new(),
        }
    }

    /// Picks the device for `choice` and reports the choice once: a log line and
    /// [`OperatorMetric::ComputeBackend`]. `context` names what it serves in the log
    /// (a model name; never anything about a patient).
    pub fn select(choice: DeviceChoice, observer: &dyn Recorder, context: &str) -> Self {
        let mut device = Self::cpu();
        device.context = context.to_string();
        let reason = match choice {
            DeviceChoice::Cpu => BackendReason::CpuRequested,
            DeviceChoice::Auto => device.start_gpu(),
        };
        let backend = device.backend_name();
        match reason {
            BackendReason::GpuStarted => {
                tracing::info!(backend, reason = reason.as_str(), model = context, gpu = %device.gpu_name(),
                    "preprocess: running the kernels on the GPU");
            }
            BackendReason::CpuRequested | BackendReason::NotBuilt => {
                tracing::info!(backend, reason = reason.as_str(), model = context, "preprocess: running on the CPU");
            }
            BackendReason::GpuUnavailable | BackendReason::GpuFailed => {}
        }
        observer.record(OperatorMetric::ComputeBackend, &["preprocess", backend, reason.as_str()], 1.0);
        device
    }

    #[cfg(feature = "cuda")]
    fn start_gpu(&mut self) -> BackendReason {
        match radstream_kernels::CudaBackend::new(0) {
            Ok(gpu) => {
                self.cuda = Some(gpu);
                BackendReason::GpuStarted
            }
            Err(e) if !radstream_kernels::CudaBackend::driver_present() => {
                // The normal state of a machine without a GPU: worth a line, not a warning.
                tracing::info!(backend = "cpu", reason = BackendReason::GpuUnavailable.as_str(), model = %self.context,
                    error = %e, "preprocess: no GPU on this machine, running on the CPU");
                BackendReason::GpuUnavailable
            }
            Err(e) => {
                tracing::warn!(backend = "cpu", reason = BackendReason::GpuUnavailable.as_str(), model = %self.context,
                    error = %e, "preprocess: an NVIDIA driver is present but CUDA did not start; running on the CPU");
                BackendReason::GpuUnavailable
            }
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn start_gpu(&mut self) -> BackendReason {
        BackendReason::NotBuilt
    }

    /// `"cuda"` or `"cpu"`: where the next frame will run.
    pub fn backend_name(&self) -> &'static str {
        #[cfg(feature = "cuda")]
        if self.cuda.is_some() && !self.gpu_failed.load(Ordering::Relaxed) {
            return "cuda";
        }
        "cpu"
    }

    #[cfg(feature = "cuda")]
    fn gpu_name(&self) -> String {
        self.cuda.as_ref().map_or_else(String::new, |gpu| gpu.device_name().to_string())
    }

    #[cfg(not(feature = "cuda"))]
    fn gpu_name(&self) -> String {
        String::new()
    }

    /// Runs `plan` on one `rows × columns` frame into `out` (its `[C, H, W]` slot).
    pub fn run_into<S: StoredSample>(
        &self,
        plan: &Preprocess,
        stored: &[S],
        rows: usize,
        columns: usize,
        out: &mut [f32],
        observer: &dyn Recorder,
    ) -> Result<(), PreprocessError> {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = self.cuda.as_ref().filter(|_| !self.gpu_failed.load(Ordering::Relaxed)) {
            use radstream_kernels::PreprocessBackend;
            match gpu.preprocess(plan, stored, rows, columns) {
                Ok(values) if values.len() == out.len() => {
                    out.copy_from_slice(&values);
                    return Ok(());
                }
                Ok(values) => {
                    return Err(PreprocessError::LengthMismatch {
                        what: "GPU output",
                        expected: out.len(),
                        actual: values.len(),
                    })
                }
                Err(PreprocessError::Device { message }) => {
                    if !self.gpu_failed.swap(true, Ordering::Relaxed) {
                        tracing::error!(backend = "cpu", reason = BackendReason::GpuFailed.as_str(),
                            model = %self.context, error = %message,
                            "preprocess: the GPU failed; this and every later frame run on the CPU");
                        let started = ["preprocess", "cuda", BackendReason::GpuStarted.as_str()];
                        observer.record(OperatorMetric::ComputeBackend, &started, -1.0);
                        let failed = ["preprocess", "cpu", BackendReason::GpuFailed.as_str()];
                        observer.record(OperatorMetric::ComputeBackend, &failed, 1.0);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        let _ = observer;
        plan.run_cpu_into(stored, rows, columns, out)
    }
}

#[cfg(test)]
mod tests;
