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
# Scenarios, each on a fresh stack, each ending with the ledger's table (lost must be 0):
#   smoke (what `.ci/run` runs): up with 2 workers, the container settings checked, the decoder
#     sandbox checked inside a worker, a small mixed batch, one worker killed mid-batch.
#   fleet (FULL=1): 3 workers; during a mixed batch a worker is killed, the broker restarted, S3
#     paused for 20 s and every worker stopped with jobs in hand (each must exit 0 within the
#     grace period); then three ~100 MB 1080p uploads at once under the 2 GiB limit: no container
#     OOM-killed, every worker healthy again.
#
# Usage: scripts/compose-test.sh   (as root; `make compose-test`, `make compose-test FULL=1`)
#   FULL=1       every scenario
#   SCENARIOS=a,b  pick scenarios by name
#   KEEP=1       leave the last stack running (docker-compose -p mediagate-ct … down -v stops it)
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
export RABBITMQ_2_HOST_PORT=5674 RABBITMQ_2_MANAGEMENT_HOST_PORT=15674 RABBITMQ_3_HOST_PORT=5675 RABBITMQ_3_MANAGEMENT_HOST_PORT=15675
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
COMPOSE_FILES=(-f docker-compose.yml -f deploy/compose/standins.yml)
compose() { docker-compose -p "$PROJECT" "${COMPOSE_FILES[@]}" "$@"; }
down() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }
finish() {
  local rc=$?
  [[ -n "${ledger_pid:-}" ]] && kill "$ledger_pid" 2>/dev/null
  compose logs --no-color >"$OUT/compose.log" 2>&1 || true
  if [[ "${KEEP:-0}" != 1 ]]; then down; fi
  cleanup_ctx
  if ((rc)); then log "FAILED after $(elapsed); logs in $OUT/"; fi
  exit $rc
}
trap finish EXIT

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
up() { # WORKERS
  down
  log "up: rabbitmq, minio (stand-ins), init, worker × $1"
  compose up -d --no-build --scale worker="$1" >>"$OUT/up.log" 2>&1 || { cat "$OUT/up.log" >&2; die "docker-compose up failed"; }
  wait_healthy "$1" 180
  log "$1 workers healthy ($(elapsed))"
}
# A worker's jobs in hand, from its own /metrics (bash's /dev/tcp: the image has no curl).
in_hand() {
  "$DOCKER" exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null \
    | awk '$1 ~ /jobs_in_flight$/ { print int($2); found = 1 } END { if (!found) print 0 }'
}
# Finds a worker holding at least one job (waits up to 60 s): sets `victim` and `held`.
busy_worker() {
  local deadline=$((SECONDS + 60)) c
  victim="" held=0
  while ((SECONDS < deadline)); do
    for c in $(workers); do
      held="$(in_hand "$c")"
      if ((held > 0)); then victim="$c"; return 0; fi
    done
    sleep 0.2
  done
  return 1
}
# kill_busy_worker WORKERS PAUSE LABEL: SIGKILLs a worker holding a job, then after PAUSE seconds
# brings the fleet back to WORKERS. Docker restarts a container that died, not one killed by hand
# (its restart policy waits until it is started again), so an operator's `up` does it, mid-batch.
kill_busy_worker() {
  busy_worker || die "no worker held a job within 60 s"
  log "${3}docker kill $(name_of "$victim") (SIGKILL; it reported $held job(s) in hand just before)"
  "$DOCKER" kill "$victim" >/dev/null
  sleep "$2"
  compose up -d --no-build --scale worker="$1" >>"$OUT/up.log" 2>&1 || die "docker-compose up (bringing the killed worker back) failed"
}
name_of() { "$DOCKER" inspect -f '{{.Name}}' "$1" | tr -d /; }
verdicts_so_far() { local n; n="$(grep -c '"event":"verdict"' "$1" 2>/dev/null)"; echo "${n:-0}"; }
wait_verdicts() { # RECORD N
  local deadline=$((SECONDS + 180))
  until (($(verdicts_so_far "$1") >= $2)); do
    kill -0 "$ledger_pid" 2>/dev/null || return 0
    ((SECONDS < deadline)) || die "fewer than $2 verdicts within 180 s (see $OUT)"
    sleep 1
  done
}

