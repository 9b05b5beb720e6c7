#!/usr/bin/env bash
# Build the tansu Kafka-protocol broker into the shared cache, once.
#
# usage: infra/kafka/install-tansu.sh
#
# The binary lands in ~/.cache/radstream/tansu-0.6.0/bin/tansu and its build directory in
# ~/.cache/radstream/tansu-build, so every checkout and every CI run reuses one build. Nothing is
# built when the binary is already there. A second run while a build is under way waits for
# cargo's lock on the build directory instead of building twice.
set -euo pipefail
LOG_TAG=install-tansu
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

(($# == 0)) || die "usage: $0 (no arguments)"

build_dir="$RADSTREAM_CACHE_DIR/tansu-build"
build_log="$RADSTREAM_CACHE_DIR/tansu-build.log"

if [[ -x $TANSU_DEFAULT_BIN ]]; then
    log "tansu $TANSU_VERSION already installed: $TANSU_DEFAULT_BIN"
    exit 0
fi

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust (https://rustup.rs) and rerun"

# libsql and aws-lc compile C sources.
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
apt_install "${missing[@]}"

mkdir -p "$RADSTREAM_CACHE_DIR"
log "building tansu $TANSU_VERSION with cargo install; a cold build takes 15-30 minutes"
log "build log: $build_log"
echo "=== $(date -Is) cargo install tansu $TANSU_VERSION" >>"$build_log"

CARGO_TARGET_DIR="$build_dir" cargo install tansu --version "$TANSU_VERSION" --locked \
    --features dynostore,libsql --root "$TANSU_ROOT" >>"$build_log" 2>&1 &
cargo_pid=$!
# Stop the build if we are interrupted, rather than leave it running unseen.
trap 'kill "$cargo_pid" 2>/dev/null || true' INT TERM

started=$SECONDS
while pid_alive "$cargo_pid"; do
    sleep 5
    if (((SECONDS - started) % 60 < 5)); then
        last=$(grep -E '^ *(Compiling|Blocking|Installing|Finished)' "$build_log" | tail -n 1 | sed 's/^ *//' || true)
        log "still building ($((SECONDS - started))s): ${last:-starting}"
    fi
done
rc=0
wait "$cargo_pid" || rc=$?
trap - INT TERM

if ((rc != 0)) || [[ ! -x $TANSU_DEFAULT_BIN ]]; then
    tail -n 40 "$build_log" >&2 || true
    die "cargo install tansu failed (exit $rc); full log: $build_log"
fi
log "tansu $TANSU_VERSION installed in $((SECONDS - started))s: $TANSU_DEFAULT_BIN"
