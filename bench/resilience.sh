#!/usr/bin/env bash
# bench/resilience.sh — ns/op of the breaker and the limiter hot paths; both threads of
# the two-thread cases run on the two CPUs (taskset 0,1), the one-thread case on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
OPS=${1:-5000000}
[ -x "$BIN/bench-resilience" ] || { echo "build first: make build" >&2; exit 1; }
taskset -c 0,1 "$BIN/bench-resilience" "$OPS"
