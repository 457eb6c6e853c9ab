#!/usr/bin/env bash
# When no S3 endpoint is configured (MEDIAGATE_S3_ENDPOINT unset), starts the local
# S3-compatible server s3s-fs (path-style, SigV4) on 127.0.0.1:9310 serving .local/s3,
# unless something already listens there, and prints the environment it implies.
# Stop it with: make stop-s3
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=127.0.0.1
PORT="${MEDIAGATE_LOCAL_S3_PORT:-9310}"
ACCESS_KEY=mediagate
SECRET_KEY=mediagate-secret
BIN=.tools/bin/s3s-fs
log() { printf 'ensure-local-s3: %s\n' "$*" >&2; }

if [[ -n "${MEDIAGATE_S3_ENDPOINT:-}" ]]; then
  log "MEDIAGATE_S3_ENDPOINT=${MEDIAGATE_S3_ENDPOINT} is set: no local S3 started"
  exit 0
fi

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }

if port_open; then
  log "something already listens on $HOST:$PORT: using it"
else
  [[ -x "$BIN" ]] || { log "error: $BIN missing (run: make deps)"; exit 1; }
  mkdir -p .local/s3
  nohup "$BIN" --host "$HOST" --port "$PORT" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" .local/s3 \
    >>.local/s3.log 2>&1 </dev/null &
  echo $! >.local/s3.pid
  for _ in $(seq 1 100); do
    port_open && break
    kill -0 "$(cat .local/s3.pid)" 2>/dev/null || { log "error: s3s-fs exited; see .local/s3.log"; tail -n 20 .local/s3.log >&2; exit 1; }
    sleep 0.1
  done
  port_open || { log "error: s3s-fs did not open $HOST:$PORT within 10 s; see .local/s3.log"; exit 1; }
  log "s3s-fs started (pid $(cat .local/s3.pid), data in .local/s3, log in .local/s3.log)"
fi

cat <<ENV
# local S3 environment:
export MEDIAGATE_S3_ENDPOINT=http://$HOST:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
ENV
