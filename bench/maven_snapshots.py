"""Deploys builds of one SNAPSHOT (a jar and a POM each, as `mvn deploy` would) to a Wharf Maven repository, then
times retention's dry run of a policy that expires all builds but the newest two: the median of 3, in ms.

Usage: maven_snapshots.py HOST:PORT PASSWORD FIRST LAST   (deploys builds FIRST..LAST, then prints the median)
"""
import json
import sys
import time

from wharf_api import Wharf

address, password, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
call = Wharf(address, password).call


directory = "/repository/maven/org/wharf/bench/snap/1.0-SNAPSHOT"
pom = "<project><modelVersion>4.0.0</modelVersion><groupId>org.wharf.bench</groupId><artifactId>snap</artifactId>"
pom += "<version>1.0-SNAPSHOT</version></project>"
for build in range(first, last + 1):
    unique = "1.0-20261201.%06d-%d" % (build, build)
    call("PUT", f"{directory}/snap-{unique}.jar", f"build {build}".encode())
    call("PUT", f"{directory}/snap-{unique}.pom", pom.encode())
policy = {"rules": [{"rulePriority": 1, "action": {"type": "expire"},
                     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}}]}
call("PUT", "/api/v1/repositories/maven/retention", json.dumps(policy).encode(), {"content-type": "application/json"})
times = []
for _ in range(3):
    started = time.monotonic()
    plan = call("POST", "/api/v1/repositories/maven/retention/run?dry_run=true")
    times.append((time.monotonic() - started) * 1000)
    removed = plan.count(b'"remove":true')
    if removed != last - 2:
        sys.exit(f"the plan removes {removed} builds, not {last - 2}")
print(round(sorted(times)[1]))
