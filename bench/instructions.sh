#!/usr/bin/env bash
# Instructions per typical review through the whole server (HTTP, TLS, the
# review, the answer, the log line and metrics), counted with valgrind's
# callgrind for the no-op endpoint, the no-op with --read-review, and the
# webhook: the noise-free form of the webhook / no-op ratio of `make bench`.
#
#   bash bench/instructions.sh            # after `make bench` (its build and cases)
#
# Each server runs under callgrind twice, answering 1,000 and then 3,000
# reviews (oha, 4 connections); the difference divided by 2,000 leaves out
# start-up (certificate generation) and shutdown. About a minute.
# Results: target/bench/instructions/{results.txt,*.out}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target/bench/instructions"
typical="$target/bench/cases/typical.json"
oha_version=$(sed -n 's/^oha_version=//p' bench/run.sh)
oha="$HOME/.cache/secure-defaults/tools/oha-$oha_version/bin/oha"
for f in "$typical" "$oha" "$target/release/secure-defaults" "$target/release/examples/noop_webhook"; do
  [[ -e $f ]] || { echo "missing $f: run make bench first" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
mkdir -p "$out"
export MIMALLOC_ARENA_EAGER_COMMIT=0

count() { # count NAME REVIEWS: total instructions of one server run
  local name=$1 n=$2 cmd
  case $name in
    noop) cmd=("$target/release/examples/noop_webhook") ;;
    read) cmd=("$target/release/examples/noop_webhook" --read-review) ;;
    webhook) cmd=("$target/release/secure-defaults" serve) ;;
  esac
  valgrind --tool=callgrind --callgrind-out-file="$out/$name.$n.out" "${cmd[@]}" --self-signed --workers 1 \
    --listen 127.0.0.1:18443 --admin-listen 127.0.0.1:18080 --ca-out "$out/ca.pem" --shutdown-delay 0s \
    >/dev/null 2>"$out/$name.$n.log" &
  local pid=$!
  for _ in $(seq 300); do
    curl -sf http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
    sleep 0.2
  done
  local ok
  ok=$("$oha" --no-tui --output-format json --cacert "$out/ca.pem" -m POST -T application/json -n "$n" -c 4 \
    -D "$typical" "https://127.0.0.1:18443/mutate?timeout=10s" | jq '.statusCodeDistribution["200"] // 0')
  kill -TERM "$pid"
  wait "$pid" || true
  [[ $ok == "$n" ]] || { echo "$name answered $ok of $n reviews" >&2; exit 1; }
  sed -n 's/.*Collected : //p' "$out/$name.$n.log" | tail -1
}

declare -A per
for name in noop read webhook; do
  a=$(count "$name" 1000)
  b=$(count "$name" 3000)
  per[$name]=$(((b - a) / 2000))
done
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  for name in noop read webhook; do echo "$name: ${per[$name]} instructions per review"; done
  awk -v n="${per[noop]}" -v r="${per[read]}" -v w="${per[webhook]}" 'BEGIN {
    printf "reading the review: %d; engine, patch and answer: %d\n", r - n, w - r
    printf "no-op / webhook: %.3f; no-op / read: %.3f; read / webhook: %.3f\n", n / w, n / r, r / w
    printf "the webhook at 0.8x the no-op: %d instructions per review\n", n / 0.8
  }'
} | tee "$out/results.txt"
