"""The models the prediction log records nothing of while their rows wait for the lake
(``PREDICTION_LOG_EXPORT``): past :data:`~registry.monitoring.log_bounds.OVERDRAFT` of its share of
``PREDICTION_LOG_MAX_MB`` with rows the lake has not taken (the byte bound prunes only those it has), a
model is held until the lake takes them and the bound prunes, so that neither a lake away nor an export
lagging behind a flood can take the log past its bound. What a hold keeps out is counted
(``registry_prediction_log_withheld_total{model}``, and ``_dropped_total`` for what was queued before it)."""
from __future__ import annotations

import logging

from registry.monitoring import log_bounds
from registry.telemetry import PREDICTION_LOG_DROPPED, PREDICTION_LOG_HELD, PREDICTION_LOG_WITHHELD

log = logging.getLogger(__name__)


class Holds:
    """The models held, as this process's writer last checked the bound."""

    def __init__(self, max_mb: float):
        self.max_mb = max_mb
        self.models: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.models)

    def __contains__(self, model: str) -> bool:
        return model in self.models

    def update(self, overdrawn: frozenset[str]) -> None:
        """Hold the models a check of the bound found ``overdrawn`` (and only those), shown in
        ``registry_prediction_log_held{model}``; a model newly held is said in the log."""
        newly, released = overdrawn - self.models, self.models - overdrawn
        self.models = overdrawn
        for name in released:
            PREDICTION_LOG_HELD.labels(name).set(0)
        for name in overdrawn:
            PREDICTION_LOG_HELD.labels(name).set(1)
        if newly:
            log.warning("%s", self.warning())

    def warning(self) -> str | None:
        """That some models' answers are not logged because their rows wait for the lake; None when none are."""
        if not self.models:
            return None
        names = ", ".join(repr(name) for name in sorted(self.models))
        return (f"the prediction log records nothing of {names}: past {log_bounds.OVERDRAFT:.0%} of its share of "
                f"PREDICTION_LOG_MAX_MB={self.max_mb:g} with rows PREDICTION_LOG_EXPORT has not taken (its export "
                "lags or fails); it logs again once the lake takes them")

    def withhold(self, model: str) -> None:
        """Count an answer of held ``model`` that its sample drew and the log does not record."""
        PREDICTION_LOG_WITHHELD.labels(model).inc()

    def kept(self, part: list[tuple], model_ids: dict[str, int]) -> list[tuple]:
        """The rows of ``part`` (a model's id first) whose model is not held; the others (queued before the
        hold) are dropped and counted, so that the hold bounds what was queued too."""
        if not self.models:
            return part
        held_ids = {model_ids.get(name) for name in self.models}
        kept = [row for row in part if row[0] not in held_ids]
        PREDICTION_LOG_DROPPED.inc(len(part) - len(kept))
        return kept
