//! The CUDA backend: the kernels of `cuda/preprocess.cu`, compiled at run time by NVRTC through
//! cudarc, loaded once per process and cached (candle's `candle-kernels` and
//! `cuda_backend/device.rs` do the same with PTX built ahead of time; NVRTC needs no `nvcc` at
//! build time, which this project's build machines do not have).
//!
//! cudarc loads `libcuda` and `libnvrtc` on first use and panics when they are missing, so
//! [`CudaBackend::new`] asks `is_culib_present` first and turns every failure to start (no
//! driver, no NVRTC, no device, a failed compile) into [`PreprocessError::Device`]; callers run
//! on the CPU instead. The whole start is also guarded against panics inside cudarc.
//!
//! Per frame: the stored values go through a pinned staging buffer and an asynchronous copy on
//! the backend's stream, the element-wise steps run as one fused kernel (writing every channel
//! plane in the same pass when there is no resampling), resampling is two passes (the second
//! writes the channel planes), and the result comes back through a pinned buffer. The
//! arithmetic mirrors the CPU reference step by step (see the `.cu` file), so the outputs agree
//! to far below [`PreprocessBackend::TOLERANCE`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, DriverError, LaunchConfig, PinnedHostSlice,
    PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use crate::backend::PreprocessBackend;
use crate::error::{check_len, PreprocessError};
use crate::normalize::{Normalization, PixelNorm};
use crate::plan::Preprocess;
use crate::resample::{AxisMethod, AxisWeights, ImageSize};
use crate::sample::{SampleKind, StoredSample};
use crate::voi::VoiFunction;

/// The kernels' source, compiled by NVRTC at start-up.
const SOURCE: &str = include_str!("cuda/preprocess.cu");

/// Threads per block of every launch; the kernels loop over the grid, so any grid size works.
const BLOCK: u32 = 256;
/// Upper bound on blocks per launch (grid-stride loops cover the rest).
const MAX_BLOCKS: u32 = 65_535;

/// Parameters of the fused element-wise kernel; laid out exactly like `struct Elementwise` in
/// `preprocess.cu`: eleven `f64`, then two `i32` (96 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ElementwiseParams {
    slope: f64,
    intercept: f64,
    lower: f64,
    upper: f64,
    origin: f64,
    gain: f64,
    base: f64,
    range_min: f64,
    range_max: f64,
    norm_a: f64,
    norm_b: f64,
    window: i32,
    norm: i32,
}

// SAFETY: `repr(C)` plain old data of `f64` and `i32` fields only, with the same field order
// and types as the kernel's `struct Elementwise`; any bit pattern is valid on both sides.
unsafe impl DeviceRepr for ElementwiseParams {}

impl ElementwiseParams {
    fn new(plan: &Preprocess, norm: PixelNorm) -> Self {
        let mut p = Self { slope: plan.rescale.slope, intercept: plan.rescale.intercept, ..Self::default() };
        if let Some(window) = &plan.window {
            let (lower, upper, origin, gain, base) = window.ramp_constants();
            let range = window.range();
            p.lower = lower;
            p.upper = upper;
            p.origin = origin;
            p.gain = gain;
            p.base = base;
            p.range_min = range.min;
            p.range_max = range.max;
            p.window = match window.function() {
                VoiFunction::Linear | VoiFunction::LinearExact => 1,
                VoiFunction::Sigmoid => 2,
            };
        }
        match norm {
            PixelNorm::Identity => p.norm = 0,
            PixelNorm::Standardize(ms) => {
                p.norm = 1;
                p.norm_a = ms.mean;
                p.norm_b = 1.0 / ms.std;
            }
            PixelNorm::UnitRange { min, scale } => {
                p.norm = 2;
                p.norm_a = min;
                p.norm_b = scale;
            }
            PixelNorm::Zero => p.norm = 3,
        }
        p
    }
}

/// The compiled PTX, shared by every backend of the process: NVRTC runs once.
static PTX: OnceLock<Result<String, String>> = OnceLock::new();

fn ptx() -> Result<&'static str, PreprocessError> {
    let compiled = PTX.get_or_init(|| {
        let options = CompileOptions {
            // Separate multiply and add, IEEE division and square root, no flush to zero: the
            // CPU's rounding.
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            name: Some("preprocess.cu".into()),
            ..CompileOptions::default()
        };
        compile_ptx_with_opts(SOURCE, options).map(|ptx| ptx.to_src()).map_err(|e| format!("NVRTC: {e:?}"))
    });
    compiled.as_deref().map_err(|message| device(message.clone()))
}

