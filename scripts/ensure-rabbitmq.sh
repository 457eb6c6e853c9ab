#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers when mediagate is configured for a local one
# (MEDIAGATE_AMQP_URL unset or pointing at 127.0.0.1/localhost). Starts the Debian
# rabbitmq-server detached when the port is closed, then waits for it (~5 s, gives up after 60 s).
# Enables the management plugin on that local node (its HTTP API on 127.0.0.1:15672 is how
# `mediagate doctor` sees bindings, which AMQP cannot list).
set -euo pipefail

url="${MEDIAGATE_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
# amqp[s]://[user[:pass]@]host[:port][/vhost]
rest="${url#*://}"; rest="${rest%%/*}"; rest="${rest##*@}"
host="${rest%%:*}"; port=5672
[[ "$rest" == *:* ]] && port="${rest##*:}"
case "$host" in
  127.0.0.1|localhost|"") ;;
  *) exit 0 ;;  # a remote broker is configured: not ours to start
esac

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; }
log() { printf 'ensure-rabbitmq: %s\n' "$*" >&2; }

ensure_management() {
  command -v rabbitmq-plugins >/dev/null || return 0
  if ! rabbitmq-plugins -q list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
    log "enabling rabbitmq_management (the HTTP API doctor reads bindings from)"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
  fi
  for _ in $(seq 1 30); do
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/15672" 2>/dev/null && return 0
    sleep 1
  done
  log "warning: the management API did not open 127.0.0.1:15672; doctor will not check bindings"
}

if port_open; then
  ensure_management
  exit 0
fi

command -v rabbitmq-server >/dev/null || { log "error: rabbitmq-server not installed (run: make deps)"; exit 1; }

log "starting rabbitmq-server (port $port closed)"
# fails harmlessly when a node is already starting; the wait below decides
rabbitmq-server -detached >/dev/null 2>&1 || true

deadline=$((SECONDS + 60))
while :; do
  # exits 69 at once until the node registers, then waits up to 10 s for the boot to finish
  if rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1 && port_open; then
    log "rabbitmq is up on 127.0.0.1:$port"
    ensure_management
    exit 0
  fi
  if ((SECONDS >= deadline)); then
    log "error: RabbitMQ did not come up on 127.0.0.1:$port within 60 s;"
    log "       see /var/log/rabbitmq/ and 'rabbitmqctl status'"
    exit 1
  fi
  sleep 1
done
