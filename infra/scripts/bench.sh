#!/usr/bin/env bash
# The benchmark: builds Tributary and the benchmark in release mode, then runs
# everything in one go and prints one table (see docs/BENCHMARKS.md).
#   infra/scripts/bench.sh                  # 100,000 invoices
#   infra/scripts/bench.sh --records 1000000
#   infra/scripts/bench.sh --quick          # the CI smoke setting: counts, never times
# Needs what the tests need (infra/scripts/prereqs.sh) and python3 for dlt,
# which it installs into ~/.cache/tributary on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
infra/scripts/prereqs.sh >/dev/null
cargo build --release --locked --quiet -p tributary -p tributary-bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/tributary-bench" "$@"
