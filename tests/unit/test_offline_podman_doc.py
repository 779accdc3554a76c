"""docs/deploy.md's offline podman commands say what the fleet test does (issue 47, item 8).

Those blocks build images for minutes as root and replace containers of a running fleet, so the docs
test skips them; tests/e2e/test_fleet_compose.py takes the same route through
bench/harness/compose_fleet.py. This test holds the two together: the shell is valid, the base image
has the harness's packages and name, every build keeps the HEALTHCHECK and trusts the machine's CA
bundle as the harness's builds do, and the upgrade loop stops a replica within the grace the compose
file and the harness give it."""
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.harness import compose_fleet, containers
from tests.e2e.doc_blocks import blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
OFFLINE = DOC.read_text(encoding="utf-8").split("## Offline, with podman", 1)[1]


def offline_blocks() -> list[str]:
    after = DOC.read_text(encoding="utf-8").index("## Offline, with podman")
    lines_before = DOC.read_text(encoding="utf-8")[:after].count("\n")
    return [block.code for block in blocks(DOC) if block.line > lines_before and block.language in ("sh", "bash")]


@pytest.mark.parametrize("code", offline_blocks(), ids=lambda code: code.splitlines()[0][:40])
def test_each_offline_block_is_valid_shell(code):
    checked = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_base_image_is_the_harnesss():
    assert f"--include={containers.BASE_PACKAGES} bookworm" in OFFLINE
    assert f"podman import - {containers.BASE_IMAGE}" in OFFLINE


def test_every_build_keeps_the_healthcheck_and_trusts_the_machines_ca_bundle():
    builds = [line for line in OFFLINE.splitlines() if "podman build" in line or line.startswith("BUILD=")]
    assert builds
    for line in builds:
        assert "--format docker" in line, line  # the OCI format drops HEALTHCHECK
        assert "--volume $CA:$CA:ro" in line, line
        assert f"BASE={containers.BASE_IMAGE}" in line, line
    assert f"CA={containers.CA_BUNDLE}" in OFFLINE


def test_the_upgrade_loop_stops_each_replica_within_the_fleets_grace():
    compose = yaml.safe_load((DOC.parents[1] / "deploy" / "compose.yaml").read_text())
    grace = {int(service["stop_grace_period"].rstrip("s")) for name, service in compose["services"].items()
             if name.startswith("registry-")}
    stops = {int(seconds) for seconds in re.findall(r"podman stop (?:--time|-t) (\d+)", OFFLINE)}
    assert stops == grace == {compose_fleet.STOP_SECONDS}
    assert "podman healthcheck run" in OFFLINE and "State.Health.Status" not in OFFLINE  # no wait for `healthy`


def test_each_upgrade_loop_waits_for_nginx_to_answer_from_the_new_replica_not_for_a_fixed_time():
    """Both loops (docker compose's and podman's) wait until nginx's log shows a first-try answer from the
    replica's new address; no line of either waits a fixed time outside a polling loop (a `sleep 12`
    raced a slower machine's start and DNS: issue 72)."""
    text = DOC.read_text(encoding="utf-8")
    loops = [block.code for block in blocks(DOC) if "for replica in registry-1 registry-2" in block.code]
    assert len(loops) == 2
    for loop in loops:
        assert 'grep -q "upstream=$address:8000 upstream_status=200"' in loop
        assert not re.search(r"^\s*sleep\s", loop, re.MULTILINE), loop
    assert "sleep 12" not in text
