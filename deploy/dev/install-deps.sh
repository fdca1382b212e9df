#!/usr/bin/env bash
# Installs what frontdoor needs from Debian 12's packages, only what is missing (idempotent).
#   deploy/dev/install-deps.sh            build dependencies
#   deploy/dev/install-deps.sh test       + what the tests use
#   deploy/dev/install-deps.sh bench      + the load generators and peer proxies of bench/
set -euo pipefail

build=(cmake ninja-build g++ pkg-config libboost1.81-dev libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
       prometheus-cpp-dev libhiredis-dev libpqxx-dev libgtest-dev libgmock-dev python3 curl ca-certificates)
test=(python3-pytest python3-websockets python3-yaml openssl redis-server postgresql pgbouncer prometheus chromium yamllint)
bench=(nginx haproxy wrk nghttp2-client util-linux)

wanted=("${build[@]}")
for profile in "$@"; do
  case "$profile" in
    test) wanted+=("${test[@]}") ;;
    bench) wanted+=("${bench[@]}") ;;
    *) echo "install-deps.sh: unknown profile '$profile' (expected: test, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
