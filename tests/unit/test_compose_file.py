"""deploy/compose.yaml is valid under the Compose Specification (its JSON schema, kept in
tests/unit/compose_spec/), and agrees with nginx.conf and with what the fleet needs; the fleet test
(tests/e2e/test_fleet_compose.py) runs it."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from config import BASE_DIR

COMPOSE = BASE_DIR / "deploy" / "compose.yaml"
NGINX = BASE_DIR / "deploy" / "nginx" / "nginx.conf"
SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def replicas() -> dict:
    return {name: service for name, service in compose()["services"].items() if name.startswith("registry-")}


def test_the_compose_file_is_valid_under_the_compose_specification():
    errors = [f"{list(error.path)}: {error.message}"
              for error in jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(compose())]

    assert errors == []


def test_nginx_sends_to_every_replica_the_compose_file_runs_and_to_nothing_else():
    upstream = re.findall(r"^\s*server (\S+):8000 resolve", NGINX.read_text(), flags=re.MULTILINE)

    assert sorted(upstream) == sorted(replicas()) and len(upstream) >= 2


def test_nginx_counts_a_replica_out_only_when_it_cannot_be_reached():
    """A 5xx answer counted as a failure rested a healthy replica, and a rolling upgrade that stopped the
    other one within that rest left nginx with no live replica (issue 72): only unreachable counts."""
    conf = NGINX.read_text()
    servers = re.findall(r"^\s*server \S+:8000 resolve(.*);", conf, flags=re.MULTILINE)
    retried = re.findall(r"^\s*proxy_next_upstream (.*);", conf, flags=re.MULTILINE)

    assert servers and all(options.split() == ["max_fails=1", "fail_timeout=10s"] for options in servers)
    assert retried and all(set(kinds.split()) - {"non_idempotent"} == {"error", "timeout"} for kinds in retried)


def test_every_replica_has_its_own_volume_and_the_settings_the_others_have():
    volumes = [service["volumes"] for service in replicas().values()]
    environments = [service["environment"] for service in replicas().values()]

    assert len({tuple(v) for v in volumes}) == len(volumes)  # a node cache each
    assert all(environment == environments[0] for environment in environments)
    assert {"ADMIN_TOKEN", "SECRET_KEY", "DATABASE_URL", "ARTIFACT_ROOT"} <= set(environments[0])


def test_every_image_is_a_variable_with_a_public_default():
    images = {name: service["image"] for name, service in compose()["services"].items()}

    assert all(re.fullmatch(r"\$\{[A-Z_]+_IMAGE:-[^}]+\}", image) for image in images.values()), images


def test_nginx_does_not_name_its_version():
    """The fleet's nginx answers without its version in the Server header or its error pages."""
    from pathlib import Path
    conf = (Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "nginx.conf").read_text()
    assert "server_tokens off;" in conf


SECRETS = ("ADMIN_TOKEN", "SECRET_KEY", "POSTGRES_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")


def test_no_secret_has_a_default_every_one_is_required_with_a_message():
    uses = re.findall(r"\$\{(" + "|".join(SECRETS) + r")([^}]*)\}", COMPOSE.read_text())

    assert {name for name, _ in uses} == set(SECRETS)
    assert all(rest.startswith(":?set ") for _, rest in uses), uses


@pytest.mark.skipif(shutil.which("podman-compose") is None, reason="needs podman-compose (CONTAINERS.md)")
@pytest.mark.parametrize("missing", SECRETS)
def test_compose_refuses_to_start_without_each_secret_and_names_it(missing):
    environ = {"PATH": os.environ["PATH"], **{name: "set" for name in SECRETS if name != missing}}

    # podman-compose reads (and interpolates) the whole file before any command, `up` or `ps` alike: `ps`
    # starts nothing even if the refusal were gone.
    done = subprocess.run(["podman-compose", "-p", "refused", "-f", str(COMPOSE), "ps"],
                          env=environ, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert f"set {missing} to " in done.stderr


def test_nginx_sets_the_forwarded_host_and_keeps_a_balancers_proto_only():
    conf = NGINX.read_text()

    assert "proxy_set_header X-Forwarded-Host $host;" in conf  # never the caller's own header
    assert "proxy_set_header X-Forwarded-Proto $forwarded_proto;" in conf
    assert re.search(r'map "\$from_balancer:\$http_x_forwarded_proto" \$forwarded_proto \{\s*default\s+\$scheme;', conf)