fn device(message: impl Into<String>) -> PreprocessError {
    PreprocessError::Device { message: message.into() }
}

fn driver(what: &str) -> impl FnOnce(DriverError) -> PreprocessError + '_ {
    move |e| device(format!("{what}: {e}"))
}

/// One function per stored type, in [`SampleKind`] order.
struct PerKind([CudaFunction; 6]);

impl PerKind {
    fn get(&self, kind: SampleKind) -> &CudaFunction {
        &self.0[match kind {
            SampleKind::U8 => 0,
            SampleKind::I8 => 1,
            SampleKind::U16 => 2,
            SampleKind::I16 => 3,
            SampleKind::U32 => 4,
            SampleKind::I32 => 5,
        }]
    }
}

struct Kernels {
    elementwise: PerKind,
    minmax: PerKind,
    resample_rows: CudaFunction,
    resample_cols: CudaFunction,
}

/// Page-locked host buffers, kept between calls (allocating them is slow) and grown on demand.
#[derive(Default)]
struct Staging {
    /// Stored values on their way to the device: write-combined, written once, never read back.
    upload: Option<PinnedHostSlice<u8>>,
    /// Results on their way back: plain page-locked memory, which the host reads quickly.
    download: Option<PinnedHostSlice<f32>>,
}

/// The preprocessing kernels on one CUDA device.
pub struct CudaBackend {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    device_name: String,
    staging: Mutex<Staging>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend").field("device", &self.device_name).finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Starts on device `ordinal`: finds the driver and NVRTC, creates the context and a
    /// stream, compiles (once per process) and loads the kernels. Every failure is a
    /// [`PreprocessError::Device`] that says what is missing; nothing here panics.
    pub fn new(ordinal: usize) -> Result<Self, PreprocessError> {
        // SAFETY: `is_culib_present` only tries to dlopen the library by its usual names; no
        // symbol is resolved or called.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(device("no CUDA driver library (libcuda.so.1) was found: no NVIDIA driver on this machine"));
        }
        // SAFETY: as above, for NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(device(
                "the CUDA driver is present but NVRTC (libnvrtc.so), which compiles the kernels at start-up, \
                 was not found: install the CUDA runtime compiler library or add its directory to LD_LIBRARY_PATH",
            ));
        }
        catch_unwind(AssertUnwindSafe(|| Self::start(ordinal)))
            .unwrap_or_else(|_| Err(device("the CUDA library panicked while starting (see the log)")))
    }

    fn start(ordinal: usize) -> Result<Self, PreprocessError> {
        let count = CudaContext::device_count().map_err(driver("counting CUDA devices"))?;
        if usize::try_from(count).map_or(true, |count| ordinal >= count) {
            return Err(device(format!("CUDA device {ordinal} does not exist ({count} found)")));
        }
        let context = CudaContext::new(ordinal).map_err(driver("creating the CUDA context"))?;
        let stream = context.new_stream().map_err(driver("creating a CUDA stream"))?;
        let module = context.load_module(Ptx::from_src(ptx()?)).map_err(driver("loading the kernels"))?;
        let load = |name: &str| module.load_function(name).map_err(|e| device(format!("kernel {name}: {e}")));
        let per_kind = |prefix: &str| -> Result<PerKind, PreprocessError> {
            Ok(PerKind([
                load(&format!("{prefix}_u8"))?,
                load(&format!("{prefix}_i8"))?,
                load(&format!("{prefix}_u16"))?,
                load(&format!("{prefix}_i16"))?,
                load(&format!("{prefix}_u32"))?,
                load(&format!("{prefix}_i32"))?,
            ]))
        };
        let kernels = Kernels {
            elementwise: per_kind("elementwise")?,
            minmax: per_kind("minmax")?,
            resample_rows: load("resample_rows")?,
            resample_cols: load("resample_cols")?,
        };
        let device_name = context.name().unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        Ok(Self { context, stream, kernels, device_name, staging: Mutex::new(Staging::default()) })
    }

    /// Whether an NVIDIA driver library can be opened at all: `false` is the normal state of a
    /// machine without a GPU, whereas a failure to start with a driver present is worth a
    /// warning.
    pub fn driver_present() -> bool {
        // SAFETY: only tries to dlopen the library by its usual names.
        unsafe { cudarc::driver::sys::is_culib_present() }
    }

    /// The device's name, e.g. `"NVIDIA H100 80GB HBM3"`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The stream every copy and kernel of this backend runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn launch_config(n: usize) -> LaunchConfig {
        let blocks = u32::try_from(n.div_ceil(BLOCK as usize)).unwrap_or(MAX_BLOCKS).clamp(1, MAX_BLOCKS);
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// Copies `stored` to the device through the pinned upload buffer; the device buffer is as
    /// long as the pinned one (at least `stored`'s bytes).
    fn upload<S: StoredSample>(&self, staging: &mut Staging, stored: &[S]) -> Result<CudaSlice<u8>, PreprocessError> {
        let len = std::mem::size_of_val(stored);
        // SAFETY: every `StoredSample` is a plain integer type without padding, so its slice is
        // `len` initialized bytes.
        let bytes = unsafe { std::slice::from_raw_parts(stored.as_ptr().cast::<u8>(), len) };
        let pinned = match &mut staging.upload {
            Some(pinned) if pinned.len() >= len => pinned,
            slot => {
                // SAFETY: the buffer is written below before any copy reads it.
                let fresh = unsafe { self.context.alloc_pinned::<u8>(len.max(1)) }
                    .map_err(driver("allocating pinned host memory"))?;
                slot.insert(fresh)
            }
        };
        pinned.as_mut_slice().map_err(driver("pinned upload buffer"))?[..len].copy_from_slice(bytes);
        // SAFETY: the device buffer is fully written by the copy before any kernel reads it.
        let mut on_device =
            unsafe { self.stream.alloc::<u8>(pinned.len()) }.map_err(driver("allocating device memory"))?;
        self.stream.memcpy_htod(pinned, &mut on_device).map_err(driver("copying to the device"))?;
        Ok(on_device)
    }

    /// Copies `len` floats back through the pinned download buffer.
    fn download(&self, staging: &mut Staging, on_device: &CudaSlice<f32>) -> Result<Vec<f32>, PreprocessError> {
        let len = on_device.len();
        let pinned = match &mut staging.download {
            Some(pinned) if pinned.len() >= len => pinned,
            slot => {
                // SAFETY: only the part the copy writes is read; flags 0 is plain page-locked
                // memory (not write-combined), which the host reads at full speed.
                let fresh = unsafe { self.context.alloc_pinned_with_flags::<f32>(len.max(1), 0) }
                    .map_err(driver("allocating pinned host memory"))?;
                slot.insert(fresh)
            }
        };
        // Into the first `len` values only: a copy into the whole buffer (kept from a larger
        // image) would read past the end of `on_device` (CUDA_ERROR_INVALID_VALUE, seen on an
        // H200). The plain slice carries no event, which is safe because of the synchronize.
        let host = &mut pinned.as_mut_slice().map_err(driver("pinned download buffer"))?[..len];
        self.stream.memcpy_dtoh(on_device, host).map_err(driver("copying from the device"))?;
        self.stream.synchronize().map_err(driver("waiting for the GPU"))?;
        Ok(host.to_vec())
    }

    /// The per-pixel normalization, with the image's range from the reduction kernel when the
    /// plan needs it.
    fn pixel_norm<S: StoredSample>(
        &self,
        plan: &Preprocess,
        stored: &CudaSlice<u8>,
        count: usize,
    ) -> Result<PixelNorm, PreprocessError> {
        let range = if plan.normalization == Normalization::MinMaxOfImage {
            self.stored_range::<S>(stored, count)?
        } else {
            None
        };
        Ok(plan.pixel_norm(|| range))
    }

    /// Smallest and largest of the first `count` stored values on the device.
    fn stored_range<S: StoredSample>(
        &self,
        stored: &CudaSlice<u8>,
        count: usize,
    ) -> Result<Option<(f64, f64)>, PreprocessError> {
        if count == 0 {
            return Ok(None);
        }
        let mut bounds = self.stream.clone_htod(&[i64::MAX, i64::MIN]).map_err(driver("copying to the device"))?;
        let n = count as u64;
        let mut launch = self.stream.launch_builder(self.kernels.minmax.get(S::KIND));
        launch.arg(stored).arg(&n).arg(&mut bounds);
        // SAFETY: `stored` holds at least `count` values of `S` (the upload copied them), the
        // kernel reads only indices below `n` and writes the two bounds.
        unsafe { launch.launch(Self::launch_config(count)) }.map_err(driver("launching minmax"))?;
        let bounds = self.stream.clone_dtoh(&bounds).map_err(driver("copying from the device"))?;
        Ok(Some((bounds[0] as f64, bounds[1] as f64)))
    }

    /// Per-channel statistics as the kernels take them: a flag, means and inverse deviations
    /// (one dummy entry when there are none, so that the pointers are valid).
    fn channel_stats(&self, plan: &Preprocess) -> Result<(i32, CudaSlice<f64>, CudaSlice<f64>), PreprocessError> {
        let (mean, inv_std): (Vec<f64>, Vec<f64>) = if plan.channel_mean_std.is_empty() {
            (vec![0.0], vec![1.0])
        } else {
            plan.channel_mean_std.iter().map(|ms| (ms.mean, 1.0 / ms.std)).unzip()
        };
        let flag = i32::from(!plan.channel_mean_std.is_empty());
        let mean = self.stream.clone_htod(&mean).map_err(driver("copying to the device"))?;
        let inv_std = self.stream.clone_htod(&inv_std).map_err(driver("copying to the device"))?;
        Ok((flag, mean, inv_std))
    }

    /// The element-wise kernel over `count` stored values into `channels` planes of `out`.
    #[allow(clippy::too_many_arguments)]
    fn elementwise_kernel<S: StoredSample>(
        &self,
        stored: &CudaSlice<u8>,
        count: usize,
        params: &ElementwiseParams,
        channels: i32,
        stats: &(i32, CudaSlice<f64>, CudaSlice<f64>),
        out: &mut CudaSlice<f32>,
    ) -> Result<(), PreprocessError> {
        let n = count as u64;
        let (flag, mean, inv_std) = stats;
        let mut launch = self.stream.launch_builder(self.kernels.elementwise.get(S::KIND));
        launch.arg(stored).arg(out).arg(&n).arg(params).arg(&channels).arg(flag).arg(mean).arg(inv_std);
        // SAFETY: `stored` holds `count` values of `S`; `out` holds `channels * count` floats
        // (the callers allocate it so); `mean` and `inv_std` hold one entry per channel when
        // `flag` is set and are not read otherwise.
        unsafe { launch.launch(Self::launch_config(count)) }.map_err(driver("launching elementwise"))?;
        Ok(())
    }

    /// Resamples the single plane `image` (`from`) to `to` into `channels` planes of `out`.
    fn resample_kernels(
        &self,
        image: &CudaSlice<f32>,
        from: ImageSize,
        to: ImageSize,
        channels: i32,
        stats: &(i32, CudaSlice<f64>, CudaSlice<f64>),
        out: &mut CudaSlice<f32>,
    ) -> Result<(), PreprocessError> {
        let along_x = AxisWeights::new(from.width, to.width)?;
        let along_y = AxisWeights::new(from.height, to.height)?;
        let dims = |v: usize| i32::try_from(v).map_err(|_| PreprocessError::InvalidSize { height: v, width: v });
        let (in_height, in_width, out_height, out_width) =
            (dims(from.height)?, dims(from.width)?, dims(to.height)?, dims(to.width)?);
        let rows_owned;
        let rows = if along_x.method() == AxisMethod::Identity {
            image
        } else {
            let (starts, offsets, weights) = self.upload_axis(&along_x)?;
            let mut rows = self.stream.alloc_zeros::<f32>(from.height * to.width).map_err(driver("allocating"))?;
            let mut launch = self.stream.launch_builder(&self.kernels.resample_rows);
            launch
                .arg(image)
                .arg(&mut rows)
                .arg(&in_height)
                .arg(&in_width)
                .arg(&out_width)
                .arg(&starts)
                .arg(&offsets)
                .arg(&weights);
            // SAFETY: `image` is `in_height x in_width`, `rows` is `in_height x out_width`; the
            // tables come from `AxisWeights`, whose taps stay inside the input row.
            unsafe { launch.launch(Self::launch_config(from.height * to.width)) }
                .map_err(driver("launching resample_rows"))?;
            rows_owned = rows;
            &rows_owned
        };
        let (starts, offsets, weights) = self.upload_axis(&along_y)?;
        let (flag, mean, inv_std) = stats;
        let mut launch = self.stream.launch_builder(&self.kernels.resample_cols);
        launch
            .arg(rows)
            .arg(out)
            .arg(&out_height)
            .arg(&out_width)
            .arg(&starts)
            .arg(&offsets)
            .arg(&weights)
            .arg(&channels)
            .arg(flag)
            .arg(mean)
            .arg(inv_std);
        // SAFETY: `rows` is `in_height x out_width` and the vertical taps stay below
        // `in_height`; `out` holds `channels` planes of `out_height x out_width`.
        unsafe { launch.launch(Self::launch_config(to.height * to.width)) }
            .map_err(driver("launching resample_cols"))?;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn upload_axis(
        &self,
        axis: &AxisWeights,
    ) -> Result<(CudaSlice<u32>, CudaSlice<u32>, CudaSlice<f64>), PreprocessError> {
        let (starts, offsets, weights) = axis.tables();
        let narrow = |v: &[usize]| -> Result<Vec<u32>, PreprocessError> {
            v.iter()
                .map(|&x| u32::try_from(x).map_err(|_| PreprocessError::InvalidSize { height: x, width: x }))
                .collect()
        };
        let starts = self.stream.clone_htod(&narrow(starts)?).map_err(driver("copying to the device"))?;
        let offsets = self.stream.clone_htod(&narrow(offsets)?).map_err(driver("copying to the device"))?;
        let weights = self.stream.clone_htod(weights).map_err(driver("copying to the device"))?;
        Ok((starts, offsets, weights))
    }

    fn staging(&self) -> std::sync::MutexGuard<'_, Staging> {
        // A panic while the lock was held leaves only buffers behind, which stay valid.
        self.staging.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Measurements for the GPU benchmark (`examples/bench_cuda.rs`): each times the device work
/// alone with CUDA events, so that the figures are the kernel's and the copy engine's, not the
/// host's.
impl CudaBackend {
    /// The theoretical device memory bandwidth in bytes/s: 2 transfers per clock (DDR/HBM) ×
    /// memory clock × bus width, from the device attributes.
    pub fn memory_bandwidth(&self) -> Result<f64, PreprocessError> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let clock_khz =
            self.context.attribute(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE).map_err(driver("attribute"))?;
        let bus_bits =
            self.context.attribute(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH).map_err(driver("attribute"))?;
        Ok(2.0 * f64::from(clock_khz) * 1e3 * f64::from(bus_bits) / 8.0)
    }

    /// Times `repeats` launches of the fused element-wise kernel over `count` `i16` values (CT
    /// slices side by side) with `plan`'s modality, window and normalization; milliseconds per
    /// launch. Each launch reads `2 × count` bytes and writes `4 × count`.
    pub fn time_elementwise_i16(
        &self,
        plan: &Preprocess,
        count: usize,
        repeats: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        let pattern: Vec<i16> = (0..count).map(|i| ((i * 7919) % 2600) as i16 - 1000).collect();
        let stored = self.stream.clone_htod(&pattern).map_err(driver("copying to the device"))?;
        // SAFETY: the same allocation viewed as bytes, as `upload` produces for the kernels.
        let stored = unsafe { stored.transmute::<u8>(count * 2) }.ok_or_else(|| device("transmute"))?;
        let params = ElementwiseParams::new(plan, plan.pixel_norm(|| None));
        let stats = self.channel_stats(&Preprocess::default())?;
        let mut out = self.stream.alloc_zeros::<f32>(count).map_err(driver("allocating device memory"))?;
        let n = count as u64;
        let kernel = self.kernels.elementwise.get(SampleKind::I16);
        let (flag, mean, inv_std) = &stats;
        self.time(repeats, || {
            let mut launch = self.stream.launch_builder(kernel);
            launch.arg(&stored).arg(&mut out).arg(&n).arg(&params).arg(&1i32).arg(flag).arg(mean).arg(inv_std);
            // SAFETY: `stored` holds `count` i16 values, `out` `count` floats.
            unsafe { launch.launch(Self::launch_config(count)) }.map(|_| ()).map_err(driver("launching elementwise"))
        })
    }

    /// Times `repeats` host-to-device copies of `bytes` from page-locked memory; milliseconds
    /// per copy.
    pub fn time_upload(&self, bytes: usize, repeats: usize) -> Result<Vec<f32>, PreprocessError> {
        // SAFETY: the contents do not matter for timing a copy.
        let pinned = unsafe { self.context.alloc_pinned::<u8>(bytes) }.map_err(driver("allocating pinned memory"))?;
        // SAFETY: fully overwritten by every copy before anything reads it.
        let mut on_device = unsafe { self.stream.alloc::<u8>(bytes) }.map_err(driver("allocating device memory"))?;
        self.time(repeats, || self.stream.memcpy_htod(&pinned, &mut on_device).map_err(driver("copying to the device")))
    }

    fn time(
        &self,
        repeats: usize,
        mut work: impl FnMut() -> Result<(), PreprocessError>,
    ) -> Result<Vec<f32>, PreprocessError> {
        use cudarc::driver::sys::CUevent_flags;
        work()?; // warm-up
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = self.context.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(driver("event"))?;
            let end = self.context.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(driver("event"))?;
            start.record(&self.stream).map_err(driver("recording an event"))?;
            work()?;
            end.record(&self.stream).map_err(driver("recording an event"))?;
            end.synchronize().map_err(driver("waiting for the GPU"))?;
            times.push(start.elapsed_ms(&end).map_err(driver("reading an event"))?);
        }
        Ok(times)
    }
}

