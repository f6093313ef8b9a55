#!/usr/bin/env python3
"""Verifies a Prism access token the way a third-party resource server would: with PyJWT and nothing
but the published JWK Set. Used by jwks_interop.rs.

Usage: verify_jwt.py JWKS_FILE TOKEN ISSUER AUDIENCE
Prints the token's `sub` and exits 0 if the token verifies; exits 1 if it is refused, 2 on wrong
usage, 3 if PyJWT (with its crypto extra) is missing, so that the caller can tell a refusal from a
broken environment.
"""

import json
import sys

try:
    import jwt
    from jwt.algorithms import has_crypto
except ImportError as e:
    print(f"PyJWT is not installed ({e}); run infra/install-deps.sh", file=sys.stderr)
    sys.exit(3)
if not has_crypto:
    print("PyJWT lacks its crypto extra (cryptography); run infra/install-deps.sh", file=sys.stderr)
    sys.exit(3)


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    _, jwks_file, token, issuer, audience = argv
    with open(jwks_file, encoding="utf-8") as f:
        jwks = jwt.PyJWKSet.from_dict(json.load(f))
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        try:
            key = jwks[kid]
        except KeyError:
            print(f"refused: no key with kid {kid!r} in the JWK Set", file=sys.stderr)
            return 1
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as e:
        print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(claims["sub"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
