#!/usr/bin/env bash
# Runs the parse_and_pseudonymize fuzz target (libFuzzer, address sanitizer, nightly toolchain).
# usage: operators/fuzz/run.sh [RUNS] [extra libFuzzer flags...]
#   RUNS defaults to 10000000. Installs cargo-fuzz if missing; seeds the corpus on first use.
#   RADSTREAM_FUZZ_STRICT=1 also requires every successful output to de-identify again.
#   RADSTREAM_FUZZ_SANITIZER=address|none (default none: the engine has no unsafe code, and the
#   sanitizer halves the rate). Inputs are capped at 16 KiB (-max_len) unless a flag says otherwise:
#   headers are what is fuzzed, and mutated deflate streams inflate up to 1032x their size.
# A crash leaves its input under operators/fuzz/artifacts/parse_and_pseudonymize/; reproduce with
#   cd operators && cargo +nightly fuzz run parse_and_pseudonymize fuzz/artifacts/parse_and_pseudonymize/crash-...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-10000000}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --locked
fi
rustup toolchain list | grep '^nightly' >/dev/null || { echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 1; }
if [ -z "$(ls -A "$here/corpus/parse_and_pseudonymize" 2>/dev/null)" ]; then
    "$here/seed.sh"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cd "$here/.."
set +e
cargo +nightly fuzz run -s "${RADSTREAM_FUZZ_SANITIZER:-none}" parse_and_pseudonymize -- \
    -runs="$runs" -max_len=16384 -print_final_stats=1 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
executed=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true)
echo
echo "parse_and_pseudonymize: ${executed:-?} executions (${done_line:-no \"Done\" line: stopped early}), exit $rc"
exit "$rc"
