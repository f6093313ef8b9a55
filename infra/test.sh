#!/usr/bin/env bash
# Every check: formatting, lints (warnings are errors), all tests, and the API fuzzed against its
# OpenAPI description. The tests start their own nats-server per test and create a fresh PostgreSQL
# database per test (on PRISM_TEST_DATABASE_URL, else 127.0.0.1:5432 if it answers, else an embedded
# cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
infra/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The HTTP API against its own OpenAPI description: schemathesis with every check, on the debug build
# the tests just made, with a fixed seed so a run can be repeated.
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
PRISM="$target/debug/prism" SEED="${SCHEMATHESIS_SEED:-1}" MAX_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-50}" tests/schemathesis/run.sh
