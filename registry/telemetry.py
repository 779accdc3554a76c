"""Prometheus metrics of the domain (cache, swaps, predictions, rollout routes and shadows).

Defined once at import so every app in a process shares them; with ``PROMETHEUS_MULTIPROC_DIR`` set
(gunicorn) each process shares its values through a file there, and a scrape adds them up
(:mod:`registry.process.metric_files`).

The exposition is bounded by what is served now, not by every version ever served: a series that
names a version is looked up through :func:`series`, dropped from the process when the version
is let go by every model server of the process (:func:`let_go`), and left out of a scrape while no live worker holds the
version (:class:`ServedOnly`, read from ``registry_model_loaded``).
"""
import os
import threading

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from registry.process import metric_files


def _ensure_multiprocess_directory() -> str | None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` when it is missing: each metric below writes a file there.

    A directory that cannot be made stops the start with one line that says so.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise SystemExit(
            f"PROMETHEUS_MULTIPROC_DIR={directory} cannot be created ({exc.strerror}); "
            "point it at a writable directory, or unset it outside gunicorn"
        ) from None
    return directory


_ensure_multiprocess_directory()

# Every metric of the registry is named so.
PREFIX = "registry_"

# The label names of each family whose series name a model version.
_VERSIONED: dict[MetricWrapperBase, tuple[str, ...]] = {}


def _versioned(family: MetricWrapperBase, labelnames: list[str]) -> MetricWrapperBase:
    _VERSIONED[family] = tuple(labelnames)
    return family


PREDICTIONS = _versioned(Counter(
    "registry_predictions_total", "Prediction requests answered", ["model", "version", "status"]
), ["model", "version", "status"])
PREDICT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Per model, not per version: during a rollout the routed family times each arm.
PREDICT_LATENCY = Histogram(
    "registry_predict_seconds", "Time to answer a prediction request", ["model"], buckets=PREDICT_BUCKETS
)
# 1 in each live worker that holds the version loaded (in its cache or its alias snapshot).
MODEL_LOADED = _versioned(Gauge(
    "registry_model_loaded",
    "Workers holding the version loaded",
    ["model", "version"],
), ["model", "version"])
CACHE_LOADS = Counter("registry_model_loads_total", "Model versions loaded into a worker's cache", ["model"])
CACHE_LOAD_FAILURES = Counter(
    "registry_model_load_failures_total", "Model version loads that failed", ["model"]
)
MODEL_CACHE_EVICTIONS = Counter(
    "registry_model_cache_evictions_total", "Loaded versions let go to keep a worker within MODEL_MEMORY_MB",
)
MODEL_CACHE_HITS = Counter(
    "registry_model_cache_hits_total", "Requests by version (pinned URLs, V2, evaluations) found loaded",
)
MODEL_CACHE_MISSES = Counter(
    "registry_model_cache_misses_total", "Requests by version that had to load it first",
)
PREDICTION_LOG_QUEUED = Counter(
    "registry_prediction_log_queued_total",
    "Requests put on the prediction log's queue (queued - written - dropped: waiting, or lost with a killed worker)",
)
PREDICTION_LOG_WRITTEN = Counter(
    "registry_prediction_log_written_total", "Requests written to the prediction log",
)
PREDICTION_LOG_DROPPED = Counter(
    "registry_prediction_log_dropped_total",
    "Requests the prediction log let go: its queue was full, or the database refused a batch",
)
PREDICTION_LOG_PRUNED = Counter(
    "registry_prediction_log_pruned_total",
    "Rows pruned from the prediction log: past PREDICTION_LOG_DAYS (age), or over a model's share of "
    "PREDICTION_LOG_MAX_MB (bytes)", ["reason"],
)
PREDICTION_LOG_PAUSED = Gauge(
    "registry_prediction_log_paused",
    "1 while a worker logs nothing because the database's volume has less than PREDICTION_LOG_MIN_FREE_MB free",
)
PREDICTION_LOG_HELD = Gauge(
    "registry_prediction_log_held",
    "1 while a worker logs none of a model's answers: its rows wait for PREDICTION_LOG_EXPORT past its "
    "overdraft of PREDICTION_LOG_MAX_MB", ["model"],
)
PREDICTION_LOG_WITHHELD = Counter(
    "registry_prediction_log_withheld_total",
    "Answers a model's sample drew that the prediction log did not record because the model was held: its "
    "rows wait for PREDICTION_LOG_EXPORT past its overdraft of PREDICTION_LOG_MAX_MB", ["model"],
)
PREDICTION_LOG_EXPORTED = Counter(
    "registry_prediction_log_exported_total", "Rows of the prediction log written to PREDICTION_LOG_EXPORT as Parquet",
)
PREDICTION_LOG_EXPORT_FAILURES = Counter(
    "registry_prediction_log_export_failures_total",
    "Exports of a model's rows to PREDICTION_LOG_EXPORT that failed (tried again; the rows stay in the database)",
)
PREDICTION_LOG_EXPLAINED = Counter(
    "registry_prediction_log_explained_total",
    "Logged answers drawn to be explained (prediction_log.explain), by outcome: explained, skipped (the writer's "
    "time for explanations was spent: logged without), unexplainable (the version has no explanations)",
    ["outcome"],
)
# One series per live worker (a dead one's leaves with its gauges): whether each follows a change.
PREDICTION_LOG_SHARES_READ = Gauge(
    "registry_prediction_log_shares_read_timestamp_seconds",
    "When each live worker last read every model's prediction-log share (at its start, and within "
    "ALIAS_REFRESH_SECONDS of a change)", ["pid"],
)
# Summed over live workers: what they hold together; the budget is each worker's (the same in all).
MODEL_CACHE_BYTES = Gauge(
    "registry_model_cache_bytes", "Bytes the loaded versions hold, over every live worker",
)
MODEL_CACHE_BUDGET_BYTES = Gauge(
    "registry_model_cache_budget_bytes", "Each worker's MODEL_MEMORY_MB, in bytes",
)
MODEL_LOAD_SECONDS = Histogram(
    "registry_model_load_seconds", "Time to load a version into a worker (fetch, read, check, compile)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
SWAPS = Counter("registry_alias_swaps_total", "Alias moves a worker started serving", ["model", "alias"])
# Across gunicorn workers: the value the most recent swap set, among live workers. With "max" a
# rollback would not show until every worker swapped, and a dead worker's file (kept by every
# non-"live" mode) would pin its version there for good.
ALIAS_VERSION = Gauge(
    "registry_alias_version",
    "Version each alias is served with",
    ["model", "alias"],
)
# 1 while a dependency answers, 0 while it does not, as the latest readiness check of a live worker found.
DEPENDENCY_UP = Gauge(
    "registry_dependency_up",
    "1 while a dependency (database, artifact_store) answers, as the latest readiness check found",
    ["dependency"],
)
# Alias requests of a rollout in progress by the role that answered them (primary or canary).
ROUTED_PREDICTIONS = _versioned(Counter(
    "registry_routed_predictions_total",
    "Alias prediction requests answered during a rollout, by route (primary or canary)",
    ["model", "alias", "route", "version", "status"],
), ["model", "alias", "route", "version", "status"])
ROUTED_LATENCY = _versioned(Histogram(
    "registry_routed_predict_seconds",
    "Time to answer an alias prediction request during a rollout, by route",
    ["model", "alias", "route", "version"],
    buckets=PREDICT_BUCKETS,
), ["model", "alias", "route", "version"])
SHADOW_RUNS = _versioned(Counter(
    "registry_shadow_runs_total",
    "Shadow runs of a rollout by outcome (compared, error, dropped)",
    ["model", "alias", "version", "outcome"],
), ["model", "alias", "version", "outcome"])
SHADOW_ROWS = _versioned(Counter(
    "registry_shadow_rows_total",
    "Rows a shadow classifier labelled like the caller's answer, or not",
    ["model", "alias", "version", "outcome"],
), ["model", "alias", "version", "outcome"])
SHADOW_ABS_DIFF = _versioned(Histogram(
    "registry_shadow_abs_diff",
    "Absolute difference between a shadow regressor's prediction and the caller's, per row",
    ["model", "alias", "version"],
    buckets=(0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0),
), ["model", "alias", "version"])

# Admission (registry/serving/admission.py): what each worker computes now, what it refused before computing
# (the model label is empty for a name no worker serves: a series per made-up name would grow without
# bound), and the shadow and mirror runs it skipped while busy.
PREDICTIONS_IN_FLIGHT = Gauge(
    "registry_predictions_in_flight", "Predictions computing now, over every live worker",
)
ADMISSION_REFUSED = Counter(
    "registry_admission_refused_total",
    "Predictions refused before any compute: model_busy (429, MAX_IN_FLIGHT_PER_MODEL), worker_busy (503, "
    "MAX_IN_FLIGHT), deadline (503, the caller's X-Request-Timeout passed before it could start); and "
    "explain_deadline (503): explanations given up when their deadline passed (X-Request-Timeout or "
    "EXPLAIN_TIMEOUT_SECONDS)",
    ["model", "reason"],
)
SHADOW_SHED = Counter(
    "registry_shadow_shed_total",
    "Runs after an answer skipped because the worker was busy: shadow (from half of MAX_IN_FLIGHT in flight), "
    "mirror (a canary's agreement check, only when full)", ["kind"],
)

ARTIFACT_STORE_ERRORS = Counter(
    "registry_artifact_store_errors_total",
    "Artifact reads that failed: missing or damaged (an operator must repair), unavailable (the store is down)",
    ["kind"],
)
ARTIFACT_CACHE_FILLS = Counter(
    "registry_artifact_cache_fills_total", "Artifacts downloaded into this machine's node cache",
)
ARTIFACT_CACHE_EVICTIONS = Counter(
    "registry_artifact_cache_evictions_total",
    "Artifacts removed from this machine's node cache to fit ARTIFACT_CACHE_MB",
)
ARTIFACTS_DAMAGED = Gauge(
    "registry_artifacts_damaged",
    "Artifacts whose copy in the store the scrub last found damaged or missing (served meanwhile from a cache)",
)
# How each gauge adds up across live workers (the others take the largest).
metric_files.across_processes(sum=[MODEL_LOADED, PREDICTION_LOG_SHARES_READ, MODEL_CACHE_BYTES, PREDICTIONS_IN_FLIGHT],
                              mostrecent=[ALIAS_VERSION, DEPENDENCY_UP])
ARTIFACT_SCRUB_CHECKS = Counter(
    "registry_artifact_scrub_checks_total", "Stored copies the artifact scrub re-hashed, by what it found", ["status"],
)
ARTIFACT_SCRUB_BYTES = Counter("registry_artifact_scrub_bytes_total", "Bytes the artifact scrub read from the store")

# Every metric of the registry, each declared on every scrape.
FAMILIES = (
    PREDICTIONS, PREDICT_LATENCY, MODEL_LOADED, CACHE_LOADS, CACHE_LOAD_FAILURES, MODEL_CACHE_EVICTIONS, SWAPS,
    ALIAS_VERSION, DEPENDENCY_UP, ROUTED_PREDICTIONS, ROUTED_LATENCY, SHADOW_RUNS, SHADOW_ROWS, SHADOW_ABS_DIFF,
    ARTIFACT_STORE_ERRORS, ARTIFACT_CACHE_FILLS, ARTIFACT_CACHE_EVICTIONS,
    ARTIFACTS_DAMAGED, ARTIFACT_SCRUB_CHECKS, ARTIFACT_SCRUB_BYTES,
    MODEL_CACHE_HITS, MODEL_CACHE_MISSES, MODEL_CACHE_BYTES, MODEL_CACHE_BUDGET_BYTES, MODEL_LOAD_SECONDS,
    PREDICTION_LOG_QUEUED, PREDICTION_LOG_WRITTEN, PREDICTION_LOG_DROPPED, PREDICTION_LOG_SHARES_READ,
    PREDICTION_LOG_PRUNED, PREDICTION_LOG_PAUSED, PREDICTION_LOG_HELD, PREDICTION_LOG_WITHHELD,
    PREDICTION_LOG_EXPORTED, PREDICTION_LOG_EXPORT_FAILURES, PREDICTION_LOG_EXPLAINED, PREDICTIONS_IN_FLIGHT, ADMISSION_REFUSED, SHADOW_SHED,
)

_children: dict[tuple[str, str], dict[tuple, object]] = {}  # (model, version) -> {(family, values): child}
_holders: dict[tuple[str, str], int] = {}  # (model, version) -> model servers of this process holding it
_children_lock = threading.Lock()


def series(family: MetricWrapperBase, **labels: str):
    """The child of a versioned ``family`` with ``labels``, looked up once per process until its
    version is forgotten."""
    values = tuple(labels[name] for name in _VERSIONED[family])
    version = (labels["model"], labels["version"])
    with _children_lock:
        held = _children.setdefault(version, {})
        child = held.get((family, values))
        if child is None:
            child = held[(family, values)] = family.labels(*values)
        return child


def hold(model: str, version: str) -> None:
    """A model server of this process holds the version loaded (``registry_model_loaded`` says 1)."""
    with _children_lock:
        _holders[(model, version)] = _holders.get((model, version), 0) + 1
        first = _holders[(model, version)] == 1
    if first:
        series(MODEL_LOADED, model=model, version=version).set(1)


def let_go(model: str, version: str) -> None:
    """A model server of this process let the version go; when none holds it any more, every series
    of it is dropped from this process (with shared metrics its counts stay in this process's file
    while another process holds the version, and continue if it is served here again)."""
    with _children_lock:
        left = _holders.get((model, version), 0) - 1
        if left > 0:
            _holders[(model, version)] = left
            return
        _holders.pop((model, version), None)
    series(MODEL_LOADED, model=model, version=version).set(0)
    with _children_lock:
        gone = _children.pop((model, version), {})

    def drop():
        for family, values in gone:
            family.remove(*values)

    metric_files.retain(model, version, drop)


class HeldVersions:
    """``registry_model_loaded`` of one model server: :meth:`publish` what it holds now, and the versions
    it took up are held (:func:`hold`), those it let go of let go (:func:`let_go`)."""

    def __init__(self):
        self._held: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def publish(self, held: set[tuple[str, int]]) -> None:
        """The server holds exactly ``held`` now: (model, version number) pairs."""
        with self._lock:
            for model, number in held - self._held:
                hold(model, str(number))
            for model, number in self._held - held:
                let_go(model, str(number))
            self._held = held


class EveryFamily:
    """A collector: ``source``'s families, plus an empty family for each registry metric it lacks.

    Gunicorn's multiprocess collector only knows the samples workers wrote, so before any traffic
    it has none; Prometheus should still see every family (with its help and type) from the first scrape.
    """

    def __init__(self, source):
        self._source = source

    def collect(self):
        """The source's families, then the declared ones it did not report."""
        seen = set()
        for family in self._source.collect():
            seen.add(family.name)
            yield family
        for metric in FAMILIES:
            for family in metric.describe():  # the family without its samples: no values read
                if family.name not in seen:
                    yield Metric(family.name, family.documentation, family.type, family.unit)


class ServedOnly:
    """A collector: ``source``'s families without the series of versions that no live worker holds."""

    def __init__(self, source):
        self._source = source

    def collect(self):
        """The source's families, each with its samples of versions held somewhere."""
        families = list(self._source.collect())
        held = {
            (sample.labels["model"], sample.labels["version"])
            for family in families if family.name == "registry_model_loaded"
            for sample in family.samples if sample.value > 0
        }
        for family in families:
            kept = [
                sample for sample in family.samples
                if "version" not in sample.labels or "model" not in sample.labels
                or (sample.labels["model"], sample.labels["version"]) in held
            ]
            if len(kept) == len(family.samples):
                yield family
                continue
            trimmed = Metric(family.name, family.documentation, family.type, family.unit)
            trimmed.samples = kept
            yield trimmed
