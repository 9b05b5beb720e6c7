//! The ONNX Runtime backend (feature `onnxruntime`): `ort` with `load-dynamic`, so ONNX
//! Runtime's shared library is opened at run time (nothing is downloaded or linked at build
//! time), from `onnxruntime_lib` in the operator's config or `RADSTREAM_ONNXRUNTIME_LIB`.
//! The `onnxruntime` wheel's `onnxruntime/capi/libonnxruntime.so.*` is one (CPU), the
//! `onnxruntime-gpu` wheel's another (CUDA and TensorRT providers).
//!
//! `device = "auto"` asks for ONNX Runtime's CUDA execution provider and falls back to its CPU
//! provider, saying why, when the library has no CUDA provider or no GPU is there; `"cpu"`
//! always uses the CPU provider. Which one runs is reported like the preprocess operator's
//! backend (`radstream_compute_backend{operator="infer"}`).
//!
//! Not done: the preprocess kernels' output stays on the GPU only until it is copied back to the
//! host; binding that device memory as the model's input (ONNX Runtime's `IoBinding`) needs a GPU
//! to test, which this project's CI does not have. Today the input goes host → device once per
//! run, inside ONNX Runtime.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::execution_providers::{CPUExecutionProvider, CUDAExecutionProvider};
use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::cpu::{check_input, check_run, run_in_chunks, BackendError, Output};

/// The library the process opened (ONNX Runtime is initialized once per process).
static LIBRARY: OnceLock<Result<String, String>> = OnceLock::new();

/// Opens ONNX Runtime's library (once per process; a second path is refused).
pub fn init(library: &Path) -> Result<(), BackendError> {
    let wanted = library.display().to_string();
    let opened = LIBRARY.get_or_init(|| {
        if !library.is_file() {
            return Err(format!("{wanted}: no such file (set onnxruntime_lib or RADSTREAM_ONNXRUNTIME_LIB)"));
        }
        // ort opens the library on first use; a library that is not ONNX Runtime, or too old,
        // panics there, so catch that and say which file it was.
        let committed = std::panic::catch_unwind(|| ort::init_from(wanted.clone()).with_name("radstream").commit());
        match committed {
            Ok(Ok(_)) => Ok(wanted.clone()),
            Ok(Err(e)) => Err(format!("{wanted}: {e}")),
            Err(_) => Err(format!("{wanted}: not an ONNX Runtime library this build can use (1.22 or later)")),
        }
    });
    match opened {
        Ok(path) if *path == wanted => Ok(()),
        Ok(path) => Err(BackendError::Load(format!(
            "ONNX Runtime is already opened from {path}; one process uses one library, not also {wanted}"
        ))),
        Err(e) => Err(BackendError::Load(e.clone())),
    }
}

/// Where ONNX Runtime runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Its CPU execution provider.
    Cpu,
    /// Its CUDA execution provider.
    Cuda,
}

impl Provider {
    /// The `backend` label of `radstream_compute_backend`.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }
}

/// A model in an ONNX Runtime session.
pub struct OrtModel {
    session: Mutex<Session>,
    input: String,
    outputs: Vec<String>,
    image_shape: [usize; 3],
    volume: bool,
    fixed_batch: Option<usize>,
    output_shapes: Vec<Vec<Option<usize>>>,
    provider: Provider,
    /// Why the CPU provider runs it when the GPU was asked for.
    fallback: Option<String>,
}

impl std::fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtModel")
            .field("image_shape", &self.image_shape)
            .field("volume", &self.volume)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

fn dims(value: &ValueType) -> Option<Vec<Option<usize>>> {
    match value {
        ValueType::Tensor { shape, .. } => Some(shape.iter().map(|&d| usize::try_from(d).ok()).collect()),
        _ => None,
    }
}

