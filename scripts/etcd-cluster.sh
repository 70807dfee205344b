#!/usr/bin/env bash
# Runs a local three-member etcd cluster in the foreground, for running the stack on etcd:
#   scripts/etcd-cluster.sh            # clients on 127.0.0.1:2379, :22379, :32379
#   WARD_REGISTRY=etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 make run
# Ctrl-C stops the members; their data stays in $ETCD_DATA (default $TMPDIR/ward-etcd-local)
# so that a restart finds the cluster again; delete it for a fresh one.
set -euo pipefail
command -v etcd >/dev/null || "$(dirname "$0")/deps.sh" etcd
DATA=${ETCD_DATA:-${TMPDIR:-/tmp}/ward-etcd-local}
cluster=m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380
state=new
[ -d "$DATA/m1" ] && state=existing
pids=()
for m in 1 2 3; do
  case $m in 1) c=2379 p=2380 ;; 2) c=22379 p=22380 ;; 3) c=32379 p=32380 ;; esac
  mkdir -p "$DATA"
  etcd --name "m$m" --data-dir "$DATA/m$m" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" \
    --initial-cluster-token ward-local --logger zap --log-level warn &
  pids+=($!)
done
# Background jobs of a script ignore SIGINT, so Ctrl-C reaches the members through this
# trap. A leader whose peers are leaving can hang in its leadership transfer: after 5 s,
# SIGKILL (the data is safe in the WAL).
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || exit 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM
echo "etcd-cluster: members on 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 (Ctrl-C stops)" >&2
wait
