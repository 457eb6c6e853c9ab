#!/usr/bin/env bash
# Runs the whole test suite and closes with one plain line summing every cargo test binary:
# "summary: N passed, M failed". Doc-tests are not run (there are none), so the last test
# binary is never an empty doc-test run; the exit status is cargo's.
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --locked --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$rc"
