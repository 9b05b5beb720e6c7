#!/usr/bin/env bash
# Build and test the whole workspace against the local test stack.
#
# usage: infra/test.sh [CARGO TEST ARGS...] [-- TEST BINARY ARGS...]
#   e.g. infra/test.sh stow   or   infra/test.sh -p radstream-tests -- --nocapture
#   (with -p/--package the test run is limited to those crates instead of --workspace)
#
# Installs what is missing, brings the stack up (infra/stack.sh), runs
# `cargo build --workspace --all-targets` and `cargo test --workspace -- --test-threads=2`
# with the stack's environment and RADSTREAM_REQUIRE_STACK=1 (tests that need a server, a tool
# or a library fail instead of skipping: radstream_test_gate, tests/gate), then takes the stack
# down again. Exits with cargo's status.
#
# The closing line counts the tests that ran, passed, failed, skipped and were ignored, and names
# every skipped one: the tests skip through the gate, which appends to RADSTREAM_SKIP_LOG
# ($STACK_DIR/skipped.log, emptied at the start), and libtest counts a skipped test as passed, so
# they are subtracted. Here only the `_cuda` twins of `test_device!` may skip (CI has no GPU).
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
    # One closing summary for the whole run: cargo prints a result line per test binary, and the
    # last of those is usually a crate's empty doc-test run. The skip log has one line per skip,
    # `binary<TAB>test<TAB>what` (a test may skip several checks); a skipped test that then failed
    # is counted as failed, not skipped.
    if [[ -s ${test_output:-} ]]; then
        awk -v skip_log="${RADSTREAM_SKIP_LOG:-}" '
            BEGIN {
                while (skip_log != "" && (getline line < skip_log) > 0) {
                    if (split(line, field, "\t") < 3) continue
                    key = field[1] SUBSEP field[2]
                    if (!(key in why)) { order[++skips] = key; why[key] = field[3] }
                    else if (index(why[key], field[3]) == 0) why[key] = why[key] "; " field[3]
                }
            }
            # "Running unittests src/lib.rs (.../deps/radstream_kernels-<hash>)": the binary.
            /^ +Running / { bin = $NF; sub(/\)$/, "", bin); sub(/.*\//, "", bin); sub(/-[0-9a-f]+$/, "", bin) }
            /^ +Doc-tests / { bin = "" }
            /^test .* \.\.\. FAILED$/ { failed[bin SUBSEP $2] = 1 }
            /^test result:/ {
                for (i = 1; i <= NF; i++) {
                    if ($(i+1) ~ /^passed;?$/) p += $i
                    if ($(i+1) ~ /^failed;?$/) f += $i
                    if ($(i+1) ~ /^ignored;?$/) ig += $i
                }
            }
            END {
                for (i = 1; i <= skips; i++) if (!(order[i] in failed)) s++
                printf "tests: %d ran, %d passed, %d failed, %d skipped, %d ignored\n", p + f, p - s, f, s, ig
                for (i = 1; i <= skips; i++) {
                    split(order[i], test, SUBSEP)
                    printf "skipped: %s (%s)%s\n", test[2], why[order[i]], (order[i] in failed) ? ", and then failed" : ""
                }
            }' "$test_output"
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
# The CUDA kernels compile with the real NVRTC (no GPU needed): the install phase above
# installed it (PyPI's nvidia-cuda-nvrtc-cu12) or stopped, so its compile test must run.
[[ -n ${RADSTREAM_TEST_NVRTC_DIR:-} ]] ||
    die "RADSTREAM_TEST_NVRTC_DIR is empty in $STACK_DIR/env after infra/stack.sh install: no libnvrtc.so.12 for the CUDA kernels' compile test (see $RADSTREAM_CACHE_DIR/install.log)"
export LD_LIBRARY_PATH="$RADSTREAM_TEST_NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RADSTREAM_REQUIRE_NVRTC=1
# Every test that skips (through radstream_test_gate) says so here, for the closing summary;
# an absolute path, since each test binary runs in its own crate's folder.
RADSTREAM_SKIP_LOG="$(cd "$STACK_DIR" && pwd)/skipped.log"
export RADSTREAM_SKIP_LOG
: >"$RADSTREAM_SKIP_LOG"

run_phase build cargo build --workspace --all-targets
test_output="$STACK_DIR/test-output.log"
: >"$test_output"
run_phase test bash -c 'set -o pipefail; "$@" 2>&1 | tee "$0"' "$test_output" \
    cargo test "${scope[@]}" "${cargo_args[@]}" -- "${test_args[@]}"
