#!/usr/bin/env bash
# Builds the libheif that mediagate links (statically) for HEIC/HEIF/AVIF photos, once per
# machine and per change of this script, into a per-user cache; .tools/libheif points at it, and
# .cargo/config.toml points libheif-sys's pkg-config probe there.
#
# Source: the libheif that the `libheif-sys` crate vendors (crates.io, checked by Cargo.lock's
# sha256 like every crate), so nothing is downloaded from outside the registries. Codecs compiled
# in (no plugin loading, so nothing is dlopen'ed at run time): libde265 (HEVC → HEIC) and dav1d
# (AV1 → AVIF), both Debian's shared libraries. No encoders: mediagate only decodes HEIF.
#
# Usage: scripts/build-libheif.sh   (idempotent; quiet when the build is there)
set -euo pipefail
cd "$(dirname "$0")/.."

SYS_CRATE="libheif-sys"
log() { printf 'build-libheif: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The version Cargo.lock pins, e.g. 5.3.1+1.23.1 (crate version + libheif version).
crate_version="$(awk -v name="$SYS_CRATE" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[[ -n "$crate_version" ]] || die "$SYS_CRATE is not in Cargo.lock"
libheif_version="${crate_version#*+}"

SELF_HASH="$(sha256sum "$0" | cut -c1-12)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mediagate/libheif-${libheif_version}-${SELF_HASH}"
LINK=.tools/libheif

if [[ ! -f "$CACHE/.done" ]]; then
  command -v cmake >/dev/null || die "cmake not found (make deps installs it)"
  pkg-config --exists libde265 dav1d || die "libde265-dev and libdav1d-dev are needed (make deps installs them)"
  # The crate's source, from cargo's registry cache (cargo fetch brings it when missing).
  cargo fetch --locked --quiet >/dev/null
  src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "${SYS_CRATE}-${crate_version}" | head -1)"
  [[ -n "$src" && -f "$src/vendor/libheif/CMakeLists.txt" ]] || die "no vendored libheif in ${SYS_CRATE}-${crate_version}"
  log "building libheif ${libheif_version} (from ${SYS_CRATE} ${crate_version}) into $CACHE (a few minutes, once)"
  rm -rf "$CACHE"
  mkdir -p "$CACHE/build"
  cp -r "$src/vendor/libheif" "$CACHE/src"
  chmod -R u+w "$CACHE/src"
  # heifio is only for libheif's example programs and needs libpng/libjpeg/libtiff headers.
  sed -i 's/^\s*add_subdirectory(heifio)//' "$CACHE/src/CMakeLists.txt"

  off=(BUILD_SHARED_LIBS BUILD_TESTING BUILD_DOCUMENTATION WITH_EXAMPLES WITH_EXAMPLE_HEIF_THUMB
       WITH_EXAMPLE_HEIF_VIEW WITH_GDK_PIXBUF ENABLE_PLUGIN_LOADING ENABLE_EXPERIMENTAL_FEATURES
       WITH_LIBSHARPYUV WITH_UNCOMPRESSED_CODEC WITH_HEADER_COMPRESSION WITH_FUZZERS
       WITH_X265 WITH_X264 WITH_KVAZAAR WITH_UVG266 WITH_VVDEC WITH_VVENC WITH_OpenH264_DECODER
       WITH_AOM_DECODER WITH_AOM_ENCODER WITH_SvtEnc WITH_RAV1E WITH_JPEG_DECODER
       WITH_JPEG_ENCODER WITH_OpenJPEG_ENCODER WITH_OpenJPEG_DECODER WITH_FFMPEG_DECODER
       WITH_OPENJPH_ENCODER WITH_WEBCODECS WITH_LIBDE265_PLUGIN WITH_DAV1D_PLUGIN)
  on=(WITH_LIBDE265 WITH_DAV1D WITH_REDUCED_VISIBILITY ENABLE_MULTITHREADING_SUPPORT
      ENABLE_PARALLEL_TILE_DECODING)
  defs=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$CACHE" -DCMAKE_INSTALL_LIBDIR=lib
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON)
  for k in "${off[@]}"; do defs+=("-D$k=OFF"); done
  for k in "${on[@]}"; do defs+=("-D$k=ON"); done
  cmake -S "$CACHE/src" -B "$CACHE/build" "${defs[@]}" >"$CACHE/cmake.log" 2>&1 \
    || { tail -30 "$CACHE/cmake.log" >&2; die "cmake configure failed (log: $CACHE/cmake.log)"; }
  # The configure step must have found both decoders: a libheif without them builds fine and
  # then refuses every HEIC at run time.
  grep -qiE "libde265.*(found|yes)" "$CACHE/cmake.log" || log "warning: check libde265 in $CACHE/cmake.log"
  cmake --build "$CACHE/build" -j"$(nproc)" >"$CACHE/build.log" 2>&1 \
    || { tail -30 "$CACHE/build.log" >&2; die "libheif build failed (log: $CACHE/build.log)"; }
  cmake --install "$CACHE/build" >>"$CACHE/build.log" 2>&1 || die "libheif install failed"
  # pkg-config relative to the .pc file, so the tree can be linked to from anywhere.
  sed -i "s|^prefix=.*|prefix=\${pcfiledir}/../..|" "$CACHE/lib/pkgconfig/libheif.pc"
  rm -rf "$CACHE/build" "$CACHE/src"
  touch "$CACHE/.done"
  log "built libheif ${libheif_version}"
fi

mkdir -p .tools
if [[ "$(readlink "$LINK" 2>/dev/null || true)" != "$CACHE" ]]; then
  ln -sfn "$CACHE" "$LINK"
fi
