#!/usr/bin/env bash
# `make compose-test`: the repository's docker-compose.yml run as operators run it, on images
# built by the repository's Dockerfile, with the ledger accounting for every job published.
#
# This machine reaches no container registry, so the images the compose file names cannot be
# pulled: stand-ins are built from Debian's archive and the host (deploy/standins/, tagged
# mediagate-standin/…, listed at the end) and passed to the Dockerfile as build arguments and to
# docker-compose through deploy/compose/standins.yml, which changes only their image, command,
# healthcheck and config.
#
# The smoke scenario (what `.ci/run` runs): build, up with 2 workers, a small mixed batch through
# the ledger, one worker killed mid-batch, down. Lost must be 0.
#
# Usage: scripts/compose-test.sh   (as root; `make compose-test`)
#   KEEP=1  leave the stack running afterwards (docker-compose -p mediagate-ct … down -v stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
DLOG_NAME=compose-test
# shellcheck source=docker-lib.sh
source scripts/docker-lib.sh

log() { dlog "$*"; }
die() { ddie "$*"; }

T0=$SECONDS
elapsed() { printf '%dm%02ds' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)); }

PROJECT=mediagate-ct
OUT=.local/compose-test
rm -rf "$OUT" && mkdir -p "$OUT"
# Host ports of the composed services (the host's own RabbitMQ holds 5672, make test's S3 9310).
export RABBITMQ_HOST_PORT=5673 RABBITMQ_MANAGEMENT_HOST_PORT=15673 MINIO_HOST_PORT=9400 MINIO_CONSOLE_HOST_PORT=9401
export PROMETHEUS_HOST_PORT=9490 GRAFANA_HOST_PORT=3400
export MINIO_ROOT_USER=mediagate MINIO_ROOT_PASSWORD=mediagate-secret

LEDGER=target/release/mediagate-ledger
[[ -x "$LEDGER" ]] || die "$LEDGER is missing: run make build first"
[[ -x .tools/bin/s3s-fs ]] || die ".tools/bin/s3s-fs is missing: run make deps first"
command -v ffmpeg >/dev/null && command -v espeak-ng >/dev/null || die "ffmpeg and espeak-ng are needed (make deps)"

# --- the engine and the stand-ins -----------------------------------------------------------------
ensure_engine
ensure_base
ensure_standin rabbitmq 3.10.8-debian
ensure_standin python 3.11-bookworm

s3ctx="$(mktemp -d)"
rustctx="$(mktemp -d)"
cleanup_ctx() { rm -rf "$s3ctx" "$rustctx"; }
trap cleanup_ctx EXIT
cp .tools/bin/s3s-fs "$s3ctx/s3s-fs"
ensure_standin s3s-fs 0.14.1 "$s3ctx" "$(sha256sum .tools/bin/s3s-fs)"

# The host's toolchain (hard links: no copy), without its documentation.
toolchain="$(rustc --print sysroot)"
cp -al "$toolchain" "$rustctx/toolchain" 2>/dev/null || cp -a "$toolchain" "$rustctx/toolchain"
rm -rf "$rustctx/toolchain/share/doc"
ensure_standin rust 1.95-host "$rustctx" "$(rustc -vV)"
log "stand-ins ready ($(elapsed))"

# --- the worker image: the repository's Dockerfile, every stage ----------------------------------
log "building mediagate:latest with the Dockerfile (stand-in bases; cargo's cache mounts keep the target folder)"
if ! DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain \
  --build-arg PYTHON_IMAGE=mediagate-standin/python:3.11-bookworm \
  --build-arg RUST_IMAGE=mediagate-standin/rust:1.95-host \
  --build-arg DEBIAN_IMAGE="$STANDIN_BASE" \
  -t mediagate:latest . >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log" >&2
  die "docker build failed (log: $OUT/build.log)"
fi
size="$("$DOCKER" image inspect -f '{{.Size}}' mediagate:latest)"
log "built mediagate:latest: $((size / 1000000)) MB ($(elapsed))"

# --- the stack ------------------------------------------------------------------------------------
compose() { docker-compose -p "$PROJECT" -f docker-compose.yml -f deploy/compose/standins.yml "$@"; }
finish() {
  local rc=$?
  compose logs --no-color >"$OUT/compose.log" 2>&1 || true
  if [[ "${KEEP:-0}" != 1 ]]; then compose down -v --remove-orphans >/dev/null 2>&1 || true; fi
  cleanup_ctx
  if ((rc)); then log "FAILED after $(elapsed); logs in $OUT/"; fi
  exit $rc
}
trap finish EXIT
compose down -v --remove-orphans >/dev/null 2>&1 || true

WORKERS=2
log "up: rabbitmq, minio (stand-ins), init, worker × $WORKERS"
compose up -d --no-build --scale worker=$WORKERS >"$OUT/up.log" 2>&1 || { cat "$OUT/up.log" >&2; die "docker-compose up failed"; }

workers() { compose ps -q worker; }
healthy_workers() {
  local n=0 c
  for c in $(workers); do
    [[ "$("$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c")" == healthy ]] && n=$((n + 1))
  done
  echo $n
}
wait_healthy() { # N TIMEOUT
  local deadline=$((SECONDS + $2))
  while (($(healthy_workers) < $1)); do
    ((SECONDS < deadline)) || { compose ps >&2; die "fewer than $1 workers healthy after $2 s"; }
    sleep 2
  done
}
wait_healthy $WORKERS 180
log "$WORKERS workers healthy ($(elapsed))"