# start_ledger NAME JOBS RATE MEDIA: publishes in the background; sets ledger_pid.
LEDGER_AMQP="amqp://guest:guest@127.0.0.1:$RABBITMQ_HOST_PORT/%2f"
LEDGER_MANAGEMENT="http://127.0.0.1:$RABBITMQ_MANAGEMENT_HOST_PORT"
start_ledger() {
  "$LEDGER" run \
    --amqp-url "$LEDGER_AMQP" \
    --management-url "$LEDGER_MANAGEMENT" \
    --s3-endpoint "http://127.0.0.1:$MINIO_HOST_PORT" \
    --aws-access-key-id "$MINIO_ROOT_USER" --aws-secret-access-key "$MINIO_ROOT_PASSWORD" --aws-region us-east-1 \
    --media "$4" --jobs "$2" --rate "$3" --timeout 600 --record "$OUT/$1.jsonl" \
    >"$OUT/$1.txt" 2>"$OUT/$1.log" &
  ledger_pid=$!
}
# finish_ledger NAME: waits for the ledger, prints its table, requires lost 0.
finish_ledger() {
  local rc=0
  wait "$ledger_pid" || rc=$?
  ledger_pid=""
  echo "== ledger, scenario $1"
  cat "$OUT/$1.txt"
  ((rc == 0)) || { tail -20 "$OUT/$1.log" >&2; die "$1: the ledger did not account for every job (exit $rc)"; }
  grep -qE '^lost +0$' "$OUT/$1.txt" || die "$1: the ledger's report does not say lost 0"
}

# --- the batch's media ----------------------------------------------------------------------------
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

# --- scenario: smoke --------------------------------------------------------------------------------
scenario_smoke() {
  up 2
  # The container settings operators rely on, as Docker applied them.
  local w first line
  for w in $(workers) $(compose ps -q init); do
    [[ "$("$DOCKER" inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{index .HostConfig.LogConfig.Config "max-size"}}' "$w")" \
      == "true [ALL] [no-new-privileges:true] 10m" ]] || die "$(name_of "$w"): not read-only / capabilities not dropped / privileges not frozen / logs not rotated"
  done
  [[ "$("$DOCKER" inspect -f '{{.Config.User}}' "$(workers | head -1)")" == mediagate ]] || die "the worker does not run as user mediagate"
  log "workers: read-only root, every capability dropped, no-new-privileges, logs rotated, user mediagate (uid 10001)"

  # The decoder sandbox inside a composed worker (see sandbox_refused).
  first="$(workers | head -1)"
  "$DOCKER" exec "$first" mediagate doctor >"$OUT/doctor.txt" 2>&1 || { cat "$OUT/doctor.txt" >&2; die "doctor failed inside a composed worker"; }
  line="$(sandbox_refused "$(cat "$OUT/doctor.txt")" "inside a composed worker")" || exit 1
  log "sandbox in a composed worker: ${line#* sandbox: }"

  local jobs=${JOBS:-60}
  log "smoke: $jobs jobs over $(ls "$media" | wc -l) files; one worker is killed mid-batch"
  start_ledger smoke "$jobs" 4 "$media"
  wait_verdicts "$OUT/smoke.jsonl" 8
  kill_busy_worker 2 10 ""
  finish_ledger smoke
  wait_healthy 2 180
  log "smoke: lost 0, every worker healthy again ($(elapsed))"
}

# --- scenario: fleet --------------------------------------------------------------------------------
oom_killed() { local c; for c in $(compose ps -q); do [[ "$("$DOCKER" inspect -f '{{.State.OOMKilled}}' "$c")" == true ]] && name_of "$c"; done; true; }

