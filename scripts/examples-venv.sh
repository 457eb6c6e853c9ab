#!/usr/bin/env bash
# Creates .local/venv-examples with the pinned client libraries of examples/python (pika, boto3),
# which the end-to-end tests run against the real worker. Quiet when already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.local/venv-examples
PINS=(pika==1.3.2 boto3==1.35.99)
STAMP="$VENV/.mediagate-pins"
want="$(printf '%s\n' "${PINS[@]}")"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
echo "examples-venv: creating $VENV (${PINS[*]})" >&2
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -c 'import pika, boto3'
printf '%s\n' "$want" >"$STAMP"
