"""Checks of Prism's own for schemathesis (loaded through SCHEMATHESIS_HOOKS by run.sh).

A request that the OpenAPI description allows may still be refused, but only for a rule that no schema
can state and that the description documents instead. `schemathesis.toml` lets the built-in
`positive_data_acceptance` check pass 400, 412 and 422 so that this check can tell those rules from a
constraint the description forgot.
"""

import json
import os
import re
import urllib.parse
import urllib.request

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

# 422 for rules of a computation's definition that relate values to each other, or that only parsing
# a key can tell (documented on the computation routes).
DEFINITION_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^public key is invalid: ",
        r"^a computation needs at least one participant with the `owner` role$",
        r"^participant `[^`]*` is listed more than once$",
        r"^participant `[^`]*` has the `[a-z_]+` role and so needs a public key$",
        r"^`[^`]*` provides an asset but is not a participant$",
        r"^`[^`]*` provides an asset but lacks the `[a-z_]+` role$",
        r"^dataset digest [0-9a-f]{64} is listed more than once$",
        r"^participant `[^`]*` has no role$",
        r"^participant [0-9a-f-]{36} is not a registered user: ",
        r"^participant [^:]+: custom role `[^`]*` is not defined in the workspace$",
        r"^dataset file name `[^`]*` is listed more than once: the agent tells datasets apart by name$",
        r"^`asset` [0-9a-f-]{36} is not linked so: assets are linked with `POST …/assets`, and a change keeps a link only as it is$",
    )
]

# An OCSP request is DER: sent as the bytes of what the schema generates, like any binary body.
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")

# 422 for rules of the identity routes that no schema can state: whether a secret token holds (an
# invitation's, a password reset's, an e-mail verification's), an expiry relative to the present, and
# which custom roles a workspace defines (documented on those routes).
IDENTITY_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^the invitation token is invalid or has expired$",
        r"^this invitation is for someone else$",
        r"^the password reset link is invalid or has expired$",
        r"^the verification link is invalid or has expired$",
        r"^(an invitation|an API key) must expire in the future$",
        r"^(an invitation|an API key) may (work|live) at most \d+ days$",
        r"^custom role `[^`]*` is not defined in this workspace$",
    )
]

# 422 for rules of the certificate routes that no schema can state: what a profile allows, which
# strings are IP addresses, a lifetime of zero (documented on those routes). A CSR refused is pointed
# at `/csr`.
CERTIFICATE_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^the [a-z_]+ profile does not allow this: ",
        r"^not an IPv4 or IPv6 address$",
        r"^`[^`]*` is no positive duration",
    )
]

# 422 for rules of the backend and CVM routes that no schema states: a `local` backend (or the `local`
# provider) offers the platform `none` only, and a manager's CA certificates must be PEM blocks of
# DER certificates, which only reading them tells (documented on those routes).
BACKEND_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^the local backend runs the emulated agent, which protects nothing: ",
        r"^the manager's CA certificates must be PEM: ",
    )
]

# 422 for rules of the run routes that only the manifest or a key can tell: a signature that does not
# verify with the participant's registered key, a caller without a key, a receipt for something the
# manifest does not declare from its sender, a reason left empty (documented on those routes).
RUN_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^the signature does not verify with the participant's registered public key$",
        r"^RSA keys over 8192 bits ",
        r"^`[^`]*` is not a participant with a public key, so it cannot consent$",
        r"^the manifest declares no (algorithm|dataset) ",
        r"^`[^`]*` is not (a participant|a result consumer) of the run$",
        r"^reason ",
        r"^file_name ",
    )
]

