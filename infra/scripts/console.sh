#!/usr/bin/env bash
# Builds the operators' console (consumers/tributary-console/web: React and
# TypeScript, its API client generated from docs/openapi.json) into
# web/dist, which the next cargo build embeds in the binary. Installs its
# npm packages first when package-lock.json changed. With --test, also runs
# its unit tests (vitest).
set -euo pipefail
cd "$(dirname "$0")/../../consumers/tributary-console/web"
if ! [ -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "console: installing its npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --silent >/dev/null
fi
npm run --silent build
if [ "${1:-}" = "--test" ]; then
  npm test --silent
fi
