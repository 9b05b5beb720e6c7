#!/usr/bin/env bash
# The CUDA checks of the preprocessing kernels, for a machine with a GPU (CI has none).
#
# usage: kernels/gpu-check.sh prepare      # here, with Rust: builds the two binaries into .gpu-check/
#        kernels/gpu-check.sh run [OUT]    # on the GPU machine (no Rust needed): runs them
#
# `run` prints the GPU, its PCIe link and driver (nvidia-smi), runs the kernels' tests with
# RADSTREAM_REQUIRE_GPU=1 and RADSTREAM_REQUIRE_NVRTC=1 (a GPU that does not start, or no NVRTC,
# fails them instead of skipping: radstream_test_gate) and says how many of the tests that use
# the GPU passed (the `_cuda` twins of `test_device!`; the others run on the CPU), and
# the benchmark `kernels/examples/bench_cuda.rs` (kernel bandwidth, pinned copies, GPU against CPU
# on one CT slice). Output goes to stdout and, when OUT is given, to OUT/gpu-check.md. A few minutes.
#
# NVRTC: the kernels are compiled at start-up by libnvrtc. If none is on the library path, `run`
# looks for one in Python's site-packages (the nvidia-cuda-nvrtc wheels that PyTorch brings) and
# under /usr/local/cuda, and links it as libnvrtc.so.12 in a temporary folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="$root/.gpu-check"

# libnvrtc.so.* from Python's site-packages (NVIDIA's wheels) or a CUDA toolkit, one per line.
find_nvrtc() {
    python3 - <<'PY' 2>/dev/null || true
import glob, site
bases = site.getsitepackages() + [site.getusersitepackages()]
for base in bases:
    for path in sorted(glob.glob(base + "/nvidia/**/libnvrtc.so.*", recursive=True)):
        if "builtins" not in path and ".alt." not in path:
            print(path)
PY
    ls /usr/local/cuda*/lib64/libnvrtc.so.* 2>/dev/null | grep -v builtins || true
}

case "${1:-}" in
prepare)
    cd "$root"
    mkdir -p "$dir"
    cargo build --release -p radstream-kernels --features cuda --example bench_cuda
    cp "${CARGO_TARGET_DIR:-target}/release/examples/bench_cuda" "$dir/"
    tests=$(cargo test --release -p radstream-kernels --features cuda --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
    cp "$tests" "$dir/kernels-tests"
    # The whole command, for the operator's path on the GPU (decode, plan, kernels, copies);
    # stripped, since the device machine takes at most 64 MiB.
    cargo build --release -p radstream-pipeline
    strip -o "$dir/radstream" "${CARGO_TARGET_DIR:-target}/release/radstream"
    ls -la "$dir"
    ;;
run)
    out="${2:-}"
    report=$(mktemp)
    {
        echo "## GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo '```'
        nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current \
            --format=csv || echo "nvidia-smi failed"
        echo '```'
    } | tee "$report"
    if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
        found=$(find_nvrtc | head -1)
        if [[ -n $found ]]; then
            links=$(mktemp -d)
            ln -s "$found" "$links/libnvrtc.so.12"
            ln -s "$found" "$links/libnvrtc.so"
            export LD_LIBRARY_PATH="$links:$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            echo "NVRTC: $found" | tee -a "$report"
        else
            echo "NVRTC: none found; the kernels cannot be compiled" | tee -a "$report"
        fi
    fi
    status=0
    echo | tee -a "$report"
    echo '### Same numbers: test_device! on the GPU' | tee -a "$report"
    echo '```' >>"$report"
    tests_log=$(mktemp)
    RADSTREAM_REQUIRE_GPU=1 RADSTREAM_REQUIRE_NVRTC=1 "$dir/kernels-tests" --test-threads=1 2>&1 |
        tee -a "$report" "$tests_log" || status=1
    echo '```' >>"$report"
    # Only the `_cuda` twins create a CudaBackend; kernels_compile_with_nvrtc needs NVRTC, no GPU.
    gpu_total=$(grep -c '^test .*_cuda \.\.\. ' "$tests_log" || true)
    gpu_passed=$(grep -c '^test .*_cuda \.\.\. ok$' "$tests_log" || true)
    echo "Tests on the GPU (the _cuda twins of test_device!): $gpu_passed of $gpu_total passed" | tee -a "$report"
    echo '### Benchmark' | tee -a "$report"
    "$dir/bench_cuda" 50 2>&1 | tee -a "$report" || status=1
    if [[ -x $dir/radstream ]]; then
        echo '### radstream preprocess: GPU against CPU on synthetic studies' | tee -a "$report"
        work=$(mktemp -d)
        "$dir/radstream" synth --studies 6 --out "$work/in" >/dev/null
        echo '```' >>"$report"
        for spec in "$root"/models/*.preprocess.toml; do
            name=$(basename "$spec" .preprocess.toml)
            for device in cpu auto; do
                "$dir/radstream" preprocess --model "$spec" --device "$device" --out "$work/$device/$name" "$work/in" 2>&1 |
                    tail -1 | sed "s/^/$name, --device $device: /" | tee -a "$report" || status=1
            done
        done
        python3 - "$work" <<'PY' 2>&1 | tee -a "$report" || status=1
import glob, os, sys
import numpy as np
work = sys.argv[1]
worst, files = 0.0, 0
for cpu in sorted(glob.glob(f"{work}/cpu/**/*.npy", recursive=True)):
    gpu = cpu.replace(f"{work}/cpu/", f"{work}/auto/", 1)
    a, b = np.load(cpu), np.load(gpu)
    assert a.shape == b.shape, (cpu, a.shape, b.shape)
    assert np.isfinite(b).all() or not np.isfinite(a).all(), cpu
    worst = max(worst, float(np.max(np.abs(a - b))))
    files += 1
print(f"{files} tensors compared, max |GPU - CPU| = {worst:.3e}")
sys.exit(0 if files > 0 and worst <= 1e-4 else 1)
PY
        echo '```' >>"$report"
    fi
    if [[ -n $out ]]; then
        mkdir -p "$out"
        cp "$report" "$out/gpu-check.md"
    fi
    exit "$status"
    ;;
*)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
