#!/usr/bin/env bash
# make fuzz: run each cargo-fuzz target for FUZZ_SECONDS (default 60) with
# AddressSanitizer on the nightly toolchain; installs cargo-fuzz into
# FUZZ_TOOLS (~/.cache/secure-defaults/cargo-fuzz) the first time.
#
# Inputs: fuzz/seeds/<target> (committed) and fuzz/regressions/<target>
# (crashes found before); new coverage goes to fuzz/corpus/<target> (not
# committed), crashes to fuzz/artifacts/<target>. Copy a crash to
# fuzz/regressions/<target> once fixed: `cargo test --test fuzz_corpus`
# replays it on every run, without nightly.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
tools=${FUZZ_TOOLS:-$HOME/.cache/secure-defaults/cargo-fuzz}
targets=${FUZZ_TARGETS:-review engine yaml}
log() { printf 'fuzz: %s\n' "$*" >&2; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
export PATH=$tools/bin:$PATH
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "installing cargo-fuzz into $tools"
  cargo install cargo-fuzz --locked --root "$tools"
fi

cd "$root/fuzz"
for t in $targets; do
  mkdir -p "corpus/$t" "regressions/$t"
  log "$t: ${seconds}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
log "no crash in: $targets"
