#!/usr/bin/env bash
# bench/gateway.sh — ward-gateway against nginx and HAProxy (Debian's), each in front of
# the same zakat-service instance, plus the instance directly. wrk runs on CPU 0, the
# proxy and the backend on CPU 1; rounds are interleaved (direct, nginx, haproxy,
# gateway, each round starting one place later) and the medians of the rounds are
# printed with their ratio to HAProxy's, and the median of the per-round ratios.
#   bench/gateway.sh [ROUNDS] [DURATION_S] [CONNECTIONS]
# The gateway runs as deployed: discovery (a static registry), the service's breaker, an
# inbound rate limit (high enough never to refuse), metrics and the access log on (to a
# file). nginx: upstream keepalive 64, proxy_http_version 1.1, Connection cleared, one
# worker, no access log. HAProxy: http-reuse always, one thread, no log.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
ROUNDS=${1:-5}
DURATION=${2:-8}
CONNS=${3:-64}
for b in zakat-service ward-gateway; do
  [ -x "$BIN/$b" ] || { echo "build first: make build" >&2; exit 1; }
done
for c in wrk nginx haproxy taskset; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] ||
    { echo "$c missing: scripts/deps.sh bench" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

WORK=$(mktemp -d /tmp/ward-bench-gateway-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PZ=$(free_port); PG=$(free_port); PA=$(free_port); PN=$(free_port); PH=$(free_port)

taskset -c 1 "$BIN/zakat-service" --listen "127.0.0.1:$PZ" --no-access-log --log-level warn \
  2>"$WORK/zakat.log" & pids+=($!)

cat > "$WORK/gateway.yaml" <<EOF
routes:
  - prefix: /api/zakat
    service: zakat-service
    rewrite: ""
    rate_limit: {rate: 10000000, burst: 10000000}
EOF
taskset -c 1 "$BIN/ward-gateway" --listen "127.0.0.1:$PG" --admin-listen "127.0.0.1:$PA" \
  --config "$WORK/gateway.yaml" --registry "static:zakat-service=127.0.0.1:$PZ" \
  --log-level info 2>"$WORK/gateway.log" & pids+=($!)

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  upstream zakat { server 127.0.0.1:$PZ; keepalive 64; }
  server {
    listen 127.0.0.1:$PN;
    location /api/zakat/ {
      proxy_pass http://zakat/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
taskset -c 1 "$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" & pids+=($!)

cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$PH
  default_backend be
backend be
  http-request replace-path /api/zakat(/.*) \1
  server z1 127.0.0.1:$PZ
EOF
taskset -c 1 "$HAPROXY" -f "$WORK/haproxy.cfg" -db & pids+=($!)

body='{"wealth":10000,"nisab":5000}'
cat > "$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
EOF
for p in $PZ $PG $PN $PH; do
  path=/calculate; [ "$p" = "$PZ" ] || path=/api/zakat/calculate
  for _ in $(seq 100); do
    curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$p$path" && break
    sleep 0.1
  done
done

# One wrk run: prints "requests/s p50_ms p99_ms".
run() {
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1" |
    awk '/Requests\/sec/ {rps=$2}
         / 50%/ {p50=$2} / 99%/ {p99=$2}
         function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
         END { printf "%.0f %.3f %.3f\n", rps, ms(p50), ms(p99) }'
}
names=(direct nginx haproxy gateway)
urls=("http://127.0.0.1:$PZ/calculate" "http://127.0.0.1:$PN/api/zakat/calculate"
      "http://127.0.0.1:$PH/api/zakat/calculate" "http://127.0.0.1:$PG/api/zakat/calculate")
# each round starts one place later, so that no proxy always runs right after the same
# other one (the machine's state after a run is not the same for all)
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2 3; do
    i=$(( (k + r - 1) % 4 ))
    echo "$r ${names[$i]} $(run "${urls[$i]}")" | tee -a "$WORK/results"
  done
done
echo "medians over $ROUNDS rounds ($DURATION s, $CONNS connections; wrk on CPU 0, proxy + backend on CPU 1):"
for n in "${names[@]}"; do
  med() { grep " $n " "$WORK/results" | awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
  # the median of the per-round ratios to HAProxy: each ratio from runs seconds apart
  ratio=$(awk -v n="$n" '$2 == n {x[$1]=$3} $2 == "haproxy" {h[$1]=$3}
            END {for (r in x) print x[r] / h[r]}' "$WORK/results" | sort -n |
          awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "$n $(med 3) $(med 4) $(med 5) $ratio"
done | awk 'BEGIN {printf "%-8s %10s %8s %8s %10s %12s\n", "", "req/s", "p50 ms", "p99 ms", "vs haproxy", "paired ratio"}
            {n[NR]=$1; r[NR]=$2; p5[NR]=$3; p9[NR]=$4; pr[NR]=$5; if ($1 == "haproxy") h=$2}
            END {for (i = 1; i <= NR; i++) printf "%-8s %10d %8.3f %8.3f %10.3f %12.3f\n", n[i], r[i], p5[i], p9[i], r[i] / h, pr[i]}'
echo "gateway access log lines: $(grep -c '"msg":"request"' "$WORK/gateway.log" || true)"
