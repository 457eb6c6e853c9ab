#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets in fuzz/ for a bounded time each. `make fuzz` calls this.
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space-separated targets (default: all of job_parse sniff photo heif probe_av)
#   FUZZ_SANITIZER address (default) or none (about twice as fast, catches only panics/aborts)
#   FUZZ_ARGS      extra libFuzzer flags for every target (e.g. "-jobs=2 -workers=2")
#   FUZZ_REALMEDIA 1 (default): also seed each target from ../shared/realmedia (MEDIAGATE_REALMEDIA
#                  points elsewhere), read in place through symlinks, never copied; fails with a
#                  clear message where the folder is absent. 0: the committed seeds only.
#
# Rust here is stable; cargo-fuzz needs nightly flags (-Zsanitizer, sancov), which
# RUSTC_BOOTSTRAP=1 unlocks for this build only. Builds go to fuzz/target (never the workspace's
# target/, so no long hold on its lock). Each target's corpus grows in fuzz/corpus/<target>
# (git-ignored), seeded from the committed fuzz/seeds/<target>. A crash, leak, OOM or timeout
# makes this exit non-zero after the remaining targets ran, printing the saved input's path.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-job_parse sniff photo heif probe_av}"
SANITIZER="${FUZZ_SANITIZER:-address}"
EXTRA_ARGS="${FUZZ_ARGS:-}"
FUZZ_DIR=fuzz
TARGET_DIR="$FUZZ_DIR/target"
LOG_DIR="$TARGET_DIR/logs"

REALMEDIA="${MEDIAGATE_REALMEDIA:-$(cd .. && pwd)/shared/realmedia}"
if [[ "${FUZZ_REALMEDIA:-1}" == 1 && ! -d "$REALMEDIA" ]]; then
  echo "fuzz: $REALMEDIA is absent; the real-media seeds need it (MEDIAGATE_REALMEDIA=DIR), or run with FUZZ_REALMEDIA=0" >&2
  exit 2
fi

# The real files a target's seeds take, as symlinks in a scratch folder (printed), by extension;
# files over 2 MB are left out (libFuzzer's inputs stay small enough to mutate quickly).
real_seeds() {
  [[ "${FUZZ_REALMEDIA:-1}" == 1 ]] || return 0
  local t=$1 pattern dir
  case $t in
    heif) pattern='.*\.(heic|heif|avif)$' ;;
    probe_av) pattern='.*\.(mp4|mov|m4a|m4v|m4b|3gp|webm|mkv|ogg|oga|opus|mp3|wav|flac|aac|amr|avi)$' ;;
    photo | sniff) pattern='.*\.(jpe?g|png|gif|webp|bmp|heic|heif|avif|tiff?)$' ;;
    *) return 0 ;;
  esac
  dir="$TARGET_DIR/realmedia-seeds/$t"
  rm -rf "$dir"
  mkdir -p "$dir"
  find "$REALMEDIA" -type f -regextype posix-extended -iregex "$pattern" -size -2M -print0 |
    while IFS= read -r -d '' f; do ln -s "$f" "$dir/$(printf '%s' "$f" | sha256sum | cut -c1-16)"; done
  echo "$dir"
}

[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || { echo "FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

# Per-target libFuzzer limits. The media targets must stay bounded: a photo may declare at most
# 4 MP (bounded decode), and anything that allocates past the limits below is a finding.
target_args() {
  case "$1" in
    job_parse) echo "-max_len=4096 -timeout=10 -rss_limit_mb=2048" ;;
    sniff)     echo "-max_len=4096 -timeout=10 -rss_limit_mb=2048" ;;
    photo)     echo "-max_len=16384 -timeout=30 -rss_limit_mb=1024 -malloc_limit_mb=512" ;;
    heif)      echo "-max_len=65536 -timeout=30 -rss_limit_mb=1024 -malloc_limit_mb=512" ;;
    # probe_av has its own 20 s deadline; a libFuzzer timeout above it means the deadline failed.
    # FFmpeg's demuxers allocate tables from header counts up front (an MP4 `stco` declaring 130 M
    # entries asks av_malloc for 1 GB it never touches; fuzz/artifacts-found/README.md), capped
    # only by av_max_alloc (INT_MAX by default). A malloc limit below 2 GB would stop every run
    # on that; the RSS limit still catches memory that is really used.
    probe_av)  echo "-max_len=16384 -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=2048" ;;
    *) echo "unknown fuzz target: $1 (have: job_parse sniff photo heif probe_av)" >&2; return 1 ;;
  esac
}

