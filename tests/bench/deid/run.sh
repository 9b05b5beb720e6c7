#!/usr/bin/env bash
# De-identification benchmark: radstream's engine (bench_deid) beside pydicom and dcmodify, on the
# same generated files, in one run.
#
# usage: tests/bench/deid/run.sh [--count N] [--rounds R] [--inputs DIR] [--no-build]
#   --count N    instances per set (default 200)
#   --rounds R   rounds per tool; medians are reported (default 3)
#   --inputs D   reuse inputs written earlier by make_inputs.py into D (D/ct, D/private)
#   --no-build   use the existing release build of bench_deid
#
# Sets: ct (about 230 header elements, 512 KiB pixel data) and private (the same plus about 4,000
# private elements). Each tool works on one thread. A fresh key file is generated per run and
# given to both radstream and pydicom. If bench_deid cannot be built or fails (for example while
# the engine is a stub), the baselines still run and the table says so. The defaults finish in
# about two minutes on 2 cores (input generation is ~20 s of it).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
count=200
rounds=3
inputs=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --inputs) inputs="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
: >"$results"

# No `head` in these pipelines: with pipefail, a writer killed by SIGPIPE would stop the script.
model="$(lscpu | awk -F': *' '/^Model name/ && !seen { seen = 1; print $2 }')"
machine="$(nproc) CPUs, ${model:-unknown model}; $(python3 -c 'import pydicom, sys; print(f"pydicom {pydicom.__version__}, Python {sys.version.split()[0]}")'); $(dcmodify --version 2>&1 | sed -n '1{s/\$//g; s/^ *//; s/ *$//; p}')"
echo "machine: $machine" >&2

bench="${CARGO_TARGET_DIR:-$root/target}/release/bench_deid"
if [ "$build" = 1 ]; then
    echo "building bench_deid (release)..." >&2
    if ! (cd "$root" && cargo build --release -p radstream-tests --bin bench_deid) >&2; then
        echo "WARNING: bench_deid did not build; running the baselines only" >&2
        bench=""
    fi
fi
[ -n "$bench" ] && [ ! -x "$bench" ] && bench=""

if [ -z "$inputs" ]; then
    inputs="$work/inputs"
    echo "generating $count instances per set into $inputs..." >&2
    python3 "$here/make_inputs.py" "$inputs" --count "$count"
fi

python3 - "$work/bench.key" <<'EOF'
import secrets, sys
with open(sys.argv[1], "w") as f:
    f.write(f'# throwaway benchmark key\nid = "bench-run"\nsecret = "{secrets.token_hex(32)}"\n')
EOF

for set in ct private; do
    dir="$inputs/$set"
    [ -d "$dir" ] || { echo "no $dir" >&2; exit 1; }
    echo "== $set: $(find "$dir" -maxdepth 1 -type f | wc -l) files ==" >&2
    if [ -n "$bench" ]; then
        if "$bench" --dir "$dir" --rounds "$rounds" --key-file "$work/bench.key" >"$work/rust.out"; then
            sed "s/^{/{\"set\":\"$set\",/" "$work/rust.out" >>"$results"
        else
            echo "WARNING: bench_deid failed on $set (engine not implemented yet?)" >&2
            echo "{\"set\":\"$set\",\"tool\":\"radstream\",\"variant\":\"parts\",\"failed\":true}" >>"$results"
        fi
    fi
    python3 "$here/pydicom_basic_profile.py" "$dir" --rounds "$rounds" --key-file "$work/bench.key" \
        | sed "s/^{/{\"set\":\"$set\",/" >>"$results"
    "$here/dcmodify_basic_profile.sh" "$dir" --rounds "$rounds" | sed "s/^{/{\"set\":\"$set\",/" >>"$results"
done

python3 - "$results" "$rounds" "$machine" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds, machine = sys.argv[2], sys.argv[3]
print(f"\nDe-identification, PS3.15 Basic Profile, one thread, median of {rounds} rounds")
print(f"machine: {machine}\n")
print("| set | tool | instances/s | MB/s (input) | radstream parts / tool | radstream to_bytes / tool |")
print("|---|---|---|---|---|---|")
for s in ("ct", "private"):
    by = {}
    for r in rows:
        if r["set"] == s:
            by[r["tool"] + ("" if "variant" not in r else "/" + r["variant"])] = r
    parts, contiguous = by.get("radstream/parts"), by.get("radstream/to_bytes")
    def ratio(rust, r):
        if not rust or rust.get("failed"):
            return "n/a"
        return f"{rust['per_second'] / r['per_second']:.1f}x"
    for name, label in (("radstream/parts", "radstream (parts, zero-copy)"),
                        ("radstream/to_bytes", "radstream (+ to_bytes copy)"),
                        ("pydicom", "pydicom"), ("dcmodify", "dcmodify")):
        r = by.get(name)
        if r is None:
            continue
        if r.get("failed"):
            print(f"| {s} | {label} | failed | | | |")
            continue
        tail = "" if name.startswith("radstream") else f" {ratio(parts, r)} | {ratio(contiguous, r)} |"
        print(f"| {s} | {label} | {r['per_second']:.1f} | {r['mb_per_second']:.1f} |" + (tail or " | |"))
print("\nraw results (JSON lines):")
for r in rows:
    print(json.dumps(r))
EOF
