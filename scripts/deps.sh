#!/usr/bin/env bash
# Installs exactly the Debian packages ward needs: `deps.sh run` for building and running,
# `deps.sh test` adds what the test suite needs, `deps.sh bench` what the benchmarks need, `deps.sh etcd` the etcd server alone.
# Idempotent and offline when everything is present; never leaves a system service running.
set -euo pipefail

build_pkgs=(gcc make cmake pkg-config libc6-dev curl util-linux
            libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
            libsqlite3-dev libpq-dev libssl-dev
            libyaml-dev  # ward-gateway's config file; brings libyaml-0-2, the run-time part
            libhttp-parser-dev  # ward-gateway's engine parses HTTP/1.1 with it (libhttp-parser2.9)
            jq)  # jq: the curl walkthroughs in the docs read ids with it
test_pkgs=(libcriterion-dev prometheus etcd-server postgresql)
bench_pkgs=(wrk util-linux curl golang-go nginx-light haproxy)  # the last two: bench/gateway.sh

want=("${build_pkgs[@]}")
case "${1:-run}" in
  run) ;;
  test) want+=("${test_pkgs[@]}") ;;
  etcd) want+=(etcd-server) ;;
  bench) want+=("${bench_pkgs[@]}") ;;
  all) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [run|test|bench|etcd|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
# Packages such as prometheus and etcd-server start a daemon on install; a policy-rc.d
# that denies every start keeps the machine free of system services (CI starts what it needs).
guard=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  guard=1
fi
cleanup() { [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Belt and braces for systems without invoke-rc.d: stop anything the install started.
if command -v service >/dev/null 2>&1; then
  for svc in prometheus prometheus-node-exporter etcd postgresql; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
fi
# Only the packages' own daemons (their system users): never an etcd someone runs by hand.
pkill -x -u prometheus prometheus 2>/dev/null || true
pkill -x -u etcd etcd 2>/dev/null || true
