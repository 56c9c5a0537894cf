#!/usr/bin/env bash
# OCI registry benchmark, Wharf beside CNCF distribution v3 (filesystem storage), same machine, same run:
#  - push of a 1 GiB blob over loopback (POST, then one PUT with the whole body), MiB/s, median of 3
#  - pull of that blob, MiB/s, median of 3
#  - manifest GET by tag, 16 connections, 10 s of wrk, requests per second
#  - Wharf's RSS while 4 GiB is pulled (4 pulls of the 1 GiB blob), beside its idle RSS
# Writes bench/results/oci.txt. Needs curl, wrk (apt) and the distribution binary on PATH as `registry`
# (go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2). Run from anywhere: bench/oci.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl wrk registry; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (see the header of this script)" >&2; exit 1; }
done
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/oci-bench.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Each push run sends new content (as a real push does), so no run is a dedup of an earlier one.
for run in 1 2 3; do
  head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/blob$run"
  digests[$run]="sha256:$(sha256sum "$work/blob$run" | cut -d' ' -f1)"
done
mib=1024

# Wharf on its embedded store.
WHARF_DATA=$work/wharf WHARF_LISTEN=127.0.0.1:18401 target/release/wharf serve >/dev/null 2>"$work/wharf.log" &
wharf_pid=$!; pids+=("$wharf_pid")
# distribution with filesystem storage.
cat > "$work/registry.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/distribution }, delete: { enabled: true } }
http: { addr: 127.0.0.1:18402 }
EOF
registry serve "$work/registry.yml" >/dev/null 2>"$work/registry.log" &
pids+=($!)
until curl -fs -o /dev/null http://127.0.0.1:18401/readyz; do sleep 0.05; done
until curl -s -o /dev/null http://127.0.0.1:18402/v2/; do sleep 0.05; done
password=$(cat "$work/wharf/initial-admin-password")
declare -A auth=([wharf]="-u admin:$password" [distribution]="")
declare -A base=([wharf]="http://127.0.0.1:18401/v2/docker" [distribution]="http://127.0.0.1:18402/v2/bench")

median() { sort -n | sed -n 2p; }

start_upload() { # registry image -> absolute upload URL with a ? or & ready for digest=
  local loc
  loc=$(curl -fsS ${auth[$1]} -X POST -D - -o /dev/null "${base[$1]}/$2/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  case $loc in /*) loc="${base[$1]%%/v2/*}$loc";; esac
  case $loc in *\?*) echo "$loc&";; *) echo "$loc?";; esac
}

push() { # registry run -> MiB/s
  local url seconds
  url=$(start_upload "$1" "push$2")
  seconds=$(curl -fsS ${auth[$1]} -X PUT -H 'Content-Type: application/octet-stream' -T "$work/blob$2" \
    -o /dev/null -w '%{time_total}' "${url}digest=${digests[$2]}")
  echo "$mib / $seconds" | bc -l
}

pull() { # registry -> MiB/s
  curl -fsS ${auth[$1]} -o /dev/null -w '%{speed_download}' "${base[$1]}/push1/blobs/${digests[1]}" |
    awk '{ printf "%.1f\n", $1 / 1048576 }'
}

manifest() { # registry -> requests/s
  local config='{}' cdigest manifest url
  cdigest="sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
  url=$(start_upload "$1" app)
  curl -fsS ${auth[$1]} -X PUT -H 'Content-Type: application/octet-stream' --data-binary "$config" \
    -o /dev/null "${url}digest=$cdigest"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cdigest\",\"size\":2},\"layers\":[]}"
  curl -fsS ${auth[$1]} -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$manifest" -o /dev/null "${base[$1]}/app/manifests/latest"
  wrk -t2 -c16 -d10s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${base[$1]}/app/manifests/latest" |
    awk '/Requests\/sec/ {print $2}'
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

declare -A push_rate pull_rate manifest_rate
for r in wharf distribution; do
  push_rate[$r]=$(for run in 1 2 3; do push "$r" "$run"; done | median)
  pull_rate[$r]=$(for run in 1 2 3; do pull "$r"; done | median)
  manifest_rate[$r]=$(manifest "$r")
done

sleep 2
idle=$(rss_kib "$wharf_pid")
peak=$idle
(for run in 1 2 3 4; do pull wharf >/dev/null; done) &
puller=$!
while kill -0 "$puller" 2>/dev/null; do
  now=$(rss_kib "$wharf_pid"); [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.05
done

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
{
  echo "OCI registry, Wharf vs CNCF distribution $(registry --version | awk '{print $3}') (filesystem), loopback, $(nproc) cores"
  printf 'push 1 GiB blob (POST + PUT), median of 3:  wharf %.0f MiB/s   distribution %.0f MiB/s   ratio %s\n' \
    "${push_rate[wharf]}" "${push_rate[distribution]}" "$(ratio "${push_rate[wharf]}" "${push_rate[distribution]}")"
  printf 'pull 1 GiB blob, median of 3:               wharf %.0f MiB/s   distribution %.0f MiB/s   ratio %s\n' \
    "${pull_rate[wharf]}" "${pull_rate[distribution]}" "$(ratio "${pull_rate[wharf]}" "${pull_rate[distribution]}")"
  printf 'manifest GET by tag, 16 connections, 10 s:  wharf %.0f req/s   distribution %.0f req/s   ratio %s\n' \
    "${manifest_rate[wharf]}" "${manifest_rate[distribution]}" "$(ratio "${manifest_rate[wharf]}" "${manifest_rate[distribution]}")"
  echo "wharf RSS: idle $((idle / 1024)) MiB, peak while pulling 4 GiB $((peak / 1024)) MiB (+$(((peak - idle) / 1024)) MiB)"
} | tee bench/results/oci.txt
