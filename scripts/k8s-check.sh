#!/usr/bin/env bash
# `make k8s-check`: deploy/kubernetes/mediagate.yaml validated offline, without a cluster:
#   - Kubernetes' own kinds (Secret, Deployment) against the Kubernetes OpenAPI schemas that PyPI's
#     kubernetes-validate carries (strict: unknown fields are errors), for 1.30 and 1.37;
#   - KEDA's kinds (TriggerAuthentication, ScaledObject) against the models PyPI's
#     cloudcoil.models.keda generates from KEDA's CRDs (2.16; they check types and required
#     fields, not unknown fields).
# Both are pinned and installed into .local/k8s-venv from PyPI; then it also checks the
# securityContext the worker must run with.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.local/k8s-venv
PINS=(kubernetes-validate==1.37.0 cloudcoil.models.keda==2.16.1.0)
log() { printf 'k8s-check: %s\n' "$*" >&2; }
if ! "$VENV/bin/python" -c 'import kubernetes_validate, cloudcoil.models.keda' 2>/dev/null \
  || [[ "$(cat "$VENV/.pins" 2>/dev/null)" != "${PINS[*]}" ]]; then
  log "installing ${PINS[*]} into $VENV (PyPI, once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "${PINS[*]}" >"$VENV/.pins"
fi
MANIFEST=deploy/kubernetes/mediagate.yaml
for k in 1.30.0 1.37.0; do
  out="$("$VENV/bin/kubernetes-validate" --strict -k "$k" "$MANIFEST" 2>&1)" || { echo "$out" >&2; log "error: $MANIFEST fails Kubernetes $k's schemas"; exit 1; }
  grep -E "passed|ERROR|failed" <<<"$out" | sed 's/^/  /' >&2
done
"$VENV/bin/python" scripts/k8s_check.py "$MANIFEST"
