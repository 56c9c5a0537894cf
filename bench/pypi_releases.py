"""Uploads releases of one project (an sdist each, through the legacy upload API as twine does) to a Wharf PyPI
repository, then times retention on a policy that keeps only the newest: the dry run (median of 3) and the real run,
in ms, printed as "DRY REAL".

Usage: pypi_releases.py HOST:PORT PASSWORD REPOSITORY COUNT
"""
import gzip
import io
import json
import sys
import tarfile
import time

from wharf_api import Wharf

address, password, repo, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
call = Wharf(address, password).call


def sdist(version):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = f"Metadata-Version: 2.1\nName: bench-proj\nVersion: {version}\n".encode()
        info = tarfile.TarInfo(f"bench_proj-{version}/PKG-INFO")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


boundary = "wharf-bench-boundary"
for i in range(count):
    version = f"1.0.{i}"
    fields = {":action": "file_upload", "protocol_version": "1", "name": "bench-proj", "version": version,
              "filetype": "sdist", "pyversion": "source", "metadata_version": "2.1"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="bench_proj-{version}.tar.gz"'
             "\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += sdist(version) + f"\r\n--{boundary}--\r\n".encode()
    call("POST", f"/repository/{repo}/legacy/", body, {"content-type": f"multipart/form-data; boundary={boundary}"})
policy = {"rules": [{"rulePriority": 1, "action": {"type": "expire"},
                     "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}}]}
call("PUT", f"/api/v1/repositories/{repo}/retention", json.dumps(policy).encode(), {"content-type": "application/json"})
runs = []
for dry_run in ("true", "true", "true", "false"):
    started = time.monotonic()
    plan = call("POST", f"/api/v1/repositories/{repo}/retention/run?dry_run={dry_run}")
    runs.append((time.monotonic() - started) * 1000)
    removed = plan.count(b'"remove":true')
    if removed != count - 1:
        sys.exit(f"the plan removes {removed} releases, not {count - 1}")
page = call("GET", f"/repository/{repo}/simple/bench-proj/")
if page.count(b"<a ") != 1:
    sys.exit(f"{page.count(b'<a ')} files left, not 1")
print(round(sorted(runs[:3])[1]), round(runs[3]))
