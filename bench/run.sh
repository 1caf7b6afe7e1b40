#!/usr/bin/env bash
# `make bench`: every benchmark of issue 6, results under target/bench/.
#
#  1. The review path without HTTP (parse → engine → patch → serialized
#     answer), on one core: criterion (mean and confidence interval) and
#     benches/review_latency.rs (per-review mean, p50, p90, p99).
#  2. The server under load over TLS on loopback with oha (crates.io,
#     installed into ~/.cache/secure-defaults/tools on first use): the
#     webhook and a no-op AdmissionReview endpoint on the same stack
#     (examples/noop_webhook.rs), each with `--workers 1` pinned to core 0,
#     oha pinned to core 1. Reused connections at 1, 16 and 64 connections,
#     16 connections at half the peak rate (twice: oha's summary, and one CSV
#     line per request for the steady state), a new TLS connection per request,
#     3 MB reviews at 16 connections, and the server's RSS throughout. The
#     reused-connection phases also load the no-op endpoint with
#     `--read-review` (it reads the review as the webhook does, then answers
#     as the no-op): what reading the pod costs and what hardening it costs.
#     Before the load, one request checks that each server answers the
#     typical review for real (its uid, allowed, a patch from the webhook).
#  3. bench/report.py gathers target/bench/results.json and compares it with
#     bench/recorded.json (the figures in BENCHMARKS.md): what moved.
#
# About three to four minutes after the build. LOAD_SECONDS (default 8) is
# the length of each load phase; LOAD_ONLY=1 skips the review-path benches
# (their last results stay in place). The numbers are only as quiet as the
# machine: compare ratios from one run (webhook/no-op), not across runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
out="$CARGO_TARGET_DIR/bench"
seconds="${LOAD_SECONDS:-8}"
server_core=0
client_core=1
rm -rf "$out/load"
mkdir -p "$out/load"

oha_version=1.16.0
oha="$HOME/.cache/secure-defaults/tools/oha-$oha_version/bin/oha"
if [[ ! -x "$oha" ]]; then
  echo "== installing oha $oha_version (once, a few minutes)"
  cargo install oha --version "$oha_version" --locked --root "$(dirname "$(dirname "$oha")")"
fi

# As the image sets it (Dockerfile): mimalloc without eager arena commit,
# about 10 MiB less RSS at idle.
export MIMALLOC_ARENA_EAGER_COMMIT="${MIMALLOC_ARENA_EAGER_COMMIT:-0}"
server_pin=()
if [[ $(nproc) -gt $client_core ]]; then server_pin=(taskset -c "$server_core"); fi
pin() { # pin CORE CMD...: on that core when the machine has it
  local core=$1
  shift
  if [[ $(nproc) -gt $core ]]; then taskset -c "$core" "$@"; else "$@"; fi
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cores: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "oha: $oha_version"
} | tee "$out/machine.txt"

echo "== build"
cargo build --release --locked --bin secure-defaults --example noop_webhook
cargo bench --locked --bench review_path --bench review_latency --no-run

if [[ -z "${LOAD_ONLY:-}" ]]; then
echo "== review path: criterion, core $server_core"
pin "$server_core" cargo bench --locked --bench review_path -- --warm-up-time 1 --measurement-time 3 "$@" 2>&1 |
  tee "$out/review_path.txt"
echo "== review path: per-review latency, core $server_core (also writes the request bodies)"
BENCH_OUT="$out" pin "$server_core" cargo bench --locked --bench review_latency -- 3 2>&1 |
  tee "$out/review_latency.txt"
fi

