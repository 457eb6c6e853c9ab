# mediagate — set-up, run, test and ops targets (GNU make).
#   make run    install what is missing, start local RabbitMQ + S3 when none is configured, run the worker
#   make test   same set-up, then the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# rustup installs cargo in ~/.cargo/bin, which a non-login shell may not have on PATH
export PATH := $(HOME)/.cargo/bin:$(PATH)

BIN            := target/release/mediagate
LOCAL_S3_PORT  := 9310
S3S_FS         := $(CURDIR)/.tools/bin/s3s-fs
BENCH_VENV     := bench/.venv
PYVIPS_VERSION := 3.2.0
# Benchmarks run by `make bench`: one "<package>:<bench target>" per entry; add new ones here.
BENCHES        := mediagate-contract:limits mediagate-media:photo mediagate-media:av mediagate-classify:classify mediagate-sandbox:roundtrip mediagate-hash:hash mediagate:pipeline mediagate:mix

# Integration tests spawn their own s3s-fs from here.
export MEDIAGATE_S3FS_BIN := $(S3S_FS)

# With no S3 endpoint configured, `make run` uses the local s3s-fs started by `make s3`.
ifeq ($(strip $(MEDIAGATE_S3_ENDPOINT)),)
S3_ENV := MEDIAGATE_S3_ENDPOINT=http://127.0.0.1:$(LOCAL_S3_PORT) \
          AWS_ACCESS_KEY_ID=mediagate AWS_SECRET_ACCESS_KEY=mediagate-secret AWS_REGION=us-east-1
else
S3_ENV :=
endif

# Set-up steps must run in order; cargo parallelises the builds itself.
.NOTPARALLEL:

examples-venv:
	@bash scripts/examples-venv.sh

.PHONY: examples-venv help deps rabbitmq s3 stop-s3 build run test realmedia soak ledger-runs bench compose-check fmt lint clean-local

help:
	@echo "make run            set up, start local RabbitMQ/S3 if needed, run the worker"
	@echo "make test           set up, run the whole test suite"
	@echo "make deps           install missing Debian packages and .tools/bin/s3s-fs"
	@echo "make rabbitmq       start the local RabbitMQ if 127.0.0.1:5672 is closed"
	@echo "make s3 / stop-s3   start / stop the local S3 (s3s-fs on 127.0.0.1:$(LOCAL_S3_PORT))"
	@echo "make build          release build of the mediagate binary (and the tests, as make test builds them)"
	@echo "make realmedia      every file of ../shared/realmedia through inspect, against tests/realmedia/expectations.tsv"
	@echo "make sandbox-in-container  the sandbox's checks in the runtime image, uid 10001, Docker's seccomp"
	@echo "make soak           every fault phase with the ledger: DURATION=1800 JOBS=2400 (PHASES=a,b to pick)"
	@echo "make ledger-runs    the ledger RUNS=100 times, fresh worker each, S3 +DELAY_MS=40 ms (lost must be 0)"
	@echo "make bench          benchmarks ($(BENCHES)), pyvips peer in $(BENCH_VENV)"
	@echo "make pdq-realmedia  our PDQ of every real photo against the pdqhash reference (bits apart, per photo)"
	@echo "make reprocess-scale  reprocess --since over HISTORY=999000 manifests: time and S3 requests of the selection"
	@echo "make compose-check  validate docker-compose.yml (and with the stand-ins' override)"
	@echo "make k8s-check      the Kubernetes/KEDA manifest against their schemas, offline"
	@echo "make compose-test   the compose stack built and run under a worker kill, the ledger counting (KEEP=1)"
	@echo "make fmt | lint     rustfmt check | clippy -D warnings"
	@echo "make clean-local    stop the local S3 and delete .local/"

deps:
	@bash scripts/setup-deps.sh

rabbitmq:
	@bash scripts/ensure-rabbitmq.sh

s3:
	@bash scripts/ensure-local-s3.sh

# The nudity classifier's model and ONNX Runtime library, verified against models/SHA256SUMS.
.PHONY: models reference-venv
models:
	@bash scripts/fetch-models.sh

# The reference open_nsfw implementation (Python) the classifier's parity test and bench compare with.
reference-venv: models
	@bash scripts/reference-venv.sh

