"""The batch client's artifact cache (issue 46): one download per machine however many processes ask at
once, a damaged cached copy fetched again, and an answer whose ETag or bytes are not the planned sha256
refused with nothing left in the cache. The registry is stood in for by a small HTTP server that counts
the downloads and can be told to lie (a proxy rewriting bodies, a registry whose copy changed)."""
import hashlib
import multiprocessing
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry_client.batch import Plan, cached_artifact
from registry_client.errors import RegistryError

ARTIFACT = b"the artifact's bytes " * 50_000  # ~1 MB
SHA256 = hashlib.sha256(ARTIFACT).hexdigest()
ARTIFACT_PATH = "/models/m/versions/1/artifact"


class Store(ThreadingHTTPServer):
    """Serves the artifact at ARTIFACT_PATH with an ETag, slowly (``seconds`` per download, so that processes
    asking at once do meet); counts the GETs; ``body`` and ``etag`` may be changed."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.body, self.etag, self.downloads, self.seconds = ARTIFACT, SHA256, 0, 0.0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        store = self.server
        if self.path != ARTIFACT_PATH:
            self.send_error(404)
            return
        with store.lock:
            store.downloads += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(store.body)))
        self.send_header("ETag", f'"{store.etag}"')
        self.end_headers()
        parts = 10
        step = len(store.body) // parts + 1
        for start in range(0, len(store.body), step):
            self.wfile.write(store.body[start:start + step])
            self.wfile.flush()
            time.sleep(store.seconds / parts)

    def log_message(self, *args):
        pass


@pytest.fixture
def store():
    server = Store()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def job(store, tmp_path) -> Plan:
    return Plan(url=f"http://127.0.0.1:{store.server_address[1]}", token=None, model="m", version=1, alias=None,
                sha256=SHA256, size_bytes=len(ARTIFACT), task="regression", kind="linear", signature={},
                retries=0, cache_dir=str(tmp_path / "cache"))


def _fetch(job: Plan, start: multiprocessing.Event, out: multiprocessing.Queue) -> None:
    start.wait(30)
    out.put(cached_artifact(job).read_bytes() == ARTIFACT)


def test_many_processes_of_one_machine_download_once(store, job, tmp_path):
    store.seconds = 1.0  # the others ask while the first one downloads
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as executors are
    start, out = context.Event(), context.Queue()
    processes = [context.Process(target=_fetch, args=(job, start, out)) for _ in range(4)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 4
    assert [out.get(timeout=5) for _ in processes] == [True] * 4
    assert store.downloads == 1
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [f"{SHA256}.artifact", f"{SHA256}.lock"]


def test_a_damaged_cached_copy_is_fetched_again(store, job):
    cached = cached_artifact(job)
    cached.write_bytes(ARTIFACT[:-1] + b"!")  # a flipped byte on the executor's disk

    assert cached_artifact(job).read_bytes() == ARTIFACT
    assert store.downloads == 2
    assert cached_artifact(job).read_bytes() == ARTIFACT and store.downloads == 2  # a sound copy is kept


def test_an_etag_that_is_not_the_planned_sha256_is_refused_and_nothing_is_cached(store, job, tmp_path):
    store.etag = "0" * 64  # the registry's copy is another artifact than the one planned

    with pytest.raises(RegistryError, match=f"ETag {'0' * 64}, not the planned sha256 {SHA256}"):
        cached_artifact(job)
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [f"{SHA256}.lock"]


def test_bytes_that_do_not_hash_to_the_planned_sha256_are_refused_and_nothing_is_cached(store, job, tmp_path):
    store.body = ARTIFACT.replace(b"bytes", b"BYTES", 1)  # rewritten on the way, under the right ETag

    with pytest.raises(RegistryError, match="does not match its sha256"):
        cached_artifact(job)
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [f"{SHA256}.lock"]
    store.body = ARTIFACT
    assert cached_artifact(job).read_bytes() == ARTIFACT  # the next try, with sound bytes, caches it
