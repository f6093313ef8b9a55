#!/usr/bin/env bash
# Every check: formatting, lints (warnings are errors) and all tests. The tests start their own
# nats-server per test and create a fresh PostgreSQL database per test (on PRISM_TEST_DATABASE_URL,
# else 127.0.0.1:5432 if it answers, else an embedded cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
infra/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