# 422 for rules of the governance routes that only the computation can tell: whether the caller is a
# participant holding a public key (only they approve, veto and halt, whatever their roles grant), and
# how many such participants there are for a change threshold (documented on those routes). A change
# proposed there is a change of the definition too, whose rules are DEFINITION_RULES.
GOVERNANCE_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^`[^`]*` is not a participant with a public key, so it has no say in the computation's changes and execution$",
        r"^a change threshold of \d+ is outside 1–\d+, the number of participants with a public key$",
        r"^reason ",
    )
]
GOVERNANCE_PATHS = ("/proposals", "/halt", "/change-threshold")

# 422 for what only the importing workspace can tell about a computation document (documented on
# `POST /{workspace}/computations/import`): whether a backend its overrides name serves this workspace,
# and a change threshold beyond its participants with a key.
IMPORT_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^an attestation policy overrides the computation's for backend [0-9a-f-]{36}, which this workspace has no use of",
        r"^asset [0-9a-f-]{36}, linked in the document, is no asset of this workspace",
        r"^`asset` [0-9a-f-]{36} is not linked so",
        r"^a change threshold of \d+ is outside 1–\d+, the number of participants with a public key$",
    )
]

# 422 for rules of the asset routes that no schema can state: whose an asset is (only its owner changes
# it), that an algorithm says how it runs and a dataset does not (two fields), the names `.` and `..`
# (which the file-name pattern lets through), an empty sample, and for linking, which role the caller
# holds in the computation and whose the asset is (documented on those routes).
# Webhook endpoints: whether a URL is usable (https, or http to a loopback host; no credentials or
# fragment) and what an event-type pattern is are the domain's rules, checked before anything is
# stored; the body's description states them in words.
WEBHOOK_RULES = [
    re.compile(pattern, re.S)
    for pattern in (
        r"^`.*` is not a usable endpoint URL: .+$",
        r"^`.*` is not an event type: an exact type \(io\.prism\.<aggregate>\.<event>\.v<N>\), a prefix ending in `\*` \(io\.prism\.run\.\*\), or `\*`$",
        r"^event type `.*` is listed twice$",
        r"^\d+ values are invalid$",
        r"^description (contains a control character|is \d+ characters long).*$",
    )
]

ASSET_RULES = [
    re.compile(pattern)
    for pattern in (
        r"^the asset belongs to `[^`]*`: only its owner changes it, its sample, or archives it$",
        r"^an algorithm needs its `algorithm_type` \(`python`, `bin`, `wasm` or `docker`\)$",
        r"^a dataset has no `algorithm_type`$",
        r"^`\.\.?` is not a file name: `\.` and `\.\.` name directories$",
        r"^a sample has at least one byte$",
        r"^only a participant with the `[a-z_]+` role links an asset of this kind; `[^`]*` lacks it$",
        r"^asset [0-9a-f-]{36} is provided by `[^`]*`: only its provider links or unlinks it$",
        r"^only a participant signed in as a user links or unlinks an asset$",
    )
]

# 400 for a `min_sequence` the event log has not reached yet (a schema cannot know the log's end).
BEYOND_THE_LOG = re.compile(r"^min_sequence \d+ is beyond the end of the event log")


def _breaks_a_header_pattern(case):
    """Whether a header value of the case does not match its parameter's pattern.

    The coverage phase seeds optional header parameters whose pattern needs characters other than
    letters and digits with a schema-invalid value, yet labels the request positive; such a request
    is not one the description allows.
    """
    sent = {name.lower(): value for name, value in (case.headers or {}).items()}
    for parameter in case.operation.definition.raw.get("parameters", []):
        if parameter.get("in") != "header":
            continue
        pattern = (parameter.get("schema") or {}).get("pattern")
        value = sent.get(parameter["name"].lower())
        if pattern and value is not None and not re.search(pattern, str(value)):
            return True
    return False


def _problem(response):
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _reason(case, response):
    """Why a schema-valid request was refused, if the description documents that reason."""
    problem = _problem(response)
    if problem is None:
        return None
    detail = problem.get("detail") or ""
    status = response.status_code
    if status == 400 and BEYOND_THE_LOG.match(detail):
        return "min_sequence beyond the end of the event log"
    if status == 412 and any(name.lower() == "if-match" for name in (case.headers or {})):
        return "If-Match names another version"
    if status == 400 and case.operation.path == "/oauth/token" and detail.startswith("this grant needs "):
        return "a grant without the fields it needs"
    if status == 422 and problem.get("type") == "urn:prism:problem:idempotency-key-reused":
        return "Idempotency-Key reused with another request"
    if status == 422:
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in IDENTITY_RULES) for d in details):
            return "a rule of the identity routes"
    if status == 422 and "/certs/" in case.operation.path:
        errors = problem.get("errors") or [{"detail": detail, "pointer": ""}]
        if all(
            any(rule.match(error.get("detail", "")) for rule in CERTIFICATE_RULES)
            or (error.get("pointer") == "/csr" and "/certs/csrs/" in case.operation.path)
            for error in errors
        ):
            return "a rule of the certificate routes"
    if status == 422 and (
        "/backends" in case.operation.path
        or "/cvms" in case.operation.path
        or case.operation.path.endswith(("/dry-run", "/runs"))
    ):
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in BACKEND_RULES) for d in details):
            return "a rule of the backend routes"
    if status == 422 and "/computations" in case.operation.path:
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        rules = DEFINITION_RULES + (IMPORT_RULES if case.operation.path.endswith("/import") else [])
        if all(any(rule.match(d) for rule in rules) for d in details):
            return "a rule of the definition"
    if status == 422 and "/assets" in case.operation.path:
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in ASSET_RULES) for d in details):
            return "a rule of the asset routes"
    if status == 422 and "/webhooks" in case.operation.path:
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in WEBHOOK_RULES + DEFINITION_RULES) for d in details):
            return "a rule of the webhook routes"
    if status == 422 and any(part in case.operation.path for part in GOVERNANCE_PATHS):
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in GOVERNANCE_RULES + DEFINITION_RULES) for d in details):
            return "a rule of the governance routes"
    if (
        status == 400
        and case.operation.path in ("/{workspace}/runs/{run}/events", "/{workspace}/runs/{run}/logs")
        and detail.startswith("the run is the one in the path")
    ):
        # Stated in the parameter's description: `run` narrows a computation's events, not a run's.
        return "`run` given on a run's own events or logs"
    if status == 422 and ("/consents" in case.operation.path or "/runs/" in case.operation.path):
        details = [error.get("detail", "") for error in problem.get("errors") or []] or [detail]
        if all(any(rule.match(d) for rule in RUN_RULES) for d in details):
            return "a rule of the run routes"
    return None


