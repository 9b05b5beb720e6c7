//! The GPU benchmark and agreement check of issue 4, run by `kernels/gpu-check.sh` on a machine
//! with a GPU (never in CI: there is none there). Prints Markdown for BENCHMARKS.md:
//!
//! * the fused element-wise kernel (modality → window → normalization, `i16` in, `f32` out) as
//!   a fraction of the card's theoretical memory bandwidth (bytes read + written per second);
//! * host-to-device copies from page-locked memory, in GB/s, for comparison with the PCIe link
//!   the script reads from `nvidia-smi`;
//! * one 512×512 CT slice through the whole plan (upload, kernels, download) on the GPU against
//!   the CPU reference in the same run: time per slice and the largest difference.
//!
//! `cargo run --release -p radstream-kernels --features cuda --example bench_cuda [-- REPEATS]`

use std::time::Instant;

use radstream_kernels::{
    CudaBackend, ImageSize, MeanStd, Normalization, OutputRange, Preprocess, PreprocessBackend, PreprocessError,
    Rescale, VoiFunction, Window,
};

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), PreprocessError> {
    let repeats: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let gpu = CudaBackend::new(0)?;
    let peak = gpu.memory_bandwidth()?;
    println!(
        "GPU: {} — theoretical memory bandwidth {:.0} GB/s (memory clock × bus width × 2)\n",
        gpu.device_name(),
        peak / 1e9
    );

    let plan = Preprocess {
        rescale: Rescale { slope: 1.0, intercept: -1024.0 },
        window: Some(Window::new(40.0, 80.0, VoiFunction::Linear, OutputRange::UNIT)?),
        normalization: Normalization::MeanStd(MeanStd { mean: 0.5, std: 0.25 }),
        ..Preprocess::default()
    };
    println!("| measurement | size | median | rate | fraction |");
    println!("|---|---|---|---|---|");
    for slices in [64usize, 512] {
        let count = slices * 512 * 512;
        let ms = median(gpu.time_elementwise_i16(&plan, count, repeats)?);
        let bytes = count as f64 * 6.0;
        let rate = bytes / (f64::from(ms) / 1e3);
        println!(
            "| fused element-wise kernel (i16 → f32) | {slices} slices of 512×512 ({:.0} MB moved) | {ms:.3} ms | {:.0} GB/s | {:.1}% of memory bandwidth |",
            bytes / 1e6,
            rate / 1e9,
            100.0 * rate / peak
        );
    }
    for mib in [64usize, 256] {
        let bytes = mib << 20;
        let ms = median(gpu.time_upload(bytes, repeats)?);
        let rate = bytes as f64 / (f64::from(ms) / 1e3);
        println!(
            "| host → device copy, pinned | {mib} MiB | {ms:.3} ms | {:.1} GB/s | see the PCIe line above |",
            rate / 1e9
        );
    }

    // One slice through the whole plan, GPU against CPU, same run.
    let full = Preprocess { target: Some(ImageSize::new(256, 256)), channels: 3, ..plan.clone() };
    let slice: Vec<i16> = (0..512 * 512).map(|i| ((i * 7919) % 2600 - 1000) as i16).collect();
    let mut gpu_ms = Vec::new();
    let mut cpu_ms = Vec::new();
    let mut max_diff = 0.0f32;
    for _ in 0..repeats {
        let t = Instant::now();
        let on_gpu = gpu.preprocess(&full, &slice, 512, 512)?;
        gpu_ms.push(t.elapsed().as_secs_f32() * 1e3);
        let t = Instant::now();
        let on_cpu = full.run_cpu(&slice, 512, 512)?;
        cpu_ms.push(t.elapsed().as_secs_f32() * 1e3);
        max_diff = on_gpu.iter().zip(&on_cpu).fold(max_diff, |m, (a, b)| m.max((a - b).abs()));
    }
    let (g, c) = (median(gpu_ms), median(cpu_ms));
    println!(
        "| one 512×512 slice → 3×256×256, whole plan incl. copies | GPU {g:.3} ms vs CPU (1 thread) {c:.3} ms | {:.1}× | max |GPU − CPU| = {max_diff:.2e} | tolerance 1e-4 |",
        c / g
    );
    if max_diff > CudaBackend::TOLERANCE {
        eprintln!("GPU and CPU disagree by {max_diff}");
        std::process::exit(1);
    }
    Ok(())
}
