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
# The local S3 server's own unit tests (tools/s3-server: its policy evaluator), in the target
# folder `make deps` built it in. Not with a test filter given: those name workspace tests.
if (($# == 0)); then
  s3s_cache="$(cat .tools/s3-server-cache 2>/dev/null || true)"
  [[ -d "$s3s_cache/build" ]] || { echo "test-summary: .tools/s3-server-cache is missing: run make deps" >&2; exit 1; }
  (cd tools/s3-server && cargo test --release --locked --target-dir "$s3s_cache/build") 2>&1 | tee -a "$log"
  ((PIPESTATUS[0] == 0)) || rc=1
fi
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$rc"
