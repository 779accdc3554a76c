"""Client-side load for overload scenarios: callers that POST one body to one URL, closed loop or paced,
and note every answer (status, latency, Retry-After, content type), so that a flooded model's refusals
and a quiet model's answers can be told apart and timed. The end-to-end test and ``bench/overload.py``
both drive it."""
from __future__ import annotations

import gc
import http.client
import json
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import urlopen

import gunicorn.config
import numpy as np
import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Reply:
    """One request as the client saw it (``time.monotonic()`` seconds). Status 0: no answer at all, and
    ``failure`` says why: ``"timeout"`` (the client stopped waiting) or ``"dropped"`` (the connection was
    refused, reset or closed before an answer). ``cpu_wait``: seconds the calling thread spent runnable but
    not running during the call (the client starved of CPU, from the kernel's schedstat)."""

    started: float
    finished: float
    status: int
    retry_after: str | None
    content_type: str
    failure: str = ""
    cpu_wait: float = 0.0

    @property
    def ms(self) -> float:
        """Its latency in milliseconds."""
        return (self.finished - self.started) * 1000

    @property
    def kind(self) -> str:
        """Its status as a string, or for no answer why there was none (``timeout``, ``dropped``)."""
        return str(self.status) if self.status else self.failure


def cpu_wait() -> float:
    """Seconds the calling thread has waited on a run queue so far (field 2 of /proc/thread-self/schedstat)."""
    with open("/proc/thread-self/schedstat", "rb") as stat:
        return int(stat.read().split()[1]) / 1e9


SERVER_KEEPALIVE = gunicorn.config.Config().keepalive  # seconds; gunicorn.conf.py keeps gunicorn's default


class Pace:
    """The send times paced callers share: ``rate`` requests a second in all, at fixed times (a late answer does
    not shift the next; a caller free again takes the next time due, so that callers slowed by an answer are made
    up by the others). The rate may be raised while they call (:meth:`raise_to`)."""

    def __init__(self, rate: float):
        self.rate = rate
        self._due = time.monotonic()
        self._lock = threading.Lock()

    def next_due(self) -> float:
        """The next send time (``time.monotonic()``), taken by the caller that asks."""
        with self._lock:
            due, self._due = self._due, self._due + 1 / self.rate
        return due

    def raise_to(self, rate: float) -> None:
        """Send at ``rate`` from now on, if it is higher: the times already taken at the lower rate are kept, the
        next ones start now."""
        with self._lock:
            if rate > self.rate:
                self.rate, self._due = rate, min(self._due, time.monotonic())


