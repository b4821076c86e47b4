#!/usr/bin/env bash
# Runs the hub with a demo load: its own nats-server, a sample of every event type, the API.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/nats-server-path.sh
exec cargo run --release -p sgd-hub --bin hub -- demo "$@"
