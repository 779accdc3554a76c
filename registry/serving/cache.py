"""A per-process cache of loaded models held to a byte budget: one load per version, shared by all threads."""
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from registry.artifacts.signature import Signature
from registry.telemetry import (
    MODEL_CACHE_BUDGET_BYTES,
    MODEL_CACHE_BYTES,
    MODEL_CACHE_EVICTIONS,
    MODEL_CACHE_HITS,
    MODEL_CACHE_MISSES,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServableModel:
    """A loaded version, ready to predict."""

    model: str
    version: int
    sha256: str
    task: str
    signature: Signature
    predictor: Any  # what predict calls (registry.inference.predictors): a compiled form, or the estimator itself
    takes_frame: bool = False  # numeric rows must still reach it as a DataFrame (named columns)
    known_categories: dict = field(default_factory=dict)  # by input column: a category its encoder was fitted on
    size_bytes: int = 0  # what it holds in memory, measured once loaded (registry.serving.model_size)
    mapped_from: tuple = ()  # the served form's files its arrays are mapped from (served_forms.MappedFile)
    kind: str = ""  # the version's kind: linear | logistic | tree | forest | boosting
    framework: str = "scikit-learn"  # the library the model comes from: scikit-learn | xgboost | lightgbm


class _Loading:
    """A load in progress that other threads asking for the same key wait on."""

    def __init__(self):
        self.done = threading.Event()
        self.result: ServableModel | None = None
        self.error: BaseException | None = None


class ModelCache:
    """Loaded versions, least recently used first out, within ``budget_bytes``; never evicts what
    ``pinned()`` names (the versions an alias or a rollout serves), even over the budget.

    The lock guards only the dictionaries; loads run outside it, so a slow load never blocks
    requests for other versions, and concurrent requests for one version share a single load.
    """

    def __init__(self, budget_bytes: int, pinned: Callable[[], set] = set,
                 on_change: Callable[[], None] = lambda: None):
        self.budget_bytes = max(0, budget_bytes)
        self._pinned = pinned
        self._on_change = on_change  # called, outside the lock, whenever an entry came or went
        self._entries: OrderedDict[Hashable, ServableModel] = OrderedDict()
        self._loading: dict[Hashable, _Loading] = {}
        self._pinned_over_budget = 0  # bytes the pinned versions alone hold past the budget (0: none)
        self._lock = threading.Lock()
        MODEL_CACHE_BUDGET_BYTES.set(self.budget_bytes)

    def peek(self, key: Hashable) -> ServableModel | None:
        """The cached model for ``key`` without loading it (marked recently used, and counted as a hit)."""
        with self._lock:
            return self._hit(key)

    def get(self, key: Hashable, load: Callable[[], ServableModel]) -> ServableModel:
        """The model for ``key``, calling ``load`` once if no thread has it yet."""
        with self._lock:
            entry = self._hit(key)
            if entry is not None:
                return entry
            pending = self._loading.get(key)
            owner = pending is None
            if owner:
                pending = self._loading[key] = _Loading()
        if owner:
            MODEL_CACHE_MISSES.inc()
            self._load(key, load, pending)
        else:
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _hit(self, key: Hashable) -> ServableModel | None:
        """The cached model for ``key``, marked recently used and counted as a hit (the lock held)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            MODEL_CACHE_HITS.inc()
        return entry

    def discard(self, key: Hashable) -> None:
        """Drop ``key``'s model, if cached (it serves nothing here any more)."""
        with self._lock:
            dropped = self._entries.pop(key, None)
            if dropped is not None:
                MODEL_CACHE_BYTES.set(self._held())
        if dropped is not None:
            self._on_change()

    def models(self) -> list[ServableModel]:
        """The cached models (not marked as used)."""
        with self._lock:
            return list(self._entries.values())

    def keys(self) -> set[Hashable]:
        """The keys of the cached models."""
        with self._lock:
            return set(self._entries)

    @property
    def held_bytes(self) -> int:
        """What the cached models hold in memory."""
        with self._lock:
            return self._held()

    @property
    def pinned_over_budget(self) -> int:
        """How many bytes the pinned versions alone hold past the budget (0 when they fit)."""
        return self._pinned_over_budget

    def __len__(self) -> int:
        return len(self._entries)

    def _load(self, key: Hashable, load: Callable[[], ServableModel], pending: _Loading) -> None:
        try:
            pending.result = load()
        except BaseException as exc:
            pending.error = exc
        with self._lock:
            del self._loading[key]
            if pending.result is not None:
                self._entries[key] = pending.result
                MODEL_CACHE_BYTES.set(self._evict_over_budget(keep=key))
        pending.done.set()
        if pending.result is not None:
            self._on_change()

    def _held(self) -> int:
        # Summed afresh: a model may grow after its load (a forest builds walkers for its first large batch).
        return sum(entry.size_bytes for entry in self._entries.values())

    def _evict_over_budget(self, keep: Hashable) -> int:
        """Least recently used first; never a pinned version, nor the one just loaded for its caller.
        Returns the bytes held afterwards."""
        held = self._held()
        if held <= self.budget_bytes:
            self._pinned_over_budget = 0
            return held
        pinned = self._pinned() | {keep}
        for candidate in [k for k in self._entries if k not in pinned]:
            if held <= self.budget_bytes:
                break
            held -= self._entries.pop(candidate).size_bytes
            MODEL_CACHE_EVICTIONS.inc()
        pinned_bytes = sum(entry.size_bytes for k, entry in self._entries.items() if k in pinned and k != keep)
        over = max(0, pinned_bytes - self.budget_bytes)
        if over and not self._pinned_over_budget:
            log.warning(
                "the versions aliases and rollouts serve hold %.1f MB, over MODEL_MEMORY_MB=%.1f: they stay "
                "loaded, and every other version is let go as soon as another one loads; raise MODEL_MEMORY_MB",
                pinned_bytes / 2**20, self.budget_bytes / 2**20,
            )
        self._pinned_over_budget = over
        return held
