#!/usr/bin/env bash
# Installs what building, running and testing Tributary needs on a fresh
# Debian machine, and skips whatever is already there:
#   - cmake and the curl headers, for the bundled librdkafka build; the
#     OpenSSL headers and pkg-config, for HTTPS to sources;
#   - the PostgreSQL server binaries (Debian `postgresql`), for the tests'
#     throwaway clusters, unless TRIBUTARY_PG_BIN points at some;
#   - Prometheus and promtool (Debian `prometheus`), for the alert rules'
#     unit tests and the test that runs a real Prometheus;
#   - npm, which builds the console (for running too);
#   - Debian's chromium, for the console's browser test;
#   - Prism (npm ci in infra/xero-mock), the mock of Xero's API for the
#     Xero connector's tests;
#   - cargo-machete, which the test command runs to find unused
#     dependencies (built from crates.io, about a minute);
#   - Tansu 0.6.0, the local durable Kafka-protocol broker (built from
#     crates.io; about 20 minutes the first time);
#   - with --python: a virtualenv with confluent-kafka, for the test that
#     reads the topics with standard clients, and standardwebhooks, for the
#     webhook receiver that verifies every signature.
# With --run, only what `tributary up` needs (the build tools, npm and Tansu):
# the run command does not wait for what only the tests use. Prints
# nothing else.
set -euo pipefail

want_python=false
only_run=false
case "${1:-}" in
  --python) want_python=true ;;
  --run) only_run=true ;;
esac

say() { echo "prereqs: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# npm builds the console (infra/scripts/console.sh), for running too.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ! $only_run; then
  # Debian's chromium, for the console's browser test.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # promtool and Prometheus, for the alert rules' tests.
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  if [ -z "${TRIBUTARY_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tansu_bin="${TRIBUTARY_TANSU_BIN:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
if ! "$tansu_bin" --version 2>/dev/null | grep -q "0.6.0"; then
  say "building Tansu 0.6.0 from crates.io (about 20 minutes on 2 cores)"
  # Its own target directory: Tansu's build shares nothing with ours.
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/tansu-build" \
    cargo install tansu --version 0.6.0 --locked --features libsql,dynostore --quiet
  rm -rf "${TMPDIR:-/tmp}/tansu-build"
fi

$only_run && exit 0

if ! cargo machete --version >/dev/null 2>&1; then
  say "building cargo-machete from crates.io"
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/machete-build" \
    cargo install cargo-machete --version 0.9.2 --locked --quiet
  rm -rf "${TMPDIR:-/tmp}/machete-build"
fi

mock_dir="$(cd "$(dirname "$0")/../xero-mock" && pwd)"
if ! [ -x "$mock_dir/node_modules/.bin/prism" ]; then
  say "installing Prism (npm ci in $mock_dir)"
  (cd "$mock_dir" && npm ci --no-audit --no-fund --silent >/dev/null)
fi

if $want_python; then
  venv="${TRIBUTARY_VENV:-$HOME/.cache/tributary/venv}"
  if ! "$venv/bin/python" -c "import confluent_kafka.schema_registry.avro, fastavro, standardwebhooks" 2>/dev/null; then
    say "creating $venv with confluent-kafka and standardwebhooks"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka[avro,schemaregistry]" standardwebhooks
  fi
  echo "$venv/bin/python"
fi
