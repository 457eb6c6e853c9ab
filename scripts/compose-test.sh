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
#   monitoring (FULL=1): 3 workers and the monitoring profile's Prometheus (Grafana cannot be had
#     here) on a test copy of deploy/prometheus whose only changes are shorter timings (scrape
#     and evaluation every 2 s, DNS discovery every 5 s, every alert's `for` 10 s and every rule's
#     range and offset 1 m) and the fleet's expected size (3). Each named alert is made to fire and then to
#     resolve, read from Prometheus' /api/v1/alerts; every dashboard query must return data; the
#     rabbitmq_detailed_* series must equal the management API's counts.
#   cluster (FULL=1): three broker nodes, the node leading mediagate.uploads killed mid-batch;
#     the quorum-queue and broker-node alerts fire and resolve.
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
die() {
  dump_stacks
  ddie "$*"
}

# Every worker's threads, from the host with gdb (symbols, no debug info), so a stuck worker
# can be read after the run: .local/compose-test/stacks-<container>.txt.
dump_stacks() {
  command -v gdb >/dev/null && declare -F compose >/dev/null || return 0
  local c pid
  for c in $(compose ps -q worker 2>/dev/null); do
    pid="$("$DOCKER" top "$c" -eo pid,args 2>/dev/null | awk '$2 ~ /mediagate$/ && $3 == "worker" { print $1; exit }')"
    [[ -n "$pid" ]] || continue
    timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt' >"$OUT/stacks-${c:0:12}.txt" 2>&1 || true
    dlog "threads of worker ${c:0:12} (host pid $pid): $OUT/stacks-${c:0:12}.txt"
  done
}

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
ensure_standin prometheus 2.42-debian

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
up() { # WORKERS [prometheus]
  down
  log "up: rabbitmq, minio (stand-ins), init, worker × $1${2:+, $2}"
  compose up -d --no-build --scale worker="$1" >>"$OUT/up.log" 2>&1 || { cat "$OUT/up.log" >&2; die "docker-compose up failed"; }
  # A service of the monitoring profile, named: its profile is enabled for it alone (Grafana,
  # the profile's other service, has no stand-in), without touching the workers' scale.
  if [[ -n "${2:-}" ]]; then
    compose up -d --no-build --no-deps "$2" >>"$OUT/up.log" 2>&1 || { cat "$OUT/up.log" >&2; die "docker-compose up $2 failed"; }
  fi
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

  # The workers' S3 user is minio-users' least-privileged one (deploy/s3/worker-policy.json),
  # not the root user: what the worker needs passes doctor, what it must not do is refused.
  first="$(workers | head -1)"
  [[ "$("$DOCKER" exec "$first" printenv AWS_ACCESS_KEY_ID)" == mediagate-worker ]] || die "the worker does not use its own S3 user"
  [[ "$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$(compose ps -q minio-users)")" == 0 ]] || die "minio-users did not finish with 0"
  if "$DOCKER" exec -e MEDIAGATE_OUTPUT_BUCKET=not-the-workers-to-create "$first" mediagate ensure-buckets >"$OUT/ensure-buckets.txt" 2>&1; then
    cat "$OUT/ensure-buckets.txt" >&2; die "the worker's S3 user could create a bucket"
  fi
  grep -qi denied "$OUT/ensure-buckets.txt" || { cat "$OUT/ensure-buckets.txt" >&2; die "ensure-buckets failed, but not as denied"; }
  log "workers: S3 user mediagate-worker (deploy/s3/worker-policy.json); creating a bucket is refused"

  # The decoder sandbox inside a composed worker (see sandbox_refused).
  "$DOCKER" exec "$first" mediagate doctor >"$OUT/doctor.txt" 2>&1 || { cat "$OUT/doctor.txt" >&2; die "doctor failed inside a composed worker"; }
  grep -E '^✔ +bucket quarantine:.*not deleted: s3:DeleteObject is not granted' "$OUT/doctor.txt" >/dev/null \
    || { cat "$OUT/doctor.txt" >&2; die "doctor's quarantine line does not show the worker's narrower permissions"; }
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
  if ((alerts_checked == 0)); then
    wait_alert MediagateBrokerNodeDown firing 60
    wait_alert MediagateQuorumQueueMembersMissing firing 60
  fi
  wait_verdicts "$OUT/cluster.jsonl" "$3"
  # The management API's list of connections is gathered from the nodes' stats every few
  # seconds: wait for it to show both workers on surviving nodes.
  local deadline=$((SECONDS + 60))
  while :; do
    worker_connections "${mport[$survivor]}" >"$OUT/cluster-connections.txt"
    if (($(wc -l <"$OUT/cluster-connections.txt") >= 2)) && ! grep -q " $node\$" "$OUT/cluster-connections.txt"; then
      break
    fi
    ((SECONDS < deadline)) || die "cluster: 60 s after killing $service, the workers' connections are: $(tr '\n' ';' <"$OUT/cluster-connections.txt") (2 on surviving nodes expected)"
    sleep 2
  done
  consumers="$(api "${mport[$survivor]}" queues/%2f/mediagate.uploads | json 'd["consumers"]')"
  ((consumers >= 2)) || die "cluster: mediagate.uploads has $consumers consumers after killing $service, not 2"
  log "cluster: workers now on $(awk '{print $NF}' "$OUT/cluster-connections.txt" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')($consumers consumers of mediagate.uploads)"
  sleep 10
  log "cluster: bringing $service back"
  compose start "$service" >>"$OUT/up.log" 2>&1 || die "cluster: starting $service again failed"
  alerts_checked=1
}

scenario_cluster() {
  COMPOSE_FILES=(-f docker-compose.yml -f deploy/compose/standins.yml -f deploy/compose/cluster.yml -f deploy/compose/cluster-standins.yml)
  prometheus_for_test deploy/compose/prometheus-cluster.yml 2
  up 2 prometheus
  alerts_checked=0
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
  wait_targets rabbitmq 3
  wait_targets rabbitmq-queues 3
  local counted
  counted="$(prom 'count by (queue) (rabbitmq_detailed_raft_term_total{queue=~"mediagate\\..*"})' '" ".join(s["metric"]["queue"] + "=" + s["value"][1] for s in sorted(d, key=lambda s: s["metric"]["queue"]))')"
  [[ "$counted" == "mediagate.dead=3 mediagate.escalations=3 mediagate.reprocess=3 mediagate.uploads=3 mediagate.verdicts=3" ]] \
    || die "cluster: Prometheus counts these Raft members per queue: $counted"
  wait_alert MediagateQuorumQueueMembersMissing inactive 30
  log "cluster: Prometheus scrapes all three nodes and counts 3 Raft members of each §1 queue"

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
    # Read from a node that neither dies now nor just came back (its view of the cluster's
    # connections is the last to fill in).
    for c in rabbitmq rabbitmq-2 rabbitmq-3; do [[ "$c" != "$busy" && "$c" != "$service" ]] && other="$c" && break; done
    kill_node "$busy" "$other" 100 "where the workers are connected"
    ((moved > 0)) || die "cluster: no worker was connected to $busy after all"
  fi
  finish_ledger cluster
  wait_alert MediagateBrokerNodeDown inactive 120
  wait_alert MediagateQuorumQueueMembersMissing inactive 120
  members="$(api "${mport[$survivor]}" queues/%2f/mediagate.uploads | json 'len(d.get("online") or [])')"
  log "cluster: lost 0; $service back, mediagate.uploads online on $members nodes ($(elapsed))"
  LEDGER_AMQP="amqp://guest:guest@127.0.0.1:$RABBITMQ_HOST_PORT/%2f"
  LEDGER_MANAGEMENT="http://127.0.0.1:$RABBITMQ_MANAGEMENT_HOST_PORT"
  COMPOSE_FILES=(-f docker-compose.yml -f deploy/compose/standins.yml)
}

# --- monitoring: Prometheus and its alerts ----------------------------------------------------------
PROM="http://127.0.0.1:$PROMETHEUS_HOST_PORT"
# A test copy of a Prometheus configuration and deploy/prometheus's rules: only the timings are
# shorter, and the fleet's expected size is WORKERS. Adds the override mounting them.
# prometheus_for_test CONFIG WORKERS
prometheus_for_test() {
  local dir; dir="$(realpath "$OUT")/prometheus"
  mkdir -p "$dir"
  sed -E 's/^(  (scrape|evaluation)_interval:) 15s/\1 2s/; s/refresh_interval: 30s/refresh_interval: 5s/' "$1" >"$dir/prometheus.yml"
  sed -E 's/^( +for:) [0-9]+[mh]$/\1 10s/; s/\[[0-9]+[mh]\]/[1m]/g; s/offset [0-9]+[mh]/offset 1m/g' deploy/prometheus/alerts.yml >"$dir/alerts.yml"
  sed -E "s/expr: vector\\(1\\)/expr: vector($2)/" deploy/prometheus/fleet.yml >"$dir/fleet.yml"
  grep -q "scrape_interval: 2s" "$dir/prometheus.yml" && grep -q "for: 10s" "$dir/alerts.yml" \
    && grep -q "vector($2)" "$dir/fleet.yml" || die "the test copy of deploy/prometheus did not take its shorter timings"
  cat >"$OUT/monitoring-override.yml" <<YML
version: "3.9"
services:
  prometheus:
    volumes:
      - $dir/prometheus.yml:/etc/prometheus/prometheus.yml:ro
      - $dir/alerts.yml:/etc/prometheus/alerts.yml:ro
      - $dir/fleet.yml:/etc/prometheus/fleet.yml:ro
YML
  COMPOSE_FILES+=(-f "$OUT/monitoring-override.yml")
}
# prom QUERY PYTHON: the instant query's result as `d` (a list of series) to a Python expression.
prom() { curl -fsS --get --data-urlencode "query=$1" "$PROM/api/v1/query" | python3 -c "import json,sys; d=json.load(sys.stdin)['data']['result']; print($2)"; }
# alert_state NAME: firing, pending or inactive, from Prometheus' own /api/v1/alerts.
alert_state() {
  curl -fsS "$PROM/api/v1/alerts" 2>/dev/null | python3 -c '
import json, sys
states = [a["state"] for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == sys.argv[1]]
print("firing" if "firing" in states else "pending" if "pending" in states else "inactive")' "$1" 2>/dev/null || echo unknown
}
# wait_alert NAME STATE TIMEOUT: logs how long it took; records it for the summary.
wait_alert() {
  local t0=$SECONDS state
  until [[ "$(alert_state "$1")" == "$2" ]]; do
    ((SECONDS - t0 < $3)) || { curl -fsS "$PROM/api/v1/alerts" >"$OUT/alerts-at-failure.json" || true; die "alert $1 not $2 within $3 s (see $OUT/alerts-at-failure.json)"; }
    sleep 1
  done
  if [[ "$2" == firing ]]; then
    state="$(curl -fsS "$PROM/api/v1/alerts" | python3 -c '
import json, sys
a = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == sys.argv[1] and a["state"] == "firing"][0]
print(a["annotations"].get("summary", ""))' "$1")"
    log "alert $1 firing after $((SECONDS - t0)) s: $state"
  else
    log "alert $1 $2 after $((SECONDS - t0)) s"
  fi
  echo "$1 $2 $((SECONDS - t0))" >>"$OUT/alerts.txt"
}
wait_targets() { # JOB N: N targets of JOB up
  local t0=$SECONDS n
  until n="$(prom "count(up{job=\"$1\"} == 1)" 'int(d[0]["value"][1]) if d else 0' 2>/dev/null)" && ((n == $2)); do
    ((SECONDS - t0 < 90)) || die "Prometheus scrapes ${n:-0} $1 targets, not $2"
    sleep 2
  done
}
mgmt_post() { curl -fsS -u guest:guest -H 'content-type: application/json' -X POST -d "$2" "$LEDGER_MANAGEMENT/api/$1"; }
queue_field() { api "$RABBITMQ_MANAGEMENT_HOST_PORT" "queues/%2f/$1" | json "d.get('$2', 0)"; }
# wait_queue_field QUEUE FIELD VALUE TIMEOUT: the management API's counts are sampled (every 5 s
# by default), so a count is waited for, not read once.
wait_queue_field() {
  local t0=$SECONDS
  until [[ "$(queue_field "$1" "$2")" == "$3" ]]; do
    ((SECONDS - t0 < $4)) || return 1
    sleep 1
  done
}

# Every query of the Grafana dashboard, as the dashboard has it, against the live Prometheus.
dashboard_queries() {
  python3 - "$PROM" deploy/grafana/dashboards/mediagate.json >"$OUT/dashboard-queries.txt" <<'PY' || { cat "$OUT/dashboard-queries.txt" >&2; die "a dashboard query returned no data"; }
import json, sys, urllib.parse, urllib.request
prom, path = sys.argv[1], sys.argv[2]
def targets(panels):
    for p in panels:
        yield from targets(p.get("panels", []))
        for t in p.get("targets", []):
            yield p.get("title"), t["expr"]
empty = 0
for title, expr in targets(json.load(open(path))["panels"]):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    result = json.load(urllib.request.urlopen(url))["data"]["result"]
    numbers = [s["value"][1] for s in result if s["value"][1] not in ("NaN", "+Inf", "-Inf")]
    ok = bool(numbers)
    empty += not ok
    print(f"{'ok   ' if ok else 'EMPTY'} {len(result):3} series  {title}: {expr}" + (f"  (e.g. {numbers[0]})" if ok else ""))
sys.exit(1 if empty else 0)
PY
  log "every dashboard query returned data ($(grep -c '^ok' "$OUT/dashboard-queries.txt") queries; $OUT/dashboard-queries.txt)"
}

# The queue-depth panel's rabbitmq_detailed_* series against the broker's management API.
detailed_match_broker() {
  local q t0 p m field
  for q in mediagate.uploads mediagate.reprocess mediagate.dead mediagate.verdicts mediagate.escalations; do
    for field in messages_ready messages_unacked; do
      t0=$SECONDS
      while :; do
        p="$(prom "sum(rabbitmq_detailed_queue_${field}{queue=\"$q\"})" 'int(float(d[0]["value"][1])) if d else "none"')"
        m="$(queue_field "$q" "$field")"
        [[ "$p" == "$m" ]] && break
        ((SECONDS - t0 < 30)) || die "rabbitmq_detailed_queue_${field}{queue=\"$q\"} is $p in Prometheus, $m in the management API"
        sleep 2
      done
      echo "$q $field $p" >>"$OUT/detailed.txt"
    done
  done
  log "rabbitmq_detailed_queue_messages_ready/unacked equal the management API's for every §1 queue ($(awk '$2 == "messages_ready" {printf "%s=%s ", $1, $3}' "$OUT/detailed.txt"))"
}

scenario_monitoring() {
  local base_files=("${COMPOSE_FILES[@]}")
  prometheus_for_test deploy/prometheus/prometheus.yml 3
  # A hash bank with one entry: the sha256 of a photo of the batch, so that its jobs are blocked
  # and escalated (the escalations alert, the bank panels). Uploaded before the workers start
  # (a bank that fails to load stops a worker at start-up).
  down
  compose up -d --no-build init >>"$OUT/up.log" 2>&1 || die "docker-compose up init failed"
  local t0=$SECONDS
  until [[ "$("$DOCKER" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(compose ps -q init)")" == "exited 0" ]]; do
    ((SECONDS - t0 < 120)) || die "init did not finish within 120 s"
    sleep 1
  done
  AWS_ACCESS_KEY_ID="$MINIO_ROOT_USER" AWS_SECRET_ACCESS_KEY="$MINIO_ROOT_PASSWORD" \
    .local/venv-examples/bin/python - "http://127.0.0.1:$MINIO_HOST_PORT" "sha256 $(sha256sum "$media/photo-640.jpg" | cut -d' ' -f1) compose-test" <<'PY' || die "uploading the test bank failed"
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
s3.put_object(Bucket="incoming", Key="banks/compose-test.txt", Body=(sys.argv[2] + "\n").encode())
PY
  export MEDIAGATE_HASH_BANKS=compose-test=s3://incoming/banks/compose-test.txt
  # (up's `down` would drop the bank with its volume: start the rest on top instead.)
  log "up: worker × 3 with bank compose-test, and prometheus (stand-in) on the test copy of deploy/prometheus"
  compose up -d --no-build --scale worker=3 >>"$OUT/up.log" 2>&1 || die "docker-compose up failed"
  compose up -d --no-build --no-deps prometheus >>"$OUT/up.log" 2>&1 || die "docker-compose up prometheus failed"
  wait_healthy 3 180
  wait_targets mediagate 3
  wait_targets rabbitmq 1
  wait_targets rabbitmq-queues 1
  log "Prometheus scrapes all 3 workers (DNS service discovery) and the broker ($(elapsed))"
  wait_alert MediagateWorkersMissing inactive 30

  # Traffic: a mixed batch, one photo of which the bank matches.
  local jobs=${MONITORING_JOBS:-40}
  log "monitoring: $jobs jobs over $(ls "$media" | wc -l) files (photo-640.jpg is in the bank)"
  start_ledger monitoring "$jobs" 8 "$media"
  finish_ledger monitoring
  grep -q '"reason_code":"hash.matched"\|"code":"hash.matched"' "$OUT/monitoring.jsonl" || die "no item was blocked by the bank"
  # Nothing reads mediagate.verdicts (the ledger has its own queue) or mediagate.escalations.
  wait_alert MediagateVerdictsUnread firing 60
  wait_alert MediagateEscalationsUnread firing 60
  detailed_match_broker
  dashboard_queries
  log "monitoring: reading both queues (purge) as their consumers would"
  curl -fsS -u guest:guest -X DELETE "$LEDGER_MANAGEMENT/api/queues/%2f/mediagate.verdicts/contents" >/dev/null
  curl -fsS -u guest:guest -X DELETE "$LEDGER_MANAGEMENT/api/queues/%2f/mediagate.escalations/contents" >/dev/null
  wait_alert MediagateVerdictsUnread inactive 60
  wait_alert MediagateEscalationsUnread inactive 60

  # A replica killed: it vanishes from DNS discovery rather than reporting up == 0.
  local victim; victim="$(workers | head -1)"
  log "monitoring: docker kill $(name_of "$victim")"
  "$DOCKER" kill "$victim" >/dev/null
  wait_alert MediagateWorkersMissing firing 60
  # (MediagateWorkerDown may fire here too: the killed address reports up == 0 until discovery
  # drops it, 5–15 s, longer than this test's `for: 10s`; at its real 5 m it cannot.)
  compose up -d --no-build --scale worker=3 --no-recreate worker >>"$OUT/up.log" 2>&1 || die "bringing the worker back failed"
  wait_healthy 3 180
  wait_alert MediagateWorkersMissing inactive 60

  # The delivery-limit recipe: with every worker stopped, a job is taken and handed back (the
  # management API's "get" with reject, requeue) until the broker dead-letters it after
  # x-delivery-limit (5) returns; the workers, started again, give it its `failed` verdict.
  log "monitoring: docker-compose stop worker; a job handed back until its delivery limit"
  compose stop worker >>"$OUT/up.log" 2>&1 || die "docker-compose stop worker failed"
  local job_id="ct-dead-$$-$SECONDS" body n
  body="$(python3 -c 'import json,sys; print(json.dumps({"properties": {"delivery_mode": 2, "content_type": "application/json", "message_id": sys.argv[1]}, "routing_key": "upload", "payload_encoding": "string", "payload": json.dumps({"schema": "mediagate.job.v1", "job_id": sys.argv[1], "kind": "media", "message": {"message_id": sys.argv[1], "conversation_id": "c-ct", "first_contact": False}, "sender": {"account_id": "a-1", "age_band": "adult"}, "recipients": [{"account_id": "a-2", "age_band": "adult"}], "items": [{"item_id": "0", "source": {"bucket": "incoming", "key": "never-read.jpg"}}]})}))' "$job_id")"
  [[ "$(mgmt_post exchanges/%2f/mediagate.jobs/publish "$body" | json 'd["routed"]')" == True ]] || die "the job was not routed"
  for n in $(seq 1 10); do
    [[ "$(mgmt_post queues/%2f/mediagate.uploads/get '{"count":1,"ackmode":"reject_requeue_true","encoding":"auto"}' | json 'len(d)')" == 1 ]] || break
  done
  wait_queue_field mediagate.dead messages 1 30 || die "the job is not in mediagate.dead after $((n - 1)) deliveries"
  log "monitoring: dead-lettered by the broker after $((n - 1)) deliveries; starting the workers"
  wait_alert MediagateWorkersMissing firing 60
  compose up -d --no-build --scale worker=3 worker >>"$OUT/up.log" 2>&1 || die "starting the workers again failed"
  wait_alert MediagateJobsDeadLettered firing 90
  wait_alert MediagateFailedVerdicts firing 30
  wait_queue_field mediagate.dead messages 0 30 || die "mediagate.dead was not emptied by the workers"
  wait_healthy 3 180
  wait_alert MediagateWorkersMissing inactive 60
  wait_alert MediagateJobsDeadLettered inactive 150
  wait_alert MediagateFailedVerdicts inactive 60

  # Storage down: the S3 service stopped, then started.
  log "monitoring: docker-compose stop minio"
  compose stop minio >>"$OUT/up.log" 2>&1 || die "stopping minio failed"
  wait_alert MediagateStorageOutage firing 90
  compose start minio >>"$OUT/up.log" 2>&1 || die "starting minio failed"
  wait_alert MediagateStorageOutage inactive 90
  wait_healthy 3 180

  unset MEDIAGATE_HASH_BANKS
  COMPOSE_FILES=("${base_files[@]}")
  log "monitoring: every named alert fired and resolved ($(elapsed))"
}

# --- run ------------------------------------------------------------------------------------------
if [[ -n "${SCENARIOS:-}" ]]; then
  IFS=, read -r -a scenarios <<<"$SCENARIOS"
elif [[ "${FULL:-0}" == 1 ]]; then
  scenarios=(smoke fleet monitoring cluster)
else
  scenarios=(smoke)
fi
for sc in "${scenarios[@]}"; do
  declare -F "scenario_$sc" >/dev/null || die "unknown scenario $sc (smoke, fleet, monitoring, cluster)"
  "scenario_$sc"
done

ran="mediagate-standin/rabbitmq:3.10.8-debian, mediagate-standin/s3s-fs:0.14.1"
[[ " ${scenarios[*]} " == *" monitoring "* || " ${scenarios[*]} " == *" cluster "* ]] && ran+=", mediagate-standin/prometheus:2.42-debian"
[[ -s "$OUT/alerts.txt" ]] && { echo "== alerts (name, state reached, seconds waited)"; cat "$OUT/alerts.txt"; }
log "stand-ins that ran: $ran; to build mediagate:latest: mediagate-standin/python:3.11-bookworm, mediagate-standin/rust:1.95-host, $STANDIN_BASE"
log "ok: ${scenarios[*]} passed in $(elapsed)"
