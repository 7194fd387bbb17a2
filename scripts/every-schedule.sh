#!/usr/bin/env bash
# Every built-in schedule kvnode can run, one run each, as a Markdown table: the verdict, the
# operations and what the checker said. Runs go to a temporary directory, removed at the end.
#
#   scripts/every-schedule.sh SECONDS [bench run flags...]
#   scripts/every-schedule.sh 20 --protocol zab --nodes 5 --profile register --seed 1
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/every-schedule.sh SECONDS [bench run flags...]}
shift
cargo build --release --bin bench >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "bench run --nemesis NAME --time-limit ${seconds}s $*"
echo
echo "| schedule | verdict | operations |"
echo "|---|---|---|"
bad=0
# The message-level schedules need nodes whose messages pass through the bench (Maelstrom).
for name in $(./target/release/bench nemeses | awk '/message-level/ {next} {print $1}'); do
    code=0
    ./target/release/bench run --nemesis "$name" --time-limit "${seconds}s" "$@" --out "$out/$name" \
        >"$out/$name.txt" 2>&1 || code=$?
    case $code in
        0) verdict=valid ;;
        1) verdict=invalid ;;
        2) verdict=unknown ;;
        *) verdict="error: $(tail -1 "$out/$name.txt" | cut -c1-120 | tr '|' '/')" ;;
    esac
    [ "$code" = 0 ] || bad=$((bad + 1))
    ops=$(grep -m1 -o '[0-9]* operations ([^)]*)' "$out/$name.txt" || true)
    echo "| $name | $verdict | $ops |"
done
echo
echo "$bad not valid"
