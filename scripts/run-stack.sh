#!/usr/bin/env bash
# Starts the local stack in the foreground: ward-registry, then each service registered
# in it, then ward-gateway in front of them (127.0.0.1:8080). Ctrl-C reaches the services directly (they share this terminal's process group)
# and they shut down gracefully, deregistering first; the registry, in a session of its
# own, is stopped last, once they are gone. SIGTERM to this script does the same.
# Databases are SQLite files under $WARD_DATA (default ./data).
# With WARD_REGISTRY set (say etcd://127.0.0.1:2379,127.0.0.1:22379), no ward-registry is
# started and every service registers there instead.
set -uo pipefail
BIN=${BIN:-build/bin}
REGISTRY_ADDR=${WARD_REGISTRY_ADDR:-127.0.0.1:8500}
REGISTRY_URL=${WARD_REGISTRY:-}
# The services' SQLite files (WARD_DATA; a PostgreSQL URL per service via --db otherwise).
DATA=${WARD_DATA:-$PWD/data}
mkdir -p "$DATA"

registry=
if [ -z "$REGISTRY_URL" ]; then
  setsid "$BIN/ward-registry" --listen "$REGISTRY_ADDR" &
  registry=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://$REGISTRY_ADDR/ready" 2>/dev/null && break
    kill -0 "$registry" 2>/dev/null || { echo "run-stack: ward-registry did not start" >&2; exit 1; }
    sleep 0.1
  done
  REGISTRY_URL="consul://$REGISTRY_ADDR"
fi

services=()
"$BIN/zakat-service" --registry "$REGISTRY_URL" &
services+=($!)
"$BIN/invoice-service" --registry "$REGISTRY_URL" --db "sqlite://$DATA/invoice-service.db" &
services+=($!)
"$BIN/accounting-service" --registry "$REGISTRY_URL" --db "sqlite://$DATA/accounting-service.db" &
services+=($!)
# payment-service calls the two above by name through the registry, so it comes after them.
"$BIN/payment-service" --registry "$REGISTRY_URL" --db "sqlite://$DATA/payment-service.db" &
services+=($!)
# the single entry point: :8080, its built-in routes (/api/...), admin on :9901
"$BIN/ward-gateway" --registry "$REGISTRY_URL" &
services+=($!)

# Ctrl-C already went to every service; a second signal would make them exit at once.
trap ':' INT
trap 'for p in "${services[@]}"; do kill -TERM "$p" 2>/dev/null; done' TERM

for p in "${services[@]}"; do
  while kill -0 "$p" 2>/dev/null; do wait "$p" 2>/dev/null; done
done
[ -n "$registry" ] || exit 0
kill -TERM "$registry" 2>/dev/null
while kill -0 "$registry" 2>/dev/null; do wait "$registry" 2>/dev/null; done
