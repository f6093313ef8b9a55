#!/usr/bin/env bash
# Every check: formatting, lints (warnings are errors), all tests, and the API fuzzed against its
# OpenAPI description. The tests start their own nats-server per test and create a fresh PostgreSQL
# database per test (on PRISM_TEST_DATABASE_URL, else 127.0.0.1:5432 if it answers, else an embedded
# cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
infra/install-deps.sh
cargo fmt --all -- --check
# The default build stays Apache-2.0: no GPL-family licence in its dependency graph.
infra/licences.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# TDX verification sits behind a feature (the AGPL tdx-quote crate), so the workspace build above
# leaves it out: its lints and tests run here.
cargo clippy -p prism-attestation --all-targets --features tdx --locked -- -D warnings
cargo test -p prism-attestation --features tdx --locked --test tdx
# The HTTP API against its own OpenAPI description: schemathesis with every check, on the debug build
# the tests just made, with a fixed seed so a run can be repeated.
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
PRISM="$target/debug/prism" SEED="${SCHEMATHESIS_SEED:-1}" MAX_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-50}" tests/schemathesis/run.sh
