#!/usr/bin/env bash
# Builds frontdoor and runs it on config/frontdoor.yaml with two demo upstreams (ports 9001, 9002):
#   curl -i localhost:8080/demo/echo/hello
# Ctrl-C stops everything this script started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

deploy/dev/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target frontdoor

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
python3 deploy/dev/demo_upstream.py --port 9001 --name a & pids+=($!)
python3 deploy/dev/demo_upstream.py --port 9002 --name b & pids+=($!)

echo "frontdoor on http://localhost:8080 — try: curl -i localhost:8080/demo/echo/hello" >&2
build/frontdoor run -c config/frontdoor.yaml & pids+=($!)
wait "${pids[-1]}"
