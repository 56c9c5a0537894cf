"""Publishes a tree of N small packages to an npm registry, as `npm publish` would, but without one node process per
package: each tarball is built in memory and PUT with its document. Package i depends on 2i+1 and 2i+2 (a binary
tree), so installing pkg-0 pulls all N.

Usage: npm_publish.py REGISTRY_URL TOKEN N PREFIX
"""
import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request

registry, token, count, prefix = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4]


def tarball(package_json, index_js):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in (("package/package.json", package_json), ("package/index.js", index_js)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


for i in range(count):
    name = f"{prefix}-{i}"
    deps = {f"{prefix}-{c}": "^1.0.0" for c in (2 * i + 1, 2 * i + 2) if c < count}
    manifest = {"name": name, "version": "1.0.0", "main": "index.js", "dependencies": deps}
    body = tarball(json.dumps(manifest), f"module.exports = {i};\n" + "// padding\n" * 200)
    dist = {
        "shasum": hashlib.sha1(body).hexdigest(),
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode(),
        "tarball": f"{registry}/{name}/-/{name}-1.0.0.tgz",
    }
    doc = {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {**manifest, "_id": f"{name}@1.0.0", "dist": dist}},
        "_attachments": {
            f"{name}-1.0.0.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(body).decode(),
                "length": len(body),
            }
        },
    }
    request = urllib.request.Request(
        f"{registry}/{name}",
        data=json.dumps(doc).encode(),
        method="PUT",
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as response:
        if response.status not in (200, 201):
            sys.exit(f"publishing {name}: {response.status}")