class Callers:
    """``threads`` callers POSTing ``body`` to ``url`` until stopped: back to back (``interval`` 0), or paced at
    ``threads / interval`` requests a second in all (:class:`Pace`; ``pace`` to share or change one)."""

    def __init__(self, url: str, body: bytes, *, threads: int = 1, interval: float = 0.0, pace: Pace | None = None,
                 headers: dict | None = None, timeout: float = 30.0):
        self.url, self.body, self.timeout = url, body, timeout
        self.pace = pace or (Pace(threads / interval) if interval else None)
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.replies: list[Reply] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = threads

    def __enter__(self) -> Callers:
        self.grow_to(self._count)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def grow_to(self, threads: int) -> None:
        """Start callers until there are ``threads`` of them."""
        for _ in range(threads - len(self._threads)):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[Reply]:
        """Stop calling, wait for the answers in flight, and return every reply."""
        self._stop.set()
        for thread in list(self._threads):
            thread.join()
        return self.replies

    def _loop(self) -> None:
        # http.client, kept alive: a lighter client than requests, so that the callers' own CPU (on the
        # server's machine) disturbs the figures less.
        # A connection idle for half the server's keep-alive is closed and a new one opened, as a keep-alive
        # client does: the server closes one idle for its keep-alive, and a request sent on it as it closes is
        # dropped unanswered, a failure of the client's, not the server's. Half: the server's idle time starts
        # when it wrote the last answer, the client's when it read it, later.
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        idle_since = time.monotonic()
        while not self._stop.is_set():
            if self.pace and self._stop.wait(max(0.0, self.pace.next_due() - time.monotonic())):
                break
            if time.monotonic() - idle_since > SERVER_KEEPALIVE / 2:
                connection.close()  # the next request opens a new connection
            self.replies.append(self._call(connection, parts.path))
            idle_since = time.monotonic()
        connection.close()

    def _call(self, connection: http.client.HTTPConnection, path: str) -> Reply:
        waited, started = cpu_wait(), time.monotonic()
        try:
            connection.request("POST", path, body=self.body, headers=self.headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()  # the next request opens a new connection
            failure = "timeout" if isinstance(error, TimeoutError) else "dropped"  # TimeoutError is an OSError
            return Reply(started, time.monotonic(), 0, None, "", failure, cpu_wait() - waited)
        return Reply(started, time.monotonic(), response.status, response.getheader("Retry-After"),
                     response.getheader("Content-Type", ""), "", cpu_wait() - waited)


def percentile(replies: list[Reply], q: float) -> float:
    """The ``q``-th percentile of the replies' latencies in ms (nan when there are none)."""
    return float(np.percentile([r.ms for r in replies], q)) if replies else float("nan")


def summary(replies: list[Reply], seconds: float) -> dict:
    """Counts per status (a client timeout and a dropped connection apart), requests per second, and
    p50/p99/max latency in ms, overall and per status."""
    by_status = {kind: [r for r in replies if r.kind == kind] for kind in sorted({r.kind for r in replies})}
    return {
        "requests": len(replies),
        "rps": round(len(replies) / seconds, 1) if seconds else None,
        "statuses": {s: len(found) for s, found in by_status.items()},
        "p50_ms": round(percentile(replies, 50), 2),
        "p99_ms": round(percentile(replies, 99), 2),
        "max_ms": round(max((r.ms for r in replies), default=float("nan")), 2),
        "by_status": {s: {"p50_ms": round(percentile(found, 50), 2), "p99_ms": round(percentile(found, 99), 2),
                          "max_ms": round(max(r.ms for r in found), 2)} for s, found in by_status.items()},
    }



FLOOD_NICE = 5  # how far below the machine's other processes the flood's callers run, where allowed


class Flood:
    """:class:`Callers` in a process of their own until stopped, so that a flood's client work never holds
    the GIL of the process that measures the other callers: closed loop (each thread sends again as soon as
    it is answered), or open loop at ``rate`` requests a second in all (paced). With ``ahead`` the pace keeps
    ahead of the server: every quarter second it is raised to ``ahead`` times the answers of the last second
    (never lowered), with a caller for each request that may be waiting ``longest`` seconds for its answer, so
    that a machine busier or idler than when ``rate`` was measured changes what the flood offers, not whether
    it offers ``ahead`` times what is answered."""

    def __init__(self, url: str, body: bytes, *, threads: int, rate: float | None = None,
                 ahead: float | None = None, longest: float = 0.0, headers: dict | None = None):
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._replies, sending = context.Pipe(duplex=False)
        self._process = context.Process(target=_flood, args=(url, body, threads, rate, ahead, longest, headers,
                                                              self._stop, sending), daemon=True)
        self.started = 0.0
        self.cpu_seconds = 0.0  # the callers' process's CPU time, once stopped
        self.rate = rate  # the pace it reached, once stopped

    def __enter__(self) -> Flood:
        self._process.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        if self._process.is_alive():
            self.stop()

    def stop(self) -> list[Reply]:
        """Stop the flood; every reply it got."""
        self._stop.set()
        replies, self.cpu_seconds, self.rate = self._replies.recv()
        self._process.join()
        return replies


KEEP_AHEAD_EVERY = 0.25  # seconds between two looks of a flood that keeps ahead at the answers of the last second


def _flood(url: str, body: bytes, threads: int, rate: float | None, ahead: float | None, longest: float,
           headers: dict | None, stop, sending) -> None:
    # The flood is the instrument, as a load generator on a machine of its own would be: ahead of the server
    # and of anything else busy here (a nice value below theirs, where this process may take one), so that a
    # busy machine lowers what the server answers, not what the flood offers. Its threads inherit it.
    try:
        os.nice(-FLOOD_NICE)
    except PermissionError:
        pass
    with no_collections():
        began = time.process_time()  # the callers' own CPU, not the process's start
        pace = Pace(rate) if rate else None
        with Callers(url, body, threads=threads, pace=pace, headers=headers) as callers:
            while not stop.wait(KEEP_AHEAD_EVERY if pace and ahead else None):
                answered = _answered_since(callers.replies, time.monotonic() - 1.0)
                pace.raise_to(ahead * answered)
                callers.grow_to(math.ceil(pace.rate * longest))
    sending.send((callers.replies, time.process_time() - began, pace.rate if pace else None))


def _answered_since(replies: list[Reply], since: float) -> int:
    """The 200s among ``replies`` (in the order they finished, more arriving) that finished after ``since``."""
    count = 0
    for reply in reversed(replies[-10_000:]):  # a copy: the callers append as it counts
        if reply.finished < since:
            break
        count += reply.status == 200
    return count


@contextmanager
def no_collections() -> Iterator[None]:
    """No cyclic garbage collection in this process within: a full collection stops every caller thread of the
    process for tens of milliseconds (the flood's process: 28 to 64 ms, the bench's own: 12 to 154 ms), and the
    answers that arrive meanwhile are timed late, which the figures would count as the server's latency. What
    exists when it starts is frozen, out of any collection's way; a caller's own objects go by reference count."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@dataclass(frozen=True)
class Scenario:
    """A flood of the hot model beside a quiet model's steady calls: ``idle`` seconds of the quiet model
    alone, ``flood`` seconds with ``flood_threads`` callers on the hot model, ``idle`` seconds alone again.
    The flood's callers are closed loop, or with ``flood_times`` open loop, starting at that many times the hot
    model's capacity (its answers a second with ``capacity_callers`` callers at once, measured first) and kept
    at least that many times what the model answers during the flood (:class:`Flood`'s ``ahead``), with more
    callers than ``flood_threads`` where the pace needs them (one request a caller a deadline).
    The quiet model is called by one caller every ``quiet_interval`` seconds, or with ``quiet_share`` by
    ``quiet_threads`` paced callers at that share of its own capacity (measured first, as the hot model's).
    Every call sends ``X-Request-Timeout: deadline``."""

    flood_threads: int = 20
    quiet_interval: float = 0.02
    idle: float = 3.0
    flood: float = 6.0
    deadline: float = 1.0
    flood_times: float | None = None
    capacity_callers: int = 4
    quiet_share: float | None = None
    quiet_threads: int = 4
    flood_rate: float | None = None  # open loop at this many requests a second, instead of ``flood_times``
    quiet_rate: float | None = None  # ``quiet_threads`` paced callers at this many requests a second in all


@dataclass
class Outcome:
    """What the callers saw in each phase, and /metrics before the flood, after it, and at the end."""

    hot_alone: list[Reply]
    hot_capacity: list[Reply]  # closed loop, ``capacity_callers`` at once (empty for a closed-loop flood)
    quiet_before: list[Reply]
    hot_flood: list[Reply]
    quiet_flood: list[Reply]
    quiet_after: list[Reply]
    metrics: dict[str, dict]
    flood_rate: float | None  # the open-loop flood's requests a second, offered (at the end, where it kept ahead)
    quiet_capacity: list[Reply]  # closed loop, ``capacity_callers`` at once (empty without ``quiet_share``)
    quiet_rate: float  # the quiet model's requests a second, offered
    flood_cpu_seconds: float  # CPU time of the flood's callers (their process, on the server's machine)
    server_cpu_seconds: float  # CPU time of the server's workers during the flood


def overload(live, hot: tuple[str, bytes], quiet: tuple[str, bytes], scenario: Scenario) -> Outcome:
    """Run ``scenario`` against ``live``: ``hot`` and ``quiet`` are (model name, request body); no collection of
    this process's garbage times an answer late (:func:`no_collections`)."""
    with no_collections():
        return _overload(live, hot, quiet, scenario)


def _overload(live, hot: tuple[str, bytes], quiet: tuple[str, bytes], scenario: Scenario) -> Outcome:
    headers = {"X-Request-Timeout": f"{scenario.deadline:g}"}
    hot_url, quiet_url = f"{live.url}/models/{hot[0]}/predict", f"{live.url}/models/{quiet[0]}/predict"
    metrics = {}
    with Callers(hot_url, hot[1], headers=headers) as alone:  # the hot model's own time, one at a time
        time.sleep(scenario.idle)
    at_capacity, rate = [], scenario.flood_rate
    if scenario.flood_times and not rate:
        with Flood(hot_url, hot[1], threads=scenario.capacity_callers, headers=headers) as capacity:
            time.sleep(scenario.idle)  # measured as the flood will offer: from a caller process of its own
            at_capacity = capacity.stop()
        rate = scenario.flood_times * _answered_a_second(at_capacity, scenario.idle)
    quiet_capacity, quiet_threads, quiet_interval = [], 1, scenario.quiet_interval
    if scenario.quiet_rate:
        quiet_threads = scenario.quiet_threads
        quiet_interval = quiet_threads / scenario.quiet_rate
    elif scenario.quiet_share:
        quiet_capacity = _at_capacity(quiet_url, quiet[1], scenario, headers)
        quiet_threads = scenario.quiet_threads
        quiet_interval = quiet_threads / (scenario.quiet_share * _answered_a_second(quiet_capacity, scenario.idle))

    def quiet_callers() -> Callers:
        return Callers(quiet_url, quiet[1], threads=quiet_threads, interval=quiet_interval, headers=headers)

    with quiet_callers() as before:
        time.sleep(scenario.idle)
    metrics["before"] = scrape(live.url)
    workers = psutil.Process(live.process.pid).children(recursive=True)
    server_cpu = _cpu_seconds(workers)
    # Paced, a caller sends again only once answered: enough callers that each sends once per the longest the
    # server may take to answer (its deadline, then one computation begun before it: the slowest answer seen
    # so far), so that the pace holds however slow the machine makes the answers.
    longest = scenario.deadline + max(reply.ms for reply in (*alone.replies, *at_capacity)) / 1000
    threads = max(scenario.flood_threads, math.ceil(rate * longest)) if rate else scenario.flood_threads
    with Flood(hot_url, hot[1], threads=threads, rate=rate, ahead=scenario.flood_times, longest=longest,
               headers=headers) as flood:
        time.sleep(min(1.0, scenario.flood / 4))  # the flood has reached every worker
        with quiet_callers() as during:
            time.sleep(scenario.flood)
        flooded = flood.stop()
    server_cpu = _cpu_seconds(workers) - server_cpu
    metrics["flood"] = scrape(live.url)
    with quiet_callers() as after:
        time.sleep(scenario.idle)
    return Outcome(alone.stop(), at_capacity, before.stop(), flooded, during.stop(), after.stop(), metrics, flood.rate,
                   quiet_capacity, quiet_threads / quiet_interval, flood.cpu_seconds, server_cpu)


def _at_capacity(url: str, body: bytes, scenario: Scenario, headers: dict) -> list[Reply]:
    """``scenario.capacity_callers`` closed-loop callers POSTing ``body`` to ``url`` for ``scenario.idle`` s."""
    with Callers(url, body, threads=scenario.capacity_callers, headers=headers) as capacity:
        time.sleep(scenario.idle)
    return capacity.stop()


def _answered_a_second(replies: list[Reply], seconds: float) -> float:
    """The 200s among ``replies`` a second, over ``seconds``."""
    return sum(reply.status == 200 for reply in replies) / seconds


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """The user and system CPU time ``processes`` have used so far, all their threads together."""
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def scrape(url: str) -> dict:
    """/metrics as ``{(sample name, ((label, value), …)): value}``."""
    with urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric(metrics: dict, name: str, **labels: str) -> float:
    """One sample of a :func:`scrape`; 0 when it is not there."""
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def serve_models(live, *, hot_trees: int = 300, hot_rows: int = 2000) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    """On ``live``: ``hot``, a forest of ``hot_trees`` trees asked ``hot_rows`` rows a request (tens of ms),
    and ``quiet``, a logistic regression asked one row, with a shadow on all of its traffic; (name, body)
    of each, once every worker serves them."""
    from sklearn.ensemble import RandomForestClassifier

    from bench import models
    from bench.harness.traffic import move

    X, y = models.training_data()
    hot = RandomForestClassifier(n_estimators=hot_trees, random_state=0).fit(X, y)
    move(live, "promote", "hot", models.register(live, "hot", hot))
    move(live, "promote", "quiet", models.register(live, "quiet", models.fit("logistic")))
    shadow = models.register(live, "quiet", models.fit("logistic", seed=1))
    started = requests.put(f"{live.url}/models/quiet/aliases/production/rollout", headers=live.headers, timeout=60,
                           json={"shadow": {"version": shadow, "percent": 100}})
    if started.status_code != 200:
        raise RuntimeError(f"the shadow rollout did not start: {started.status_code} {started.text}")
    time.sleep(live.refresh_seconds * 2)  # every worker serves the rollout (ALIAS_REFRESH_SECONDS)
    hot_body = json.dumps({"instances": np.round(np.resize(X, (hot_rows, X.shape[1])), 6).tolist()}).encode()
    quiet_body = json.dumps({"instances": np.round(X[:1], 6).tolist()}).encode()
    return ("hot", hot_body), ("quiet", quiet_body)
