"""Prometheus metrics of the domain (cache, swaps, predictions, rollout routes and shadows).

Defined once at import so every app in a process shares them; in gunicorn the multiprocess
collector (``PROMETHEUS_MULTIPROC_DIR``) adds them up across workers.
"""
import os

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric


def _ensure_multiprocess_directory() -> None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` when it is missing: each metric below writes a file there.

    A directory that cannot be made stops the start with one line that says so.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise SystemExit(
            f"PROMETHEUS_MULTIPROC_DIR={directory} cannot be created ({exc.strerror}); "
            "point it at a writable directory, or unset it outside gunicorn"
        ) from None


_ensure_multiprocess_directory()

# Every metric of the registry is named so; a scrape declares each of them (see EveryFamily).
PREFIX = "registry_"

PREDICTIONS = Counter(
    "registry_predictions_total", "Prediction requests answered", ["model", "version", "status"]
)
PREDICT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREDICT_LATENCY = Histogram(
    "registry_predict_seconds",
    "Time to answer a prediction request",
    ["model", "version"],
    buckets=PREDICT_BUCKETS,
)
CACHE_LOADS = Counter("registry_model_loads_total", "Model versions loaded into a worker's cache", ["model"])
CACHE_LOAD_FAILURES = Counter(
    "registry_model_load_failures_total", "Model version loads that failed", ["model"]
)
CACHE_EVICTIONS = Counter("registry_model_evictions_total", "Model versions evicted from a cache")
SWAPS = Counter("registry_alias_swaps_total", "Alias moves a worker started serving", ["model", "alias"])
# Across gunicorn workers: the value the most recent swap set, among live workers. With "max" a
# rollback would not show until every worker swapped, and a dead worker's file (kept by every
# non-"live" mode) would pin its version there for good.
ALIAS_VERSION = Gauge(
    "registry_alias_version",
    "Version each alias is served with",
    ["model", "alias"],
    multiprocess_mode="livemostrecent",
)
# Alias requests by the role that answered them (primary or canary of a rollout).
ROUTED_PREDICTIONS = Counter(
    "registry_routed_predictions_total",
    "Alias prediction requests answered, by route (primary or canary)",
    ["model", "alias", "route", "version", "status"],
)
ROUTED_LATENCY = Histogram(
    "registry_routed_predict_seconds",
    "Time to answer an alias prediction request, by route",
    ["model", "alias", "route", "version"],
    buckets=PREDICT_BUCKETS,
)
SHADOW_RUNS = Counter(
    "registry_shadow_runs_total",
    "Shadow runs of a rollout by outcome (compared, error, dropped)",
    ["model", "alias", "version", "outcome"],
)
SHADOW_ROWS = Counter(
    "registry_shadow_rows_total",
    "Rows a shadow classifier labelled like the caller's answer, or not",
    ["model", "alias", "version", "outcome"],
)
SHADOW_ABS_DIFF = Histogram(
    "registry_shadow_abs_diff",
    "Absolute difference between a shadow regressor's prediction and the caller's, per row",
    ["model", "alias", "version"],
    buckets=(0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0),
)


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
        for family in REGISTRY.collect():
            if family.name.startswith(PREFIX) and family.name not in seen:
                yield Metric(family.name, family.documentation, family.type, family.unit)