for t in $TARGETS; do target_args "$t" >/dev/null; done

# cargo fuzz has no --locked: refuse a stale fuzz/Cargo.lock here instead, so a fuzz run never
# rewrites it and leaves the tree dirty (update it on purpose with `cargo update --manifest-path fuzz/Cargo.toml`).
if ! cargo metadata --locked --format-version 1 --manifest-path "$FUZZ_DIR/Cargo.toml" >/dev/null; then
  echo "!! fuzz/Cargo.lock is out of date with the workspace; refresh it and commit it" >&2
  exit 1
fi

export RUSTC_BOOTSTRAP=1
mkdir -p "$LOG_DIR"
echo "== building fuzz targets ($SANITIZER sanitizer) into $TARGET_DIR (log: $LOG_DIR/build.log)"
if ! cargo fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$TARGET_DIR" --sanitizer "$SANITIZER" >"$LOG_DIR/build.log" 2>&1; then
  tail -n 40 "$LOG_DIR/build.log" >&2
  echo "fuzz build failed" >&2
  exit 1
fi

failed=()
summary=()
for t in $TARGETS; do
  corpus="$FUZZ_DIR/corpus/$t"
  seeds="$FUZZ_DIR/seeds/$t"
  artifacts="$FUZZ_DIR/artifacts/$t/"
  log="$LOG_DIR/$t.log"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzzing $t for ${SECONDS_PER_TARGET}s (log: $log)"
  # New inputs go to the first corpus dir only, so the committed seeds stay as they are.
  set +e
  # shellcheck disable=SC2046,SC2086
  real="$(real_seeds "$t")"
  [[ -z "$real" ]] || echo "   + $(find "$real" -type l | wc -l) real files from $REALMEDIA as seeds"
  cargo fuzz run --fuzz-dir "$FUZZ_DIR" --target-dir "$TARGET_DIR" --sanitizer "$SANITIZER" "$t" "$corpus" "$seeds" $real -- \
    -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="$artifacts" -print_final_stats=1 \
    $(target_args "$t") $EXTRA_ARGS >"$log" 2>&1
  rc=$?
  set -e
  done_line="$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -n 1 || true)"
  [[ -n "$done_line" ]] || done_line="$(grep -E '^#[0-9]+\s' "$log" | tail -n 1 || true)"
  execs="$(grep -oE 'stat::average_exec_per_sec:\s*[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1 || true)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$done_line" || true)"
  corp="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$done_line" || true)"
  if [[ $rc -eq 0 ]]; then
    summary+=("$(printf '%-10s ok     %6s exec/s  %-22s %s' "$t" "${execs:-?}" "${cov:-cov: ?}" "$corp")")
  else
    input="$(grep -oE 'Test unit written to .*' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)"
    reason="$(grep -m1 -E "^(thread .* panicked|==[0-9]+== ?ERROR: )" "$log" || true)"
    summary+=("$(printf '%-10s FAILED %6s exec/s  %-22s %s' "$t" "${execs:-?}" "${cov:-cov: ?}" "$corp")")
    failed+=("$t")
    echo "!! $t failed (exit $rc): ${reason:-see the log}"
    if [[ -n "$input" ]]; then
      echo "!! crashing input: $input"
      echo "!! replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $FUZZ_DIR --target-dir $TARGET_DIR --sanitizer $SANITIZER $t $input"
    fi
    # The panic message or sanitizer report, for the terminal; the full log stays in $log.
    grep -A 30 -m1 -E "^(thread .* panicked|==[0-9]+== ?ERROR: )" "$log" | head -n 40 | sed 's/^/   | /' || true
  fi
done

echo "== fuzz summary (${SECONDS_PER_TARGET}s per target, $SANITIZER sanitizer)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
