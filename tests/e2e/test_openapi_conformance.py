"""The OpenAPI document tells the truth: schemathesis runs every check against a real gunicorn for a
bounded time, anonymously and with a token, and finds no server error, no undocumented status or
content type, no schema-valid request refused and no schema-violating request accepted.

Expectations a schema cannot state are in tests/e2e/schemathesis.toml, each with its reason. The bound
is short enough for the suite's budget and long enough that every operation is tested in every phase
(examples, coverage, fuzzing, stateful), which each run asserts: at 20 s the admin's run was 2,903
cases, at 45 s 5,534, with the same operations and phases reached. The stateful phase runs apart, with a
time of its own: in one run of the four phases together, the first three took all 25 s on a slow machine
(coverage alone 19 s, whose work is fixed), and the stateful phase had none.
"""
import re
import subprocess
from pathlib import Path

import pytest

from bench.harness import server
from bench.harness.models import scaled_sum, upload
from bench.harness.traffic import move
from config import BASE_DIR
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

SCHEMATHESIS = Path(BASE_DIR) / ".venv" / "bin" / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Seconds a run may take, and its phases: bounded, and the same seed each time.
RUNS = {("Examples", "Coverage", "Fuzzing"): 30, ("Stateful",): 10}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A gunicorn with model ``m`` (version 1 in production); bad tokens are not rate limited here,
    so the checks that send them see 401, as a client that sends one would."""
    root = tmp_path_factory.mktemp("conformance")
    with fresh_database(root) as database_url:
        env = server.service_env(database_url, root / "artifacts", ADMIN_TOKEN, AUTH_FAILURES_PER_MINUTE=1_000_000)
        server.migrate(env)
        live = server.start(env, root, workers=2)
        try:
            assert upload(live, "m", scaled_sum(2)).status_code == 201
            move(live, "promote", "m", 1)
            yield live
        finally:
            live.stop()


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_schemathesis_finds_nothing_the_document_does_not_say(live, who, tmp_path):
    headers = ["-H", f"Authorization: Bearer {ADMIN_TOKEN}"] if who == "admin" else []
    for phases, seconds in RUNS.items():
        run = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{live.url}/openapi.json", "--checks", "all",
             "--phases", ",".join(phase.lower() for phase in phases), "--max-time", str(seconds), "--seed", "1",
             "--no-color", *headers],
            capture_output=True, text=True, timeout=seconds * 4, cwd=tmp_path,
        )
        assert run.returncode == 0, shortened(run.stdout)[-20_000:] + shortened(run.stderr)[-5_000:]
        if "Coverage" in phases:
            selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", run.stdout)
            assert selected is not None, run.stdout[-5_000:]
            assert selected[1] == selected[2] == selected[3], f"operations selected/all, tested: {selected.groups()}"
        for phase in phases:
            assert re.search(rf"✅ {phase}\b", run.stdout), f"the {phase} phase did not run: {run.stdout[-5_000:]}"


def shortened(report: str, width: int = 300) -> str:
    """Schemathesis's report with each line cut to ``width`` characters: a failure's replay line holds the
    whole request (a fuzzed body of megabytes), which would push the failure itself out of CI's output."""
    return "\n".join(line if len(line) <= width else f"{line[:width]} …({len(line):,} characters)"
                     for line in report.splitlines())
