#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI description with schemathesis, every check enabled, and
# fails on any finding: a 5xx; a status, header or body the description does not document; a request
# the description allows that is refused for a reason it does not state (see hooks.py); a request it
# forbids that is accepted.
#
# Builds `prism` (release), starts `prism up` (embedded NATS and PostgreSQL) on a free port with a
# temporary data directory, runs schemathesis against it, and stops it again.
#
#   tests/schemathesis/run.sh [more `schemathesis run` options]
#
# Environment: MAX_EXAMPLES (test cases per operation and phase; default 100), SEED (default random),
# PRISM (a prism binary to use instead of building one), SCHEMATHESIS_VENV (where schemathesis goes),
# REPORT_DIR (keep JUnit and NDJSON reports there).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/schemathesis"
python=${PYTHON:-python3}

# schemathesis, at the version pinned in requirements.txt, in a virtual environment of its own.
venv=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/prism/schemathesis}
wanted=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != *" $wanted" ]]; then
  echo "installing schemathesis $wanted into $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

# nats-server and PostgreSQL, which `prism up` embeds.
"$root/infra/install-deps.sh"

if [[ -z "${PRISM:-}" ]]; then
  (cd "$root" && cargo build --release --quiet -p prism-cli)
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  PRISM="$target/release/prism"
fi

work=$(mktemp -d)
# As root, PostgreSQL runs as `nobody`, which must reach the data directory to keep its cluster there
# (and not under /var/lib/prism, where nothing would remove it).
chmod 755 "$work"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# The administrator gets a known password, so that the run can sign in.
admin_password=$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')
PRISM_ADMIN_EMAIL=admin@prism.local PRISM_ADMIN_PASSWORD="$admin_password" \
  "$PRISM" up --http "127.0.0.1:$port" --data-dir "$work/data" >"$work/prism.log" 2>&1 &
prism=$!

finish() {
  local status=$?
  kill -TERM "$prism" 2>/dev/null && wait "$prism" 2>/dev/null || true
  if ((status != 0)); then
    echo "--- last lines of the prism log ---" >&2
    tail -n 40 "$work/prism.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT

healthy() {
  "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/health" \
    2>/dev/null
}
# The first start initialises a PostgreSQL cluster, which takes a while.
for _ in $(seq 1 180); do
  healthy && break
  kill -0 "$prism" 2>/dev/null || { echo "prism up exited" >&2; exit 1; }
  sleep 1
done
healthy || { echo "prism did not become healthy at $base" >&2; exit 1; }

# Every request is the administrator's, so that the fuzzer reaches past authorisation (the role
# matrix has its own tests; requests without the header are still checked to be refused). An access
# token lives 15 minutes and a run can take longer: hooks.py signs in again as the run goes on.
export PRISM_FUZZ_BASE="$base" PRISM_FUZZ_ADMIN_EMAIL=admin@prism.local PRISM_FUZZ_ADMIN_PASSWORD="$admin_password"

reports=()
if [[ -n "${REPORT_DIR:-}" ]]; then
  reports=(--report junit,ndjson --report-dir "$(mkdir -p "$REPORT_DIR" && cd "$REPORT_DIR" && pwd)")
fi

started=$SECONDS
# schemathesis keeps a cache in its working directory, which must not be the repository.
cd "$work"
# Every check but `use_after_free`, which expects a resource to be gone (404) after `DELETE`: deleting
# a computation archives it, and it stays readable, read-only, for the audit trail. Signing out is left
# out: it would end the session every later request is made with.
SCHEMATHESIS_HOOKS="$here/hooks.py" "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
  run "$base/openapi.json" \
  --checks all \
  --exclude-checks use_after_free \
  --exclude-operation-id sign_out \
  --max-examples "${MAX_EXAMPLES:-100}" \
  ${SEED:+--seed "$SEED"} \
  --no-color \
  "${reports[@]}" \
  "$@"
echo "schemathesis passed in $((SECONDS - started)) s" >&2
