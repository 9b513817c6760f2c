#!/usr/bin/env bash
# The test command: installs what the tests need, checks formatting and
# lints, then runs every test of the workspace, the end-to-end run through a
# real broker included, and the benchmark's smoke setting.
set -euo pipefail
cd "$(dirname "$0")/../.."
python_bin="$(infra/scripts/prereqs.sh --python)"
export TRIBUTARY_PYTHON="$python_bin"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
cargo test --workspace --locked "$@"
# The benchmark's smoke setting: everything at a small size, every count
# checked, no time judged (docs/BENCHMARKS.md has the real runs).
cargo build --workspace --locked --quiet --bins
"${CARGO_TARGET_DIR:-target}/debug/tributary-bench" --quick