impl OrtModel {
    /// Loads `onnx` like [`super::CpuModel`] does (`volume`: `[1, C, D, H, W]`, else
    /// `[N, C, H, W]`), on the CUDA provider when `gpu` and it starts, else the CPU provider.
    /// [`init`] must have opened the library.
    pub fn load(
        onnx: &[u8],
        input: &str,
        outputs: &[String],
        image_shape: [usize; 3],
        volume: bool,
        gpu: bool,
    ) -> Result<Self, BackendError> {
        if LIBRARY.get().is_none() {
            return Err(BackendError::Load("ONNX Runtime's library was not opened".into()));
        }
        let load = |e: ort::Error| BackendError::Load(e.to_string());
        let builder = || Session::builder().map_err(load);
        let (session, provider, fallback) = if gpu {
            let cuda =
                builder()?.with_execution_providers([CUDAExecutionProvider::default().build().error_on_failure()]);
            match cuda.and_then(|b| b.commit_from_memory(onnx)) {
                Ok(session) => (session, Provider::Cuda, None),
                Err(e) => {
                    tracing::info!(reason = %e, "onnxruntime: the CUDA provider did not start; the model runs on ONNX Runtime's CPU provider");
                    let session = builder()?.commit_from_memory(onnx).map_err(load)?;
                    (session, Provider::Cpu, Some(e.to_string()))
                }
            }
        } else {
            let cpu = builder()?.with_execution_providers([CPUExecutionProvider::default().build()]).map_err(load)?;
            (cpu.commit_from_memory(onnx).map_err(load)?, Provider::Cpu, None)
        };
        let declared = session
            .inputs
            .iter()
            .find(|i| i.name == input)
            .ok_or_else(|| BackendError::Load(format!("no input `{input}` (the manifest's tensors.input)")))?;
        let declared =
            dims(&declared.input_type).ok_or_else(|| BackendError::Load(format!("input `{input}` is not a tensor")))?;
        check_input(input, Some(&declared), image_shape, volume)?;
        let mut output_shapes = Vec::with_capacity(outputs.len());
        for name in outputs {
            let output = session.outputs.iter().find(|o| o.name == *name).ok_or_else(|| {
                BackendError::Load(format!("not every one of {outputs:?} (tensors.outputs) is an output: no `{name}`"))
            })?;
            output_shapes.push(dims(&output.output_type).unwrap_or_default());
        }
        let fixed_batch = if volume { Some(1) } else { declared[0] };
        Ok(Self {
            session: Mutex::new(session),
            input: input.to_string(),
            outputs: outputs.to_vec(),
            image_shape,
            volume,
            fixed_batch,
            output_shapes,
            provider,
            fallback,
        })
    }

    /// Where it runs.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Why it runs on the CPU although the GPU was asked for.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// `[C, H, W]` of one image or slice.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// Whether it takes volumes.
    pub fn is_volume(&self) -> bool {
        self.volume
    }

    /// Each output's shape as declared (`None` where open).
    pub fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    /// Runs `n` images of `[C, H, W]`.
    pub fn run(&self, images: &[f32], n: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        let per = check_run(self.image_shape, self.volume, false, images.len(), n)?;
        run_in_chunks(self.fixed_batch, per, images, n, |data, rows| self.run_shaped(vec![rows, c, h, w], data))
    }

    /// Runs one volume of `depth` slices (`[C, D, H, W]` values).
    pub fn run_volume(&self, volume: Vec<f32>, depth: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        check_run(self.image_shape, self.volume, true, volume.len(), depth)?;
        self.run_shaped(vec![1, c, depth, h, w], volume)
    }

    fn run_shaped(&self, shape: Vec<usize>, data: Vec<f32>) -> Result<Vec<Output>, BackendError> {
        let rows = shape[0];
        let fail = |e: ort::Error| BackendError::Run(e.to_string());
        let tensor = Tensor::from_array((shape, data)).map_err(fail)?;
        let mut session = self.session.lock().map_err(|_| BackendError::Run("a run panicked earlier".into()))?;
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(fail)?;
        self.outputs
            .iter()
            .map(|name| {
                let (shape, values) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| BackendError::Run(format!("output `{name}` is not float32: {e}")))?;
                let shape: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
                if shape.first() != Some(&rows) {
                    return Err(BackendError::Run(format!(
                        "output `{name}` has shape {shape:?}: its first dimension is not the batch ({rows})"
                    )));
                }
                Ok(Output { shape, data: values.to_vec() })
            })
            .collect()
    }
}
