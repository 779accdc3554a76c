"""Docs that cannot drift: every shell and Python block of README.md and docs/ runs, in order, here.

The documents run one after the other, README first, against ONE registry (a real gunicorn on a fresh
database, as ``make run`` gives a first-time user) from one working directory laid out like a clone
after ``make run``: ``.venv``, ``instance/admin_token``, an empty ``examples/``. So a reader who walks
every document in order, on a registry the documents before have filled, sees what each one shows: a
document creates what it uses under names of its own, promotes the version its own upload answered,
and shows nothing that holds only on an empty registry. ``http://127.0.0.1:8000`` in a block is this
registry's address (and so is ``REGISTRY_URL``, whose default is that address).
Blocks that must not run say why in a marker (tests/e2e/doc_blocks.py). What a document leaves
running (a receiver it starts with ``&``) is stopped when its script ends. Where a document shows what
a block prints, what it printed must agree (tests/e2e/doc_outputs.py; docs/testing.md, "Documented
outputs").
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.harness import server
from config import BASE_DIR
from tests.databases import BACKEND, fresh_database
from tests.e2e.doc_blocks import DOCS_GRPC_ADDRESS, blocks, output_file, script, server_settings, unmarked_shown_blocks
from tests.e2e.doc_outputs import mismatches

# The documents walk a first-time user through `make run`: the embedded SQLite default. Each one runs
# once per CI run, in the SQLite pass; PostgreSQL serves the same routes, which the rest of the suite
# runs on both.
pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the documents run as make run serves them: the SQLite pass runs them",
)

ADMIN_TOKEN = "docs-admin-token"
DOCUMENTS = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
RUNNABLE = [path for path in DOCUMENTS if any(not block.skip for block in blocks(path))]
LINKED_FROM_THE_CLONE = (".venv", ".venv-mlflow", ".venv-kserve")


def workspace(root, live) -> tuple:
    """A directory like a fresh clone after ``make run``, and the environment a reader's shell has there."""
    folder = root / "clone"
    (folder / "instance").mkdir(parents=True)
    (folder / "examples").mkdir()
    (folder / "instance" / "admin_token").write_text(ADMIN_TOKEN + "\n")
    for name in LINKED_FROM_THE_CLONE:
        if (BASE_DIR / name).exists():
            (folder / name).symlink_to(BASE_DIR / name)
    # this checkout's client too (python -m registry_client), whichever one the venv has installed
    python_path = os.pathsep.join([str(BASE_DIR), str(BASE_DIR / "client" / "src")])
    env = {**live.env, "PYTHONPATH": python_path, "HOME": str(root), "PATH": os.environ["PATH"],
           "REGISTRY_URL": live.url}
    for variable in ("REGISTRY_TOKEN", "TOKEN", "MLFLOW_TRACKING_URI"):
        env.pop(variable, None)
    return folder, env


def run_script(text: str, folder, env, output) -> int:
    """Run a document's script in a process group of its own, writing what it prints to ``output``; then
    stop whatever it left running in the background, so nothing outlives the document."""
    with open(output, "wb") as out:
        process = subprocess.Popen(["bash", "-c", text], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        return process.wait(timeout=900)
    finally:
        stop_group(process.pid)


def stop_group(group: int, grace_seconds: float = 10) -> None:
    """SIGTERM every process left in ``group``, and SIGKILL those still there after ``grace_seconds``."""
    for sent, wait_seconds in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, grace_seconds)):
        deadline = time.monotonic() + wait_seconds
        try:
            os.killpg(group, sent)
            while time.monotonic() < deadline:
                os.killpg(group, 0)  # raises once the group is gone
                time.sleep(0.1)
        except ProcessLookupError:
            return


def settings_of_every_document() -> dict[str, str]:
    """The settings the one registry starts with: those every document's ``doc-test: server`` markers name
    (one document's setting must not contradict another's); the gRPC address a document names
    (``127.0.0.1:8001``) is a free port instead, which its blocks are given in its place."""
    settings: dict[str, str] = {}
    for document in RUNNABLE:
        for name, value in server_settings(document).items():
            assert settings.setdefault(name, value) == value, f"{document.name}: {name}={value} against {settings[name]}"
    if settings.get("GRPC_BIND") == DOCS_GRPC_ADDRESS:
        settings["GRPC_BIND"] = f"127.0.0.1:{server.free_port()}"
    return settings


@pytest.fixture(scope="module")
def one_registry(tmp_path_factory):
    """The registry every document runs against, and the clone they share: ``(live, folder, env)``."""
    root = tmp_path_factory.mktemp("docs")
    with fresh_database(root) as database_url, \
            server.running(database_url, root, ADMIN_TOKEN, env=settings_of_every_document()) as (live,):
        folder, env = workspace(root, live)
        yield live, folder, env


def test_the_documents_run_readme_first():
    assert RUNNABLE[0].name == "README.md" and RUNNABLE[1:] == sorted(RUNNABLE[1:])


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda path: path.name)
def test_every_runnable_block_runs_in_order_on_the_registry_the_documents_before_used(document, one_registry,
                                                                                      tmp_path):
    live, folder, env = one_registry
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    output = tmp_path / "output.txt"
    returncode = run_script(script(document, live.url, sys.executable, live.env.get("GRPC_BIND", DOCS_GRPC_ADDRESS)), folder, {**env, "DOC_OUTPUTS": str(outputs)},
                            output)
    assert returncode == 0, f"{document.name}: a block failed (exit {returncode})\n{output.read_text()[-5000:]}"
    wrong = [f"{document.name}:{block.shown_line} (shown output of the block at line {block.line}): {problem}"
             for block in blocks(document) if block.shown is not None and not block.skip
             for problem in mismatches(block.shown, (outputs / output_file(block)).read_text(), block.shown_language)]
    assert not wrong, "what the document shows is not what its blocks print:\n" + "\n".join(wrong)


def test_shown_blocks_after_prose_say_whether_they_are_compared():
    for document in DOCUMENTS:
        assert unmarked_shown_blocks(document) == [], (
            f"{document.name}: mark each with <!-- doc-test: output --> (compared with the run block above) "
            "or <!-- doc-test: illustration -->")


def test_skips_say_why():
    for document in DOCUMENTS:
        for block in blocks(document):
            assert block.skip != "no reason given", f"{document.name}:{block.line} is skipped without a reason"
