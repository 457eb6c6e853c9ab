#!/usr/bin/env bash
# Builds the libheif that mediagate links (statically) for HEIC/HEIF/AVIF photos, once per machine and per change of this script, into a per-user cache;
# .tools/libheif points at it, and .cargo/config.toml points libheif-sys's pkg-config probe there.
#
# Source: the newest libheif the registries offer. crates.io's libheif-sys vendors 1.23.1, which
# misses the fixes of 1.23.2-1.23.5 (README, "Decoder libraries and advisories"); PyPI's
# `pylibheif` 1.25.0 source distribution carries libheif 1.23.5 in third_party/.
# It is fetched from PyPI's file host at the address PyPI's index gives, and refused unless its
# sha256 is the one pinned here. pylibheif's own patches (patches/libheif: Kvazaar, an encoder-side
# API, a CMake search for x265) are not applied: they only touch encoders, which are not built.
#
# Compiled in (no plugin loading, so nothing is dlopen'ed at run time): libde265 (HEVC → HEIC) and
# dav1d (AV1 → AVIF), both Debian's shared libraries, security-maintained by Debian. The sdist's
# dav1d 1.5.4 is not used: FFmpeg's libavcodec (AV1 video) links Debian's libdav1d.so.6 (1.0.0),
# and a static dav1d in the executable would take its place for libavcodec too (the executable
# exports the symbols libavcodec asks for), across an ABI break (dav1d's soname 6 → 7). No
# encoders, no `unci`.
#
# Usage: scripts/build-libheif.sh   (idempotent; quiet when the build is there)
set -euo pipefail
cd "$(dirname "$0")/.."

SDIST_NAME="pylibheif-1.25.0.tar.gz"
SDIST_URL="https://files.pythonhosted.org/packages/cb/fd/61cb2156e466c7b10e3e4a3f997d8acdcc32568bacd1daba7ed789ca5be7/${SDIST_NAME}"
SDIST_SHA256="143de2f256ae213a074b87512456dee7217389900004afa453810b92d47aa2c0"
LIBHEIF_VERSION="1.23.5"

