"""deploy/kubernetes/kserve/ (issue 70, item 7): the ClusterServingRuntime and the example InferenceService are
what KServe's own SDK defines (tests/kserve_resources.py, run by the KServe venv's Python), a misspelt field
or a wrong type is caught, and what the runtime asks of the image is what the image has: the command and
its options, the readiness route, the port it binds, the model formats this registry reads."""
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner

from config import BASE_DIR
from deploy.cli import cli

KSERVE = BASE_DIR / "deploy" / "kubernetes" / "kserve"
CHECK = BASE_DIR / "tests" / "kserve_resources.py"
KSERVE_PYTHON = BASE_DIR / ".venv-kserve" / "bin" / "python"
RUNTIME = KSERVE / "cluster-serving-runtime.yaml"


def checked(*paths: Path) -> subprocess.CompletedProcess:
    assert KSERVE_PYTHON.exists(), "the KServe venv is missing: `make test` makes it (requirements-kserve.txt)"
    return subprocess.run([str(KSERVE_PYTHON), str(CHECK), *map(str, paths)], capture_output=True, text=True, timeout=120)


def runtime_container() -> dict:
    (container,) = yaml.safe_load(RUNTIME.read_text())["spec"]["containers"]
    return container


def test_the_runtime_and_the_inference_service_are_as_kserve_defines_them():
    result = checked(*sorted(KSERVE.glob("*.yaml")))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 files: every resource is as KServe" in result.stdout


def test_a_misspelt_field_and_a_wrong_type_are_caught(tmp_path):
    broken = tmp_path / "runtime.yaml"
    broken.write_text(RUNTIME.read_text().replace("readinessProbe", "readinesProbe").replace("autoSelect: true", 'autoSelect: "yes"', 1))

    result = checked(broken)

    assert result.returncode == 1
    assert "containers[0].readinesProbe: no such field in V1Container" in result.stdout
    assert "supportedModelFormats[0].autoSelect: bool, not str 'yes'" in result.stdout


def test_the_runtime_runs_a_command_the_image_has_with_options_it_takes():
    args = runtime_container()["args"]
    assert args[:2] == ["model-registry", "serve"]

    shown = CliRunner().invoke(cli, ["serve", "--help"])

    assert shown.exit_code == 0
    assert all(option.split("=")[0] in shown.output for option in args[2:])


def test_the_runtime_probes_a_route_the_server_answers_on_the_port_it_binds(app):
    container = runtime_container()
    environment = {variable["name"]: variable["value"] for variable in container["env"]}
    (port,) = container["ports"]

    assert container["readinessProbe"]["httpGet"]["path"] in {rule.rule for rule in app.url_map.iter_rules()}
    assert environment["BIND"].endswith(f":{port['containerPort']}") and container["readinessProbe"]["httpGet"]["port"] == port["containerPort"]


def test_the_runtime_offers_each_library_this_registry_reads():
    formats = {entry["name"] for entry in yaml.safe_load(RUNTIME.read_text())["spec"]["supportedModelFormats"]}

    assert formats == {"sklearn", "xgboost", "lightgbm"}
