#!/usr/bin/env bash
# The run command: installs what is missing, builds the console and the
# binary, and runs the whole pipeline on this machine (`tributary up`). Arguments go to `tributary`,
# for example: infra/scripts/up.sh --config tributary.toml
set -euo pipefail
cd "$(dirname "$0")/../.."
infra/scripts/prereqs.sh --run
# The console, embedded by the build below; without it the pipeline runs
# all the same and /console/ says how to build it.
infra/scripts/console.sh || echo "up: the console did not build (see above); running without it" >&2
exec cargo run --release --locked --quiet -p tributary -- "$@" up
