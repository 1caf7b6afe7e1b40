#!/usr/bin/env bash
# `make bench`: the benchmarks, with results under target/bench/.
# Today: the review path (parse → engine → patch → serialized answer) with
# criterion. The server-under-load benchmarks of issue 6 are still to come.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/bench
mkdir -p "$out"
{
  echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  cargo bench --locked --bench review_path -- "$@"
} 2>&1 | tee "$out/review_path.txt"
