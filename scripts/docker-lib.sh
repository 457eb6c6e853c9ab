# Shared by the scripts that run containers (sourced, not run): a Docker engine, and the stand-in
# images built from what the registries give when no container registry can be reached.
#
#   source scripts/docker-lib.sh
#   ensure_engine            # installs docker.io / docker-compose / debootstrap when missing, starts dockerd
#   ensure_base              # mediagate-standin/debian:bookworm-slim (debootstrap minbase, cached)
#   ensure_standin NAME TAG  # deploy/standins/NAME/Dockerfile built on the base, tagged
#                            # mediagate-standin/NAME:TAG; rebuilt only when its folder changes
#
# Stand-ins are never tagged with an official image's name: what ran is always visible.

STANDIN_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mediagate"
STANDIN_BASE=mediagate-standin/debian:bookworm-slim

# Debian's docker.io client (20.10) goes with its engine; another `docker` earlier on PATH (a
# newer client without buildx) would turn `docker build` into an error.
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

dlog() { printf '%s: %s\n' "${DLOG_NAME:-docker}" "$*" >&2; }
ddie() { dlog "error: $*"; exit 1; }

ensure_engine() {
  local need=()
  [[ -x /usr/sbin/dockerd ]] || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if ((${#need[@]})); then
    dlog "installing ${need[*]} (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
  if ! "$DOCKER" info >/dev/null 2>&1; then
    dlog "starting dockerd (log: /var/log/dockerd.log)"
    (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
    local _
    for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
    "$DOCKER" info >/dev/null 2>&1 || ddie "dockerd did not start (see /var/log/dockerd.log)"
  fi
}

# The host's own Debian mirror (one-line or deb822 sources), else deb.debian.org.
debian_mirror() {
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -vE '^\s*#' | grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

# Debian bookworm minbase from Debian's archive, with the sources the official slim image has
# (bookworm, bookworm-updates, bookworm-security) and no package lists, plus ca-certificates and
# the host's own local CAs (/usr/local/share/ca-certificates: a machine that reaches the
# registries through a TLS-inspecting proxy needs them for PyPI and crates.io inside builds).
# Made once per machine and per set of local CAs.
ensure_base() {
  local cas want have tar
  cas="$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-12)"
  want="bookworm-minbase-v3-$cas"
  have="$("$DOCKER" image inspect -f '{{ index .Config.Labels "mediagate.standin.hash" }}' "$STANDIN_BASE" 2>/dev/null || true)"
  [[ "$have" == "$want" ]] && return 0
  tar="$STANDIN_CACHE/debian-$want.tar"
  if [[ ! -f "$tar" ]]; then
    local mirror root
    mirror="$(debian_mirror)"
    dlog "debootstrap bookworm (minbase) from $mirror (about a minute, once per machine)"
    root="$(mktemp -d)"
    [[ -n "$root" && "$root" != / ]] || ddie "mktemp gave no folder"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >/dev/null
    rm -f "$root/etc/apt/sources.list"
    printf '%s\n' "Types: deb" "URIs: ${mirror}" "Suites: bookworm bookworm-updates" "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
      "Types: deb" "URIs: http://deb.debian.org/debian-security" "Suites: bookworm-security" "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" >"$root/etc/apt/sources.list.d/debian.sources"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    fi
    chroot "$root" update-ca-certificates >/dev/null
    chroot "$root" apt-get clean
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
    mkdir -p "$STANDIN_CACHE"
    tar -C "$root" -cf "$tar.part" . && mv "$tar.part" "$tar"
    rm -rf "$root"
  fi
  "$DOCKER" import -c 'CMD ["bash"]' -c "LABEL mediagate.standin.hash=$want" "$tar" "$STANDIN_BASE" >/dev/null
  dlog "imported $STANDIN_BASE (Debian bookworm minbase made with debootstrap, with the host's local CAs)"
}

# ensure_standin NAME TAG [CONTEXT [EXTRA]]: builds deploy/standins/NAME/Dockerfile (context: that
# folder, or CONTEXT) on the base unless an image with the same hash (of the folder, and of EXTRA:
# what else goes in, such as a binary's hash, and of the base image) already exists.
ensure_standin() {
  local name="$1" tag="$2" ctx="${3:-deploy/standins/$1}" extra="${4:-}" dir="deploy/standins/$1" hash image
  hash="$( (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$extra"
    "$DOCKER" image inspect -f '{{.Id}}' "$STANDIN_BASE") | sha256sum | cut -c1-12)"
  image="mediagate-standin/$name:$tag"
  if [[ "$("$DOCKER" image inspect -f '{{ index .Config.Labels "mediagate.standin.hash" }}' "$image" 2>/dev/null)" == "$hash" ]]; then
    return 0
  fi
  dlog "building $image (stand-in, from $dir)"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --label "mediagate.standin.hash=$hash" --build-arg "BASE=$STANDIN_BASE" \
    -f "$dir/Dockerfile" -t "$image" "$ctx" >/dev/null || ddie "building $image failed"
}

# sandbox_refused DOCTOR_OUTPUT WHERE: doctor's sandbox line, checked. Its fork server forks a test
# child that locks down as an item's child does and tries to open /etc/passwd, create a file,
# connect to 127.0.0.1:5672, run /bin/true and map memory executable; each must have been refused,
# and the check must pass. Prints the line.
sandbox_refused() {
  local line what
  line="$(grep -E '^(✔|✘) +sandbox:' <<<"$1" || true)"
  [[ -n "$line" ]] || { echo "$1" >&2; ddie "$2: doctor printed no sandbox line"; }
  for what in "open /etc/passwd" "create " "connect to 127.0.0.1:5672" "run /bin/true" "map memory executable"; do
    grep -qE "${what}[^,]*: Operation not permitted" <<<"$line" \
      || ddie "$2: a locked-down child was not refused: ${what}"
  done
  [[ "$line" == ✔* ]] || { echo "$1" >&2; ddie "$2: doctor's sandbox check failed"; }
  echo "$line"
}
