#!/usr/bin/env bash
# Whole-process time of `bench check` on Porcupine's samples, best and median of 30 runs each,
# beside Porcupine v1.3.0's own in-process check time where it was measured (issue 11's
# figures, taken on the 2-core development machine). Times come from bash's $EPOCHREALTIME, so
# no clock process is started around each run; `/bin/true` shows what starting any process
# costs here. Usage: scripts/vs-porcupine.sh [DATA_DIR] (default ../shared/data/porcupine).
# Prints a Markdown table.
set -euo pipefail
data=${1:-../shared/data/porcupine}
cargo build --release --bin bench >/dev/null 2>&1
bench=./target/release/bench
runs=30
# "best / median ms" of $runs runs of the command.
timed() {
  local times=()
  for _ in $(seq 1 "$runs"); do
    local s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || true
    local e=$EPOCHREALTIME
    times+=( $(( (${e/./} - ${s/./}) )) )
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" '
    NR == 1 { best = $1 } NR == int((n + 1) / 2) { median = $1 }
    END { printf "%.1f / %.1f ms", best / 1000, median / 1000 }'
}
declare -A porcupine=([c50-ok]="138 ms" [c50-bad]="9 ms")
echo "| sample | kvlab, every key | kvlab, --fail-fast | Porcupine v1.3.0 |"
echo "|---|---:|---:|---:|"
for f in c01-ok c01-bad c10-ok c10-bad c50-ok c50-bad; do
  echo "| kv/$f | $(timed $bench check "$data/kv/$f.txt") | $(timed $bench check --fail-fast "$data/kv/$f.txt") | ${porcupine[$f]:-} |"
done
echo "| startup: \`bench --version\` | $(timed $bench --version) | | |"
echo "| startup: \`/bin/true\` | $(timed /bin/true) | | |"
