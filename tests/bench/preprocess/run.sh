#!/usr/bin/env bash
# Decode + preprocess benchmark: radstream's `preprocess` operator work (bench_preprocess) beside
# pydicom + numpy doing the same transforms, on the same 512x512 int16 CT slice in each transfer
# syntax, in one run.
#
# usage: tests/bench/preprocess/run.sh [--rounds R] [--min-seconds S] [--min-iterations N]
#                                      [--inputs DIR] [--no-build] [--no-lossy] [--default-plugins]
#   --rounds R          rounds, alternating which tool goes first; medians are reported (default 5)
#   --min-seconds S     each timed pass runs a file for at least S seconds (default 0.5)
#   --min-iterations N  and at least N times (default 3)
#   --inputs D          reuse inputs written earlier by make_inputs.py into D
#   --no-build          use the existing release build of bench_preprocess
#   --no-lossy          leave out the lossy JPEG 2000 file
#   --default-plugins   time only pydicom's default decoder plugin per transfer syntax (by default
#                       the other installed ones are timed too: pyjpegls for JPEG-LS, pydicom's
#                       own RLE decoder)
#
# Spec: models/ct-head-bleed.preprocess.toml (CT, 256x256, LINEAR window c=40 w=80 onto [0, 1],
# min/max normalization, 1 channel). Each tool works on one thread, from bytes in memory. Before
# the timed rounds, pydicom's tensors are written and bench_preprocess compares its own with them
# (maximum absolute difference, printed in the table), and both check that the lossless files
# decode to the original array. A transfer syntax radstream cannot decode is shown as refused;
# the pydicom side still runs. Python: $RADSTREAM_TEST_PYTHON, else python3 (pydicom 3, numpy,
# pylibjpeg with -libjpeg, -openjpeg, -rle; pyjpegls is installed with pip when missing). The
# defaults take about two minutes on 2 cores, plus the build.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
py="${RADSTREAM_TEST_PYTHON:-python3}"
rounds=5 min_seconds=0.5 min_iterations=3 inputs="" build=1 lossy="" plugins="--all-plugins"
while [ $# -gt 0 ]; do
    case "$1" in
        # --min-seconds S sets $min_seconds, and so on.
        --rounds|--min-seconds|--min-iterations|--inputs)
            [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
            name="${1#--}"; printf -v "${name//-/_}" '%s' "$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --no-lossy) lossy="--no-lossy"; shift ;;
        --default-plugins) plugins=""; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

if ! "$py" -c 'import jpeg_ls' 2>/dev/null; then
    echo "installing pyjpegls into $py (JPEG-LS encoding for the inputs)..." >&2
    "$py" -m pip install --quiet pyjpegls >&2 || echo "WARNING: pyjpegls did not install; no JPEG-LS input" >&2
fi

# No `head` in these pipelines: with pipefail, a writer killed by SIGPIPE would stop the script.
model="$(awk -F': *' '/^model name/ && !seen { seen = 1; print $2 }' /proc/cpuinfo)"
charls="$( (ldconfig -p 2>/dev/null || true) | awk '/libcharls\.so\.2 / { print "libcharls.so.2 present"; found = 1; exit } END { if (!found) print "no libcharls.so.2" }')"
versions="$("$py" -c 'import sys, numpy, pydicom, pylibjpeg, jpeg_ls; print(f"Python {sys.version.split()[0]}, pydicom {pydicom.__version__}, numpy {numpy.__version__}, pylibjpeg {pylibjpeg.__version__}, pyjpegls {jpeg_ls.__version__}")' 2>/dev/null || echo "Python versions unknown")"
machine="$(nproc) CPUs, ${model:-unknown model}; $versions; $charls"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $machine" >&2
echo "load average at start: $load" >&2

# One thread for numpy and the codecs on the Python side (after nproc, which also reads these).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
touch "$results"

# Without a build (a failed one, or --no-build with none there) the pydicom side still runs.
[ "$build" = 0 ] || echo "building bench_preprocess (release)..." >&2
bench="${CARGO_TARGET_DIR:-$root/target}/release/bench_preprocess"
if [ "$build" = 1 ] && ! (cd "$root" && cargo build --release -p radstream-tests --bin bench_preprocess >&2) \
    || [ ! -x "$bench" ]; then
    echo "WARNING: no release build of bench_preprocess; running the pydicom side only" >&2
    bench=""
fi

