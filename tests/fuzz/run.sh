#!/usr/bin/env bash
# Fuzzes every parser of outside bytes with libFuzzer (cargo fuzz, nightly Rust), by hand and
# outside CI: the header parse with the pre-scan, each pixel decoder, the event decoders, the
# STOW-RS and FHIR response parsers. The suite replays what this finds on stable, in seconds
# (tests/tests/fuzz_corpus.rs).
#
#   tests/fuzz/run.sh                       every target, the default executions each
#   tests/fuzz/run.sh header decode_rle     only these
#   RUNS=100000 tests/fuzz/run.sh           fewer executions per target (a quick look)
#   MAX_TIME=180 tests/fuzz/run.sh          at most 180 s per target, whatever RUNS says
#
# Per target it runs libFuzzer from the committed seeds (tests/fuzz/seeds/<target>, written by
# seeds.py) and the corpus it grows (tests/fuzz/corpus/<target>), under a memory limit (RSS_MB,
# default 1024; one allocation at most MALLOC_MB, default 512), then minimizes the corpus. A crash, a timeout or an allocation past the limit
# is copied to tests/fuzz/regressions/<target>/ (the replay test runs it from then on) and the
# script exits 1. One line per target (executions, crashes, peak RSS, seconds) goes to the
# summary file, SUMMARY (default tests/bench/results/fuzz-<date>.txt).
#
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`), python3 with
# pydicom for the seeds. Exit: 0 nothing found, 1 something found, 2 usage or setup problem.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
RSS_MB="${RSS_MB:-1024}"
MALLOC_MB="${MALLOC_MB:-512}"
SUMMARY="${SUMMARY:-$root/tests/bench/results/fuzz-$(date -u +%F).txt}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/radstream/fuzz-target}"

case "${1:-}" in -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "nightly Rust is missing: rustup toolchain install nightly" >&2; exit 2; }

all=$(ls fuzz_targets | sed 's/\.rs$//')
targets="${*:-$all}"
for t in $targets; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "no fuzz target $t (have: $(echo $all))" >&2; exit 2; }
done
[ -n "$(ls seeds 2>/dev/null)" ] || python3 seeds.py
cargo +nightly fuzz build -O >&2

found=0
mkdir -p "$(dirname "$SUMMARY")"
echo "# cargo fuzz run, $(date -u +%FT%TZ), $(nproc) cores, $(rustup run nightly rustc --version)" >> "$SUMMARY"
for t in $targets; do
    runs="${RUNS:-$([ "$t" = header ] && echo 10000000 || echo 1000000)}"
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$(mktemp)"
    start=$(date +%s)
    set +e
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -runs="$runs" -rss_limit_mb="$RSS_MB" \
        -malloc_limit_mb="$MALLOC_MB" -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        ${MAX_TIME:+-max_total_time="$MAX_TIME"} >"$log" 2>&1
    rc=$?
    set -e
    seconds=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    crashes=$(ls "artifacts/$t" | wc -l)
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        found=1
        mkdir -p "regressions/$t"
        cp artifacts/"$t"/* "regressions/$t/" 2>/dev/null || true
        tail -40 "$log" >&2
    fi
    cargo +nightly fuzz cmin -O "$t" "corpus/$t" >/dev/null 2>&1 || true
    line="$t: ${execs:-0} executions, $crashes crash inputs, peak RSS ${rss:-?} MB, ${seconds} s, exit $rc, corpus $(ls "corpus/$t" | wc -l) files"
    echo "$line" | tee -a "$SUMMARY"
    rm -f "$log"
done
exit "$found"
