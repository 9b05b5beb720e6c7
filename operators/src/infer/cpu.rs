//! The CPU backend: tract (pure Rust), loaded and optimized once, run from any thread.
//!
//! The input's batch dimension is made symbolic (`N`) when the ONNX file leaves it open, so one
//! optimized plan runs every batch size; a file with a fixed batch size `k` is run in chunks of
//! `k`, the last one padded with zeros and the padding's outputs dropped.

use std::sync::Arc;

use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, Tensor as TractTensor,
    TypedRunnableModel, TypedSimplePlan,
};
use tract_onnx::tract_hir::infer::Factoid as _;
use tract_onnx::tract_hir::internal::DimLike as _;

/// Why the model could not be loaded or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The ONNX file does not load, or does not fit the manifest.
    #[error("cannot load the model: {0}")]
    Load(String),
    /// A batch did not run.
    #[error("the model failed on a batch: {0}")]
    Run(String),
}

/// One output of a run: `[N, ...]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its shape; `shape[0]` is the number of images run.
    pub shape: Vec<usize>,
    /// Its values.
    pub data: Vec<f32>,
}

impl Output {
    /// The values of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let per: usize = self.shape[1..].iter().product();
        &self.data[i * per..(i + 1) * per]
    }
}

/// An ONNX model ready to run on the CPU. Cheap to share (`Arc`) and run from several threads:
/// each run has its own state.
pub struct CpuModel {
    plan: Arc<TypedSimplePlan>,
    image_shape: [usize; 3],
    fixed_batch: Option<usize>,
    output_shapes: Vec<Vec<Option<usize>>>,
}

impl std::fmt::Debug for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModel")
            .field("image_shape", &self.image_shape)
            .field("fixed_batch", &self.fixed_batch)
            .finish_non_exhaustive()
    }
}

impl CpuModel {
    /// Loads `onnx` with its input `input` as `[N, C, H, W]` float32 (`image_shape` =
    /// `[C, H, W]`) and `outputs` as its outputs, in that order; optimizes it once.
    pub fn load(onnx: &[u8], input: &str, outputs: &[String], image_shape: [usize; 3]) -> Result<Self, BackendError> {
        let load = |e: tract_onnx::prelude::TractError| BackendError::Load(format!("{e:#}"));
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(load)?;
        model = model
            .with_inputs_by_name([input])
            .map_err(|e| BackendError::Load(format!("no input `{input}` (the manifest's tensors.input): {e:#}")))?;
        model = model.with_outputs_by_name(outputs).map_err(|e| {
            BackendError::Load(format!("not every one of {outputs:?} (tensors.outputs) is an output: {e:#}"))
        })?;
        let declared = model.input_fact(0).map_err(load)?.shape.clone();
        let declared_dim = |i: usize| declared.dim(i).and_then(|d| d.concretize()).and_then(|d| d.to_usize().ok());
        if let Some(rank) = declared.rank().concretize() {
            if rank != 4 {
                return Err(BackendError::Load(format!(
                    "input `{input}` has {rank} dimensions; [N, C, H, W] expected"
                )));
            }
        }
        for (i, &want) in image_shape.iter().enumerate() {
            if let Some(have) = declared_dim(i + 1).filter(|&have| have != want) {
                return Err(BackendError::Load(format!(
                    "input `{input}` takes [N, {}] but the manifest's [input] makes [N, {}, {}, {}] (dimension {} is \
                     {have}, not {want})",
                    (1..4)
                        .map(|d| declared_dim(d).map_or("?".into(), |v| v.to_string()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    image_shape[0],
                    image_shape[1],
                    image_shape[2],
                    i + 1
                )));
            }
        }
        let fixed_batch = declared_dim(0);
        let batch: TDim = match fixed_batch {
            Some(k) => k.into(),
            None => model.sym("N").into(),
        };
        let [c, h, w] = image_shape;
        let fact = InferenceFact::dt_shape(DatumType::F32, tvec![batch, c.into(), h.into(), w.into()]);
        model = model.with_input_fact(0, fact).map_err(load)?;
        let typed = model.into_optimized().map_err(load)?;
        let mut output_shapes = Vec::with_capacity(outputs.len());
        for i in 0..outputs.len() {
            let fact = typed.output_fact(i).map_err(load)?;
            output_shapes.push(fact.shape.iter().map(|d| d.to_usize().ok()).collect());
        }
        let plan: Arc<TypedRunnableModel> = typed.into_runnable().map_err(load)?;
        Ok(Self { plan, image_shape, fixed_batch, output_shapes })
    }

    /// `[C, H, W]` of one input image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// The batch size the file fixes, if it does.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    /// Each output's shape as far as it is known before a run (`None`: the batch dimension,
    /// or another dimension the file leaves open).
    pub fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    /// Runs `images` (`n` images of `[C, H, W]`, one after the other) and returns every output
    /// with `n` rows.
    pub fn run(&self, images: &[f32], n: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        let per = c * h * w;
        if n == 0 || images.len() != n * per {
            return Err(BackendError::Run(format!("{} values are not {n} images of [{c}, {h}, {w}]", images.len())));
        }
        let Some(k) = self.fixed_batch else {
            return self.run_exactly(images.to_vec(), n);
        };
        // A fixed batch: whole chunks of k, the last padded.
        let mut outputs: Option<Vec<Output>> = None;
        for chunk in images.chunks(k * per) {
            let rows = chunk.len() / per;
            let mut padded = chunk.to_vec();
            padded.resize(k * per, 0.0);
            let ran = self.run_exactly(padded, k)?;
            match &mut outputs {
                None => {
                    outputs = Some(
                        ran.into_iter()
                            .map(|o| {
                                let kept = o.image(0).len() * rows;
                                let mut shape = o.shape;
                                shape[0] = rows;
                                Output { shape, data: o.data[..kept].to_vec() }
                            })
                            .collect(),
                    )
                }
                Some(all) => {
                    for (all, o) in all.iter_mut().zip(ran) {
                        let kept = o.image(0).len() * rows;
                        all.data.extend_from_slice(&o.data[..kept]);
                        all.shape[0] += rows;
                    }
                }
            }
        }
        outputs.ok_or_else(|| BackendError::Run("no images".into()))
    }

    fn run_exactly(&self, data: Vec<f32>, n: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        let run = |e: tract_onnx::prelude::TractError| BackendError::Run(format!("{e:#}"));
        let input: TractTensor = tract_onnx::prelude::tract_ndarray::Array4::from_shape_vec((n, c, h, w), data)
            .map_err(|e| BackendError::Run(e.to_string()))?
            .into();
        let results = self.plan.run(tvec![input.into()]).map_err(run)?;
        results
            .into_iter()
            .map(|value| {
                let shape = value.shape().to_vec();
                if shape.first() != Some(&n) {
                    return Err(BackendError::Run(format!(
                        "an output has shape {shape:?}: its first dimension is not the batch ({n})"
                    )));
                }
                let view = value.to_plain_array_view::<f32>().map_err(|e| {
                    BackendError::Run(format!("an output is {:?}, not float32: {e}", value.datum_type()))
                })?;
                Ok(Output { shape, data: view.iter().copied().collect() })
            })
            .collect()
    }
}