[ -n "$inputs" ] || {
    inputs="$work/inputs"
    echo "generating the inputs into $inputs..." >&2
    # shellcheck disable=SC2086 # $lossy is one flag or none
    "$py" "$here/make_inputs.py" "$inputs" $lossy
}
[ -f "$inputs/manifest.json" ] || { echo "no $inputs/manifest.json" >&2; exit 1; }

timing=(--min-seconds "$min_seconds" --min-iterations "$min_iterations")
radstream() {
    [ -n "$bench" ] || return 0
    if ! "$bench" --dir "$inputs" "$@" >>"$results"; then
        echo "WARNING: bench_preprocess failed ($*)" >&2
        echo "{\"tool\":\"radstream\",\"failed\":\"bench_preprocess exited with an error ($*)\"}" >>"$results"
    fi
}
baseline() {
    # shellcheck disable=SC2086 # $plugins is one flag or none
    if ! "$py" "$here/pydicom_preprocess.py" "$inputs" $plugins "$@" >>"$results"; then
        echo "WARNING: pydicom_preprocess.py failed ($*)" >&2
        echo "{\"tool\":\"pydicom\",\"failed\":\"pydicom_preprocess.py exited with an error ($*)\"}" >>"$results"
    fi
}

echo "== checks (untimed) ==" >&2
baseline --rounds 0 --save-tensors "$work/tensors"
radstream --rounds 0 --compare "$work/tensors"

for round in $(seq 1 "$rounds"); do
    echo "== round $round of $rounds ==" >&2
    if [ $((round % 2)) = 1 ]; then
        radstream --rounds 1 --first-round "$round" "${timing[@]}"
        baseline --rounds 1 --first-round "$round" "${timing[@]}"
    else
        baseline --rounds 1 --first-round "$round" "${timing[@]}"
        radstream --rounds 1 --first-round "$round" "${timing[@]}"
    fi
done

"$py" - "$results" "$inputs/manifest.json" "$rounds" "$machine" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" "${bench:+built}" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
manifest = json.load(open(sys.argv[2]))
rounds, machine, load_start, load_end, built = sys.argv[3:8]
JPEGLS_MS, SPEEDUP = 3.5, 5.0
MB = 1e6

def median(values):
    return statistics.median(values) if values else None

def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"

rust_checks = {}
for r in rows:
    # The first check of a file is the one with the comparison (the timed runs check again).
    if r["tool"] == "radstream" and "check" in r:
        rust_checks.setdefault(r["input"], r["check"])
refused = {r["input"]: r["refused"] for r in rows if r["tool"] == "radstream" and "refused" in r}
rust_rounds = {}
for r in rows:
    if r["tool"] == "radstream" and "round" in r:
        rust_rounds.setdefault(r["input"], {})[r["round"]] = r
py_rounds, py_checks, py_refused = {}, {}, {}
for r in rows:
    if r["tool"] != "pydicom" or "input" not in r:
        continue
    key = (r["input"], r["plugin"], r["default"])
    if "check" in r:
        py_checks[key] = r["check"]
    elif "refused" in r:
        py_refused[key] = r["refused"]
    else:
        py_rounds.setdefault(key, {})[r["round"]] = r
failures = [r["failed"] for r in rows if "failed" in r]

