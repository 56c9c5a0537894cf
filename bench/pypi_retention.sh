#!/usr/bin/env bash
# PyPI retention benchmark: one project with 1,000 and, in a second repository, 3,000 releases (an sdist each,
# uploaded by bench/pypi_releases.py), a policy that keeps only the newest; the dry run (median of 3) and the real
# run that removes the rest, in ms. Both should grow in step with the releases.
# Writes bench/results/pypi_retention.txt. Needs curl and python3. Run from anywhere: bench/pypi_retention.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/pypi-retention-bench.XXXXXX")
printf '[[repository]]\nname = "small"\nformat = "pypi"\n\n[[repository]]\nname = "large"\nformat = "pypi"\n' \
  > "$work/wharf.toml"
WHARF_DATA=$work/wharf WHARF_LISTEN=127.0.0.1:18431 target/release/wharf serve --config "$work/wharf.toml" \
  >/dev/null 2>"$work/wharf.log" &
wharf_pid=$!
trap 'kill $wharf_pid 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -fs -o /dev/null http://127.0.0.1:18431/readyz; do
  kill -0 "$wharf_pid" 2>/dev/null || { cat "$work/wharf.log" >&2; exit 1; }
  sleep 0.05
done
password=$(cat "$work/wharf/initial-admin-password")
read -r dry_small real_small < <(python3 bench/pypi_releases.py 127.0.0.1:18431 "$password" small 1000)
read -r dry_large real_large < <(python3 bench/pypi_releases.py 127.0.0.1:18431 "$password" large 3000)
{
  echo "PyPI retention, Wharf, loopback, $(nproc) cores, one project, keep the newest release"
  echo "1,000 releases:  dry run ${dry_small} ms   real run (removes 999) ${real_small} ms"
  echo "3,000 releases:  dry run ${dry_large} ms   real run (removes 2,999) ${real_large} ms"
} | tee bench/results/pypi_retention.txt
