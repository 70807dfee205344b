#!/usr/bin/env bash
# bench/zakat.sh — zakat-service against two references measured in the same run: a
# bare libmicrohttpd responder (the ceiling) and the seed tutorial's Go net/http service. wrk (1 thread, keep-alive, 50 connections) is pinned to CPU 0, each server
# to CPU 1. Interleaved rounds of 10 s after a warm-up; prints medians of req/s, p50, p99
# and the ratio to the reference. Usage: bench/zakat.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-10}
CONNS=${CONNS:-50}
BIN=${BIN:-build/bin}
EXTRA=${ZAKAT_FLAGS:-}
command -v wrk >/dev/null || { echo "wrk is missing: scripts/deps.sh bench" >&2; exit 1; }
[ -x "$BIN/zakat-service" ] && [ -x "$BIN/bench-bare-mhd" ] || { echo "build first: make build" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
WARD_PORT=$(free_port); BARE_PORT=$(free_port); GO_PORT=$(free_port)
LOG=$(mktemp /tmp/ward-bench-zakat.XXXXXX.log)
GODIR=$(mktemp -d /tmp/ward-bench-go.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$LOG" "$GODIR"; }
trap cleanup EXIT

# The seed's Go service, when a Go toolchain is there (scripts/deps.sh bench installs it).
HAVE_GO=0
if command -v go >/dev/null && (cd bench/seed && GOFLAGS=-mod=mod go build -o "$GODIR/seed-zakat" .) ; then
  HAVE_GO=1
  GOMAXPROCS=1 taskset -c 1 "$GODIR/seed-zakat" "$GO_PORT" 2>/dev/null & pids+=($!)
fi

# The service as shipped: access log on, written to a file.
taskset -c 1 "$BIN/zakat-service" --listen "127.0.0.1:$WARD_PORT" $EXTRA 2>"$LOG" & pids+=($!)
taskset -c 1 "$BIN/bench-bare-mhd" "$BARE_PORT" 2>/dev/null & pids+=($!)
ports=("$WARD_PORT" "$BARE_PORT"); [ $HAVE_GO = 1 ] && ports+=("$GO_PORT")
for port in "${ports[@]}"; do
  for _ in $(seq 100); do
    curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
      -d '{"wealth":10000,"nisab":5000}' "http://127.0.0.1:$port/calculate" 2>/dev/null && break
    sleep 0.1
  done
done

# to_ms "1.23ms" | "456.00us" | "1.2s" -> milliseconds
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

run() { # run PORT SECS -> "rps p50ms p99ms"
  local out
  out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${2}s" --latency -s bench/post_zakat.lua "http://127.0.0.1:$1/calculate")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from port $1" >&2; echo "$out" >&2; exit 1; fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for port in "${ports[@]}"; do run "$port" 2 >/dev/null; done   # warm-up
declare -a w_rps w_p50 w_p99 b_rps b_p50 b_p99 g_rps g_p50 g_p99
for i in $(seq "$ROUNDS"); do
  read -r a b c < <(run "$BARE_PORT" "$SECS"); b_rps+=("$a"); b_p50+=("$b"); b_p99+=("$c")
  read -r a b c < <(run "$WARD_PORT" "$SECS"); w_rps+=("$a"); w_p50+=("$b"); w_p99+=("$c")
  msg="round $i: bare ${b_rps[-1]} req/s p99 ${b_p99[-1]} ms | zakat-service ${w_rps[-1]} req/s p99 ${w_p99[-1]} ms"
  if [ $HAVE_GO = 1 ]; then
    read -r a b c < <(run "$GO_PORT" "$SECS"); g_rps+=("$a"); g_p50+=("$b"); g_p99+=("$c")
    msg+=" | seed Go ${g_rps[-1]} req/s p99 ${g_p99[-1]} ms"
  fi
  echo "$msg" >&2
done
m() { printf '%s\n' "$@" | median; }
BR=$(m "${b_rps[@]}"); B50=$(m "${b_p50[@]}"); B99=$(m "${b_p99[@]}")
WR=$(m "${w_rps[@]}"); W50=$(m "${w_p50[@]}"); W99=$(m "${w_p99[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
if [ $HAVE_GO = 1 ]; then
  GR=$(m "${g_rps[@]}"); G50=$(m "${g_p50[@]}"); G99=$(m "${g_p99[@]}")
else
  GR=; G50=; G99=
fi
echo "| server | req/s (median) | p50 ms | p99 ms | req/s vs bare | req/s vs seed Go |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| bare libmicrohttpd (ceiling) | $BR | $B50 | $B99 | 1.00 | ${GR:+$(ratio "$BR" "$GR")} |"
[ -n "$GR" ] && echo "| seed Go net/http (GOMAXPROCS=1) | $GR | $G50 | $G99 | $(ratio "$GR" "$BR") | 1.00 |"
echo "| zakat-service | $WR | $W50 | $W99 | $(ratio "$WR" "$BR") | ${GR:+$(ratio "$WR" "$GR")} |"
echo "rounds=$ROUNDS seconds=$SECS connections=$CONNS log_lines=$(wc -l <"$LOG")"
