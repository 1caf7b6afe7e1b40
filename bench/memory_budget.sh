#!/usr/bin/env bash
# Peak RSS of `secure-defaults serve --workers 1` while 16 clients send the
# 3 MB ephemeral-containers UPDATE for 8 s, for each large-body budget given
# (MiB). Needs the bodies and oha of a `make bench` run (target/bench/cases,
# ~/.cache/secure-defaults/tools).
#
#   bash bench/memory_budget.sh 8 16 32 64
set -euo pipefail
cd "$(dirname "$0")/.."
# The oha that bench/run.sh installs (its version is set there only).
oha="$HOME/.cache/secure-defaults/tools/oha-$(sed -n 's/^oha_version=//p' bench/run.sh)/bin/oha"
body=target/bench/cases/update-ephemeral-3mb.json
[[ -x "$oha" && -f "$body" ]] || { echo "run make bench first (oha and $body)" >&2; exit 1; }
cargo build --release --locked --bin secure-defaults
export MIMALLOC_ARENA_EAGER_COMMIT=0 # as the image sets it
server_pin=() client_pin=()
if [[ $(nproc) -gt 1 ]]; then server_pin=(taskset -c 0) client_pin=(taskset -c 1); fi
for mib in "${@:-32}"; do
  # Started directly, so that $! is the server.
  "${server_pin[@]}" target/release/secure-defaults serve --self-signed --workers 1 --listen 127.0.0.1:18443 \
    --admin-listen 127.0.0.1:18080 --ca-out target/bench/memory-ca.pem --shutdown-delay 0s \
    --large-body-memory-mib "$mib" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  "${client_pin[@]}" "$oha" --no-tui --output-format json --cacert target/bench/memory-ca.pem -m POST -T application/json \
    -z 8s -c 16 -D "$body" "https://127.0.0.1:18443/mutate?timeout=10s" >"target/bench/memory-budget-$mib.json"
  hwm=$(awk '$1 == "VmHWM:" { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  jq -r --arg mib "$mib" --arg hwm "$hwm" \
    '"budget \($mib) MiB: peak RSS \($hwm) MiB, \(.summary.requestsPerSec | floor) reviews/s, p99 \(.latencyPercentiles.p99 * 1000 | round) ms"' \
    "target/bench/memory-budget-$mib.json"
  kill -TERM "$pid"
  wait "$pid" || true
done
