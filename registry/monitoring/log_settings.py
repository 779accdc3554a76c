"""How much the prediction log keeps, for how long, and how its writer paces itself."""
from __future__ import annotations

from dataclasses import dataclass

from registry.serving.explain_bounds import ExplainBounds


@dataclass(frozen=True)
class LogSettings:
    """How much to keep, for how long, and how the writer paces itself."""

    default_sample: float  # PREDICTION_LOG_SAMPLE: the share of a model's requests kept unless it says otherwise
    retention_seconds: float  # PREDICTION_LOG_DAYS
    capacity: int = 10_000  # entries waiting at most; past it they are dropped and counted
    refresh_seconds: float = 2.0  # without a watcher to follow: how often requests have every model's share read again
    prune_seconds: float = 600.0  # how often what is past the retention is deleted
    max_mb: float = 256.0  # PREDICTION_LOG_MAX_MB: the most the whole log holds, shared fairly among models
    min_free_mb: float = 256.0  # PREDICTION_LOG_MIN_FREE_MB: under this free on the database's volume, nothing is logged
    database_url: str = ""  # where the database is: a SQLite file's volume is watched for free space
    check_seconds: float = 5.0  # the bound is checked at least this often while the writer writes
    export: bool = False  # PREDICTION_LOG_EXPORT is set: only rows that went to the lake are pruned
    # MAX_EXPLAIN_ROWS (a logged request's first rows are explained) and the rest of an explanation's bounds
    explain_bounds: ExplainBounds = ExplainBounds()
