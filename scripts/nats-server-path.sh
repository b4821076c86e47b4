# Sourced by the scripts that run the hub or the tests: NATS_SERVER_BIN is the nats-server that
# scripts/install-deps.sh installed in this checkout, unless it is set already.
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/nats-server/bin/nats-server}"
