"""A model's prediction-log share reaches every gunicorn worker without any request asking for it
(issue 47, item 2): each worker reads the shares again within ALIAS_REFRESH_SECONDS of a change, as
it reads moved aliases, and says when it last did in /metrics; from then on every worker logs at the
new share, on its first answer."""
import time
import uuid

import psutil
import requests

from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.traffic import move
from tests.e2e.rollouts import followed_at
from tests.helpers import wait_for

DEADLINE = 60  # seconds: only a bound on waiting, so that a server that never follows fails the test
FOLLOW_PERIODS = 5  # a worker follows within ALIAS_REFRESH_SECONDS, and a busy machine may delay its poll


def logged_ids(live, model: str) -> set[str]:
    response = requests.get(f"{live.url}/models/{model}/predictions?limit=1000", headers=live.headers, timeout=30)
    return {item["request_id"] for item in response.json()["items"]}


def test_a_share_change_reaches_every_idle_worker_and_each_logs_its_next_answers(live_registry):
    live = live_registry
    assert upload(live, "shared", scaled_sum(1)).status_code == 201
    move(live, "promote", "shared", 1)
    workers = {child.pid for child in psutil.Process(live.process.pid).children()}
    assert len(workers) == live.workers

    before = time.time()
    patched = requests.patch(f"{live.url}/models/shared", json={"prediction_log": {"sample": 1.0}},
                             headers=live.headers, timeout=30)
    assert patched.status_code == 200, patched.text

    # No predictions meanwhile: the change must reach the workers by itself.
    wait_for(lambda: all(followed_at(live).get(pid, 0) >= before for pid in workers),
             "every worker to read the new share", DEADLINE)
    # A worker reads the shares at its start and after a change only: each figure is the read that
    # followed the PATCH. Within a few periods, so a change never waits for traffic (or for long).
    late = {pid: read_at - before for pid, read_at in followed_at(live).items()
            if pid in workers and read_at - before > FOLLOW_PERIODS * live.refresh_seconds}
    assert not late, f"seconds each worker took past {FOLLOW_PERIODS} x ALIAS_REFRESH_SECONDS: {late}"
    ids = [f"after-{uuid.uuid4()}" for _ in range(30)]
    for request_id in ids:  # a new connection each: the answers come from every worker
        answer = requests.post(f"{live.url}/models/shared/production/predict", json={"instances": [PROBE_ROW]},
                               headers={"X-Request-ID": request_id}, timeout=60)
        assert answer.status_code == 200
    wait_for(lambda: logged_ids(live, "shared") >= set(ids), "every answer after the change to be logged", DEADLINE)