log() { printf 'build-libheif: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SELF_HASH="$(sha256sum "$0" | cut -c1-12)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/mediagate"
CACHE="${CACHE_ROOT}/libheif-${LIBHEIF_VERSION}-${SELF_HASH}"
LINK=.tools/libheif

if [[ ! -f "$CACHE/.done" ]]; then
  command -v cmake >/dev/null || die "cmake not found (make deps installs it)"
  pkg-config --exists libde265 dav1d || die "libde265-dev and libdav1d-dev are needed (make deps installs them)"

  sdist="${CACHE_ROOT}/downloads/${SDIST_NAME}"
  if [[ ! -f "$sdist" ]] || ! echo "${SDIST_SHA256}  ${sdist}" | sha256sum -c --status; then
    log "fetching ${SDIST_NAME} from PyPI"
    mkdir -p "${CACHE_ROOT}/downloads"
    curl -fsSL --retry 3 -o "${sdist}.part" "$SDIST_URL" || die "could not download $SDIST_URL"
    echo "${SDIST_SHA256}  ${sdist}.part" | sha256sum -c --status \
      || { rm -f "${sdist}.part"; die "${SDIST_NAME}: sha256 is not ${SDIST_SHA256}; refusing it"; }
    mv "${sdist}.part" "$sdist"
  fi

  log "building libheif ${LIBHEIF_VERSION} (from ${SDIST_NAME}) into $CACHE (a few minutes, once)"
  rm -rf "$CACHE"
  mkdir -p "$CACHE/src"
  tar -C "$CACHE/src" --strip-components=2 -xzf "$sdist" \
    "pylibheif-1.25.0/third_party/libheif"
  grep -q "project(libheif LANGUAGES C CXX VERSION ${LIBHEIF_VERSION})" "$CACHE/src/libheif/CMakeLists.txt" \
    || die "the source distribution does not hold libheif ${LIBHEIF_VERSION}"

  # The `mask` region encoder is compiled in whatever the options say, and registered as an
  # encoder plugin; mediagate encodes nothing with libheif, so it is not registered.
  sed -i '/register_encoder(get_encoder_plugin_mask());/d' "$CACHE/src/libheif/libheif/plugin_registry.cc"
  ! grep -q 'get_encoder_plugin_mask()' "$CACHE/src/libheif/libheif/plugin_registry.cc" \
    || die "could not unregister libheif's mask encoder"
  # heifio is only for libheif's example programs and needs libpng/libjpeg/libtiff headers.
  sed -i 's/^\s*add_subdirectory(heifio)//' "$CACHE/src/libheif/CMakeLists.txt"
  off=(BUILD_SHARED_LIBS BUILD_TESTING BUILD_DOCUMENTATION WITH_EXAMPLES WITH_EXAMPLE_HEIF_THUMB
       WITH_EXAMPLE_HEIF_VIEW WITH_GDK_PIXBUF ENABLE_PLUGIN_LOADING ENABLE_EXPERIMENTAL_FEATURES
       WITH_LIBSHARPYUV WITH_UNCOMPRESSED_CODEC WITH_HEADER_COMPRESSION WITH_FUZZERS
       WITH_X265 WITH_X264 WITH_KVAZAAR WITH_UVG266 WITH_VVDEC WITH_VVENC WITH_OpenH264_DECODER
       WITH_OpenH264_ENCODER WITH_AOM_DECODER WITH_AOM_ENCODER WITH_SvtEnc WITH_RAV1E
       WITH_JPEG_DECODER WITH_JPEG_ENCODER WITH_OpenJPEG_ENCODER WITH_OpenJPEG_DECODER
       WITH_FFMPEG_DECODER WITH_OPENJPH_ENCODER WITH_WEBCODECS WITH_LIBDE265_PLUGIN
       WITH_DAV1D_PLUGIN)
  on=(WITH_LIBDE265 WITH_DAV1D WITH_REDUCED_VISIBILITY ENABLE_MULTITHREADING_SUPPORT
      ENABLE_PARALLEL_TILE_DECODING)
  defs=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$CACHE" -DCMAKE_INSTALL_LIBDIR=lib
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON)
  for k in "${off[@]}"; do defs+=("-D$k=OFF"); done
  for k in "${on[@]}"; do defs+=("-D$k=ON"); done
  cmake -S "$CACHE/src/libheif" -B "$CACHE/build" "${defs[@]}" >"$CACHE/cmake.log" 2>&1 \
    || { tail -30 "$CACHE/cmake.log" >&2; die "cmake configure failed (log: $CACHE/cmake.log)"; }
  # The configure step must have found both decoders: a libheif without them builds fine and
  # then refuses every HEIC/AVIF at run time.
  for lib in LIBDE265 DAV1D; do
    grep -qE "^${lib}_LIBRARY:FILEPATH=/" "$CACHE/build/CMakeCache.txt" \
      || die "libheif's configure found no ${lib} (log: $CACHE/cmake.log)"
  done
  cmake --build "$CACHE/build" -j"$(nproc)" >"$CACHE/build.log" 2>&1 \
    || { tail -30 "$CACHE/build.log" >&2; die "libheif build failed (log: $CACHE/build.log)"; }
  cmake --install "$CACHE/build" >>"$CACHE/build.log" 2>&1 || die "libheif install failed"
  # pkg-config relative to the .pc files, so the tree can be linked to from anywhere.
  sed -i "s|^prefix=.*|prefix=\${pcfiledir}/../..|" "$CACHE/lib/pkgconfig/libheif.pc"
  rm -rf "$CACHE/build" "$CACHE/src"
  touch "$CACHE/.done"
  log "built libheif ${LIBHEIF_VERSION}"
fi

mkdir -p .tools
[[ "$(readlink "$LINK" 2>/dev/null || true)" == "$CACHE" ]] || ln -sfn "$CACHE" "$LINK"
# rustc bundles a static library into the rlib of the crate that links it: libheif-sys built
# against another libheif would keep that one, silently. The target folder records which libheif
# its libheif-sys was built against (a cached target folder, as the Dockerfile's, outlives the
# link); when that is not this one, libheif-sys is rebuilt.
STAMP=target/.libheif-build
if [[ -d target && "$(cat "$STAMP" 2>/dev/null || true)" != "$CACHE" ]]; then
  if [[ -f "$STAMP" ]] || compgen -G "target/*/build/libheif-sys-*" >/dev/null; then
    log "libheif changed: cleaning libheif-sys so the next build links this one"
    cargo clean --quiet --release -p libheif-sys 2>/dev/null || true
    cargo clean --quiet -p libheif-sys 2>/dev/null || true
  fi
fi
mkdir -p target && echo "$CACHE" >"$STAMP"
