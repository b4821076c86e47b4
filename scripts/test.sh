#!/usr/bin/env bash
# Runs the whole test suite. Tests start their own nats-server processes on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python
cargo fmt --all -- --check
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
