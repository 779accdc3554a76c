"""Shadow runs: after a caller has its answer, the shadow version predicts the same rows, off the request path.

Jobs wait in a bounded per-process queue drained by one loop (``shadow-runner``, started and stopped by
the app's lifecycle); when the queue is full a
job is dropped and counted, never waited for. While the process is busy (``shed``: its admission's
counts, ``registry/serving/admission.py``) a job is shed, when offered and again when its turn
comes: a shadow run first, a canary's mirror run only when the process is full. Jobs that queued up meanwhile run as one batch, so a
busy process pays scikit-learn's per-call overhead once per batch rather than once per request. The shadow's predictions are compared with what the
caller got: label agreement for classifiers, absolute difference for regressors.
"""
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from registry import tracing
from registry.process.loop import Loop
from registry.serving.cache import ServableModel
from registry.serving.figures import FigureBook
from registry.serving.inputs import PredictionInput
from registry.serving.routing import SHADOW
from registry.telemetry import SHADOW_ABS_DIFF, SHADOW_ROWS, SHADOW_RUNS, SHADOW_SHED, series

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
# Jobs waiting for the same shadow version run as one predict call, up to this many at a time.
BATCH_JOBS = 64
# How often the runner looks at its queue unwoken (an offer wakes it at once).
IDLE_SECONDS = 1.0


@dataclass(frozen=True)
class ShadowJob:
    """One caller's request to run again on the shadow version, and what the caller got."""

    rollout_id: int
    alias: str
    shadow: ServableModel
    request: PredictionInput  # the caller's request, parsed again against the shadow's signature
    answered: list  # the predictions the caller got
    request_id: str | None = None  # the caller's request id when the prediction log kept its answer
    # A mirror run is counted on the canary it checks: the role and version the comparison counts under.
    role: str = SHADOW
    arm_version: int | None = None
    max_rows: int | None = None  # compare only the request's first rows (a mirror's weight is bounded)
    trace: object | None = None  # the caller's span context when its request was traced: the run's parent

    @property
    def mirror(self) -> bool:
        """Whether this runs a canary request on the primary (a plan's agreement gate), not on a shadow."""
        return self.role != SHADOW


# What is told of each shadow run that answered: the job, and by keyword the rows the shadow saw,
# its predictions and the seconds its batch took.
ShadowObserver = Callable[..., None]


def compare(task: str, answered: list, shadowed: list) -> tuple[int, list[float]]:
    """Rows that agree (classifiers) and absolute differences per row (regressors)."""
    if task == "classification":
        return sum(1 for a, b in zip(answered, shadowed) if a == b), []
    diffs = np.abs(np.asarray(answered, dtype=float) - np.asarray(shadowed, dtype=float))
    return 0, diffs.tolist()


