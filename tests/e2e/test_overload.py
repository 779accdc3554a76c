"""Isolation under overload on a real gunicorn (2 workers of 4 threads, bounded to 2 predictions in flight
per model and 3 per worker, so that a thread of each is always free to refuse): a slow model flooded at
5× its capacity beside a quiet model called at 20 % of its own capacity (both measured first).

The quiet model fails nothing and its p99 stays within twice its idle p99; the flooded model's excess is
refused at once (429, Retry-After, problem+json) rather than queued; no request outlives its deadline
(X-Request-Timeout) by more than one computation; the quiet model's shadow runs are shed during the
flood and run again after it. Timing bounds are generous: the machine is shared (see REFUSAL_P99_MS). The server
starts with the retired ``BACK_LANE_NICE`` set, as a deployment upgraded from round four may: it says the setting is
ignored, and each worker stays one process."""
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from bench.harness import server
from bench.harness.overload import Callers, Reply, Scenario, metric, overload, percentile, scrape, serve_models
from tests.databases import BACKEND, fresh_database

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("admission is each worker's own count, in memory; tests/integration/test_admission_api.py runs "
            "every edge on both backends: the SQLite pass runs it"),
)

ADMIN_TOKEN = "e2e-overload-token"
# Tens of ms a request: the slow model. Its cost is in trees, not rows: a bigger body slows the flood's callers as
# much as the model (4,000 rows offered 5.2 times what was answered, 2,000 rows 7.2 times, idle), and once the
# batch walk got faster 300 trees were answered often enough that a full run offered only 4.5 times; 600 trees
# offered 12 times (idle), and once the walk got faster again (its plain steps unrolled) 4.2 times in a full run
# on a slow machine; 1,200 trees.
HOT_ROWS, HOT_TREES = 2000, 1200
# The issue asks refusals within 50 ms at p99 and the quiet model's p99 within twice its idle p99, which
# bench/overload.py measures. On the shared two-core machine these tests were written on (a benchmark and
# other jobs beside, load average 10 to 20) the hot model's 4 computations in flight took both cores: a
# refusal's p99 was 300-400 ms and the quiet model's 200-400 ms against an idle p99 of 60-180 ms. So the
# bounds here are generous: refusals within REFUSAL_P99_MS and faster than the hot model's own answers,
# the quiet model within twice its idle p99 or QUIET_P99_FLOOR_MS.
REFUSAL_P99_MS = 1000.0
QUIET_P99_FLOOR_MS = 500.0
# The flood starts at 6 times the capacity measured first (4 closed-loop callers) and keeps at 6 times what the
# model answers during it, so that it offers at least 5 times that: a capacity measured first alone was too low a
# guide on a busy machine (at 5 times it a flood offered 852 requests and the model answered 212: 4.0×; under
# stress-ng, 2 answers a second measured first and 8 answered in the flood, offered 2.6×). Not more: what is
# offered past that only tests how fast a busy machine reads bodies (kept 8 times ahead under stress-ng and
# another end-to-end test, the refusals' p99 was 1.6 s).
SCENARIO = Scenario(flood_times=6, quiet_share=0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The server, started with the retired BACK_LANE_NICE set."""
    root = tmp_path_factory.mktemp("overload")
    env = {"WORKER_THREADS": 4, "MAX_IN_FLIGHT_PER_MODEL": 2, "MAX_IN_FLIGHT": 3, "PREDICTION_LOG_SAMPLE": 0.0,
           "BACK_LANE_NICE": "10"}
    with fresh_database(root) as url, server.running(url, root, ADMIN_TOKEN, workers=2, env=env) as (live,):
        yield live


@pytest.fixture(scope="module")
def models(live):
    return serve_models(live, hot_trees=HOT_TREES, hot_rows=HOT_ROWS)


@pytest.fixture(scope="module")
def outcome(live, models):
    hot, quiet = models
    return overload(live, hot, quiet, SCENARIO)


def starved(reply: Reply) -> bool:
    """Whether ``reply`` is a client timeout that the client's own starvation explains: its thread waited for a
    CPU at least as long as the call outlived the server's deadline. A dropped connection, and a timeout the
    server alone let pass its deadline, are the server's failures."""
    return reply.failure == "timeout" and reply.cpu_wait >= reply.finished - reply.started - SCENARIO.deadline


def test_the_quiet_model_fails_nothing_and_keeps_its_p99_within_twice_its_idle_p99(outcome):
    for phase in (outcome.quiet_before, outcome.quiet_flood, outcome.quiet_after):
        assert phase and Counter(reply.kind for reply in phase if not starved(reply)).keys() == {"200"}
    # its load was offered during the flood too: paced callers send late (or not at all) behind slow answers
    assert len(outcome.quiet_flood) >= 0.8 * outcome.quiet_rate * SCENARIO.flood
    idle = max(percentile(outcome.quiet_before, 99), percentile(outcome.quiet_after, 99), QUIET_P99_FLOOR_MS)
    assert percentile(outcome.quiet_flood, 99) <= 2 * idle


def test_the_flooded_model_is_driven_past_five_times_its_capacity_and_refused_fast(outcome):
    flood = outcome.hot_flood
    answered = [reply for reply in flood if reply.status == 200]
    refused = [reply for reply in flood if reply.status in (429, 503)]  # 503: its deadline passed while it waited
    others = Counter(reply.kind for reply in flood if reply.status not in (200, 429, 503) and not starved(reply))
    assert not others  # nothing else: no 500, no dropped connection, no timeout the client's CPU wait does not explain
    assert len(flood) >= 5 * len(answered), (  # offered at 5× what it answered (its capacity under the flood)
        f"offered {len(flood)} in {SCENARIO.flood:g} s (paced at {outcome.flood_rate:.0f}/s), answered {len(answered)}; "
        f"capacity measured first {len([r for r in outcome.hot_capacity if r.status == 200]) / SCENARIO.idle:.0f}/s; "
        f"flood CPU {outcome.flood_cpu_seconds:.1f} s, server CPU {outcome.server_cpu_seconds:.1f} s")
    assert any(reply.status == 429 for reply in refused)
    assert all(reply.retry_after == "1" and reply.content_type == "application/problem+json" for reply in refused)
    late = [reply for reply in refused if reply.status == 503]
    assert percentile(refused, 99) <= min(REFUSAL_P99_MS, percentile(answered, 99)), (
        f"{len(refused)} refused ({len(late)} of them 503 past the deadline) of {len(flood)} offered; "
        f"p99 of the 429s {percentile([r for r in refused if r.status == 429], 99):.0f} ms, "
        f"of the 503s {percentile(late, 99):.0f} ms, of the answers {percentile(answered, 99):.0f} ms")
    assert percentile(refused, 50) <= percentile(answered, 50)


def test_no_request_outlives_its_deadline_by_more_than_one_computation(outcome):
    # One computation as long as the flood made them (an admitted request runs to its end), and time on
    # the wire, in the client's own scheduling and before the worker notes the request's arrival (its main
    # loop waits for the GIL the flood's threads hold) on a shared machine: once, with a quarter of a second
    # for that, a 200 took 1.52 s in a full run of the suite, past that bound.
    computed = [reply for reply in outcome.hot_flood if reply.status == 200]
    slack = percentile(computed, 99) / 1000 + 0.5
    replies = [*outcome.hot_flood, *outcome.quiet_before, *outcome.quiet_flood, *outcome.quiet_after]
    late = [reply for reply in replies if reply.finished - reply.started > SCENARIO.deadline + slack
            and not starved(reply)]
    assert late == []


def test_shadow_runs_are_shed_during_the_flood_and_run_again_after_it(live, outcome):
    before, flood = outcome.metrics["before"], outcome.metrics["flood"]
    assert metric(flood, "registry_shadow_shed_total", kind="shadow") > metric(before, "registry_shadow_shed_total",
                                                                             kind="shadow")
    compared = {"model": "quiet", "alias": "production", "version": "2", "outcome": "compared"}
    wanted = metric(flood, "registry_shadow_runs_total", **compared) + 0.9 * len(outcome.quiet_after)
    deadline = time.monotonic() + 10  # the workers' metric files are written about once a second
    while metric(scrape(live.url), "registry_shadow_runs_total", **compared) < wanted:
        assert time.monotonic() < deadline, "the shadow runs did not come back after the flood"
        time.sleep(0.2)


def niced_threads(pid: int, nice: int = 10) -> set[int]:
    """The threads of process ``pid`` at nice ``nice`` (field 19 of /proc/<pid>/task/<id>/stat)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        if int(stat[stat.rindex(")") + 2:].split()[16]) == nice:
            found.add(int(task.name))
    return found


def test_the_flooded_models_walks_run_on_threads_of_lower_priority(live, models, outcome):
    # LOW_PRIORITY_NICE's default: the hot model's walks (2,000 rows of 1,200 trees) run at nice 10, each on a
    # thread of its own, while the worker's threads (its quiet model's answers, its refusals) keep nice 0.
    (hot, body), _ = models
    workers = psutil.Process(live.process.pid).children()
    seen: set[int] = set()
    with Callers(f"{live.url}/models/{hot}/predict", body, threads=4) as callers:
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "no worker's thread was seen at nice 10"
            for worker in workers:
                seen |= niced_threads(worker.pid)
            time.sleep(0.002)
    assert {reply.status for reply in callers.replies} <= {200, 429}
    for worker in workers:
        assert worker.nice() == 0 and not seen & {thread.id for thread in worker.threads()}  # those threads are gone


def test_the_retired_back_lane_setting_is_ignored_and_said_so(live, outcome):
    # A deployment upgraded from round four may still set BACK_LANE_NICE: the server starts, logs that the setting
    # is ignored, and no worker forks a back process (the flood above was answered by the workers alone).
    assert "BACK_LANE_NICE is set and ignored" in live.log_path.read_text()
    assert all(not worker.children() for worker in psutil.Process(live.process.pid).children())