status() { # status PID FIELD: kB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

memory() { # memory PID PHASE
  printf '{"phase": "%s", "vm_rss_kib": %s, "vm_hwm_kib": %s}\n' "$2" "$(status "$1" VmRSS)" "$(status "$1" VmHWM)" \
    >>"$3"
}

oha_run() { # oha_run FORMAT FILE OHA-ARGS...: one oha run against $url, its output to FILE
  local format=$1 file=$2
  shift 2
  pin "$client_core" "$oha" --no-tui --output-format "$format" --cacert "$out/load/ca.pem" \
    -m POST -T application/json "$@" "$url" >"$file"
}

load() { # load NAME FILE OHA-ARGS...: one oha run, JSON to FILE, and its summary
  local name=$1 file=$2
  shift 2
  echo "-- $name: oha $*"
  oha_run json "$file" "$@"
  jq -r '"   \(.summary.requestsPerSec | floor) req/s, p50 \((.latencyPercentiles.p50 // 0) * 1000 * 1000 | round / 1000) ms, p99 \((.latencyPercentiles.p99 // 0) * 1000 * 1000 | round / 1000) ms, ok \(.statusCodeDistribution["200"] // 0), not answered \([.errorDistribution[]] | add // 0) \(.errorDistribution | keys)"' "$file"
}

serve() { # serve NAME BINARY [keepalive]: the full load sequence against one server, or only its reused-connection phases
  local name=$1 binary=$2 phases=${3:-all} dir="$out/load/$1"
  mkdir -p "$dir"
  echo "== load: $name (--workers 1 on core $server_core, oha on core $client_core)"
  # Started directly (not through a shell function) so that $! is the server.
  "${server_pin[@]}" "$binary" serve --self-signed --workers 1 --listen 127.0.0.1:18443 \
    --admin-listen 127.0.0.1:18080 --ca-out "$out/load/ca.pem" --shutdown-delay 0s 2>"$dir/server.log" &
  local pid=$!
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf http://127.0.0.1:18080/readyz >/dev/null
  url="https://127.0.0.1:18443/mutate?timeout=10s"
  local typical="$out/cases/typical.json" big="$out/cases/update-ephemeral-3mb.json"
  local mem="$dir/memory.jsonl"
  : >"$mem"
  sleep 1
  memory "$pid" idle "$mem"
  # What is loaded is a real answer: this request's uid, allowed, and a patch
  # from the webhook only (oha counts status codes, not what the body says).
  local answer
  answer=$(curl -sf --cacert "$out/load/ca.pem" -H 'Content-Type: application/json' --data-binary "@$typical" "$url")
  jq -e --arg uid "$(jq -r .request.uid "$typical")" --argjson patched "$([[ $name == noop || $name == read ]] && echo false || echo true)" \
    '.response.uid == $uid and .response.allowed == true and (.response.patch != null) == $patched' <<<"$answer" >/dev/null ||
    { echo "$name answered the typical review wrongly: ${answer:0:300}" >&2; kill "$pid"; exit 1; }
  load warm-up /dev/null -z 2s -c 16 -D "$typical"
  for c in 1 16 64; do
    load "keep-alive c=$c" "$dir/keepalive-c$c.json" -z "${seconds}s" -c "$c" -D "$typical"
  done
  memory "$pid" keepalive "$mem"
  if [[ $phases == keepalive ]]; then
    stop "$pid" "$dir"
    return
  fi
  local peak
  peak=$(jq -s 'map(.summary.requestsPerSec) | max | floor' "$dir"/keepalive-c*.json)
  load "keep-alive c=16 at half of peak ($((peak / 2))/s)" "$dir/half-peak.json" -z "${seconds}s" -c 16 \
    -q $((peak / 2)) --latency-correction -D "$typical"
  # The same, one line per request (CSV), for the steady state: oha's first
  # request on each connection includes about 30 ms of the client's own TLS
  # set-up, and with latency correction the requests queued behind it count
  # that wait too. report.py takes the requests started after the first second.
  echo "-- keep-alive c=16 at half of peak, per request: oha ... --output-format csv"
  oha_run csv "$dir/half-peak.csv" -z "${seconds}s" -c 16 -q $((peak / 2)) --latency-correction -D "$typical"
  load "new connection per request c=1" "$dir/newconn-c1.json" -z "${seconds}s" -c 1 --disable-keepalive -D "$typical"
  load "new connection per request c=16" "$dir/newconn-c16.json" -z "${seconds}s" -c 16 --disable-keepalive -D "$typical"
  memory "$pid" newconn "$mem"
  load "3 MB ephemeralcontainers UPDATE c=1" "$dir/update-3mb-c1.json" -z "${seconds}s" -c 1 -D "$big"
  load "3 MB ephemeralcontainers UPDATE c=16" "$dir/update-3mb-c16.json" -z "${seconds}s" -c 16 -D "$big"
  memory "$pid" update-3mb "$mem"
  sleep 2
  memory "$pid" after "$mem"
  stop "$pid" "$dir"
}

stop() { # stop PID DIR
  kill -TERM "$1"
  wait "$1" || true
  # Keep the head of the log (one line per review otherwise: tens of MB).
  head -n 50 "$2/server.log" >"$2/server.head.log" && rm "$2/server.log"
}

# The no-op endpoint takes the `serve` flags directly; a one-line wrapper
# gives both the same command line.
noop="$out/load/noop_webhook"
printf '#!/bin/sh\nshift\nexec %q "$@"\n' "$CARGO_TARGET_DIR/release/examples/noop_webhook" >"$noop"
chmod +x "$noop"
printf '#!/bin/sh\nshift\nexec %q --read-review "$@"\n' "$CARGO_TARGET_DIR/release/examples/noop_webhook" >"$noop-read"
chmod +x "$noop-read"
serve webhook "$CARGO_TARGET_DIR/release/secure-defaults"
serve noop "$noop"
# Reading the review as the webhook does, without the engine: splits the
# webhook / no-op gap into reading the pod and hardening it.
serve read "$noop-read" keepalive
# BEFORE=path/to/an/older/secure-defaults: load it too, for a before/after in one run.
if [[ -n "${BEFORE:-}" ]]; then serve before "$BEFORE"; fi

echo "== results"
python3 bench/report.py summarize "$out" >"$out/results.json"
python3 bench/report.py compare bench/recorded.json "$out/results.json" | tee "$out/compare.txt"
