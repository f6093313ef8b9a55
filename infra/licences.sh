#!/usr/bin/env bash
# Licence gate: the workspace is Apache-2.0, so no package in its resolved dependency graph may
# require a GPL-family licence (AGPL, GPL, LGPL, with or without an exception). A package whose
# SPDX expression offers such a licence only as an alternative ("MIT OR LGPL-2.1-or-later") is
# used under the other one and passes; the summary names such packages.
#
# The graph is `cargo metadata`'s resolve for the features asked for (the default features unless
# told otherwise), walked from the workspace members along normal, build and dev edges. Optional
# dependencies of features that are off are not in it, which is how the AGPL tdx-quote stays out
# of the default build. Arguments go to `cargo metadata`, e.g.
#
#   infra/licences.sh                                   # the default build: must pass
#   infra/licences.sh --features prism-attestation/tdx  # fails: tdx-quote is AGPL-3.0-or-later
#
# Exit 0 and one summary line when clean; exit 1 naming each offending package, its licence and
# how the workspace reaches it.
set -euo pipefail

cd "$(dirname "$0")/.."

metadata=$(mktemp)
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 --locked "$@" >"$metadata"

python3 - "$metadata" "$*" <<'PY'
import json
import re
import sys

with open(sys.argv[1]) as f:
    meta = json.load(f)
arguments = sys.argv[2] or "default features"
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
members = meta["workspace_members"]

# GPL-family licence identifiers: SPDX (AGPL-3.0-or-later, GPL-2.0-only, LGPL-2.1+, …) and older
# spellings ("GPLv3").
COPYLEFT = re.compile(r"^(A|L)?GPL", re.IGNORECASE)


def walk(include_dev):
    """Every package reachable from a workspace member, with the package it was reached from."""
    parent = {member: None for member in members}
    queue = list(members)
    while queue:
        node = queue.pop(0)
        for dep in nodes[node]["deps"]:
            kinds = {kind["kind"] for kind in dep["dep_kinds"]}
            if not include_dev and kinds <= {"dev"}:
                continue
            if dep["pkg"] not in parent:
                parent[dep["pkg"]] = node
                queue.append(dep["pkg"])
    return parent


def tokens(expression):
    return re.findall(r"\(|\)|/|[^\s()/]+", expression)


class Unparseable(Exception):
    pass


def acceptable(expression):
    """Whether the SPDX expression can be satisfied without a GPL-family licence."""
    items = tokens(expression)
    position = 0

    def peek():
        return items[position] if position < len(items) else None

    def take():
        nonlocal position
        if position >= len(items):
            raise Unparseable(expression)
        position += 1
        return items[position - 1]

    def any_of():
        ok = all_of()
        while peek() is not None and (peek().upper() == "OR" or peek() == "/"):
            take()
            ok = all_of() or ok
        return ok

    def all_of():
        ok = term()
        while peek() is not None and peek().upper() == "AND":
            take()
            ok = term() and ok
        return ok

    def term():
        item = take()
        if item == "(":
            ok = any_of()
            if take() != ")":
                raise Unparseable(expression)
            return ok
        if item in (")", "/") or item.upper() in ("AND", "OR", "WITH"):
            raise Unparseable(expression)
        if peek() is not None and peek().upper() == "WITH":
            take()
            take()  # An exception does not lift the copyleft of the licence it amends.
        return not COPYLEFT.match(item)

    ok = any_of()
    if position != len(items):
        raise Unparseable(expression)
    return ok


def name(package_id):
    package = packages[package_id]
    return f"{package['name']} {package['version']}"


def path(parent, package_id):
    chain = []
    while package_id is not None:
        chain.append(packages[package_id]["name"])
        package_id = parent[package_id]
    return " → ".join(reversed(chain))


shipped = walk(include_dev=False)
everything = walk(include_dev=True)
offences, alternatives = [], []
for package_id in sorted(everything, key=name):
    licence = packages[package_id].get("license")
    where = path(everything, package_id)
    if package_id not in shipped:
        where += " (dev-dependency only)"
    if not licence:
        offences.append(f"{name(package_id)} has no SPDX licence expression (read its licence file): {where}")
        continue
    try:
        ok = acceptable(licence)
    except Unparseable:
        offences.append(f"{name(package_id)} has an unreadable licence expression {licence!r}: {where}")
        continue
    if not ok:
        offences.append(f"{name(package_id)} is {licence}: {where}")
    elif any(COPYLEFT.match(item) for item in tokens(licence)):
        alternatives.append(name(package_id))

if offences:
    for offence in offences:
        print(f"licences: FAIL {offence}", file=sys.stderr)
    print(
        f"licences: {len(offences)} of {len(everything)} packages need a GPL-family licence ({arguments})",
        file=sys.stderr,
    )
    sys.exit(1)

note = f"; GPL-family only as an alternative, used under the other: {', '.join(alternatives)}" if alternatives else ""
print(
    f"licences: ok, {len(everything)} packages ({len(shipped)} outside dev-dependencies) with {arguments}, "
    f"none needs a GPL-family licence{note}"
)
PY