print(f"\nDecode + preprocess of one 512x512 int16 CT slice, one thread, median of {rounds} rounds")
print(f"spec: models/ct-head-bleed.preprocess.toml (256x256, LINEAR c=40 w=80, min/max, 1 channel)")
print(f"machine: {machine}")
print(f"load average: {load_start} at start, {load_end} at end")
print("MB/s: MB (1e6 bytes) of decoded pixel data per second, 512 x 512 x 2 bytes = 0.524 MB a slice.")
print("speedup: pydicom time / radstream time (decode + preprocess), median of the per-round ratios.\n")
print("| transfer syntax | file KB | radstream decode ms | radstream decode + preprocess ms | radstream slices/s "
      "| radstream MB/s | pydicom plugin | pydicom decode ms | pydicom decode + preprocess ms | pydicom slices/s "
      "| pydicom MB/s | speedup | tensor max abs diff |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
verdicts = []
for entry in manifest:
    name = entry["name"]
    label = f"{entry['transfer_syntax']} (`{name}`)"
    kb = f"{entry['bytes'] / 1024:.0f}"
    mine = rust_rounds.get(name, {})
    rust_ms = median([r["preprocess_ms"] for r in mine.values()])
    decode_ms = median([r["decode_ms"] for r in mine.values()])
    if not built:
        rust_cells = ["radstream: not built"] + [""] * 3
    elif name in refused:
        rust_cells = [f"radstream: refused ({refused[name]})"] + [""] * 3
    elif rust_ms is None:
        rust_cells = ["radstream: failed"] + [""] * 3
    else:
        decoded = next(iter(mine.values()))["decoded_bytes"]
        rust_cells = [fmt(decode_ms, 3), fmt(rust_ms, 3), fmt(1e3 / rust_ms, 1), fmt(decoded / MB / rust_ms * 1e3, 1)]
    check = rust_checks.get(name, {})
    diff = check.get("max_abs_diff_vs_pydicom")
    diff_cell = "n/a" if diff is None else f"{diff:.2g}" + (
        "" if check.get("values_over_tolerance", 0) == 0 else f" ({check['values_over_tolerance']} values > 1e-4)")
    variants = sorted((k for k in py_rounds if k[0] == name), key=lambda k: not k[2])
    variants += [k for k in py_refused if k[0] == name]
    if not variants:
        variants = [(name, "n/a", True)]
    for key in variants:
        theirs = py_rounds.get(key, {})
        py_ms = median([r["preprocess_ms"] for r in theirs.values()])
        py_decode = median([r["decode_ms"] for r in theirs.values()])
        plugin = key[1] + ("" if key[2] else " (not the default)")
        if py_ms is None:
            py_cells = [plugin, f"pydicom: refused ({py_refused.get(key, 'no result')})", "", "", ""]
        else:
            decoded = next(iter(theirs.values()))["decoded_bytes"]
            py_cells = [plugin, fmt(py_decode, 3), fmt(py_ms, 3), fmt(1e3 / py_ms, 1), fmt(decoded / MB / py_ms * 1e3, 1)]
        ratios = [theirs[k]["preprocess_ms"] / mine[k]["preprocess_ms"] for k in theirs if k in mine]
        speedup = median(ratios)
        speed_cell = "n/a" if speedup is None else f"{speedup:.2f}x"
        print(f"| {label} | {kb} | " + " | ".join(rust_cells) + " | " + " | ".join(py_cells)
              + f" | {speed_cell} | {diff_cell} |")
        if speedup is not None:
            verdicts.append((name, key[1], key[2], speedup, ratios))

print("\nTargets (issue 4):")
ls = rust_rounds.get("jpegls", {})
ls_ms = median([r["preprocess_ms"] for r in ls.values()])
if ls_ms is None:
    reason = refused.get("jpegls", "no JPEG-LS input or no radstream result")
    print(f"* JPEG-LS decode + preprocess <= {JPEGLS_MS} ms: not measured (radstream: {reason})")
else:
    print(f"* JPEG-LS decode + preprocess <= {JPEGLS_MS} ms: {'met' if ls_ms <= JPEGLS_MS else 'NOT met'} "
          f"({ls_ms:.2f} ms, decode alone {median([r['decode_ms'] for r in ls.values()]):.2f} ms)")
for name, plugin, default, speedup, ratios in verdicts:
    which = "pydicom's default decoder" if default else f"pydicom with {plugin}"
    per_round = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"* >= {SPEEDUP:.0f}x pydicom, {name}, against {which} ({plugin}): "
          f"{'met' if speedup >= SPEEDUP else 'NOT met'} ({speedup:.2f}x; rounds: {per_round})")

print("\nChecks (before timing):")
for entry in manifest:
    name = entry["name"]
    c = rust_checks.get(name)
    if c is not None:
        tensor = c.get("max_abs_diff_vs_pydicom", c.get("compare_error", "n/a"))
        print(f"* {name}: radstream decodes to the original: {c['decodes_to_original']} "
              f"({c['samples_differing_from_original']} samples differ{'' if entry['lossless'] else ', lossy'}); "
              f"tensor vs pydicom max abs diff {tensor}")
    for (n, plugin, _), pc in py_checks.items():
        if n == name:
            outcome = pc.get("error") or f"decodes to the original: {pc['decodes_to_original']}"
            print(f"* {name}: pydicom ({plugin}) {outcome}")
for f in failures:
    print(f"* FAILED: {f}")
print("\nraw results (JSON lines):")
for r in rows:
    print(json.dumps(r))
EOF