class ShadowRunner:
    """The bounded queue of shadow jobs of this process and the one loop that runs them (once started)."""

    def __init__(self, figures: FigureBook, run: Callable, size: int = QUEUE_SIZE,
                 shed: Callable[..., bool] = lambda *, mirror: False):
        self._figures = figures
        self._run = run  # run(servable, rows) -> predictions: the same code that answers callers
        self._shed = shed  # shed(mirror=...) -> whether such a run is skipped now (the process is busy)
        self._queue: queue.Queue[ShadowJob] = queue.Queue(maxsize=size)
        self._loop = Loop("shadow-runner", IDLE_SECONDS, self._turn)
        self._observers: list[ShadowObserver] = []

    def observe(self, observer: ShadowObserver) -> None:
        """Call ``observer`` after each shadow run that answered (the prediction log keeps them)."""
        self._observers.append(observer)

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job``; when the process is busy shed it, when the queue is full drop it, and count
        either. Never blocks."""
        if self._shed_now(job):
            return False
        try:
            self._queue.put_nowait(job)
            self._loop.wake()
            return True
        except queue.Full:
            self._figures.shadowed(self._key(job), dropped=True)
            if not job.mirror:
                series(SHADOW_RUNS, **_labels(job), outcome="dropped").inc()
            return False

    def start(self) -> None:
        """Start this process's runner (the app's lifecycle does, in each worker)."""
        self._loop.start()

    def stop(self, timeout: float) -> bool:
        """Stop the runner; wait up to ``timeout`` seconds for a batch in progress. Whether it has ended."""
        return self._loop.stop(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued job has run (tests and shutdown); False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def _turn(self) -> bool:
        """Run what waits, up to a batch; True when more is waiting (the next turn at once)."""
        jobs = []
        while len(jobs) < BATCH_JOBS:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not jobs:
            return False
        try:
            for group in _by_shadow([job for job in jobs if not self._shed_now(job)]):
                self._run_group(group)
        except Exception:  # a shadow must never take the runner down with it
            log.exception("shadow runs of %s failed", jobs[0].shadow.model)
        finally:
            for _ in jobs:
                self._queue.task_done()
        return not self._queue.empty()

    def _run_group(self, jobs: list[ShadowJob]) -> None:
        """Run the waiting jobs of one shadow version as one batch (one predict call: most of its cost)."""
        shadow, parsed = jobs[0].shadow, []
        for job in jobs:
            try:
                parsed.append((job, _first(job.request.rows(shadow.signature), job.max_rows)))
            except Exception:
                self._failed(job)
        if not parsed:
            return
        started = time.perf_counter()
        try:
            predictions = self._run(shadow, _stacked([rows for _, rows in parsed]))
        except Exception:  # some job's rows are what the shadow cannot take: find which, one by one
            for job, rows in parsed:
                self._run_one(job, rows)
            return
        seconds = time.perf_counter() - started
        start = 0
        for job, rows in parsed:
            self._compared(job, rows, predictions[start:start + len(rows)], seconds)
            start += len(rows)

    def _run_one(self, job: ShadowJob, rows) -> None:
        started = time.perf_counter()
        try:
            shadowed = self._run(job.shadow, rows)
        except Exception:
            self._failed(job)
            return
        self._compared(job, rows, shadowed, time.perf_counter() - started)

    def _shed_now(self, job: ShadowJob) -> bool:
        """Whether ``job`` is shed now (the process is busy); counted, as a drop in its rollout's figures."""
        if not self._shed(mirror=job.mirror):
            return False
        self._figures.shadowed(self._key(job), dropped=True)
        SHADOW_SHED.labels("mirror" if job.mirror else "shadow").inc()
        return True

    def _failed(self, job: ShadowJob) -> None:
        _traced(job, rows=0, seconds=0.0, failed=True)
        if job.mirror:  # the primary failing on a canary's rows is no error of the canary's
            self._figures.shadowed(self._key(job), dropped=True)
            return
        self._figures.shadowed(self._key(job), failed=True)
        series(SHADOW_RUNS, **_labels(job), outcome="error").inc()

    def _compared(self, job: ShadowJob, rows, shadowed: list, seconds: float) -> None:
        _traced(job, rows=len(shadowed), seconds=seconds)
        shadow, labels = job.shadow, _labels(job)
        agreed, diffs = compare(shadow.task, job.answered[:len(shadowed)], shadowed)
        self._figures.shadowed(self._key(job), rows=len(shadowed), agreed=agreed, diffs=diffs)
        if job.mirror:
            return
        series(SHADOW_RUNS, **labels, outcome="compared").inc()
        if shadow.task == "classification":
            series(SHADOW_ROWS, **labels, outcome="agreed").inc(agreed)
            series(SHADOW_ROWS, **labels, outcome="disagreed").inc(len(shadowed) - agreed)
        abs_diff = series(SHADOW_ABS_DIFF, **labels)
        for diff in diffs:
            abs_diff.observe(diff)
        for observer in self._observers:
            observer(job, rows=rows, predictions=shadowed, seconds=seconds)

    @staticmethod
    def _key(job: ShadowJob):
        return (job.rollout_id, job.role, job.arm_version if job.mirror else job.shadow.version)


def _traced(job: ShadowJob, *, rows: int, seconds: float, failed: bool = False) -> None:
    """A ``shadow`` span for the run, child of its caller's request span (when that was traced), ending now."""
    if job.trace is None:
        return
    end = time.time_ns()
    tracing.record("shadow", parent=job.trace, start_ns=end - int(seconds * 1e9), end_ns=end, failed=failed,
                   attributes={"model.name": job.shadow.model, "model.ref": job.alias, "model.version": job.shadow.version,
                               "model.route": "mirror" if job.mirror else SHADOW, "prediction.rows": rows})


def _labels(job: ShadowJob) -> dict:
    """The metric labels of a shadow job: its model, alias and shadow version."""
    return {"model": job.shadow.model, "alias": job.alias, "version": str(job.shadow.version)}


def _by_shadow(jobs: list[ShadowJob]) -> list[list[ShadowJob]]:
    """The jobs grouped by the loaded shadow version they run on, in arrival order."""
    groups: dict[int, list[ShadowJob]] = {}
    for job in jobs:
        groups.setdefault(id(job.shadow), []).append(job)
    return list(groups.values())


def _first(rows, count: int | None):
    """The first ``count`` rows of a model input (an array or a DataFrame); all of them when None."""
    if count is None or len(rows) <= count:
        return rows
    return rows.iloc[:count] if hasattr(rows, "iloc") else rows[:count]


def _stacked(parts: list):
    """The rows of several requests as one input (arrays or DataFrames with the same columns)."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    import pandas as pd  # loaded already: the other parts are frames

    if all(isinstance(part, pd.DataFrame) for part in parts):
        return pd.concat(parts, ignore_index=True)
    raise TypeError("rows of different kinds cannot be stacked")