@schemathesis.check
def refusal_has_a_documented_reason(ctx, response, case):
    """A schema-valid request is refused only for a documented rule that no schema can state."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    if response.status_code not in (400, 412, 422) or _breaks_a_header_pattern(case):
        return None
    if _reason(case, response) is None:
        raise AssertionError(
            f"A request the schema allows was refused with {response.status_code} for a reason the "
            f"description does not state: {response.text[:500]}"
        )
    return None


# The name schemathesis gives a header that no parameter declares.
UNKNOWN_HEADER = "x-schemathesis-unknown-property"


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Drops false findings. A sign-in (or a download token) refused for its credentials (see below); an OCSP request
    answered (see below); and a request accepted although it carried a header nobody declared.

    HTTP lets any request carry headers the server does not know, and a server must ignore them (RFC
    9110, section 5.1), so such a request is not "schema-violating" — unless something else in it is,
    which the other components' modes tell.
    """
    code = getattr(failure, "code", None)
    if code == "ST202" and case.operation.path == "/oauth/token" and response.status_code in (401, 429):
        # Wrong credentials (401) and too many failed sign-ins (429) are the token endpoint's answers to
        # data that no schema can tell from right: which password is an account's.
        return False
    if code == "ST202" and case.operation.path == "/users/me/password" and response.status_code in (403, 429):
        # Likewise: a wrong current password (403), and too many of them (429).
        return False
    if code == "ST202" and case.operation.path == "/certs/download" and response.status_code == 401:
        # Likewise: which download token the platform issued (a well-formed one it never issued is 401).
        return False
    if code != "ST201":
        return True
    if case.operation.path == "/certs/ocsp" and case.operation.method.upper() == "POST" and response.status_code == 200:
        # Any bytes are an OCSP request, well formed or not, and RFC 6960 answers a malformed one with
        # `malformedRequest` inside a 200 response: there is no body this operation refuses.
        return False
    headers = {name.lower() for name in (case.headers or {})}
    if UNKNOWN_HEADER not in headers:
        return True
    meta = case.meta
    if meta is None:
        return True
    others_negative = [
        location
        for location, info in meta.components.items()
        if str(getattr(location, "value", location)).lower() != "header" and not info.mode.is_positive
    ]
    return bool(others_negative)


# The audit trail's live feed (`GET /{workspace}/events`) streams until its client leaves. Every
# request made to it here ends at a time already past, so that it answers what the log holds and
# closes; its other parameters are generated as for any operation, and the tests of
# tests/tests/audit_feed.rs cover a bad `until`.
@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.operation.definition.raw.get("operationId") != "stream_events":
        return
    if not isinstance(case.query, dict):
        case.query = {}
    case.query["until"] = "2000-01-01T00:00:00Z"


# Requests are made as the administrator. An access token lives 15 minutes and a run can take
# longer on a busy machine, so the token is taken again (the OAuth 2.0 password grant, with what
# run.sh passes) every 10 minutes.
@schemathesis.auth(refresh_interval=600)
class Administrator:
    def get(self, case, ctx):
        form = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "username": os.environ["PRISM_FUZZ_ADMIN_EMAIL"],
                "password": os.environ["PRISM_FUZZ_ADMIN_PASSWORD"],
            }
        )
        request = urllib.request.Request(os.environ["PRISM_FUZZ_BASE"] + "/oauth/token", data=form.encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