impl PreprocessBackend for CudaBackend {
    const TOLERANCE: f32 = 1e-4;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn elementwise<S: StoredSample>(&self, plan: &Preprocess, stored: &[S]) -> Result<Vec<f32>, PreprocessError> {
        plan.rescale.validate()?;
        plan.normalization.validate()?;
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let mut staging = self.staging();
        let on_device = self.upload(&mut staging, stored)?;
        let norm = self.pixel_norm::<S>(plan, &on_device, stored.len())?;
        let params = ElementwiseParams::new(plan, norm);
        let stats = self.channel_stats(&Preprocess::default())?;
        let mut out = self.stream.alloc_zeros::<f32>(stored.len()).map_err(driver("allocating device memory"))?;
        self.elementwise_kernel::<S>(&on_device, stored.len(), &params, 1, &stats, &mut out)?;
        self.download(&mut staging, &out)
    }

    fn resample(&self, image: &[f32], from: ImageSize, to: ImageSize) -> Result<Vec<f32>, PreprocessError> {
        check_len("image to resample", from.pixels()?, image.len())?;
        let pixels = to.pixels()?;
        let mut staging = self.staging();
        let on_device = self.stream.clone_htod(image).map_err(driver("copying to the device"))?;
        let stats = self.channel_stats(&Preprocess::default())?;
        let mut out = self.stream.alloc_zeros::<f32>(pixels).map_err(driver("allocating device memory"))?;
        self.resample_kernels(&on_device, from, to, 1, &stats, &mut out)?;
        self.download(&mut staging, &out)
    }