scenario_fleet() {
  up 3
  local jobs=${FLEET_JOBS:-300} c
  log "fleet: $jobs jobs at 5/s over $(ls "$media" | wc -l) files, through four faults"
  start_ledger fleet "$jobs" 5 "$media"
  wait_verdicts "$OUT/fleet.jsonl" 20

  kill_busy_worker 3 5 "fault 1: "
  wait_verdicts "$OUT/fleet.jsonl" 60

  log "fault 2: docker-compose restart rabbitmq"
  compose restart rabbitmq >>"$OUT/up.log" 2>&1 || die "restarting the broker failed"
  wait_verdicts "$OUT/fleet.jsonl" 110

  log "fault 3: the S3 container paused for 20 s"
  "$DOCKER" pause "$(compose ps -q minio)" >/dev/null
  sleep 20
  "$DOCKER" unpause "$(compose ps -q minio)" >/dev/null
  wait_verdicts "$OUT/fleet.jsonl" 170

  busy_worker || die "no worker held a job before the stop"
  local held_before=() stopped
  for c in $(workers); do held_before+=("$(name_of "$c")=$(in_hand "$c")"); done
  log "fault 4: docker-compose stop worker, jobs in hand: ${held_before[*]}"
  stopped="$(workers)"
  local t0=$SECONDS
  compose stop worker >>"$OUT/up.log" 2>&1 || die "docker-compose stop worker failed"
  for c in $stopped; do
    local code; code="$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$c")"
    ((code == 0)) || die "$(name_of "$c") exited $code after SIGTERM (killed at the end of the grace period?)"
  done
  log "every worker exited 0 after SIGTERM, in $((SECONDS - t0)) s (grace period 60 s)"
  compose up -d --no-build --scale worker=3 >>"$OUT/up.log" 2>&1 || die "starting the workers again failed"
  finish_ledger fleet
  wait_healthy 3 180

  # Three ~100 MB 1080p uploads at once, under the 2 GiB limit.
  local big="$OUT/big"
  mkdir -p "$big"
  log "making a ~100 MB 1080p clip"
  ffmpeg -v error -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=220 -t 20 \
    -c:v libx264 -preset ultrafast -b:v 38M -maxrate 38M -bufsize 76M -pix_fmt yuv420p -c:a aac -shortest "$big/big-1080p.mp4"
  log "fleet-big: 3 jobs of $(($(stat -c %s "$big/big-1080p.mp4") / 1000000)) MB at once"
  start_ledger fleet-big 3 0 "$big"
  finish_ledger fleet-big
  local killed; killed="$(oom_killed)"
  [[ -z "$killed" ]] || die "OOM-killed: $killed"
  wait_healthy 3 180
  log "fleet: lost 0 through every fault; no container OOM-killed; every worker healthy ($(elapsed))"
}