stop-s3:
	@if [[ -f .local/s3.pid ]]; then \
	  pid=$$(cat .local/s3.pid); \
	  if kill -0 "$$pid" 2>/dev/null; then \
	    kill "$$pid"; \
	    for _ in $$(seq 1 50); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.1; done; \
	    echo "stopped s3s-fs (pid $$pid)"; \
	  fi; \
	  rm -f .local/s3.pid; \
	fi

# The binary is built by the very command `make test` runs (cargo test … --no-run): a plain
# `cargo build -p mediagate` unifies features without the dev-dependencies' (serde_json, regex,
# hashbrown…), so alternating `make test` and `make run` recompiled half the tree each time.
build:
	cargo test --release --locked --workspace --lib --bins --tests --no-run

run: deps rabbitmq s3 models build
	$(S3_ENV) $(BIN) ensure-buckets
	exec env $(S3_ENV) $(BIN) worker

test: deps rabbitmq models reference-venv examples-venv
	@bash scripts/test-summary.sh

# Every real file of ../shared/realmedia (other projects' test media, referenced in place) through
# `mediagate inspect`, each outcome checked against tests/realmedia/expectations.tsv. Fails with a
# clear message where the folder is absent (MEDIAGATE_REALMEDIA=DIR points elsewhere); `make test`
# does not need it. REALMEDIA_ARGS=--write rewrites the table's outcomes from this run.
realmedia: deps models build
	python3 scripts/realmedia.py $(REALMEDIA_ARGS)

# The sandbox inside the worker's container: the Dockerfile's runtime stage on a debootstrap'd
# Debian base with this checkout's binary, as uid 10001 under Docker's default seccomp profile;
# fails unless the test child of doctor's fork server is refused everything and inspect works.
.PHONY: sandbox-in-container
sandbox-in-container: deps models build
	bash scripts/sandbox-in-container.sh

# The soak of crates/mediagate/tests/soak.rs with every fault phase, three workers, the ledger
# accounting for every job after each phase. DURATION (seconds) is the time under faults (all phases),
# JOBS the jobs over all phases; PHASES picks some (window,kill9,sigterm,broker_restart,
# connections_cut,s3_refuse,s3_errors,mixed). It restarts the local broker (broker_restart).
DURATION ?= 1800
JOBS ?= 2400
PHASES ?=
soak: deps rabbitmq models
	MEDIAGATE_SOAK_FULL=1 MEDIAGATE_SOAK_SECONDS=$(DURATION) MEDIAGATE_SOAK_JOBS=$(JOBS) MEDIAGATE_SOAK_PHASES=$(PHASES) \
	  cargo test --release --locked -p mediagate --test soak

# The ledger RUNS times against a fresh worker (concurrency 2) behind an S3 answering DELAY_MS
# late, JOBS small photos each run, then BASELINE_RUNS runs on loopback for the throughput ratio.
RUNS ?= 100
DELAY_MS ?= 40
BASELINE_RUNS ?= 10
LEDGER_JOBS ?= 200
ledger-runs: deps rabbitmq models
	MEDIAGATE_SOAK_MODE=runs MEDIAGATE_SOAK_RUNS=$(RUNS) MEDIAGATE_SOAK_DELAY_MS=$(DELAY_MS) \
	  MEDIAGATE_SOAK_BASELINE_RUNS=$(BASELINE_RUNS) MEDIAGATE_SOAK_JOBS=$(LEDGER_JOBS) \
	  cargo test --release --locked -p mediagate --test soak

# Our PDQ of every real photo of ../shared/realmedia against the pdqhash reference over Pillow's
# decode: the Hamming distances, and the photos rated quality >= 80 within 10 bits and further;
# fails on a photo further from the reference than tests/realmedia/pdq-baseline.tsv records.
.PHONY: pdq-realmedia
pdq-realmedia: deps models build reference-venv
	.local/venv-ref/bin/python scripts/pdq-realmedia.py --baseline tests/realmedia/pdq-baseline.tsv

# `reprocess --since` over HISTORY manifests (default 999,000 laid down directly, with their
# index) plus SELECTED jobs through a real worker: the selection's time and its S3 requests,
# counted by a proxy (issue 25). Not part of `make test` (minutes, ~3 GB of small files).
.PHONY: reprocess-scale
reprocess-scale: deps rabbitmq models build examples-venv
	.local/venv-examples/bin/python scripts/reprocess-scale.py

