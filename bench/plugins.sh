#!/usr/bin/env bash
# Format plugins: the bundled `generic` plugin beside built-in formats in the same server, same run:
#  - a 1 GiB PUT through the generic plugin beside a 1 GiB OCI blob push (POST, then one PUT) and a 1 GiB PUT to
#    the built-in generic twin, MiB/s until the 201, median of 7, fresh content every run. Both generics compute the
#    sha256 as the body streams in, and the sha1 and md5 they serve after the 201, in the background; each run waits
#    for those (HEAD shows X-Checksum-Md5) before the next starts, and the time from the 201 until then is reported.
#    OCI computes sha256 only.
#  - HEAD of a small generic file, 16 connections, 10 s of ab: requests per second and p99, plugin beside the
#    built-in twin (`generic-builtin`)
#  - the cost of one plugin call: the mean latency of that HEAD with one connection, plugin minus built-in, divided
#    by the two plugin calls a HEAD makes (classify, handle)
# Writes bench/results/plugins.txt. Needs curl, ab (apt: apache2-utils) and bc (apt). Run from anywhere: bench/plugins.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl ab bc; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/plugins-bench.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/wharf.toml" <<TOML
[[repository]]
name = "generic"
format = "generic"
[[repository]]
name = "builtin"
format = "generic-builtin"
[[repository]]
name = "docker"
format = "docker"
TOML
WHARF_DATA=$work/data WHARF_LISTEN=127.0.0.1:18440 target/release/wharf serve --config "$work/wharf.toml" \
  >/dev/null 2>"$work/wharf.log" &
pid=$!
until curl -fs -o /dev/null http://127.0.0.1:18440/readyz; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/wharf.log" >&2; exit 1; }
  sleep 0.05
done
auth="admin:$(cat "$work/data/initial-admin-password")"
base=http://127.0.0.1:18440
median() { sort -n | sed -n 4p; }

# Fresh content for each upload, written back before the upload starts so that its writeback does not compete with
# the one measured. Where the bench may (root), the page cache is emptied first, so that every upload finds the same
# free memory rather than the later ones reclaiming what the earlier ones cached.
blob() {
  if [ -w /proc/sys/vm/drop_caches ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
  head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/blob"
  sync
}
oci_push() {
  local digest loc seconds
  digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"
  loc=$(curl -fsS -u "$auth" -X POST -D - -o /dev/null "$base/v2/docker/bench/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  case $loc in /*) loc="$base$loc";; esac
  case $loc in *\?*) loc="$loc&";; *) loc="$loc?";; esac
  seconds=$(curl -fsS -u "$auth" -X PUT -H 'Content-Type: application/octet-stream' -T "$work/blob" \
    -o /dev/null -w '%{time_total}' "${loc}digest=$digest")
  echo "1024 / $seconds" | bc -l
}
# Prints MiB/s until the 201, then the seconds from the 201 until the sha1 and md5 are served.
generic_put() {
  local seconds acked url="$base/repository/$1/big/$2.bin"
  seconds=$(curl -fsS -u "$auth" -T "$work/blob" -o /dev/null -w '%{time_total}' "$url")
  acked=$(date +%s.%N)
  until curl -fsSI "$url" | grep -qi '^x-checksum-md5:'; do sleep 0.02; done
  echo "$(echo "1024 / $seconds" | bc -l) $(echo "$(date +%s.%N) - $acked" | bc -l)"
}
# Rounds interleave the three, so each meets the same state of the page cache and the disk.
for run in 1 2 3 4 5 6 7; do
  blob; oci_push >> "$work/oci"
  blob; generic_put generic "$run" >> "$work/plugin"
  blob; generic_put builtin "$run" >> "$work/builtin"
done
oci=$(median < "$work/oci")
read -r plugin plugin_later < <(median < "$work/plugin")
read -r builtin builtin_later < <(median < "$work/builtin")

head -c 4096 /dev/urandom > "$work/small"
for repo in generic builtin; do curl -fsS -u "$auth" -T "$work/small" -o /dev/null "$base/repository/$repo/small.bin"; done
declare -A rps p99 mean
for repo in generic builtin; do
  # ab, not wrk: wrk waits for a body after a HEAD answer that has a Content-Length.
  out=$(ab -q -k -i -c 16 -t 10 -n 100000000 "$base/repository/$repo/small.bin")
  rps[$repo]=$(awk '/^Requests per second/ {print $4}' <<<"$out")
  p99[$repo]=$(awk '$1 == "99%" {print $2 " ms"}' <<<"$out")
  mean[$repo]=$(ab -q -k -i -c 1 -t 5 -n 100000000 "$base/repository/$repo/small.bin" |
    awk '/^Time per request/ && /\(mean\)/ {print $4 * 1000; exit}')
done
call=$(echo "(${mean[generic]} - ${mean[builtin]}) / 2" | bc -l)
{
  echo "Format plugins, the bundled generic plugin beside built-in formats, one Wharf, loopback, $(nproc) cores"
  printf '1 GiB PUT through the generic plugin: %.0f MiB/s   1 GiB OCI blob push (built-in): %.0f MiB/s   ratio %.2f\n' \
    "$plugin" "$oci" "$(echo "$plugin / $oci" | bc -l)"
  printf '1 GiB PUT to the built-in generic (same checksums as the plugin): %.0f MiB/s   plugin/built-in %.2f\n' \
    "$builtin" "$(echo "$plugin / $builtin" | bc -l)"
  echo "  each round, MiB/s: OCI $(awk '{printf "%.0f ", $1}' "$work/oci")  plugin $(awk '{printf "%.0f ", $1}' "$work/plugin")  built-in $(awk '{printf "%.0f ", $1}' "$work/builtin")"
  printf 'sha1 and md5 of that 1 GiB served (computed in the background) %.1f s after the 201 (plugin), %.1f s (built-in)\n' \
    "$plugin_later" "$builtin_later"
  printf 'HEAD of a 4 KiB generic file, 16 connections, 10 s:  plugin %.0f req/s (p99 %s)   built-in %.0f req/s (p99 %s)\n' \
    "${rps[generic]}" "${p99[generic]}" "${rps[builtin]}" "${p99[builtin]}"
  printf 'one plugin call (a fresh instance, on the blocking pool; one connection): %.0f us\n' "$call"
} | tee bench/results/plugins.txt
