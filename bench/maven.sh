#!/usr/bin/env bash
# Maven repository benchmark: artifact-level maven-metadata.xml GET (generated on every read, 20 versions) and a
# 100 KiB jar GET, each with 16 connections for 10 s of wrk; then retention's dry run over one SNAPSHOT of 1,000 and
# of 3,000 builds (bench/maven_snapshots.py), median of 3, which should grow in step with the builds.
# Wharf alone: Reposilite, the peer the issue names, is published only to its own repository and as container
# images, and neither is reachable from these machines (only Maven Central is; `mvn dependency:get` of
# com.reposilite:reposilite there fails).
# Writes bench/results/maven.txt. Needs curl, wrk (apt) and python3. Run from anywhere: bench/maven.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
cargo build --release -q -p wharf
work=$(mktemp -d "${WHARF_BENCH_DIR:-/tmp}/maven-bench.XXXXXX")
WHARF_DATA=$work/wharf WHARF_LISTEN=127.0.0.1:18430 target/release/wharf serve >/dev/null 2>"$work/wharf.log" &
wharf_pid=$!
trap 'kill $wharf_pid 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -fs -o /dev/null http://127.0.0.1:18430/readyz; do
  kill -0 "$wharf_pid" 2>/dev/null || { cat "$work/wharf.log" >&2; exit 1; }
  sleep 0.05
done
password=$(cat "$work/wharf/initial-admin-password")
base=http://127.0.0.1:18430/repository/maven/org/wharf/bench/lib
head -c 102400 /dev/urandom > "$work/lib.jar"
for minor in $(seq 0 19); do
  v=1.$minor
  printf '<project><modelVersion>4.0.0</modelVersion><groupId>org.wharf.bench</groupId><artifactId>lib</artifactId><version>%s</version></project>' "$v" > "$work/lib.pom"
  curl -fsS -u "admin:$password" -T "$work/lib.jar" "$base/$v/lib-$v.jar"
  curl -fsS -u "admin:$password" -T "$work/lib.pom" "$base/$v/lib-$v.pom"
done
curl -fs "$base/maven-metadata.xml" | grep -q '<version>1.19</version>'

metadata=$(wrk -t2 -c16 -d10s "$base/maven-metadata.xml" | awk '/Requests\/sec/ {print $2}')
jar=$(wrk -t2 -c16 -d10s "$base/1.7/lib-1.7.jar" | awk '/Requests\/sec|Transfer\/sec/ {print $2}' | paste -sd' ')
dry_1000=$(python3 bench/maven_snapshots.py 127.0.0.1:18430 "$password" 1 1000)
dry_3000=$(python3 bench/maven_snapshots.py 127.0.0.1:18430 "$password" 1001 3000)
{
  echo "Maven repository, Wharf, loopback, $(nproc) cores (Reposilite cannot be fetched here; see bench/maven.sh)"
  printf 'artifact-level maven-metadata.xml GET (20 versions, generated), 16 connections, 10 s:  %.0f req/s\n' "$metadata"
  read -r rps transfer <<<"$jar"
  printf '100 KiB jar GET, 16 connections, 10 s:  %.0f req/s (%s/s)\n' "$rps" "$transfer"
  echo "retention dry run over one SNAPSHOT (all but 2 builds expire), median of 3:  1,000 builds ${dry_1000} ms   3,000 builds ${dry_3000} ms"
} | tee bench/results/maven.txt
