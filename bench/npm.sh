#!/usr/bin/env bash
# npm registry benchmark, Wharf beside Verdaccio 6 (from the npm registry), same machine, same run:
#  - abbreviated packument GET (Accept: application/vnd.npm.install-v1+json), 16 connections, 10 s of wrk
#  - tarball GET, 16 connections, 10 s of wrk
#  - `npm install` of a tree of 200 packages published to each, empty cache, wall time, median of 3
#  - idle RSS of each server
# Writes bench/results/npm.txt. Needs curl, wrk (apt), python3, node and npm. Run from anywhere: bench/npm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl wrk python3 npm; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/npm-bench.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
packages=${PACKAGES:-200}

# Verdaccio, installed into the scratch directory. 6.8 is the newest that runs on Node 20 (6.9 on asks for 22);
# its node-fetch is pinned to 2.7 because the 3.x it may resolve to is ESM-only.
mkdir -p "$work/verdaccio"
echo '{"name":"bench","version":"1.0.0","overrides":{"node-fetch":"^2.7.0"}}' > "$work/verdaccio/package.json"
(cd "$work/verdaccio" && npm install --silent --no-audit --no-fund verdaccio@6.8.0 >/dev/null 2>&1)
cat > "$work/verdaccio/config.yaml" <<EOF
storage: $work/verdaccio/storage
auth: { htpasswd: { file: $work/verdaccio/htpasswd } }
packages: { '@*/*': { access: \$all, publish: \$authenticated }, '**': { access: \$all, publish: \$authenticated } }
log: { type: stdout, format: pretty, level: error }
EOF
"$work/verdaccio/node_modules/.bin/verdaccio" --config "$work/verdaccio/config.yaml" --listen 127.0.0.1:18412 \
  >"$work/verdaccio.log" 2>&1 &
verdaccio_pid=$!; pids+=("$verdaccio_pid")

WHARF_DATA=$work/wharf WHARF_LISTEN=127.0.0.1:18411 target/release/wharf serve >/dev/null 2>"$work/wharf.log" &
wharf_pid=$!; pids+=("$wharf_pid")
until curl -fs -o /dev/null http://127.0.0.1:18411/readyz; do
  kill -0 "$wharf_pid" 2>/dev/null || { cat "$work/wharf.log" >&2; exit 1; }
  sleep 0.05
done
until curl -fs -o /dev/null http://127.0.0.1:18412/-/ping; do
  kill -0 "$verdaccio_pid" 2>/dev/null || { cat "$work/verdaccio.log" >&2; exit 1; }
  sleep 0.1
done

declare -A url=([wharf]="http://127.0.0.1:18411/repository/npm" [verdaccio]="http://127.0.0.1:18412")
login() { # registry user password -> token (Verdaccio creates the user on first login)
  curl -fsS -X PUT -H 'content-type: application/json' -d "{\"name\":\"$2\",\"password\":\"$3\"}" \
    "${url[$1]}/-/user/org.couchdb.user:$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
declare -A token
token[wharf]=$(login wharf admin "$(cat "$work/wharf/initial-admin-password")")
token[verdaccio]=$(login verdaccio bench bench-password-1)

median() { sort -n | sed -n 2p; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process, in clock ticks
declare -A packument tarball install npm_cpu rss server_cpu
sleep 3
for r in wharf verdaccio; do
  rss[$r]=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$([ $r = wharf ] && echo "$wharf_pid" || echo "$verdaccio_pid")/status")
done
for r in wharf verdaccio; do
  python3 bench/npm_publish.py "${url[$r]}" "${token[$r]}" "$packages" tree
  packument[$r]=$(wrk -t2 -c16 -d10s -H 'Accept: application/vnd.npm.install-v1+json' "${url[$r]}/tree-1" |
    awk '/Requests\/sec/ {print $2}')
  tarball[$r]=$(wrk -t2 -c16 -d10s "${url[$r]}/tree-1/-/tree-1-1.0.0.tgz" | awk '/Requests\/sec/ {print $2}')
  pid=$([ $r = wharf ] && echo "$wharf_pid" || echo "$verdaccio_pid")
  ticks_before=$(cpu_ticks "$pid")
  for run in 1 2 3; do
    project=$work/install-$r-$run
    mkdir -p "$project"
    echo '{"name":"consumer","version":"1.0.0"}' > "$project/package.json"
    start=$(date +%s%N)
    # npm's own CPU time (user + system of npm and its children), beside the wall time: npm is mostly one thread,
    # so its CPU time is a floor under its wall time that no server can lower.
    npm_cpu=$( { TIMEFORMAT='%3U %3S'; time (cd "$project" && npm install --silent --no-audit --no-fund \
      --registry "${url[$r]}/" --cache "$project/cache" --userconfig "$project/npmrc" tree-0 >/dev/null); } 2>&1 |
      awk '{print int(($1 + $2) * 1000)}')
    echo "$(( ($(date +%s%N) - start) / 1000000 )) $npm_cpu" >> "$work/install-$r"
    [ "$(ls "$project/node_modules" | wc -l)" -ge "$packages" ] || { echo "install incomplete" >&2; exit 1; }
  done
  install[$r]=$(cut -d' ' -f1 "$work/install-$r" | median)
  npm_cpu[$r]=$(cut -d' ' -f2 "$work/install-$r" | median)
  # The server's own CPU per install: what a faster server can take off the wall time at most.
  server_cpu[$r]=$(( ($(cpu_ticks "$pid") - ticks_before) * 1000 / $(getconf CLK_TCK) / 3 ))
done

# npm's floor: the same install again from the cache of the last run, offline, so no server is asked at all.
project=$work/install-verdaccio-3
rm -rf "$project/node_modules" "$project/package-lock.json"
start=$(date +%s%N)
(cd "$project" && npm install --offline --silent --no-audit --no-fund --registry "${url[verdaccio]}/" \
  --cache "$project/cache" --userconfig "$project/npmrc" tree-0 >/dev/null)
floor=$(( ($(date +%s%N) - start) / 1000000 ))

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
{
  echo "npm registry, Wharf vs Verdaccio 6.8.0, loopback, $(nproc) cores, $packages packages"
  printf 'abbreviated packument GET, 16 connections, 10 s:  wharf %.0f req/s   verdaccio %.0f req/s   ratio %s\n' \
    "${packument[wharf]}" "${packument[verdaccio]}" "$(ratio "${packument[wharf]}" "${packument[verdaccio]}")"
  printf 'tarball GET, 16 connections, 10 s:                wharf %.0f req/s   verdaccio %.0f req/s   ratio %s\n' \
    "${tarball[wharf]}" "${tarball[verdaccio]}" "$(ratio "${tarball[wharf]}" "${tarball[verdaccio]}")"
  printf 'npm install of the %s-package tree, empty cache, median of 3:  wharf %s ms   verdaccio %s ms   ratio %s\n' \
    "$packages" "${install[wharf]}" "${install[verdaccio]}" "$(ratio "${install[wharf]}" "${install[verdaccio]}")"
  echo "  server CPU per install: wharf ${server_cpu[wharf]} ms   verdaccio ${server_cpu[verdaccio]} ms"
  echo "  npm's own CPU per install (user + system, median): against wharf ${npm_cpu[wharf]} ms   against verdaccio ${npm_cpu[verdaccio]} ms"
  echo "  npm alone (same install, offline from a warm cache, no server asked): $floor ms"
  echo "idle RSS: wharf ${rss[wharf]} MiB   verdaccio ${rss[verdaccio]} MiB"
} | tee bench/results/npm.txt
