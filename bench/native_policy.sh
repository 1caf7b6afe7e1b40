#!/usr/bin/env bash
# Issue 17, item 4: pod-create latency on one real API server (e2e control
# plane, loopback) in three namespaces: no mutation, the native policy
# (`secure-defaults policy`), the webhook (`secure-defaults serve`, release
# build, the shipped registration). Server-side dry-run creates of one legacy
# pod (init container + two containers), sequential and with 16 concurrent
# clients; client-side p50/p99 and pods/s, and the API server's admission
# metrics (mean per call from histogram sums and counts).
#
# Usage: bench/native_policy.sh   (run by `make bench`; BENCH_SEQUENTIAL=300
#        and BENCH_CONCURRENT=1600 pods by default). Prints a Markdown table.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

e2e/controlplane/build.sh >/dev/null
cargo build --release --locked --bin secure-defaults
cargo test --locked -p secure-defaults-e2e --test native_policy --no-run
export SECURE_DEFAULTS_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/secure-defaults"
psa_dir=$(cd e2e/controlplane/k8s && go list -m -f '{{.Dir}}' k8s.io/pod-security-admission)
export PSA_TESTDATA="$psa_dir/test/testdata"
export RUST_BACKTRACE=0
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%FT%TZ)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! e2e/controlplane/with-controlplane.sh cargo test --locked -p secure-defaults-e2e --test native_policy \
  -- --ignored --exact bench_pod_create_latency --nocapture >"$log" 2>&1; then
  tail -40 "$log" >&2
  exit 1
fi
grep -E '^\|' "$log"
