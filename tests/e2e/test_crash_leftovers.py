"""``kill -9`` of a real gunicorn in the middle of uploads, then ``flask artifacts gc`` and ``verify``.

Three uploads are in flight when the server dies: one still streaming its body, one whose file is
stored but whose row waits for a database lock the test holds (a crash between file and row), and
a large one caught while its file is being written, or, if the machine let it finish the write
first, waiting on the same lock: either way a leftover that no row references.
"""
import hashlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from bench.harness import server
from bench.harness.models import scaled_sum, upload
from tests.databases import fresh_database
from tests.e2e.faults import big_tree, flask_cli, kill_hard
from tests.helpers import artifact_bytes, close_app, make_app

ADMIN_TOKEN = "e2e-crash-token"
DEADLINE = 60  # seconds: only a bound on waiting for a condition, so a broken test fails instead of hanging


@contextmanager
def writes_blocked(database_url: str) -> Iterator[None]:
    """Hold a lock that makes every upload wait before it commits its row (reads still answer)."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
    else:
        conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = psycopg.connect(conninfo)
        connection.execute("LOCK TABLE models IN SHARE MODE")  # the upload's upsert into models waits
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def until(condition: Callable[[], object], what: str):
    """Poll ``condition`` until it holds; its value."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.002)
    raise AssertionError(f"never happened: {what}")


def stored(store: Path) -> set[str]:
    return {p.name for p in store.rglob("*") if p.is_file()}


def start_streaming(live, total_mb: int, sent_mb: int) -> socket.socket:
    """Open an upload of ``total_mb`` and send only ``sent_mb`` of its body: a client mid-transfer."""
    boundary = "crash-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="model.joblib"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    length = len(head) + total_mb * 1024 * 1024
    host, port = live.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /models/streaming/versions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n".encode() + head
    )
    chunk = b"\x80" * 1024 * 1024
    for _ in range(sent_mb):
        sock.sendall(chunk)
    return sock


def upload_in_background(live, name: str, data: bytes) -> threading.Thread:
    def send():
        try:
            requests.post(f"{live.url}/models/{name}/versions", files={"artifact": ("model.joblib", data)},
                          headers=live.headers, timeout=DEADLINE)
        except requests.RequestException:
            pass  # the server is killed under it: that is the point

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """A registry killed with uploads in flight: its env, store, the kept sha and what each upload left."""
    root = tmp_path_factory.mktemp("crash")
    store = root / "artifacts"
    with fresh_database(root) as database_url:
        env = server.service_env(database_url, store, ADMIN_TOKEN)
        server.migrate(env)
        live = server.start(env, root, workers=4)
        try:
            kept = upload(live, "kept", scaled_sum(1)).json()["sha256"]
            small, big = artifact_bytes(scaled_sum(5)), big_tree(200_000, seed=7)
            orphan, big_sha = hashlib.sha256(small).hexdigest(), hashlib.sha256(big).hexdigest()
            with writes_blocked(database_url):
                streaming = start_streaming(live, total_mb=64, sent_mb=8)
                upload_in_background(live, "orphan", small)
                until(lambda: orphan in stored(store), "the small upload stored its file")
                upload_in_background(live, "big", big)
                caught = until(lambda: {n for n in stored(store) if n.startswith(".incoming-") or n == big_sha},
                               "the large upload started writing its file")
                kill_hard(live)
            streaming.close()
        finally:
            live.stop()
        yield env, database_url, store, kept, orphan, caught


def test_the_crash_left_files_no_row_references(crashed):
    *_, store, kept, orphan, caught = crashed

    assert len(caught) == 1
    assert stored(store) == {kept, orphan} | caught  # the streaming upload left nothing in the store


def in_process(database_url: str, store: Path, *args: str):
    """The same command through the app's CLI runner (no new interpreter: quicker to repeat)."""
    app = make_app(database_url, store, ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        return app.test_cli_runner().invoke(args=["artifacts", *args])
    finally:
        close_app(app)


def test_gc_with_no_grace_removes_every_leftover_and_keeps_the_referenced_file(crashed):
    env, database_url, store, kept, orphan, _ = crashed

    dry = in_process(database_url, store, "gc", "--grace-minutes", "0", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would remove 2 file(s)" in dry.output and len(stored(store)) == 3

    collected = flask_cli(env, "artifacts", "gc", "--grace-minutes", "0")

    assert collected.returncode == 0, collected.stderr
    assert f"removed unreferenced artifact {orphan}" in collected.stdout
    assert collected.stdout.splitlines()[-1].startswith("gc: removed 2 file(s)")
    assert stored(store) == {kept}


def test_verify_exits_0_on_the_collected_store_and_1_naming_a_damaged_file(crashed):
    _, database_url, store, kept, _, _ = crashed
    assert in_process(database_url, store, "gc", "--grace-minutes", "0").exit_code == 0

    intact = in_process(database_url, store, "verify")
    (store / "sha256" / kept[:2] / kept).write_bytes(b"bit rot")
    damaged = in_process(database_url, store, "verify")

    assert intact.exit_code == 0, intact.output
    assert intact.output.strip() == "verify: 1 artifact(s) checked: 1 ok, 0 damaged, 0 missing"
    assert damaged.exit_code == 1
    assert f"damaged {kept}: kept v1" in damaged.output
