#!/usr/bin/env bash
# Build and test the whole workspace against the local test stack.
#
# usage: infra/test.sh [CARGO TEST ARGS...] [-- TEST BINARY ARGS...]
#   e.g. infra/test.sh stow   or   infra/test.sh -p radstream-tests -- --nocapture
#   (with -p/--package the test run is limited to those crates instead of --workspace)
#
# Installs what is missing, brings the stack up (infra/stack.sh), runs
# `cargo build --workspace --all-targets` and `cargo test --workspace -- --test-threads=2`
# with the stack's environment and RADSTREAM_REQUIRE_STACK=1 (tests that need a server fail
# instead of skipping), then takes the stack down again. Exits with cargo's status.
#
# CARGO_TARGET_DIR defaults to ~/.cache/radstream/target so fresh clones (CI) reuse one build
# cache. A stack that was already up before this script started is left up; set
# RADSTREAM_KEEP_STACK=1 to leave it up in any case.
set -euo pipefail
LOG_TAG="test"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$RADSTREAM_REPO_ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RADSTREAM_CACHE_DIR/target}"
STACK_DIR=${RADSTREAM_STACK_DIR:-${STACK_DIR:-$RADSTREAM_REPO_ROOT/.stack}}

# Split our arguments at the first `--`: before it for cargo test, after it for the test binary.
cargo_args=() test_args=() seen_separator=0
for arg in "$@"; do
    if ((seen_separator)); then
        test_args+=("$arg")
    elif [[ $arg == -- ]]; then
        seen_separator=1
    else
        cargo_args+=("$arg")
    fi
done
# `-p CRATE` narrows the run; otherwise the whole workspace is tested.
scope=(--workspace)
for arg in "${cargo_args[@]}"; do
    case $arg in -p | -p* | --package | --package=*) scope=() ;; esac
done
if [[ " ${test_args[*]} " != *" --test-threads"* ]]; then
    test_args=(--test-threads=2 "${test_args[@]}")
fi

timings=()
# Runs one phase of the run, recording how long it took and how it ended.
run_phase() {
    local name=$1 started=$SECONDS rc=0
    shift
    log "=== $name: $*"
    # In the background so that a TERM sent to this script alone is handled now, not after cargo.
    "$@" &
    phase_pid=$!
    wait "$phase_pid" || rc=$?
    phase_pid=""
    timings+=("$(printf '%-9s %5ss  exit %s' "$name" "$((SECONDS - started))" "$rc")")
    return "$rc"
}

stop_stack=0
phase_pid=""
on_exit() {
    local rc=$?
    if [[ -n $phase_pid ]]; then
        kill -TERM "$phase_pid" 2>/dev/null || true
        wait "$phase_pid" 2>/dev/null || true
    fi
    if ((stop_stack)); then
        infra/stack.sh down || log "infra/stack.sh down failed"
    fi
    if ((${#timings[@]} > 0)); then
        log "timings:"
        printf '  %s\n' "${timings[@]}" >&2
    fi
    log "exit status $rc"
    # One closing line for the whole run: cargo prints a result line per test binary, and the
    # last of those is usually a crate's empty doc-test run.
    if [[ -s ${test_output:-} ]]; then
        awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
             END { printf "tests: %d passed, %d failed\n", p, f }' "$test_output"
    fi
    exit "$rc"
}
trap on_exit EXIT
# Turn Ctrl-C and kill into a normal exit so the EXIT trap stops the stack.
trap 'exit 130' INT
trap 'exit 143' TERM

run_phase install infra/stack.sh install

if [[ ${RADSTREAM_KEEP_STACK:-0} == 1 ]]; then
    log "RADSTREAM_KEEP_STACK=1: the stack stays up afterwards"
elif infra/stack.sh status >/dev/null 2>&1; then
    log "the stack was already up; it stays up afterwards (infra/stack.sh down stops it)"
else
    stop_stack=1
fi

run_phase "stack up" infra/stack.sh up

# shellcheck source=/dev/null
source "$STACK_DIR/env"
export RADSTREAM_REQUIRE_STACK=1
# The infer operator's ONNX Runtime backend runs on pip's onnxruntime (CPU): stack.sh installed it.
export RADSTREAM_ONNXRUNTIME_LIB="${RADSTREAM_TEST_ONNXRUNTIME_LIB:-${RADSTREAM_ONNXRUNTIME_LIB:-}}"
export RADSTREAM_REQUIRE_ONNXRUNTIME=1
# The CUDA kernels compile with the real NVRTC (no GPU needed): stack.sh installed it.
if [[ -n ${RADSTREAM_TEST_NVRTC_DIR:-} ]]; then
    export LD_LIBRARY_PATH="$RADSTREAM_TEST_NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export RADSTREAM_REQUIRE_NVRTC=1
fi

run_phase build cargo build --workspace --all-targets
test_output="$STACK_DIR/test-output.log"
: >"$test_output"
run_phase test bash -c 'set -o pipefail; "$@" 2>&1 | tee "$0"' "$test_output" \
    cargo test "${scope[@]}" "${cargo_args[@]}" -- "${test_args[@]}"
