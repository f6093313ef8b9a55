#!/usr/bin/env bash
# Brings the whole platform up on this machine: embedded NATS JetStream and PostgreSQL unless
# NATS_URL / DATABASE_URL point elsewhere, every service in one process, API on 127.0.0.1:8080.
# Extra arguments go to `prism up` (e.g. --http 0.0.0.0:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
infra/install-deps.sh
exec cargo run --release --locked -p prism-cli --bin prism -- up "$@"
