#!/usr/bin/env bash
# Mutation testing of kvnode's protocol and storage code: cargo-mutants breaks the code one small
# change at a time (a `<` for a `<=`, a function body replaced by a default) and runs the unit
# tests, the WAL tests and the deterministic simulation against each broken copy. A mutant the
# tests do not catch is a bug they could not see. Not part of CI: about an hour on two cores.
# Results go to target/mutants/mutants.out/ (caught.txt, missed.txt, timeout.txt, unviable.txt);
# benchmarks/mutants.md records the latest figures.
#
#   scripts/mutants.sh                      # Paxos, partition, store and WAL
#   scripts/mutants.sh -f kvnode/src/store.rs  # narrower (extra arguments go to cargo-mutants)
#   scripts/mutants.sh zab                  # Zab (and replica.rs, which drives either protocol)
#   scripts/mutants.sh zab --shard 0/5 --sharding round-robin   # a fifth of it, spread evenly
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null; then
    cargo install --locked cargo-mutants@27.1.0
fi
# Simulation seeds per configuration for each mutant (the test suite itself runs more).
export KVLAB_SIM_SEEDS="${KVLAB_SIM_SEEDS:-150}"
if [ "${1:-}" = zab ]; then
    shift
    # Only the tests that run Zab (their names say so) and the fault-free runs of both protocols.
    exec cargo mutants -p kvnode \
        -f 'kvnode/src/zab/*.rs' -f 'kvnode/src/zab/**/*.rs' -f kvnode/src/replica.rs \
        -e kvnode/src/zab/tests.rs \
        --test-package kvnode \
        --cargo-test-arg=--lib --cargo-test-arg=--test=simulation \
        --cargo-test-arg=-- --cargo-test-arg=zab --cargo-test-arg=without_faults \
        --jobs "${JOBS:-2}" --timeout 120 --output target/mutants "$@"
fi
cargo mutants -p kvnode \
    -f 'kvnode/src/paxos/*.rs' -f 'kvnode/src/paxos/**/*.rs' -f kvnode/src/partition.rs -f kvnode/src/store.rs \
    -f 'kvnode/src/wal/*.rs' -e kvnode/src/paxos/tests.rs \
    --test-package kvnode \
    --cargo-test-arg=--lib --cargo-test-arg=--test=simulation --cargo-test-arg=--test=wal \
    --jobs "${JOBS:-2}" --timeout 90 --output target/mutants "$@"
