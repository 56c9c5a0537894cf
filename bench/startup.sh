#!/usr/bin/env bash
# Start-up and idle memory of `wharf serve` on an empty store: milliseconds from exec to the first 200 from /readyz
# (median of 5 starts, each on a fresh data directory), and VmRSS after 3 s idle. Writes bench/results/startup.txt.
# Run from the repository root: bench/startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p wharf
bin=target/release/wharf
port=18390
times=()
for run in 1 2 3 4 5; do
  dir=$(mktemp -d)
  start=$(date +%s%N)
  WHARF_DATA="$dir/data" WHARF_LISTEN="127.0.0.1:$port" "$bin" serve >/dev/null 2>&1 &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.002; done
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000000 )))
  if [ "$run" = 5 ]; then
    sleep 3
    rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
{
  echo "start to first 200 from /readyz, empty store: median ${median} ms (runs: ${times[*]})"
  echo "idle RSS after 3 s: $(( rss_kib / 1024 )) MiB (${rss_kib} KiB)"
} | tee bench/results/startup.txt
