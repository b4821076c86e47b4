#!/usr/bin/env bash
# Runs the whole test suite. Tests start their own nats-server processes on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python
source scripts/nats-server-path.sh
"$NATS_SERVER_BIN" --version
cargo fmt --all -- --check
# One invocation (library, binaries, examples, integration and doc tests) so every crate is
# compiled once, with one set of features: the defaults less the hub's jemalloc allocator, whose
# C build would be ~7% of the suite's compile time and which no test depends on (clippy and the
# benchmark build it). The benchmark's own target is compiled by clippy; its library runs in the
# suite (hub/tests/bench_smoke.rs).
cargo test --workspace --no-default-features "$@"
# The API fuzzer (docs/testing.md, "The API fuzzer"): every role's token against docs/openapi.json
# on a demo hub, with a fixed seed so a run repeats; bounded to a few minutes.
python3 scripts/api_fuzz.py --max-examples "${API_FUZZ_EXAMPLES:-20}" --seed 1
# The oldest supported nats-server (Debian 12's 2.9.10, docs/operations.md "NATS server
# versions"): the end-to-end tests of NATS security (per-principal nkeys, consumers, KV) and the
# hand-computed goals scenario again, when the whole suite was asked for.
oldest=.tools/nats-server-oldest/usr/sbin/nats-server
if [ $# -eq 0 ] && [ "${SGD_TEST_OLDEST_NATS:-1}" != 0 ] && [ -x "$oldest" ]; then
  echo "again against $("$oldest" --version)"
  NATS_SERVER_BIN="$PWD/$oldest" cargo test --workspace --no-default-features --test e2e -- security:: read_model::goals_follow_up
fi
