"""The registry as declared state against a real gunicorn, on the backend under test: ``model-registry-client``
(``python -m registry_client``) exports, plans and applies a registry.yaml over HTTP."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.linear_model import LinearRegression

import registry_client
from registry_client import RegistryClient

ROWS = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 5.0]]
TARGET = [1.0, 2.0, 4.0, 9.0]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def run(live, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    """The command line as a CI job runs it: REGISTRY_URL and REGISTRY_TOKEN in its environment."""
    env = {**os.environ, "REGISTRY_URL": live.url, "REGISTRY_TOKEN": token or live.admin_token,
           "PYTHONPATH": str(Path(registry_client.__file__).parents[1])}
    env.pop("GITHUB_SHA", None), env.pop("CI_COMMIT_SHA", None)
    return subprocess.run([sys.executable, "-m", "registry_client", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def admin(live_registry) -> RegistryClient:
    """A client with the admin token."""
    return RegistryClient(live_registry.url, live_registry.admin_token)


@pytest.fixture(scope="module")
def churn(admin):
    """Two versions of ``churn``, v1 in production; their sha256 by number."""
    versions = [admin.upload("churn", LinearRegression(fit_intercept=bool(n)).fit(ROWS, TARGET), input_example=ROWS[:1])
                for n in (0, 1)]
    admin.promote("churn", 1, reason="first")
    return {version.version: version.sha256 for version in versions}


def write(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def declared(churn, production: int, **model) -> dict:
    """A file declaring churn's production at ``production`` (and ``model``'s other fields)."""
    return {"models": {"churn": {**model, "aliases": {"production": {"version": production,
                                                                     "sha256": churn[production]}}}}}


def test_an_export_plans_clean(live_registry, churn, tmp_path):
    exported = run(live_registry, "export")
    assert exported.returncode == 0, exported.stderr
    document = yaml.safe_load(exported.stdout)
    assert document["models"]["churn"]["aliases"] == {"production": {"version": 1, "sha256": churn[1]}}
    file = tmp_path / "registry.yaml"
    file.write_text(exported.stdout)
    planned = run(live_registry, "plan", "-f", str(file))
    assert (planned.returncode, planned.stdout.strip()) == (0, "No changes: the registry matches the file."), planned.stderr


def test_plan_names_an_alias_move_and_apply_makes_it_once(live_registry, admin, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", declared(churn, 2, description="who leaves"))
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2, planned.stderr
    assert planned.stdout.splitlines() == [
        f"~ models/churn/description: '' -> 'who leaves'",
        f"~ models/churn/aliases/production: v1 (sha256 {churn[1][:12]}...) -> v2 (sha256 {churn[2][:12]}...)",
        "Plan: 0 to add, 2 to change, 0 to delete.",
    ]
    assert admin.aliases("churn") == {"production": 1}  # a plan changes nothing

    applied = run(live_registry, "apply", "-f", str(file), "--commit", COMMIT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.splitlines()[-1] == "Applied 2 of 2 changes."
    assert admin.aliases("churn") == {"production": 2} and admin.model("churn").description == "who leaves"
    move = next(admin.history("churn", "production"))
    sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (move.action, move.to_version) == ("promote", 2)
    assert move.reason == f"declared state: registry.yaml sha256 {sha256} commit {COMMIT}"

    again = run(live_registry, "apply", "-f", str(file))
    assert (again.returncode, again.stdout.strip()) == (0, "No changes: the registry matches the file.")
    assert next(admin.history("churn", "production")).id == move.id


def test_a_hand_made_change_is_drift_that_plan_names_and_apply_undoes(live_registry, admin, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", declared(churn, 2))
    assert run(live_registry, "apply", "-f", str(file)).returncode == 0
    admin.promote("churn", 1, reason="by hand")
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 2
    assert planned.stdout.splitlines()[0].startswith("~ models/churn/aliases/production: v1 ")
    assert run(live_registry, "apply", "-f", str(file)).returncode == 0
    assert admin.aliases("churn") == {"production": 2}


def test_a_sha256_that_is_not_the_versions_is_refused_before_any_change(live_registry, admin, churn, tmp_path):
    before = admin.aliases("churn")
    document = declared(churn, 1, description="changed too")
    document["models"]["churn"]["aliases"]["production"]["sha256"] = churn[2]
    file = write(tmp_path / "registry.yaml", document)
    for command in ("plan", "apply"):
        answered = run(live_registry, command, "-f", str(file))
        assert answered.returncode == 1
        assert f"models/churn/aliases/production: version 1 of churn is sha256 {churn[1]}" in answered.stderr
    assert admin.aliases("churn") == before and admin.model("churn").description != "changed too"


def test_a_model_or_version_the_registry_lacks_is_refused(live_registry, churn, tmp_path):
    file = write(tmp_path / "registry.yaml", {"models": {
        "churn": {"aliases": {"staging": {"version": 9, "sha256": churn[1]}}},
        "nobody": {"description": "x"}}})
    planned = run(live_registry, "plan", "-f", str(file))
    assert planned.returncode == 1
    assert "models/churn/aliases/staging: churn has no version 9" in planned.stderr
    assert "models/nobody: the registry has no model 'nobody'" in planned.stderr


def test_a_reader_plans_but_cannot_apply(live_registry, admin, churn, tmp_path):
    reader = admin.create_token("declared-reader", "reader").token
    file = write(tmp_path / "registry.yaml", declared(churn, 1))
    assert run(live_registry, "plan", "-f", str(file), token=reader).returncode == 2
    applied = run(live_registry, "apply", "-f", str(file), token=reader)
    assert applied.returncode == 1 and "403" in applied.stdout and "Stopped: 0 of 1 changes applied." in applied.stdout
    assert admin.aliases("churn") == {"production": 2}
