#!/usr/bin/env bash
# Python index benchmark, Wharf beside pypiserver and devpi-server (both from PyPI), same machine, same run:
#  - the simple API's project page, as pip asks for it (its Accept header), 16 connections, 10 s of wrk
#  - `pip install` of 50 small hosted projects into a fresh virtual environment, no cache, wall time, median of 3
# 50 wheels are made by bench/pypi_wheels.py; pypiserver reads them from its directory, devpi and Wharf get them
# through twine. Writes bench/results/pypi.txt. Needs curl, wrk (apt) and python3. Run from anywhere: bench/pypi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/pypi-bench.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
projects=50

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q pip==26.3 pypiserver==2.4.2 waitress==3.0.2 devpi-server==6.20.3 \
  devpi-client==7.3.0 twine==7.0.0
bin=$work/venv/bin
python3 bench/pypi_wheels.py "$work/wheels" "$projects"

wait_for() { # url pid log
  until curl -fs -o /dev/null "$1"; do
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.1
  done
}

WHARF_DATA=$work/wharf WHARF_LISTEN=127.0.0.1:18420 target/release/wharf serve >/dev/null 2>"$work/wharf.log" &
wharf_pid=$!; pids+=("$wharf_pid")
mkdir -p "$work/pypiserver"
cp "$work/wheels"/*.whl "$work/pypiserver/"
"$bin/pypi-server" run -i 127.0.0.1 -p 18421 -a . -P . "$work/pypiserver" >"$work/pypiserver.log" 2>&1 &
pypiserver_pid=$!; pids+=("$pypiserver_pid")
"$bin/devpi-init" --serverdir "$work/devpi" --root-passwd root --no-root-pypi >/dev/null 2>&1
"$bin/devpi-server" --serverdir "$work/devpi" --host 127.0.0.1 --port 18422 >"$work/devpi.log" 2>&1 &
devpi_pid=$!; pids+=("$devpi_pid")
wait_for http://127.0.0.1:18420/readyz "$wharf_pid" "$work/wharf.log"
wait_for http://127.0.0.1:18421/simple/ "$pypiserver_pid" "$work/pypiserver.log"
wait_for http://127.0.0.1:18422/+api "$devpi_pid" "$work/devpi.log"

devpi() { "$bin/devpi" --clientdir "$work/devpi-client" "$@" >/dev/null; }
devpi use http://127.0.0.1:18422
devpi login root --password root
devpi index -c root/bench bases= volatile=False
twine() { "$bin/twine" upload --non-interactive --disable-progress-bar --repository-url "$1" -u "$2" -p "$3" \
  "$work/wheels"/*.whl >/dev/null; }
twine http://127.0.0.1:18420/repository/pypi/legacy/ admin "$(cat "$work/wharf/initial-admin-password")"
twine http://127.0.0.1:18422/root/bench/ root root

declare -A simple=([wharf]=http://127.0.0.1:18420/repository/pypi/simple
  [pypiserver]=http://127.0.0.1:18421/simple [devpi]=http://127.0.0.1:18422/root/bench/+simple)
accept='application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01'
median() { sort -n | sed -n 2p; }
declare -A page install
names=$(seq -f 'proj-%g' 0 $((projects - 1)))
for r in wharf pypiserver devpi; do
  curl -fs -o /dev/null -H "Accept: $accept" "${simple[$r]}/proj-0/" || { echo "$r has no proj-0" >&2; exit 1; }
  page[$r]=$(wrk -t2 -c16 -d10s -H "Accept: $accept" "${simple[$r]}/proj-0/" | awk '/Requests\/sec/ {print $2}')
  install[$r]=$(for run in 1 2 3; do
    target=$work/env-$r-$run
    python3 -m venv --without-pip "$target"
    start=$(date +%s%N)
    # shellcheck disable=SC2086 # one argument per project
    "$bin/python" -m pip --python "$target/bin/python" install -q --no-cache-dir --disable-pip-version-check \
      --index-url "${simple[$r]}/" $names
    echo $(( ($(date +%s%N) - start) / 1000000 ))
    [ "$("$bin/python" -m pip --python "$target/bin/python" list 2>/dev/null | grep -c '^proj-')" = "$projects" ] ||
      { echo "$r: install incomplete" >&2; exit 1; }
  done | median)
done

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
{
  echo "Python index, Wharf vs pypiserver 2.4.2 (waitress) and devpi-server 6.20.3, loopback, $(nproc) cores"
  printf 'simple project page, pip Accept header, 16 connections, 10 s:  wharf %.0f req/s   pypiserver %.0f req/s   devpi %.0f req/s   wharf/pypiserver %s   wharf/devpi %s\n' \
    "${page[wharf]}" "${page[pypiserver]}" "${page[devpi]}" \
    "$(ratio "${page[wharf]}" "${page[pypiserver]}")" "$(ratio "${page[wharf]}" "${page[devpi]}")"
  printf 'pip install of %s projects, fresh environment, no cache, median of 3:  wharf %s ms   pypiserver %s ms   devpi %s ms\n' \
    "$projects" "${install[wharf]}" "${install[pypiserver]}" "${install[devpi]}"
} | tee bench/results/pypi.txt