# --- the decoder sandbox inside a composed worker ---------------------------------------------------
# doctor's fork server forks a test child that locks down as an item's child does and tries to open
# /etc/passwd, create a file, connect to 127.0.0.1:5672, run /bin/true and map memory executable.
first="$(workers | head -1)"
"$DOCKER" exec "$first" mediagate doctor >"$OUT/doctor.txt" 2>&1 || { cat "$OUT/doctor.txt" >&2; die "doctor failed inside a composed worker"; }
line="$(grep -E '^(✔|✘) +sandbox:' "$OUT/doctor.txt" || true)"
[[ "$line" == ✔* ]] || { cat "$OUT/doctor.txt" >&2; die "doctor's sandbox check failed inside a composed worker"; }
for what in "open /etc/passwd" "create " "connect to 127.0.0.1:5672" "run /bin/true" "map memory executable"; do
  grep -qE "${what}[^,]*: Operation not permitted" <<<"$line" \
    || die "inside a composed worker, a locked-down child was not refused: ${what}"
done
log "sandbox in a composed worker: ${line#* sandbox: }"

# --- the batch ------------------------------------------------------------------------------------
media="$OUT/media"
mkdir -p "$media"
ffmpeg -v error -f lavfi -i testsrc2=size=640x480 -frames:v 1 "$media/photo-640.jpg"
ffmpeg -v error -f lavfi -i testsrc2=size=1600x1200 -frames:v 1 "$media/photo-1600.jpg"
ffmpeg -v error -f lavfi -i mandelbrot=size=1024x768 -frames:v 1 "$media/photo-1024.png"
espeak-ng -w "$OUT/voice.wav" "a voice note, sent through the composed stack" 2>/dev/null
ffmpeg -v error -i "$OUT/voice.wav" -c:a libopus -b:a 24k "$media/voice.ogg"
ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440 -t 3 \
  -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest "$media/clip.mp4"
# A few seconds of work each, so that a worker holds jobs long enough to be killed with them.
ffmpeg -v error -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=330 -t 6 \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$media/clip-1080p.mp4"
printf 'this is not a picture, whatever its name says\n%.0s' $(seq 40) >"$media/not-media.jpg"

JOBS=${JOBS:-60}
log "ledger: $JOBS jobs over $(ls "$media" | wc -l) files; one worker is killed mid-batch"
"$LEDGER" run \
  --amqp-url "amqp://guest:guest@127.0.0.1:$RABBITMQ_HOST_PORT/%2f" \
  --management-url "http://127.0.0.1:$RABBITMQ_MANAGEMENT_HOST_PORT" \
  --s3-endpoint "http://127.0.0.1:$MINIO_HOST_PORT" \
  --aws-access-key-id "$MINIO_ROOT_USER" --aws-secret-access-key "$MINIO_ROOT_PASSWORD" --aws-region us-east-1 \
  --media "$media" --jobs "$JOBS" --rate 4 --timeout 300 --record "$OUT/ledger.jsonl" \
  >"$OUT/ledger.txt" 2>"$OUT/ledger.log" &
ledger_pid=$!

# Kill a worker once jobs are flowing (verdicts recorded), while others are still in hand.
deadline=$((SECONDS + 120))
until [[ -f "$OUT/ledger.jsonl" ]] && (($(grep -c '"verdict"' "$OUT/ledger.jsonl" 2>/dev/null || echo 0) >= 8)); do
  kill -0 $ledger_pid 2>/dev/null || break
  ((SECONDS < deadline)) || die "no verdicts within 120 s (see $OUT/ledger.log)"
  sleep 1
done
# A worker's jobs in hand, from its own /metrics (bash's /dev/tcp: the image has no curl).
in_hand() {
  "$DOCKER" exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null \
    | awk '$1 ~ /jobs_in_flight$/ { print int($2); found = 1 } END { if (!found) print 0 }'
}
victim="" held=0
deadline=$((SECONDS + 60))
while [[ -z "$victim" ]] && ((SECONDS < deadline)); do
  for c in $(workers); do
    held="$(in_hand "$c")"
    if ((held > 0)); then victim="$c"; break; fi
  done
  [[ -n "$victim" ]] || sleep 0.2
done
[[ -n "$victim" ]] || die "no worker held a job within 60 s of the first verdicts"
log "docker kill $("$DOCKER" inspect -f "{{.Name}}" "$victim") (SIGKILL; it reported $held job(s) in hand just before)"
"$DOCKER" kill "$victim" >/dev/null
# Docker restarts a container that died, not one that was killed by hand (the restart policy is
# suspended until it is started again): bring it back as an operator would, mid-batch.
sleep 10
compose up -d --no-build --scale worker=$WORKERS >>"$OUT/up.log" 2>&1 || die "docker-compose up (bringing the killed worker back) failed"

rc=0
wait $ledger_pid || rc=$?
cat "$OUT/ledger.txt"
((rc == 0)) || { tail -20 "$OUT/ledger.log" >&2; die "the ledger did not account for every job (exit $rc)"; }
grep -qE '^lost +0$' "$OUT/ledger.txt" || die "the ledger's report does not say lost 0"

# The killed worker is healthy again.
wait_healthy $WORKERS 180
log "every worker healthy again ($(elapsed))"

log "stand-ins that ran: $(
  for s in rabbitmq minio; do
    c="$(compose ps -q "$s")"; [[ -n "$c" ]] && "$DOCKER" inspect -f '{{.Config.Image}}' "$c"
  done | tr '\n' ' ')and, to build mediagate:latest, mediagate-standin/python:3.11-bookworm, mediagate-standin/rust:1.95-host, $STANDIN_BASE"
log "ok: smoke scenario passed in $(elapsed)"
