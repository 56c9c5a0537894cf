#!/usr/bin/env bash
# Retention and GC at scale (bench/src/bin/maintenance.rs), at 10,000 and 100,000 items, each on a fresh server:
# a retention dry run over N manifests and a GC run over N unreferenced blobs, timed, with the p99 of manifest GETs
# from 4 clients during each beside idle. Writes bench/results/maintenance.txt. Run from anywhere:
# bench/maintenance.sh [N...]
# WHARF_BENCH_CACHE=8MiB sets the metadata cache ([storage] cache; default 128 MiB) and writes
# bench/results/maintenance-cache-8MiB.txt instead: an index that outgrows the cache (about 10,000 manifests
# for 8 MiB) is read back from the file on every pass, a step in the cost per item.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p wharf -p wharf-bench
sizes=("${@:-10000 30000 100000}")
cache=${WHARF_BENCH_CACHE:-}
results=bench/results/maintenance${cache:+-cache-$cache}.txt
cache_line=
if [ -n "$cache" ]; then cache_line="cache = \"$cache\""; fi
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/maintenance-bench.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/wharf.toml" <<TOML
[storage]
gc_grace = "0s"
gc_interval = "0s"
$cache_line
[[repository]]
name = "docker"
format = "docker"
TOML
lines=()
for n in ${sizes[*]}; do
  rm -rf "$work/data"
  # The first start makes the admin user; a token is made while the server is stopped.
  WHARF_DATA=$work/data WHARF_LISTEN=127.0.0.1:18450 target/release/wharf serve --config "$work/wharf.toml" \
    >/dev/null 2>"$work/wharf.log" &
  pid=$!
  until curl -fs -o /dev/null http://127.0.0.1:18450/readyz; do sleep 0.05; done
  kill $pid; wait $pid || true
  token=$(target/release/wharf token create admin --name bench --data "$work/data")
  WHARF_DATA=$work/data WHARF_LISTEN=127.0.0.1:18450 target/release/wharf serve --config "$work/wharf.toml" \
    >/dev/null 2>"$work/wharf.log" &
  pid=$!
  until curl -fs -o /dev/null http://127.0.0.1:18450/readyz; do sleep 0.05; done
  lines+=("$(target/release/maintenance http://127.0.0.1:18450 "$token" "$n" "$pid")")
  kill $pid; wait $pid || true
  pid=
done
{
  echo "Retention and GC at scale, one Wharf per size, loopback, $(nproc) cores, metadata cache ${cache:-128MiB (default)}"
  printf '%s\n' "${lines[@]}"
} | tee "$results"
