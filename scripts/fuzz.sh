#!/usr/bin/env bash
# The long fuzz run: the hostile-input property tests of the validator (schemas/tests/hostile.rs)
# and of the FHIR and CSV parsers (adapters/tests/hostile.rs), run again and again with fresh
# random seeds for MINUTES minutes (default 20), niced, with CASES cases per property per round.
#
#   scripts/fuzz.sh [MINUTES] [CASES]
#
# A failure stops the run. proptest writes its seed to schemas/tests/hostile.proptest-regressions
# or adapters/tests/hostile.proptest-regressions (commit that file: the suite replays it), and the
# validator's failing input is saved under target/fuzz-failures/ (add it to schemas/tests/hostile/
# as <name>.<expected reason>.json, with a fix). At the end it prints the rounds and cases run.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0

minutes=${1:-20}
cases=${2:-5000}
save_dir="$PWD/target/fuzz-failures"
mkdir -p "$save_dir"

# Build once, then run the test binaries directly (no cargo lock taken while fuzzing).
binary() {
  nice -n 10 cargo test -p "$1" --test hostile --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1
}
schemas_bin=$(binary sgd-schemas)
adapters_bin=$(binary sgd-adapters)
[ -x "$schemas_bin" ] && [ -x "$adapters_bin" ] || { echo "fuzz: could not build the hostile tests" >&2; exit 1; }

# Property tests per binary (the corpus replay is not a property).
schema_props=4
adapter_props=5

rounds=0
total=0
started=$(date +%s)
deadline=$((started + minutes * 60))
while [ "$(date +%s)" -lt "$deadline" ]; do
  rounds=$((rounds + 1))
  SGD_FUZZ_SAVE_DIR="$save_dir" PROPTEST_CASES="$cases" nice -n 10 \
    "$schemas_bin" --test-threads 2 >"$save_dir/last-schemas.log" 2>&1 || {
    cat "$save_dir/last-schemas.log"
    echo "fuzz: schemas failed in round $rounds after $total cases" >&2
    exit 1
  }
  total=$((total + cases * schema_props))
  PROPTEST_CASES="$cases" nice -n 10 \
    "$adapters_bin" --test-threads 2 >"$save_dir/last-adapters.log" 2>&1 || {
    cat "$save_dir/last-adapters.log"
    echo "fuzz: adapters failed in round $rounds after $total cases" >&2
    exit 1
  }
  total=$((total + cases * adapter_props))
  echo "fuzz: round $rounds done, $total cases so far, $(($(date +%s) - started)) s"
done
echo "fuzz: $rounds rounds, $total cases ($cases per property per round: validator $((rounds * cases * schema_props)), FHIR/CSV $((rounds * cases * adapter_props))) in $(($(date +%s) - started)) s, no failure"
