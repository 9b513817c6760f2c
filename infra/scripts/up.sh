#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs the whole
# pipeline on this machine (`tributary up`). Arguments go to `tributary`,
# for example: infra/scripts/up.sh --config tributary.toml
set -euo pipefail
cd "$(dirname "$0")/../.."
infra/scripts/prereqs.sh --run
exec cargo run --release --locked --quiet -p tributary -- "$@" up
