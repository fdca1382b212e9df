#!/usr/bin/env bash
# A bench contender (bench/run.sh --extra): frontdoor whose one manifest is either embedded in its
# YAML or stored in a private PostgreSQL this script starts (every request then an L1 hit), so the
# two can be compared in the same run:
#   --extra 'embedded=exec {BENCH}/store.sh embedded {FRONTDOOR} {PORT} {BACKENDS} {RUN}'
#   --extra 'stored={BENCH}/store.sh stored {FRONTDOOR} {PORT} {BACKENDS} {RUN}'
# PostgreSQL runs as the `postgres` user when this runs as root; it stops with the script (TERM).
# FRONTDOOR_WRAP (e.g. "valgrind --tool=callgrind ...") is put before the daemon's command.
set -euo pipefail
mode=$1 bin=$2 port=$3 backends=$4 run=$5
here="$(dirname "$(readlink -f "$0")")"
endpoints="[\"${backends//,/\",\"}\"]"
manifest="{project: \"*\", module: \"*\", environment: \"*\", endpoints: $endpoints}"
conf="$run/$mode.yaml"
if [ "$mode" = embedded ]; then
  sed "s/@PORT@/$port/; s/@POSTGRES@//; s/@MANIFESTS@/[$manifest]/" "$here/conf/frontdoor-store.yaml.in" > "$conf"
  exec ${FRONTDOOR_WRAP:-} "$bin" run -c "$conf"
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir="$run/pg-$port"
as=()
if [ "$(id -u)" -eq 0 ]; then as=(setpriv --reuid=postgres --regid=postgres --clear-groups --); fi
rm -rf "$pgdir" && mkdir -p "$pgdir" && chmod 755 "$pgdir"
[ ${#as[@]} -eq 0 ] || chown postgres:postgres "$pgdir"
"${as[@]}" "$pgbin/initdb" -D "$pgdir/data" -U frontdoor --auth=trust --no-sync >/dev/null
pgport=$((port + 1000))
"${as[@]}" "$pgbin/postgres" -D "$pgdir/data" -p "$pgport" -k "$pgdir" -c listen_addresses= -c fsync=off \
  >"$pgdir/postgres.log" 2>&1 &
pg=$!
fd=
trap 'kill $fd $pg 2>/dev/null; wait' TERM INT EXIT
for _ in $(seq 100); do "$pgbin/pg_isready" -q -h "$pgdir" -p "$pgport" && break; sleep 0.1; done
dsn="host=$pgdir port=$pgport user=frontdoor dbname=postgres"
sed "s/@PORT@/$port/; s#@POSTGRES@#postgres: {dsn: \"$dsn\"}#; s/@MANIFESTS@/[]/" "$here/conf/frontdoor-store.yaml.in" > "$conf"
"$bin" manifests migrate -c "$conf" >/dev/null
printf 'manifests:\n  - %s\n' "$manifest" > "$run/stored-manifest.yaml"
"$bin" manifests put "$run/stored-manifest.yaml" -c "$conf" >/dev/null
${FRONTDOOR_WRAP:-} "$bin" run -c "$conf" &
fd=$!
wait $fd
