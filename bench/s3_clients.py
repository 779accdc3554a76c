"""S3 clients compared: obstore (the service's) and boto3, against a real S3 server (SeaweedFS).

Each client runs in a process of its own (so its import time and memory are its own): import time,
RSS after import, the mean put and get of a 50 KB object, the throughput of a 200 MB file put in
8 MB parts (4 at a time) and streamed back through a hash, and the peak RSS of it all. boto3 cannot
share the service's environment (botocore pins python-dateutil below the service's), so it gets a
virtual environment of its own under bench/results/ on the first run.

    .venv/bin/python -m bench.s3_clients

Figures only; nothing passes or fails on them.
"""
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import report
from bench.harness import s3_server

HERE = Path(__file__).resolve().parent
BOTO3 = ["boto3==1.44.5", "botocore==1.44.5", "s3transfer==0.19.3"]
BIG_MB = 200

CLIENT = r'''
import hashlib, json, os, sys, time
endpoint, key, secret, region, bucket, path = sys.argv[1:7]
which = sys.argv[7]
def rss():  # the peak resident set so far (VmHWM; ru_maxrss would keep the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
if which == "obstore":
    import obstore
    from obstore.store import S3Store
else:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
imported = time.perf_counter() - t0
rss_import = rss()
PART = 8 * 2**20
if which == "obstore":
    store = S3Store(bucket, config={"endpoint": endpoint, "access_key_id": key, "secret_access_key": secret,
                                    "region": region, "virtual_hosted_style_request": False},
                    client_options={"allow_http": True})
    put_small = lambda k, b: obstore.put(store, k, b)
    get_small = lambda k: bytes(obstore.get(store, k).bytes())
    def put_big(k):
        with open(path, "rb") as f:
            obstore.put(store, k, f, chunk_size=PART, max_concurrency=4)
    def get_big(k):
        h = hashlib.sha256()
        for chunk in obstore.get(store, k).stream(min_chunk_size=2**20):
            h.update(chunk)
else:
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                      region_name=region, config=Config(s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"))
    put_small = lambda k, b: s3.put_object(Bucket=bucket, Key=k, Body=b)
    get_small = lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read()
    parts = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)
    def put_big(k):
        with open(path, "rb") as f:
            s3.upload_fileobj(f, bucket, k, Config=parts)
    def get_big(k):
        h, body = hashlib.sha256(), s3.get_object(Bucket=bucket, Key=k)["Body"]
        for chunk in iter(lambda: body.read(2**20), b""):
            h.update(chunk)
small = os.urandom(50_000)
put_small(f"{which}/warm", small); get_small(f"{which}/warm")
t = time.perf_counter()
for i in range(100):
    put_small(f"{which}/s{i}", small)
put_ms = (time.perf_counter() - t) * 10
t = time.perf_counter()
for i in range(100):
    get_small(f"{which}/s{i}")
get_ms = (time.perf_counter() - t) * 10
size_mb = os.path.getsize(path) / 2**20
t = time.perf_counter(); put_big(f"{which}/big"); put_mbs = size_mb / (time.perf_counter() - t)
t = time.perf_counter(); get_big(f"{which}/big"); get_mbs = size_mb / (time.perf_counter() - t)
print(json.dumps({"import_ms": imported * 1000, "rss_after_import_mb": rss_import, "small_put_ms": put_ms,
                  "small_get_ms": get_ms, "big_put_mb_s": put_mbs, "big_get_mb_s": get_mbs, "peak_rss_mb": rss()}))
'''


def main() -> None:
    """Measure both clients, print the table, and write the figures to bench/results/."""
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": report.machine_facts()}
    boto3_python = _boto3_python()
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp, s3_server.running(Path(tmp) / "s3") as s3:
        s3.create_bucket("bench")
        big = Path(tmp) / "big.bin"
        with open(big, "wb") as f:
            for _ in range(BIG_MB):
                f.write(bytes(range(256)) * 4096)
        env = s3.env("bench")
        args = [env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"],
                "bench", str(big)]
        run["clients"] = {
            "obstore": _measure(sys.executable, args, "obstore"),
            "boto3": _measure(boto3_python, args, "boto3"),
        }
    run["installed_mb"] = {"obstore": _installed_mb(sys.executable, ["obstore"]),
                           "boto3": _installed_mb(boto3_python, ["boto3", "botocore", "s3transfer"])}
    text = describe(run)
    print(text)
    report.save("s3-clients", run, text, HERE / "results", latest="s3-clients")


def _measure(python: str, args: list[str], which: str) -> dict:
    out = subprocess.run([python, "-c", CLIENT, *args, which], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _boto3_python() -> str:
    venv = HERE / "results" / ".boto3-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *BOTO3], check=True)
    return str(python)


def _installed_mb(python: str, packages: list[str]) -> float:
    code = ("import importlib.util, os, sys; print(sum(sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in "
            "os.walk(os.path.dirname(importlib.util.find_spec(p).origin)) for f in fs) for p in sys.argv[1:]))")
    found = subprocess.run([python, "-c", code, *packages], capture_output=True, text=True, check=True)
    return int(found.stdout) / 2**20


def describe(run: dict) -> str:
    """The comparison as a Markdown table."""
    o, b = run["clients"]["obstore"], run["clients"]["boto3"]
    rows = [
        ("import", f"{o['import_ms']:.0f} ms", f"{b['import_ms']:.0f} ms"),
        ("RSS after import", f"{o['rss_after_import_mb']:.0f} MB", f"{b['rss_after_import_mb']:.0f} MB"),
        ("50 KB object: put, get (mean of 100)", f"{o['small_put_ms']:.1f} ms, {o['small_get_ms']:.1f} ms",
         f"{b['small_put_ms']:.1f} ms, {b['small_get_ms']:.1f} ms"),
        (f"{BIG_MB} MB file: put, get", f"{o['big_put_mb_s']:.0f}, {o['big_get_mb_s']:.0f} MB/s",
         f"{b['big_put_mb_s']:.0f}, {b['big_get_mb_s']:.0f} MB/s"),
        ("peak RSS", f"{o['peak_rss_mb']:.0f} MB", f"{b['peak_rss_mb']:.0f} MB"),
        ("installed", f"{run['installed_mb']['obstore']:.0f} MB", f"{run['installed_mb']['boto3']:.0f} MB"),
    ]
    lines = [f"# S3 clients against SeaweedFS on loopback, {run['started_at']}", "",
             "| | obstore | boto3 |", "| --- | --- | --- |"]
    lines += [f"| {name} | {x} | {y} |" for name, x, y in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
