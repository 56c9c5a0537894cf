"""Deploys builds of one SNAPSHOT (a jar and a POM each, as `mvn deploy` would) to a Wharf Maven repository, then
times retention's dry run of a policy that expires all builds but the newest two: the median of 3, in ms.

Usage: maven_snapshots.py HOST:PORT PASSWORD FIRST LAST   (deploys builds FIRST..LAST, then prints the median)
"""
import base64
import http.client
import json
import sys
import time

address, password, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
auth = {"authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
host, port = address.split(":")
connection = http.client.HTTPConnection(host, int(port))


def call(method, path, body=None, headers=None):
    connection.request(method, path, body=body, headers={**auth, **(headers or {})})
    response = connection.getresponse()
    text = response.read()
    if response.status not in (200, 201):
        sys.exit(f"{method} {path}: {response.status} {text[:200]}")
    return text


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
