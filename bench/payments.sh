#!/usr/bin/env bash
# bench/payments.sh — completed payments per second through payment-service, with
# invoice-service and accounting-service behind it, all on durable storage: SQLite files
# (synchronous=FULL) or a throwaway PostgreSQL started here. wrk posts payments with
# unique Idempotency-Keys for DURATION; then the script waits until no payment is
# pending and counts the completed ones from wrk's start to the moment the last payment
# ended (its completed_at / failed_at; a 202 is not a payment).
#   bench/payments.sh [sqlite|postgres] [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
MODE=${1:-sqlite}
DURATION=${2:-10}
CONNS=${3:-64}
for b in invoice-service accounting-service payment-service; do
  [ -x "$BIN/$b" ] || { echo "build first: make build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk missing: scripts/deps.sh bench" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ward-bench-payments-XXXXXX)
chmod 755 "$WORK"
pids=()
pg_ctl=/usr/lib/postgresql/15/bin/pg_ctl
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -d "$WORK/pg" ]; then runuser -u postgres -- "$pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PI=$(free_port); PA=$(free_port); PP=$(free_port)

if [ "$MODE" = postgres ]; then
  PGPORT=$(free_port)
  chown postgres "$WORK"
  runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$WORK/pg" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
    -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  for db in invoice accounting payment; do
    runuser -u postgres -- /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$PGPORT" -q -c "CREATE DATABASE $db" postgres
  done
  DB() { echo "postgresql://postgres@127.0.0.1:$PGPORT/$1"; }
else
  DB() { echo "sqlite://$WORK/$1.db"; }
fi

common=(--no-access-log --log-level warn ${SVC_ARGS:-})
"$BIN/invoice-service" --listen "127.0.0.1:$PI" --db "$(DB invoice)" "${common[@]}" 2>"$WORK/invoice.log" & pids+=($!)
"$BIN/accounting-service" --listen "127.0.0.1:$PA" --db "$(DB accounting)" "${common[@]}" 2>"$WORK/accounting.log" & pids+=($!)
"$BIN/payment-service" --listen "127.0.0.1:$PP" --db "$(DB payment)" "${common[@]}" \
  --invoice-addr "127.0.0.1:$PI" --accounting-addr "127.0.0.1:$PA" \
  --ledger-rate 1000000 --ledger-burst 1000000 ${PAY_ARGS:-} 2>"$WORK/payment.log" & pids+=($!)
for p in $PI $PA $PP; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/ready" && break; sleep 0.1; done
done

# the machine's busy CPU time (all processes, jiffies): services, wrk, PostgreSQL, kernel
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
busy0=$(busy)
start=$(date +%s.%N)
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s bench/payments.lua "http://127.0.0.1:$PP" > "$WORK/wrk.txt"
busy1=$(busy) # the few payments still in flight finish in a moment
# How many times $1 occurs in $2 (grep finding none is no error here).
occurrences() { grep -o "$1" <<<"$2" | wc -l || true; }
# Pages through every payment: prints "pending completed failed"; the moments payments
# ended go to $WORK/ended.
tally() {
  local cursor="" page p=0 c=0 f=0
  : > "$WORK/ended"
  while :; do
    page=$(curl -s "http://127.0.0.1:$PP/payments?limit=100${cursor:+&cursor=$cursor}")
    p=$((p + $(occurrences '"status":"pending"' "$page")))
    c=$((c + $(occurrences '"status":"completed"' "$page")))
    f=$((f + $(occurrences '"status":"failed"' "$page")))
    grep -o '"\(completed\|failed\)_at":"[^"]*"' <<<"$page" | cut -d'"' -f4 >> "$WORK/ended" || true
    cursor=$(sed -n 's/.*"next_cursor":"\([^"]*\)".*/\1/p' <<<"$page")
    [ -n "$cursor" ] || break
  done
  echo "$p $c $f"
}
# every accepted payment must end: wait until none is pending (at most 60 s)
for _ in $(seq 120); do
  read -r pending completed failed < <(tally)
  [ "$pending" = 0 ] && break
  sleep 0.5
done
# the end is when the last payment ended (not when this tally finished paging)
last=$(sort "$WORK/ended" | tail -1)
end=$(date -d "$last" +%s.%N 2>/dev/null || date +%s.%N)
echo "pending $pending, completed $completed, failed $failed"
grep -E "Latency|Requests\/sec|Non-2xx| 50%| 99%" "$WORK/wrk.txt" || true
# where the database pushed back: transactions run again (busy, serialization failures)
for p in "invoice $PI" "accounting $PA" "payment $PP"; do
  set -- $p
  echo "$1: $(curl -s "http://127.0.0.1:$2/metrics" | grep -E '^ward_store_(retries|transactions|commits)_total' | tr '\n' ' ')"
done
# CPU seconds each service used over the run (user + system), and per payment: where the
# time goes
tck=$(getconf CLK_TCK)
names=(invoice accounting payment)
for i in 0 1 2; do
  read -r ut st < <(awk '{print $14, $15}' "/proc/${pids[$i]}/stat")
  awk -v n="${names[$i]}" -v u="$ut" -v s="$st" -v t="$tck" -v c="$completed" \
    'BEGIN { printf "%s-service cpu: %.2f s user, %.2f s system, %.0f us per payment\n", n, u / t, s / t, (u + s) / t * 1e6 / (c > 0 ? c : 1) }'
done
awk -v b="$((busy1 - busy0))" -v t="$tck" -v c="$completed" \
  'BEGIN { printf "machine busy: %.2f CPU-s, %.0f us per payment (services, wrk, database server, kernel)\n", b / t, b / t * 1e6 / (c > 0 ? c : 1) }'
awk -v c="$completed" -v s="$start" -v e="$end" -v m="$MODE" \
  'BEGIN { printf "%s: %d completed payments in %.1f s = %.0f payments/s\n", m, c, e - s, c / (e - s) }'
