#!/usr/bin/env bash
# CPU budget per instance: how much CPU radstream, the broker (tansu), the S3 server (moto) and
# the PACS (Orthanc) each spend on one instance flowing through the pipeline on the test stack.
#
# usage: tests/bench/cpu-budget.sh [STUDIES]     (default 130 studies, about 960 instances)
# Needs the stack (infra/stack.sh up) and a release build (cargo build --release -p radstream-pipeline).
# Events are published before the worker starts, so the figures cover consume → fetch → STOW →
# outcome → commit, not the upload. CPU times are read from /proc/PID/stat (utime + stime).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
studies=${1:-130}
stack_dir=${RADSTREAM_STACK_DIR:-$repo/.stack}
# shellcheck source=/dev/null
source "$stack_dir/env"
radstream=${CARGO_TARGET_DIR:-$repo/target}/release/radstream
[[ -x $radstream ]] || { echo "build first: cargo build --release -p radstream-pipeline" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
topic=cpu-budget-$$-$RANDOM
for t in "$topic:6" "$topic-dlq:1" "$topic-out:1"; do
    "$RADSTREAM_TEST_TANSU_BIN" topic create "${t%:*}" --partitions "${t##*:}" --broker "tcp://$RADSTREAM_TEST_KAFKA" >/dev/null
done
port=$((20000 + RANDOM % 10000))
cat >"$work/config.toml" <<TOML
[kafka]
brokers = "$RADSTREAM_TEST_KAFKA"
group_id = "$topic-group"
input_topic = "$topic"
dead_letter_topic = "$topic-dlq"
outcome_topic = "$topic-out"
[kafka.consumer]
"fetch.wait.max.ms" = "10"
[objects]
endpoint = "$RADSTREAM_TEST_S3_ENDPOINT"
[runtime]
batch_size = 1
parallelism = { stow = 8 }
[metrics]
listen = "127.0.0.1:$port"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"
[[operators]]
type = "stow"
url = "$RADSTREAM_TEST_ORTHANC_URL/dicom-web"
concurrency = 1
[operators.auth]
kind = "basic"
username = "$RADSTREAM_TEST_ORTHANC_USER"
password_env = "RADSTREAM_TEST_ORTHANC_PASSWORD"
TOML
"$radstream" synth --studies "$studies" --out "$work/files" --seed "$RANDOM" --instance-bytes 524288 >/dev/null
"$radstream" publish --config "$work/config.toml" --bucket "$RADSTREAM_TEST_S3_BUCKET" --prefix "$topic" "$work/files" >/dev/null
n=$(find "$work/files" -name '*.dcm' | wc -l)

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pids=("$(cat "$stack_dir/pids/tansu.pid")" "$(cat "$stack_dir/pids/moto.pid")" "$(cat "$stack_dir/pids/orthanc.pid")")
before=(); for p in "${pids[@]}"; do before+=("$(cpu "$p")"); done
start=$(date +%s.%N)
"$radstream" run --config "$work/config.toml" 2>"$work/run.log" &
worker=$!
delivered() { curl -s "127.0.0.1:$port/metrics" | awk '/^radstream_outcomes_total/ {s += $2} END {print s + 0}'; }
until [[ $(delivered) -ge $n ]]; do
    kill -0 "$worker" 2>/dev/null || { tail "$work/run.log" >&2; exit 1; }
    sleep 0.2
done
worker_cpu=$(cpu "$worker")
end=$(date +%s.%N)
after=(); for p in "${pids[@]}"; do after+=("$(cpu "$p")"); done
kill -TERM "$worker"; wait "$worker"
hz=$(getconf CLK_TCK)
python3 - "$n" "$start" "$end" "$hz" "$worker_cpu" "${before[@]}" "${after[@]}" <<'PY'
import sys
n, start, end, hz, worker = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
before, after = list(map(int, sys.argv[6:9])), list(map(int, sys.argv[9:12]))
elapsed = end - start
rows = [("radstream", worker)] + [(name, b - a) for name, a, b in zip(("tansu", "moto", "Orthanc"), before, after)]
print(f"{n} instances of ~512 KiB in {elapsed:.1f} s = {n / elapsed:.1f}/s\n")
print("| process | CPU per instance | share of one core |")
print("|---|---|---|")
for name, ticks in rows:
    print(f"| {name} | {ticks / hz / n * 1e3:.2f} ms | {ticks / hz / elapsed * 100:.0f}% |")
total = sum(t for _, t in rows) / hz / n * 1e3
print(f"| **all** | **{total:.2f} ms** | |")
PY