bench: export MEDIAGATE_BENCH_PYTHON := $(CURDIR)/$(BENCH_VENV)/bin/python
# The benches' temporary folders (the local S3's buckets among them) on tmpfs when there is one:
# on disk, what the filesystem went through before (millions of files created and deleted by
# `make reprocess-scale`) cost s3s-fs ~7 % of the machine in ext4 inode allocation.
bench: export TMPDIR := $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))
bench: deps rabbitmq models reference-venv
	@if ! $(BENCH_VENV)/bin/python -c 'import sys, pyvips; sys.exit(pyvips.__version__ != "$(PYVIPS_VERSION)")' 2>/dev/null; then \
	  echo "setting up $(BENCH_VENV) with pyvips==$(PYVIPS_VERSION)"; \
	  python3 -m venv $(BENCH_VENV); \
	  $(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check pyvips==$(PYVIPS_VERSION); \
	fi
	@for b in $(BENCHES); do \
	  echo "== cargo bench -p $${b%%:*} --bench $${b#*:}"; \
	  cargo bench --locked -p "$${b%%:*}" --bench "$${b#*:}"; \
	done

compose-check:
	docker-compose -f docker-compose.yml config -q
	docker-compose -f docker-compose.yml -f deploy/compose/standins.yml config -q

# docker-compose.yml run as operators run it, on the image the Dockerfile builds, with stand-ins
# for the images no registry here can give (deploy/standins/): the smoke scenario (2 workers, a
# mixed batch through the ledger, a worker killed mid-batch); FULL=1 adds the fleet under faults
# (see scripts/compose-test.sh). Lost must be 0. Installs and starts the Docker engine when
# missing. SCENARIOS=smoke,fleet picks; KEEP=1 leaves the last stack up.
# deploy/kubernetes/mediagate.yaml against the Kubernetes schemas (kubernetes-validate) and KEDA's
# CRD models (cloudcoil.models.keda), both from PyPI, offline; and the worker's securityContext.
.PHONY: k8s-check
k8s-check:
	bash scripts/k8s-check.sh

.PHONY: compose-test
FULL ?= 0
SCENARIOS ?=
compose-test: deps models build examples-venv
	FULL=$(FULL) SCENARIOS=$(SCENARIOS) bash scripts/compose-test.sh

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --release --locked --workspace --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks

clean-local: stop-s3
	rm -rf .local

# Instruction counts of one 12 MP photo through process_photo under callgrind (counts, unlike
# wall time, do not move with the machine's load): the photo bench's JPEG (made by `make bench`
# or by the photo bench alone), its profile in .local/profile/, the costliest functions printed.
PROFILE_INPUT ?= target/bench-media/photo-12mp.jpg
.PHONY: profile-photo
profile-photo: deps
	@command -v valgrind >/dev/null || { echo "profile-photo: valgrind is missing: apt-get install valgrind (Debian)"; exit 1; }
	@test -f "$(PROFILE_INPUT)" || { echo "profile-photo: $(PROFILE_INPUT) is missing: run \`cargo bench -p mediagate-media --bench photo\` once (it makes it), or set PROFILE_INPUT"; exit 1; }
	cargo build --release --locked -p mediagate-media --example photo_once
	mkdir -p .local/profile
	valgrind --tool=callgrind --callgrind-out-file=.local/profile/photo.callgrind target/release/examples/photo_once "$(PROFILE_INPUT)" 1
	callgrind_annotate --inclusive=yes .local/profile/photo.callgrind | head -60

# cargo-fuzz (libFuzzer) targets in fuzz/, each for FUZZ_SECONDS (default 60); FUZZ_TARGETS picks
# some of job_parse sniff photo heif probe_av. Installs cargo-fuzz if missing, builds with
# RUSTC_BOOTSTRAP=1 into fuzz/target, exits non-zero on a crash and prints the crashing input.
.PHONY: fuzz
fuzz:
	@FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_SANITIZER="$(FUZZ_SANITIZER)" FUZZ_ARGS="$(FUZZ_ARGS)" bash scripts/fuzz.sh