# --- scenario: cluster ------------------------------------------------------------------------------
# GET on a node's management API (host port), JSON to stdout.
api() { curl -fsS -u guest:guest "http://127.0.0.1:$1/api/$2"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Worker connections as "<connection name> <node>" lines, from a node's management API.
worker_connections() {
  api "$1" connections | json '"\n".join(c["client_properties"].get("connection_name","")+" "+c["node"] for c in d)' \
    | grep "^mediagate worker" || true
}
wait_nodes() { # MGMT_PORT N
  local deadline=$((SECONDS + 120))
  until (($(api "$1" nodes 2>/dev/null | json 'sum(1 for n in d if n["running"])' 2>/dev/null || echo 0) >= $2)); do
    ((SECONDS < deadline)) || die "cluster: fewer than $2 nodes running after 120 s"
    sleep 2
  done
}
# kill_node SERVICE SURVIVOR VERDICTS WHY: kills a broker node mid-batch, waits for VERDICTS
# verdicts in all, checks that every worker is connected to a surviving node and consuming, then
# starts the node again. Sets `moved`: the workers that were on the killed node.
kill_node() {
  local service="$1" survivor="$2" node="rabbit@$1" before consumers
  before="$(worker_connections "${mport[$survivor]}")"
  moved="$(grep -c " $node\$" <<<"$before" || true)"
  log "cluster: docker kill $service ($4; $moved of $(grep -c . <<<"$before") worker connections on it)"
  "$DOCKER" kill "$(compose ps -q "$service")" >/dev/null
  wait_verdicts "$OUT/cluster.jsonl" "$3"
  worker_connections "${mport[$survivor]}" >"$OUT/cluster-connections.txt"
  (($(wc -l <"$OUT/cluster-connections.txt") >= 2)) || die "cluster: fewer than 2 workers connected after killing $service"
  ! grep -q " $node\$" "$OUT/cluster-connections.txt" || die "cluster: a worker is still connected to the killed $service"
  consumers="$(api "${mport[$survivor]}" queues/%2f/mediagate.uploads | json 'd["consumers"]')"
  ((consumers >= 2)) || die "cluster: mediagate.uploads has $consumers consumers after killing $service, not 2"
  log "cluster: workers now on $(awk '{print $NF}' "$OUT/cluster-connections.txt" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')($consumers consumers of mediagate.uploads)"
  sleep 10
  log "cluster: bringing $service back"
  compose start "$service" >>"$OUT/up.log" 2>&1 || die "cluster: starting $service again failed"
}

scenario_cluster() {
  COMPOSE_FILES=(-f docker-compose.yml -f deploy/compose/standins.yml -f deploy/compose/cluster.yml -f deploy/compose/cluster-standins.yml)
  up 2
  local moved=0
  local -A mport=([rabbitmq]=$RABBITMQ_MANAGEMENT_HOST_PORT [rabbitmq-2]=$RABBITMQ_2_MANAGEMENT_HOST_PORT [rabbitmq-3]=$RABBITMQ_3_MANAGEMENT_HOST_PORT)
  local nodes members q
  nodes="$(api "${mport[rabbitmq]}" nodes | json 'sum(1 for n in d if n["running"])')"
  ((nodes == 3)) || die "cluster: $nodes nodes running, not 3"
  for q in mediagate.uploads mediagate.reprocess mediagate.dead mediagate.verdicts mediagate.escalations; do
    members="$(api "${mport[rabbitmq]}" "queues/%2f/$q" | json 'len(d.get("members") or [])')"
    ((members == 3)) || die "cluster: quorum queue $q has $members members, not 3"
  done
  log "cluster: 3 nodes running; every §1 quorum queue has a member on each"

  LEDGER_AMQP="amqp://guest:guest@127.0.0.1:$RABBITMQ_HOST_PORT/%2f,amqp://guest:guest@127.0.0.1:$RABBITMQ_2_HOST_PORT/%2f,amqp://guest:guest@127.0.0.1:$RABBITMQ_3_HOST_PORT/%2f"
  local leader service survivor c
  leader="$(api "${mport[rabbitmq]}" queues/%2f/mediagate.uploads | json 'd["leader"]')"
  service="${leader#rabbit@}"
  [[ -n "${mport[$service]:-}" ]] || die "cluster: leader $leader is no node of the stack"
  for c in rabbitmq rabbitmq-2 rabbitmq-3; do [[ "$c" != "$service" ]] && survivor="$c" && break; done
  # The ledger reads queue counts from a node that will survive (it publishes to all three).
  LEDGER_MANAGEMENT="http://127.0.0.1:${mport[$survivor]}"
  local jobs=${CLUSTER_JOBS:-160}
  log "cluster: $jobs jobs at 4/s; $service, which leads mediagate.uploads, is killed mid-batch"
  start_ledger cluster "$jobs" 4 "$media"
  wait_verdicts "$OUT/cluster.jsonl" 20
  kill_node "$service" "$survivor" 60 "leader of mediagate.uploads"
  local new_leader
  new_leader="$(api "${mport[$survivor]}" queues/%2f/mediagate.uploads | json 'd.get("leader")')"
  [[ "$new_leader" != "$leader" ]] || die "cluster: mediagate.uploads still led by the killed node"
  log "cluster: mediagate.uploads now led by $new_leader"
  # When no worker happened to be connected to the leader (each picks a node at random), kill the
  # node the workers are on too, once the first is back: reconnection must be seen, not assumed.
  if ((moved == 0)); then
    wait_nodes "${mport[$survivor]}" 3
    local busy other
    busy="$(awk 'NR == 1 { sub(/^rabbit@/, "", $NF); print $NF }' "$OUT/cluster-connections.txt")"
    for c in rabbitmq rabbitmq-2 rabbitmq-3; do [[ "$c" != "$busy" ]] && other="$c" && break; done
    kill_node "$busy" "$other" 100 "where the workers are connected"
    ((moved > 0)) || die "cluster: no worker was connected to $busy after all"
  fi
  finish_ledger cluster
  members="$(api "${mport[$survivor]}" queues/%2f/mediagate.uploads | json 'len(d.get("online") or [])')"
  log "cluster: lost 0; $service back, mediagate.uploads online on $members nodes ($(elapsed))"
  LEDGER_AMQP="amqp://guest:guest@127.0.0.1:$RABBITMQ_HOST_PORT/%2f"
  LEDGER_MANAGEMENT="http://127.0.0.1:$RABBITMQ_MANAGEMENT_HOST_PORT"
  COMPOSE_FILES=(-f docker-compose.yml -f deploy/compose/standins.yml)
}

# --- run ------------------------------------------------------------------------------------------
if [[ -n "${SCENARIOS:-}" ]]; then
  IFS=, read -r -a scenarios <<<"$SCENARIOS"
elif [[ "${FULL:-0}" == 1 ]]; then
  scenarios=(smoke fleet cluster)
else
  scenarios=(smoke)
fi
for sc in "${scenarios[@]}"; do
  declare -F "scenario_$sc" >/dev/null || die "unknown scenario $sc (smoke, fleet, cluster)"
  "scenario_$sc"
done

log "stand-ins that ran: mediagate-standin/rabbitmq:3.10.8-debian, mediagate-standin/s3s-fs:0.14.1; to build mediagate:latest: mediagate-standin/python:3.11-bookworm, mediagate-standin/rust:1.95-host, $STANDIN_BASE"
log "ok: ${scenarios[*]} passed in $(elapsed)"
