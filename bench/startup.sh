#!/usr/bin/env bash
# Start-up and idle memory of `wharf serve` on an empty store: milliseconds from exec to the first 200 from /readyz,
# median of 5 first starts (each on a fresh data directory) and of 5 restarts on the same directory, and VmRSS after
# 3 s idle. Writes bench/results/startup.txt.
# Run from the repository root: bench/startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p wharf
bin=target/release/wharf
port=18390
# Starts `serve` on $1, leaves it running as $pid and sets $took: milliseconds from exec to the first 200 from /readyz.
start() {
  local begin
  begin=$(date +%s%N)
  WHARF_DATA="$1" WHARF_LISTEN="127.0.0.1:$port" "$bin" serve >/dev/null 2>&1 &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.002; done
  took=$(( ($(date +%s%N) - begin) / 1000000 ))
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
trap '[ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true' EXIT
rss() { sleep 3; awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
first=() restart=()
for run in 1 2 3 4 5; do
  dir=$(mktemp -d)
  # The first start compiles the bundled plugins (and caches them under the data directory); a restart loads them.
  start "$dir/data"; first+=("$took")
  [ "$run" = 5 ] && first_rss=$(rss)
  stop
  start "$dir/data"; restart+=("$took")
  [ "$run" = 5 ] && restart_rss=$(rss)
  stop
  rm -rf "$dir"
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
{
  echo "start to first 200 from /readyz, empty store, first start: median $(median "${first[@]}") ms (runs: ${first[*]})"
  echo "  restart on the same data directory: median $(median "${restart[@]}") ms (runs: ${restart[*]})"
  echo "idle RSS after 3 s: first start $(( first_rss / 1024 )) MiB, restart $(( restart_rss / 1024 )) MiB"
} | tee bench/results/startup.txt
