#!/usr/bin/env bash
# The media sandbox inside the worker's container: the Dockerfile's runtime stage, built on a
# Debian base made with debootstrap (no registry is needed) with this checkout's release binary
# and models copied in, run as uid 10001 under Docker's default seccomp profile. `mediagate
# doctor` there starts a fork server, whose test child tries to open /etc/passwd, create a file,
# connect to 127.0.0.1:5672, run /bin/true and map memory executable; this script fails unless
# each of these is refused, and prints which isolation layers the container allowed.
#
# Usage: scripts/sandbox-in-container.sh   (as root; installs docker.io and debootstrap when
# missing, starts dockerd when none runs; the base image is made once, scripts/docker-lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'sandbox-in-container: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x target/release/mediagate ]] || die "target/release/mediagate is missing: run make build first"
[[ -f models/open-nsfw.onnx && -f models/libonnxruntime.so.1.31.1 ]] || die "models are missing: run make models"

DLOG_NAME=sandbox-in-container
# shellcheck source=docker-lib.sh
source scripts/docker-lib.sh
ensure_engine
ensure_base

# The Dockerfile's runtime stage, with the host's binary and models in place of the other stages.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp target/release/mediagate "$ctx/mediagate"
cp models/open-nsfw.onnx models/libonnxruntime.so.1.31.1 "$ctx/"
awk '/^FROM \$\{DEBIAN_IMAGE\}/ { on = 1 } on' Dockerfile \
  | sed -e "s|^FROM \${DEBIAN_IMAGE}|FROM $STANDIN_BASE|" \
        -e 's|^COPY --from=builder /out/mediagate |COPY mediagate |' \
        -e 's|^COPY --from=models /src/models/open-nsfw.onnx /src/models/libonnxruntime.so.1.31.1 |COPY open-nsfw.onnx libonnxruntime.so.1.31.1 |' \
  >"$ctx/Dockerfile"
grep -q '^FROM ' "$ctx/Dockerfile" || die "the Dockerfile's runtime stage (FROM \${DEBIAN_IMAGE}) was not found"
grep -q '^COPY --from' "$ctx/Dockerfile" && die "the Dockerfile's runtime stage changed: update this script's COPY rewrites"
log "building the runtime stage (mediagate-sandbox-check)"
DOCKER_BUILDKIT=1 "$DOCKER" build -q -t mediagate-sandbox-check "$ctx" >/dev/null

# doctor fails its broker and S3 checks here (nothing listens); its sandbox line is what counts.
out="$("$DOCKER" run --rm --network none mediagate-sandbox-check doctor 2>&1 || true)"
sandbox_refused "$out" "inside the container"
user="$("$DOCKER" run --rm --entrypoint /usr/bin/id mediagate-sandbox-check -u)"
[[ "$user" == 10001 ]] || die "the container runs as uid $user, not 10001"

# And the media work itself under that allowlist: a photo, a video with sound and a voice note,
# the filter on (the classifier's preprocessing runs in the children too).
media="$ctx/media"
mkdir -p "$media"
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 -t 3 \
  -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest "$media/clip.mp4"
ffmpeg -v error -f lavfi -i testsrc2=size=1600x1200 -frames:v 1 "$media/photo.jpg"
ffmpeg -v error -f lavfi -i sine=frequency=300 -t 4 -c:a libopus "$media/voice.ogg"
chmod -R a+rX "$media"
for files in "photo.jpg clip.mp4" "voice.ogg"; do
  args=()
  for f in $files; do args+=("/media/$f"); done
  verdict="$("$DOCKER" run --rm --network none -v "$media:/media:ro" mediagate-sandbox-check \
    inspect "${args[@]}" --recipient-age 16_17 --out /tmp/out)" || die "inspect failed inside the container"
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]); bad=[i for i in v["items"] if i["status"]!="cleared"]; sys.exit(f"not cleared: {bad}" if bad or v["status"]!="cleared" else 0)' "$verdict" \
    || die "inside the container, $files did not come out cleared: $verdict"
  log "inspect $files inside the container: cleared"
done
log "ok: as uid 10001 under Docker's default seccomp profile, a sandbox child could open, create, connect to, run and map nothing"
