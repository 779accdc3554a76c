"""One process's serving, built in one place: which loaded model answers (the model server), the
figures of rollouts, the shadow runs that follow answers, and how much of it runs at once (admission)."""
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from registry.inference import tree_walk
from registry.serving.admission import Admission, AdmissionBounds
from registry.serving.cache import ServableModel
from registry.serving.explain_bounds import ExplainBounds
from registry.serving.figures import FigureBook, FigureFlusher
from registry.serving.loader import Loader
from registry.serving.running import predictions_of
from registry.serving.server import ModelServer
from registry.serving.shadow import ShadowRunner
from registry.telemetry import HeldVersions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """The serving parts of one process; use cases take it whole."""

    models: ModelServer
    figures: FigureBook
    shadows: ShadowRunner
    flusher: FigureFlusher
    explain_bounds: ExplainBounds  # MAX_EXPLAIN_ROWS, EXPLAIN_MAX_ROW_COST, EXPLAIN_MAX_COST, EXPLAIN_TIMEOUT_SECONDS
    admission: Admission  # the predictions in flight, held to MAX_IN_FLIGHT_PER_MODEL and MAX_IN_FLIGHT
    # A loaded linear version's drift-reference mean in its model's features (what its explanations are
    # measured from), or None; the app installs the monitoring's (registry.monitoring.explain_references).
    explain_reference: Callable[[ServableModel], np.ndarray | None] = lambda servable: None

    def flush_figures(self) -> None:
        """Write this process's rollout figures to the database now (the watcher does so every second)."""
        self.flusher.flush()

    def start(self) -> None:
        """Start this process's shadow runs (the alias watcher starts apart: only when the app watches aliases)."""
        self.shadows.start()

    def stop(self, wait_seconds: float) -> None:
        """Before the process exits: stop following the aliases, let the shadow runs queued finish (within
        ``wait_seconds``), stop their runner, and write the rollout figures counted since their last flush."""
        self.models.stop(wait_seconds)
        self.shadows.wait_idle(wait_seconds)
        self.shadows.stop(wait_seconds)
        self.flusher.flush_last()


def build_runtime(loader: Loader, *, memory_budget_bytes: int, refresh_seconds: float,
                  session_scope: Callable[[], AbstractContextManager],
                  explain_bounds: ExplainBounds = ExplainBounds(),
                  admission: AdmissionBounds = AdmissionBounds.of(per_model=3, per_worker=4),
                  explain_reference: Callable[[ServableModel], np.ndarray | None] = lambda servable: None,
                  low_priority_from_walks: int = 0, low_priority_nice: int | None = 10) -> Runtime:
    """A runtime whose versions come from ``loader``; ``session_scope`` opens the database for background work;
    ``admission`` bounds the predictions in flight (the defaults are a 4-thread worker's), ``explain_bounds`` each
    request's explanation; ``explain_reference``
    gives a linear version's reference mean, which its explanations are measured from. A tree walk or
    explanation of ``low_priority_from_walks`` walks or more (rows × trees; 0: none) runs at a lower CPU priority
    (``low_priority_nice``, None for SCHED_IDLE), in the whole process
    (:func:`registry.inference.tree_walk.lower_large_calls`)."""
    tree_walk.lower_large_calls(low_priority_from_walks, nice=low_priority_nice)
    if low_priority_from_walks and tree_walk.low_priority() == "normal":
        log.warning("large tree walks cannot run at a lower CPU priority here (neither SCHED_IDLE nor a nice "
                    "value is allowed): they run at the worker's own")
    figures = FigureBook()
    admitted = Admission(admission)
    flusher = FigureFlusher(figures, session_scope)
    models = ModelServer(
        loader, memory_budget_bytes=memory_budget_bytes, refresh_seconds=refresh_seconds, session_scope=session_scope,
        on_poll=flusher.flush_if_due, on_rollout=figures.adopt, on_held=HeldVersions().publish,
    )
    admitted.serves_others = models.holds_others_than
    admitted.holds = models.holds
    shadows = ShadowRunner(figures, predictions_of, shed=admitted.sheds)
    return Runtime(models, figures, shadows, flusher, explain_bounds, admitted, explain_reference)
