#!/usr/bin/env bash
# How often does a schedule catch a bug (or pass a correct store)? Runs `bench run` with the
# given flags once per seed 1..RUNS and prints one line per run (seed, verdict, the first line of
# the explanation) and the tally. Runs go to a temporary directory, removed at the end.
#
#   scripts/catch-rate.sh RUNS [bench run flags...]
#   scripts/catch-rate.sh 10 --protocol zab --node-arg=--unsafe-skip-sync \
#       --nemesis leader-churn --profile registers --time-limit 60s
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: scripts/catch-rate.sh RUNS [bench run flags...]}
shift
cargo build --release --bin bench >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
declare -A tally=([valid]=0 [invalid]=0 [unknown]=0 [error]=0)
echo "bench run $* --seed 1..$runs"
echo
echo "| seed | verdict | first line of the explanation |"
echo "|---:|---|---|"
for seed in $(seq 1 "$runs"); do
    code=0
    ./target/release/bench run "$@" --seed "$seed" --out "$out/$seed" >"$out/$seed.txt" 2>&1 || code=$?
    case $code in
        0) verdict=valid ;;
        1) verdict=invalid ;;
        2) verdict=unknown ;;
        *) verdict=error ;;
    esac
    tally[$verdict]=$((tally[$verdict] + 1))
    # The first anomaly's explanation (the line after its key's), the reason for unknown, or the
    # error.
    case $verdict in
        invalid) why=$(grep -m1 -A1 'is not linearizable:' "$out/$seed.txt" | sed -n 2p) ;;
        unknown) why=$(grep -m1 -E '^UNKNOWN' "$out/$seed.txt") ;;
        error) why=$(tail -1 "$out/$seed.txt") ;;
        *) why= ;;
    esac
    why=$(printf '%s' "$why" | sed 's/^ *//' | cut -c1-200 | tr '|' '/')
    echo "| $seed | $verdict | ${why:-} |"
done
echo
echo "valid ${tally[valid]}, invalid ${tally[invalid]}, unknown ${tally[unknown]}, error ${tally[error]} of $runs runs"
