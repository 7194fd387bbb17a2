#!/usr/bin/env bash
# Whole-process time of `bench check` on Porcupine's samples, best of 15 runs each, beside
# Porcupine v1.3.0's own in-process check time where it was measured (issue 11's figures, taken
# on the 2-core development machine). Usage: scripts/vs-porcupine.sh [DATA_DIR]
# (default ../shared/data/porcupine). Prints a Markdown table.
set -euo pipefail
data=${1:-../shared/data/porcupine}
cargo build --release --bin bench >/dev/null 2>&1
bench=./target/release/bench
best() {
  local b=999999999
  for _ in $(seq 1 15); do
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    e=$(( ($(date +%s%N) - s) / 1000 ))
    (( e < b )) && b=$e
  done
  awk -v us="$b" 'BEGIN { printf "%.1f ms", us / 1000 }'
}
declare -A porcupine=([c50-ok]="138 ms" [c50-bad]="9 ms")
echo "| sample | kvlab, every key | kvlab, --fail-fast | Porcupine v1.3.0 |"
echo "|---|---:|---:|---:|"
for f in c01-ok c01-bad c10-ok c10-bad c50-ok c50-bad; do
  echo "| kv/$f | $(best $bench check "$data/kv/$f.txt") | $(best $bench check --fail-fast "$data/kv/$f.txt") | ${porcupine[$f]:-} |"
done
echo "| startup: \`bench --version\` | $(best $bench --version) | | |"
