#!/usr/bin/env bash
# kvnode and etcd side by side on this machine: the same workload (ycsb-a: 50% reads, 50% writes,
# zipfian over 1000 keys, 32 clients, closed loop), no faults, 3 nodes each, one run after the
# other; writes benchmarks/systems.md with throughput and service-time quantiles from each run's
# results.json.
#
#   scripts/systems.sh [SECONDS]        (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v etcd >/dev/null || { echo "systems.sh: no etcd on PATH (Debian: apt-get install etcd-server)" >&2; exit 1; }
cargo build --release --bin bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

row() { # system label
    local system=$1 label=$2
    ./target/release/bench run --system "$system" --profile ycsb-a --nemesis none \
        --time-limit "${seconds}s" --seed 1 --out "$out/$system" >/dev/null 2>&1 || true
    python3 - "$out/$system/latest/results.json" "$label" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
def q(f, k): return r["service_time"][f][k]
print(f"| {sys.argv[2]} | {r['verdict']} | {r['throughput_ops_per_s']:,.0f} | "
      f"{q('read','p50_ms'):.2f} | {q('read','p99_ms'):.2f} | "
      f"{q('write','p50_ms'):.2f} | {q('write','p99_ms'):.2f} |")
EOF
}

{
    echo "# kvnode and etcd side by side"
    echo
    echo "\`scripts/systems.sh $seconds\` on one $(nproc)-core machine: \`bench run --system S --profile ycsb-a"
    echo "--nemesis none --time-limit ${seconds}s --seed 1\`, 3 nodes each, the same clients, recorder and checker;"
    echo "$(etcd --version | head -1) (Debian's etcd-server, default settings but a 100 ms heartbeat)."
    echo "Service time (invocation to completion) in ms; etcd reads are linearizable (its default)."
    echo
    echo "| system | verdict | ops/s | read p50 | read p99 | write p50 | write p99 |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    row kvnode kvnode
    row etcd etcd
} > benchmarks/systems.md
cat benchmarks/systems.md
