"""What the operations page shows: how this host's workers use their model memory, from its metrics."""
from dataclasses import dataclass

from api import domain, health
from api.views.ops import host_metrics

_LOAD_SECONDS = "registry_model_load_seconds"


@dataclass(frozen=True)
class ModelMemory:
    """This host's model memory since its workers started (every live worker's figures added up)."""

    held_bytes: float  # what the loaded versions hold, over every live worker
    budget_bytes: float  # each worker's MODEL_MEMORY_MB
    hits: float
    misses: float
    evictions: float
    loads: float
    load_p50_seconds: float | None  # estimated from the histogram's buckets, as Prometheus does
    load_p99_seconds: float | None
    forms: int  # served forms on this machine (registry.artifacts.served_forms)
    forms_bytes: int
    warnings: list[str]

    @property
    def hit_ratio(self) -> float | None:
        """Requests by version that found it loaded, of all requests by version (None before any)."""
        asked = self.hits + self.misses
        return self.hits / asked if asked else None


def model_memory() -> ModelMemory:
    """The figures of this host, read as /metrics reads them."""
    plain, buckets = {}, []
    for family in host_metrics().collect():
        for sample in family.samples:
            if sample.name == f"{_LOAD_SECONDS}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif not sample.labels:
                plain[sample.name] = sample.value
    count, size = domain.served_forms().usage()
    return ModelMemory(
        held_bytes=plain.get("registry_model_cache_bytes", 0.0),
        budget_bytes=plain.get("registry_model_cache_budget_bytes", 0.0),
        hits=plain.get("registry_model_cache_hits_total", 0.0),
        misses=plain.get("registry_model_cache_misses_total", 0.0),
        evictions=plain.get("registry_model_cache_evictions_total", 0.0),
        loads=plain.get(f"{_LOAD_SECONDS}_count", 0.0),
        load_p50_seconds=quantile(0.5, buckets),
        load_p99_seconds=quantile(0.99, buckets),
        forms=count,
        forms_bytes=size,
        warnings=health.memory_warnings(),
    )


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram from its cumulative buckets ``(upper bound, count)``, by linear
    interpolation within the bucket it falls in (Prometheus's ``histogram_quantile``); None when empty."""
    ordered = sorted(buckets)
    if not ordered or not ordered[-1][1]:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # past the largest finite bucket: its bound is all that is known
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return lower_bound
