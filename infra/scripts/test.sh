#!/usr/bin/env bash
# The test command: installs what the tests need, builds and unit-tests the
# console, checks formatting, lints
# and unused dependencies, runs the fast tier with no service reachable,
# checks that no store or index backend links rdkafka, then runs every test
# of the workspace, the end-to-end run through a real broker included, and
# the benchmark's smoke setting.
set -euo pipefail
cd "$(dirname "$0")/../.."
python_bin="$(infra/scripts/prereqs.sh --python)"
export TRIBUTARY_PYTHON="$python_bin"
# The console first: its type check against docs/openapi.json, its unit
# tests, and the build the binary embeds (for the browser test).
infra/scripts/console.sh --test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
cargo machete
# The alert rules: valid, and each alert's unit tests (Debian's prometheus
# package brings promtool; a live Prometheus runs them in
# infra/tributary/tests/prometheus.rs).
promtool check rules infra/prometheus/rules.yml
promtool test rules infra/prometheus/rules.test.yml

# The fast tier must pass with none of Tansu, Prism or PostgreSQL at hand:
# every PATH folder holding one of them is replaced by a copy of links
# without it, and the variables that could point at them point nowhere.
hidden=(tansu prism pg_ctl initdb postgres)
shims="$(mktemp -d)"
trap 'rm -rf "$shims"' EXIT
path_without_services=""
IFS=: read -ra path_dirs <<< "$PATH"
for dir in "${path_dirs[@]}"; do
  holds=false
  for name in "${hidden[@]}"; do [ -e "$dir/$name" ] && holds=true; done
  if $holds; then
    shim="$shims/${#path_without_services}"
    mkdir -p "$shim"
    for entry in "$dir"/*; do
      name="$(basename "$entry")"
      printf '%s\n' "${hidden[@]}" | grep -qx "$name" || ln -s "$entry" "$shim/$name"
    done
    dir="$shim"
  fi
  path_without_services="${path_without_services:+$path_without_services:}$dir"
done
PATH="$path_without_services" TRIBUTARY_TANSU_BIN=/nonexistent TRIBUTARY_PRISM=/nonexistent \
  TRIBUTARY_PG_BIN=/nonexistent infra/scripts/test-fast.sh --quiet

# The projection contract keeps Kafka out of the sinks.
for backend in tributary-projection tributary-store tributary-store-sqlite \
    tributary-store-postgres tributary-index-tantivy; do
  if cargo tree --locked -e normal -i rdkafka -p "$backend" 2>/dev/null | grep -q rdkafka; then
    echo "test: $backend links rdkafka:" >&2
    cargo tree --locked -e normal -i rdkafka -p "$backend" >&2
    exit 1
  fi
done

cargo test --workspace --locked "$@"
# The benchmark's smoke setting: everything at a small size, every count
# checked, no time judged (docs/BENCHMARKS.md has the real runs).
cargo build --workspace --locked --quiet --bins
"${CARGO_TARGET_DIR:-target}/debug/tributary-bench" --quick
