"""``pip install`` of the package (and of the client beside it) into a virtualenv of its own, then the quick start
from a directory outside the checkout: ``model-registry serve`` migrates, keeps an admin token and serves there,
and a forest is answered exactly by the tree walker the install built into site-packages.

The pinned requirements are the ones this run's own virtualenv holds: the new one reads them from there (a
path file) instead of installing them again, which takes minutes; the package and the client are built
and installed as a user's ``pip install`` does (the build backend's own isolated environment included).
The service serves SQLite by default: the SQLite pass runs this module.
"""
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from sklearn.ensemble import RandomForestRegressor

from bench.harness.models import upload
from bench.harness.server import die_with_parent, free_port, wait_ready
from config import BASE_DIR
from tests.databases import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="the quick start serves SQLite: the SQLite pass runs it")

MODEL = "installed"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtualenv with the service and the client installed by pip from the checkout, and no checkout on its path."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    site = Path(subprocess.run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "pinned_requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([venv / "bin/pip", "install", "--quiet", "--no-deps", BASE_DIR / "client", BASE_DIR],
                               cwd=venv, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-4000:]
    return venv


@pytest.fixture(scope="module")
def served(venv, tmp_path_factory):
    """``model-registry serve`` started in an empty directory outside the checkout; its URL and admin token."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if name not in {"PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL", "ARTIFACT_ROOT", "INSTANCE_DIR",
                           "ADMIN_TOKEN", "ARTIFACT_CACHE_DIR"}}
    env.update(BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2")
    log_path = home / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([venv / "bin/model-registry", "serve"], cwd=home, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log_path)
        yield home, url, (home / "instance/admin_token").read_text().strip()
    finally:
        process.terminate()
        process.wait(timeout=60)


def _in_venv(venv, home, code):
    return subprocess.run([venv / "bin/python", "-c", code], cwd=home, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_package_runs_from_site_packages_with_the_walker_built_into_it(venv, served):
    home, _, _ = served
    site = _in_venv(venv, home, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    library = _in_venv(venv, home, "from registry.inference.tree_walk import LIBRARY; print(LIBRARY)")
    assert library == f"{site}/registry/inference/native/tree_walk.so"
    assert Path(library).exists()
    assert _in_venv(venv, home, "import config, wsgi; print(config.__file__, wsgi.__file__)").split() == [
        f"{site}/config.py", f"{site}/wsgi.py"]


def test_serve_keeps_its_state_in_the_directory_it_starts_in(served):
    home, _, token = served
    assert re.fullmatch(r"mr_\S+", token)
    assert (home / "instance/registry.db").exists()
    assert f"Admin token: {token}  (made now and kept in {home / 'instance/admin_token'}; read it again with: " \
           f"cat {home / 'instance/admin_token'})" in (home / "serve.log").read_text()


def test_the_quick_start_answers_a_forest_exactly_as_scikit_learn(served):
    home, url, token = served
    X = np.random.default_rng(3).normal(size=(200, 4))
    forest = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, X @ [1.0, -2.0, 0.5, 3.0])
    headers = {"Authorization": f"Bearer {token}"}

    assert upload(SimpleNamespace(url=url), MODEL, forest, headers=headers).status_code == 201
    promoted = requests.post(f"{url}/models/{MODEL}/versions/1/promote", json={}, headers=headers, timeout=30)
    assert promoted.status_code == 200, promoted.text
    rows = X[:50]
    answer = requests.post(f"{url}/models/{MODEL}/production/predict", json={"instances": rows.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == forest.predict(rows).tolist()
    assert (home / "artifacts").is_dir()


def test_the_commands_a_user_runs_are_installed(venv, served):
    home, _, _ = served
    for command in (["model-registry-trainers", "--help"], ["model-registry", "tokens", "--help"]):
        done = subprocess.run([venv / "bin" / command[0], *command[1:]], cwd=home, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    tokens = subprocess.run([venv / "bin/model-registry", "tokens", "create", "ci", "--role", "ci"], cwd=home,
                            capture_output=True, text=True)
    assert tokens.returncode == 0, tokens.stderr
    assert "ci" in subprocess.run([venv / "bin/model-registry", "tokens", "list"], cwd=home, capture_output=True,
                                  text=True, check=True).stdout
    audit = subprocess.run([venv / "bin/model-registry", "audit", "verify"], cwd=home, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.startswith("ok: ")
