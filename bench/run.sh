#!/usr/bin/env bash
# frontdoor's benchmark: direct / nginx / HAProxy / frontdoor / frontdoor with access log, side by side.
#   bench/run.sh                 # 3 interleaved rounds (~7 min), markdown report on stdout
#   bench/run.sh --quick         # 1 round of short runs (~1 min): smoke test, not a measurement
#   bench/run.sh --help          # every option
# Method, figures and how far to trust them: bench/README.md. Raw data: bench/runs/<timestamp>/.
set -euo pipefail
here="$(dirname "$(readlink -f "$0")")"

# Tools, and the Debian 12 package that provides each.
declare -A pkg=([python3]=python3 [nginx]=nginx [haproxy]=haproxy [wrk]=wrk [h2load]=nghttp2-client
                [taskset]=util-linux)
missing=()
for tool in python3 nginx haproxy wrk h2load taskset; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
if ((${#missing[@]})); then
  echo "error: missing tools; on Debian 12 install them with:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  echo "(all of them: sudo apt-get install nginx haproxy wrk nghttp2-client python3 util-linux)" >&2
  exit 2
fi

exec python3 "$here/lib/bench.py" "$@"
