"""Writes N small, valid wheels (`proj-<i>` 1.0.0, one module each, no dependencies) into a directory, without a
build backend: building 50 projects with `python -m build` would take minutes and measure setuptools, not an index.

Usage: pypi_wheels.py DIR N
"""
import base64
import hashlib
import pathlib
import sys
import zipfile

out, count = pathlib.Path(sys.argv[1]), int(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


for i in range(count):
    name, module = f"proj-{i}", f"proj_{i}"
    info = f"{module}-1.0.0.dist-info"
    files = {
        f"{module}.py": f"VALUE = {i}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\nSummary: benchmark project {i}\n"
            "Requires-Python: >=3.8\n\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: wharf-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join(record_line(p, d) for p, d in files.items()) + f"\n{info}/RECORD,,\n"
    with zipfile.ZipFile(out / f"{module}-1.0.0-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{info}/RECORD", record)
