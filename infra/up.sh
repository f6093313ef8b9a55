#!/usr/bin/env bash
# Brings the whole platform up on this machine: embedded NATS JetStream and PostgreSQL unless
# NATS_URL / DATABASE_URL point elsewhere, every service in one process, API on 127.0.0.1:8080, and
# the local backend (the emulated agent beside the `prism` binary: insecure, no hardware protection).
# Extra arguments go to `prism up` (e.g. --http 0.0.0.0:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
infra/install-deps.sh
cargo build --release --locked -p prism-cli -p prism-emulated-agent
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/prism" up "$@"
