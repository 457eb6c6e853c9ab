#!/usr/bin/env bash
# Installs what mediagate needs to build, test and run locally, and nothing that is already there.
# Debian packages via apt (apt-get update runs once, only when something is missing);
# the local S3 server (s3s-fs) via cargo into .tools/bin. Idempotent; quiet when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # Rust build: C toolchain, bindgen (clang), turbojpeg's bundled libjpeg-turbo (cmake, nasm)
  build-essential pkg-config cmake nasm clang libclang-dev
  # FFmpeg 5.1 development files (ffmpeg-next) and the CLI (tests, fixtures)
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  # local broker
  rabbitmq-server
  # tests: metadata inspection, audio fixtures
  libimage-exiftool-perl sox espeak-ng
  # bench peer (pyvips loads libvips42) and its virtualenv
  libvips42 python3-venv
  # validates docker-compose.yml (no engine needed)
  docker-compose
)
S3S_FS_VERSION=0.14.1   # 0.15+ need a newer rustc than 1.95

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

# --- local S3 server --------------------------------------------------------------------------
# Built once per machine into a per-user cache (a fresh clone, e.g. CI's, then only copies it).
S3S_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mediagate/s3s-fs-${S3S_FS_VERSION}"
if [[ ! -x .tools/bin/s3s-fs ]]; then
  if [[ ! -x "$S3S_CACHE/bin/s3s-fs" ]]; then
    log "installing s3s-fs ${S3S_FS_VERSION} into $S3S_CACHE (about 1.5 min, once per machine)"
    cargo install "s3s-fs@${S3S_FS_VERSION}" --locked --features binary --root "$S3S_CACHE" --quiet
  fi
  mkdir -p .tools/bin
  cp "$S3S_CACHE/bin/s3s-fs" .tools/bin/s3s-fs
fi
