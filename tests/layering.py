#!/usr/bin/env python3
"""Checks that the areas of src/ and include/frontdoor/ depend downward only.

Run from the repository root: python3 tests/layering.py
Reads every `#include "frontdoor/<area>/..."` line of src/<area>/ and include/frontdoor/<area>/ and
fails (exit status 1) on an include that goes sideways or up the layers below, naming the file, the
line and the include. Since every edge goes strictly down, no include cycle between areas can exist.

The layers are written here and nowhere else; docs/architecture.md draws them.
"""
import pathlib
import re
import sys

# Lowest first. An area may include itself and any area of a lower layer; areas of one layer are
# independent of each other.
LAYERS = [
    ["core"],                                      # errors, addresses, waiters: the ground
    ["http", "io", "resilience", "config", "stats", "admin"],  # parsers, Redis client, pure algorithms,
                                                             # plain config, counters, the admin HTTP endpoint
    ["ratelimit"],                                 # compiled limits, the global limiter
    ["manifest"],                                  # manifests and their table
    ["snapshot"],                                  # a validated config compiled for the data plane
    ["store"],                                     # the manifest store: PostgreSQL, Redis, the L1 cache
    ["upstream"],                                  # connections, pools, cluster load, health checks
    ["pipeline"],                                  # the request context and the stages
    ["proxy"],                                     # the upstream exchange, retry decisions, heads
    ["server"],                                    # listeners, workers, client sessions, metrics
    ["cli"],                                       # the command line
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"frontdoor/([a-z_]+)/[^"]+"')


def layer_of() -> dict:
    return {area: rank for rank, areas in enumerate(LAYERS) for area in areas}


def area_of(path: pathlib.Path) -> str | None:
    parts = path.parts
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if parts[:2] == ("include", "frontdoor") and len(parts) > 3:
        return parts[2]
    return None  # src/main.cpp, generated headers: above every area


def check(root: pathlib.Path) -> list[str]:
    ranks = layer_of()
    problems = []
    files = sorted(p for d in ("src", "include") for p in (root / d).rglob("*") if p.suffix in (".hpp", ".cpp", ".in"))
    for path in files:
        rel = path.relative_to(root)
        area = area_of(rel)
        if area is None:
            continue
        if area not in ranks:
            problems.append(f"{rel}: area '{area}' is in no layer of tests/layering.py")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = match.group(1)
            if target == area:
                continue
            if target not in ranks:
                problems.append(f"{rel}:{number}: includes area '{target}', which is in no layer")
            elif ranks[target] >= ranks[area]:
                how = "a sibling" if ranks[target] == ranks[area] else "a higher"
                problems.append(f"{rel}:{number}: {area} may not include {how} area: {line.strip()}")
    return problems


def main() -> int:
    root = pathlib.Path.cwd()
    if not (root / "src").is_dir() or not (root / "include" / "frontdoor").is_dir():
        print("tests/layering.py: run it from the repository root", file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"layering: {len(problems)} include(s) against the layers", file=sys.stderr)
        return 1
    print("layering: every include goes down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
