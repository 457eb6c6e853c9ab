#!/usr/bin/env bash
# Installs what mediagate needs to build, test and run locally, and nothing that is already there.
# Debian packages via apt (apt-get update runs once, only when something is missing);
# the local S3 server (s3s-fs, built from tools/s3-server) into .tools/bin. Idempotent; quiet when
# all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # Rust build: C toolchain, bindgen (clang), turbojpeg's bundled libjpeg-turbo (cmake, nasm)
  build-essential pkg-config cmake nasm clang libclang-dev
  # FFmpeg 5.1 development files (ffmpeg-next) and the CLI (tests, fixtures)
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  # HEIC and AVIF photos: the decoders compiled into libheif (scripts/build-libheif.sh)
  libde265-dev libdav1d-dev
  # local broker
  rabbitmq-server
  # tests: metadata inspection, audio fixtures
  libimage-exiftool-perl sox espeak-ng
  # bench peer (pyvips loads libvips42) and its virtualenv
  libvips42 python3-venv
  # validates docker-compose.yml (no engine needed)
  docker-compose
  # promtool: checks the alerting rules in deploy/prometheus (tests)
  prometheus
)

log() { printf 'setup-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Debian packages --------------------------------------------------------------------------
command -v dpkg-query >/dev/null || die "dpkg-query not found: this script expects Debian 12 (bookworm)"
installed="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  grep -qE "^${p} ii" <<<"$installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root, no sudo"
    SUDO=(sudo)
  fi
  log "installing: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed: ${missing[*]}"
fi

# --- Rust -------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  [[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup, toolchain >= 1.88) and put ~/.cargo/bin on PATH"

# --- libheif --------------------------------------------------------------------------------
bash scripts/build-libheif.sh

# --- local S3 server --------------------------------------------------------------------------
# s3s-fs 0.14.1 with TCP_NODELAY (tools/s3-server). Built once per machine and per change of its
# sources into a per-user cache keyed by their hash (a fresh clone, e.g. CI's, then only copies it).
S3S_SRC=tools/s3-server
S3S_HASH="$(cd "$S3S_SRC" && find Cargo.toml Cargo.lock src -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
S3S_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mediagate/s3-server-${S3S_HASH}"
if [[ ! -x "$S3S_CACHE/bin/s3s-fs" ]]; then
  log "building the local S3 server ($S3S_SRC) into $S3S_CACHE (a few minutes, once per change)"
  cargo install --path "$S3S_SRC" --locked --root "$S3S_CACHE" --target-dir "$S3S_CACHE/build" --quiet
fi
# Where its build lives, for `make test` (which runs its unit tests there: no second compile).
mkdir -p .tools && echo "$S3S_CACHE" >.tools/s3-server-cache
if ! cmp -s "$S3S_CACHE/bin/s3s-fs" .tools/bin/s3s-fs; then
  if [[ -e .tools/bin/s3s-fs ]]; then
    log "updating .tools/bin/s3s-fs (restart a running local S3: make stop-s3 s3)"
  fi
  mkdir -p .tools/bin
  # Copy, then rename: a running .tools/bin/s3s-fs (make s3) cannot be overwritten in place.
  cp "$S3S_CACHE/bin/s3s-fs" .tools/bin/s3s-fs.tmp
  mv -f .tools/bin/s3s-fs.tmp .tools/bin/s3s-fs
fi
