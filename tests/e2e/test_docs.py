"""Docs that cannot drift: every shell and Python block of README.md and docs/ runs, in order, here.

Each document gets a fresh registry (a real gunicorn on a fresh database, as ``make run`` gives a
first-time user) and a fresh working directory laid out like a clone after ``make run``: ``.venv``,
``instance/admin_token``, an empty ``examples/``. ``http://127.0.0.1:8000`` in a block is this
registry's address (and so is ``REGISTRY_URL``, whose default is that address). A document creates what it uses: nothing carries over from another one.
Blocks that must not run say why in a marker (tests/e2e/doc_blocks.py).
"""
import os
import subprocess
import sys

import pytest

from bench.harness import server
from config import BASE_DIR
from tests.databases import BACKEND, fresh_database
from tests.e2e.doc_blocks import blocks, script, server_settings

# The documents walk a first-time user through `make run`: the embedded SQLite default. Each one runs
# once per CI run, in the SQLite pass; PostgreSQL serves the same routes, which the rest of the suite
# runs on both.
pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="the documents run as make run serves them: the SQLite pass runs them")

ADMIN_TOKEN = "docs-admin-token"
DOCUMENTS = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
RUNNABLE = [path for path in DOCUMENTS if any(not block.skip for block in blocks(path))]
LINKED_FROM_THE_CLONE = (".venv", ".venv-mlflow")


def workspace(root, live) -> tuple:
    """A directory like a fresh clone after ``make run``, and the environment a reader's shell has there."""
    folder = root / "clone"
    (folder / "instance").mkdir(parents=True)
    (folder / "examples").mkdir()
    (folder / "instance" / "admin_token").write_text(ADMIN_TOKEN + "\n")
    for name in LINKED_FROM_THE_CLONE:
        if (BASE_DIR / name).exists():
            (folder / name).symlink_to(BASE_DIR / name)
    env = {**live.env, "PYTHONPATH": str(BASE_DIR), "HOME": str(root), "PATH": os.environ["PATH"],
           "REGISTRY_URL": live.url}
    for variable in ("REGISTRY_TOKEN", "TOKEN", "MLFLOW_TRACKING_URI"):
        env.pop(variable, None)
    return folder, env


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda path: path.name)
def test_every_runnable_block_runs_in_order_against_a_fresh_registry(document, tmp_path):
    settings = server_settings(document)
    with fresh_database(tmp_path) as database_url, \
            server.running(database_url, tmp_path, ADMIN_TOKEN, env=settings) as (live,):
        folder, env = workspace(tmp_path, live)
        result = subprocess.run(["bash", "-c", script(document, live.url, sys.executable)], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert result.returncode == 0, f"{document.name}: a block failed (exit {result.returncode})\n{result.stdout[-5000:]}"


def test_skips_say_why():
    for document in DOCUMENTS:
        for block in blocks(document):
            assert block.skip != "no reason given", f"{document.name}:{block.line} is skipped without a reason"
