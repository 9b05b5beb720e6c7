//! The CPU backend: tract (pure Rust), loaded and optimized once, run from any thread.
//!
//! A model of images takes `[N, C, H, W]`. Its batch dimension is made symbolic (`N`) when the
//! ONNX file leaves it open, so one optimized plan runs every batch size; a file with a fixed
//! batch size `k` is run in chunks of `k`, the last one padded with zeros and the padding's
//! outputs dropped.
//!
//! A model of volumes (whole series) takes `[1, C, D, H, W]`, its depth symbolic (`D`).
//!
//! **Plans per size.** The model is typed and decluttered once with the open dimension
//! symbolic; each size it is run at (a batch of N, a depth of D) gets its own plan, optimized
//! for that size the first time it is seen and kept (up to [`PLANS_KEPT`] sizes): tract's plan
//! for a symbolic size is much slower than one for a concrete size (a hand timing once gave
//! 175 ms against 12 ms on the demo models; no benchmark here repeats it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Symbol, TDim, Tensor as TractTensor,
    TypedModel, TypedSimplePlan,
};

/// Sizes whose optimized plan is kept; past it the plans are dropped and rebuilt on demand.
pub const PLANS_KEPT: usize = 64;
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

/// Checks a model input's declared dimensions (`None`: rank unknown; `Some(None)`: that
/// dimension open) against the manifest's `[C, H, W]`: `[N, C, H, W]`, or `[1, C, D, H, W]` for
/// a model of volumes. Shared by the backends.
pub(crate) fn check_input(
    input: &str,
    declared: Option<&[Option<usize>]>,
    image_shape: [usize; 3],
    volume: bool,
) -> Result<(), BackendError> {
    let Some(declared) = declared else { return Ok(()) };
    let (rank, layout) = if volume { (5usize, "[1, C, D, H, W]") } else { (4usize, "[N, C, H, W]") };
    if declared.len() != rank {
        return Err(BackendError::Load(format!(
            "input `{input}` has {} dimensions; {layout} expected",
            declared.len()
        )));
    }
    // The dimensions of C, H, W in the input.
    let image_dims = if volume { [1, 3, 4] } else { [1, 2, 3] };
    for (&dim, &want) in image_dims.iter().zip(&image_shape) {
        if let Some(have) = declared[dim].filter(|&have| have != want) {
            let open = |d: usize| match (volume, d) {
                (false, 0) => "N",
                (true, 2) => "D",
                _ => "?",
            };
            let takes = (0..rank).map(|d| declared[d].map_or(open(d).into(), |v| v.to_string()));
            let [c, h, w] = image_shape;
            let makes = if volume { format!("[1, {c}, D, {h}, {w}]") } else { format!("[N, {c}, {h}, {w}]") };
            return Err(BackendError::Load(format!(
                "input `{input}` takes [{}] but the manifest's [input] makes {makes} (dimension {dim} is {have}, \
                 not {want})",
                takes.collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if let Some(n) = declared[0].filter(|&n| volume && n != 1) {
        return Err(BackendError::Load(format!("input `{input}` takes {n} volumes at once; 1 expected")));
    }
    Ok(())
}

/// Checks a run's input: `len` values of `n` images (or, `as_volume`, of a volume of `n`
/// slices) of `[C, H, W]` for a model that takes volumes when `volume`. Returns the values per
/// image. Shared by the backends.
pub(crate) fn check_run(
    image_shape: [usize; 3],
    volume: bool,
    as_volume: bool,
    len: usize,
    n: usize,
) -> Result<usize, BackendError> {
    let [c, h, w] = image_shape;
    let per = c * h * w;
    match (volume, as_volume) {
        (true, false) => return Err(BackendError::Run("the model takes volumes, not images".into())),
        (false, true) => return Err(BackendError::Run("the model takes images, not volumes".into())),
        _ => {}
    }
    if n == 0 || len != n * per {
        let what = if as_volume {
            format!("a volume of [{c}, {n}, {h}, {w}]")
        } else {
            format!("{n} images of [{c}, {h}, {w}]")
        };
        return Err(BackendError::Run(format!("{len} values are not {what}")));
    }
    Ok(per)
}

/// Runs `n` images (`per` values each) through `run_exactly(data, rows)`: at once when the
/// model's batch is open (`fixed` is `None`), else in whole chunks of the fixed batch, the last
/// padded with zeros and the padding's outputs dropped. Shared by the backends.
pub(crate) fn run_in_chunks(
    fixed: Option<usize>,
    per: usize,
    images: &[f32],
    n: usize,
    run_exactly: impl Fn(Vec<f32>, usize) -> Result<Vec<Output>, BackendError>,
) -> Result<Vec<Output>, BackendError> {
    let Some(k) = fixed else {
        return run_exactly(images.to_vec(), n);
    };
    let mut outputs: Option<Vec<Output>> = None;
    for chunk in images.chunks(k * per) {
        let rows = chunk.len() / per;
        let mut padded = chunk.to_vec();
        padded.resize(k * per, 0.0);
        let ran = run_exactly(padded, k)?;
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
    /// Typed and decluttered, the open dimension (if any) still `symbol`.
    typed: TypedModel,
    symbol: Option<Symbol>,
    plans: Mutex<HashMap<usize, Arc<TypedSimplePlan>>>,
    image_shape: [usize; 3],
    volume: bool,
    fixed_batch: Option<usize>,
    output_shapes: Vec<Vec<Option<usize>>>,
}

impl std::fmt::Debug for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModel")
            .field("image_shape", &self.image_shape)
            .field("volume", &self.volume)
            .field("fixed_batch", &self.fixed_batch)
            .finish_non_exhaustive()
    }
}

impl CpuModel {
    /// Loads `onnx` with its input `input` as `[N, C, H, W]` float32 (`image_shape` =
    /// `[C, H, W]`) and `outputs` as its outputs, in that order; optimizes it once.
    pub fn load(onnx: &[u8], input: &str, outputs: &[String], image_shape: [usize; 3]) -> Result<Self, BackendError> {
        Self::load_as(onnx, input, outputs, image_shape, false)
    }

    /// Loads `onnx` with its input as a volume `[1, C, D, H, W]` (`image_shape` = `[C, H, W]`
    /// of one slice, the depth `D` open).
    pub fn load_volume(
        onnx: &[u8],
        input: &str,
        outputs: &[String],
        image_shape: [usize; 3],
    ) -> Result<Self, BackendError> {
        Self::load_as(onnx, input, outputs, image_shape, true)
    }

    fn load_as(
        onnx: &[u8],
        input: &str,
        outputs: &[String],
        image_shape: [usize; 3],
        volume: bool,
    ) -> Result<Self, BackendError> {
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
        let rank = declared.rank().concretize().and_then(|r| usize::try_from(r).ok());
        let dims: Option<Vec<Option<usize>>> = rank.map(|r| (0..r).map(declared_dim).collect());
        check_input(input, dims.as_deref(), image_shape, volume)?;
        let [c, h, w] = image_shape;
        let mut symbol: Option<Symbol> = None;
        let (fixed_batch, fact) = if volume {
            let depth: TDim = match declared_dim(2) {
                Some(d) => d.into(),
                None => {
                    symbol = Some(model.sym("D"));
                    symbol.clone().expect("just set").into()
                }
            };
            (Some(1), InferenceFact::dt_shape(DatumType::F32, tvec![1.into(), c.into(), depth, h.into(), w.into()]))
        } else {
            let fixed_batch = declared_dim(0);
            let batch: TDim = match fixed_batch {
                Some(k) => k.into(),
                None => {
                    symbol = Some(model.sym("N"));
                    symbol.clone().expect("just set").into()
                }
            };
            (fixed_batch, InferenceFact::dt_shape(DatumType::F32, tvec![batch, c.into(), h.into(), w.into()]))
        };
        model = model.with_input_fact(0, fact).map_err(load)?;
        let typed = model.into_typed().and_then(|m| m.into_decluttered()).map_err(load)?;
        let mut output_shapes = Vec::with_capacity(outputs.len());
        for i in 0..outputs.len() {
            let fact = typed.output_fact(i).map_err(load)?;
            output_shapes.push(fact.shape.iter().map(|d| d.to_usize().ok()).collect());
        }
        let loaded =
            Self { typed, symbol, plans: Mutex::new(HashMap::new()), image_shape, volume, fixed_batch, output_shapes };
        // Optimize for the common size now, so that a model that cannot be optimized fails at
        // start rather than on its first batch.
        loaded.plan(loaded.fixed_batch.unwrap_or(1))?;
        Ok(loaded)
    }

    /// Optimizes the plans of `sizes` now (batch sizes of a model of images), so that the first
    /// batch of each size does not wait for it.
    pub fn prepare(&self, sizes: impl IntoIterator<Item = usize>) -> Result<(), BackendError> {
        if self.symbol.is_some() {
            for size in sizes {
                self.plan(size)?;
            }
        }
        Ok(())
    }

    /// The plan for the open dimension at `size` (a model without one has a single plan).
    fn plan(&self, size: usize) -> Result<Arc<TypedSimplePlan>, BackendError> {
        let key = if self.symbol.is_some() { size } else { 0 };
        if let Some(plan) = self.plans.lock().expect("plan cache lock").get(&key) {
            return Ok(Arc::clone(plan));
        }
        let fail = |e: tract_onnx::prelude::TractError| BackendError::Load(format!("{e:#}"));
        let sized = match &self.symbol {
            Some(symbol) => {
                let value = TDim::Val(i64::try_from(size).map_err(|e| BackendError::Run(e.to_string()))?);
                self.typed.set_symbols(&HashMap::from([(symbol.clone(), value)])).map_err(fail)?
            }
            None => self.typed.clone(),
        };
        let plan: Arc<TypedSimplePlan> = sized.into_optimized().and_then(|m| m.into_runnable()).map_err(fail)?;
        let mut plans = self.plans.lock().expect("plan cache lock");
        if plans.len() >= PLANS_KEPT {
            plans.clear();
        }
        plans.insert(key, Arc::clone(&plan));
        Ok(plan)
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

    /// Whether it takes volumes (`[1, C, D, H, W]`) rather than images.
    pub fn is_volume(&self) -> bool {
        self.volume
    }

    /// Runs one volume of `depth` slices (`[C, D, H, W]` values: channel after channel, slice
    /// after slice) and returns every output with its one row.
    pub fn run_volume(&self, volume: Vec<f32>, depth: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        check_run(self.image_shape, self.volume, true, volume.len(), depth)?;
        let input: TractTensor =
            tract_onnx::prelude::tract_ndarray::Array5::from_shape_vec((1, c, depth, h, w), volume)
                .map_err(|e| BackendError::Run(e.to_string()))?
                .into();
        self.collect(self.plan(depth)?.run(tvec![input.into()]), 1)
    }

    /// Runs `images` (`n` images of `[C, H, W]`, one after the other) and returns every output
    /// with `n` rows.
    pub fn run(&self, images: &[f32], n: usize) -> Result<Vec<Output>, BackendError> {
        let per = check_run(self.image_shape, self.volume, false, images.len(), n)?;
        run_in_chunks(self.fixed_batch, per, images, n, |data, rows| self.run_exactly(data, rows))
    }

    fn run_exactly(&self, data: Vec<f32>, n: usize) -> Result<Vec<Output>, BackendError> {
        let [c, h, w] = self.image_shape;
        let input: TractTensor = tract_onnx::prelude::tract_ndarray::Array4::from_shape_vec((n, c, h, w), data)
            .map_err(|e| BackendError::Run(e.to_string()))?
            .into();
        self.collect(self.plan(n)?.run(tvec![input.into()]), n)
    }

    fn collect(
        &self,
        results: tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>>,
        n: usize,
    ) -> Result<Vec<Output>, BackendError> {
        let run = |e: tract_onnx::prelude::TractError| BackendError::Run(format!("{e:#}"));
        results
            .map_err(run)?
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
