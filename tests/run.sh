#!/usr/bin/env bash
# Builds frontdoor and runs every test: unit, fuzz-corpus replay and integration (real binary,
# real sockets on loopback) — once in a -Werror build, then again under ASan/UBSan.
#   tests/run.sh            both builds
#   tests/run.sh --fast     the -Werror build only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

sanitize=1
[ "${1:-}" = "--fast" ] && sanitize=0

deploy/dev/install-deps.sh test
python3 tests/layering.py
jobs=$(nproc)

run_suite() {  # build-dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DFRONTDOOR_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j 2)
}

echo "== build + tests (-Wall -Wextra -Werror)" >&2
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ $sanitize -eq 1 ]; then
  echo "== build + tests (ASan + UBSan)" >&2
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions=$root/tests/lsan.supp \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DFRONTDOOR_SANITIZE=ON
fi