    fn preprocess<S: StoredSample>(
        &self,
        plan: &Preprocess,
        stored: &[S],
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        plan.validate()?;
        let input = ImageSize::new(height, width);
        let pixels = input.pixels()?;
        check_len("stored pixels", pixels, stored.len())?;
        let target = plan.target.unwrap_or(input);
        let [c, h, w] = plan.output_shape(input);
        let len = c
            .checked_mul(h)
            .and_then(|n| n.checked_mul(w))
            .ok_or(PreprocessError::InvalidSize { height: h, width: w })?;
        let channels =
            i32::try_from(c).map_err(|_| PreprocessError::InvalidChannels { channels: c, per_channel: 0 })?;

        let mut staging = self.staging();
        let on_device = self.upload(&mut staging, stored)?;
        let params = ElementwiseParams::new(plan, self.pixel_norm::<S>(plan, &on_device, pixels)?);
        let stats = self.channel_stats(plan)?;
        let mut out = self.stream.alloc_zeros::<f32>(len).map_err(driver("allocating device memory"))?;
        if target == input {
            // One pass: stored values in, every channel plane out.
            self.elementwise_kernel::<S>(&on_device, pixels, &params, channels, &stats, &mut out)?;
        } else {
            let plain = self.channel_stats(&Preprocess::default())?;
            let mut plane = self.stream.alloc_zeros::<f32>(pixels).map_err(driver("allocating device memory"))?;
            self.elementwise_kernel::<S>(&on_device, pixels, &params, 1, &plain, &mut plane)?;
            self.resample_kernels(&plane, input, target, channels, &stats, &mut out)?;
        }
        self.download(&mut staging, &out)
    }
}

#[cfg(test)]
mod tests;
