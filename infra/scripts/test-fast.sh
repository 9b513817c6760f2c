#!/usr/bin/env bash
# The inner loop: the pure crates' tests (schemas, connectors, the
# projection contract and its checkpoints, config), in well under a minute
# once built. Needs nothing but Rust: no broker, no Prism, no PostgreSQL
# (the test command checks that by running it with those off PATH).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --locked "$@" \
  -p tributary-schemas \
  -p tributary-connector-api \
  -p tributary-connector-http \
  -p tributary-connector-sandbox \
  -p tributary-projection \
  -p tributary-config
# The Xero connector without its Prism test (tests/prism.rs).
cargo test --locked "$@" -p tributary-connector-xero --lib --test xero
# The Square connector without its Prism test (tests/prism.rs).
cargo test --locked "$@" -p tributary-connector-square --lib
# The Open Banking connector against its in-process fake bank (not tests/prism.rs).
cargo test --locked "$@" -p tributary-connector-open-banking --lib --test open_banking
# The connector conformance suite against hostile answers (no Prism needed).
cargo test --locked "$@" -p tributary-connector-xero -p tributary-connector-square --test conformance
