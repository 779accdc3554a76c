"""A per-process, bounded cache of loaded models: one load per version, shared by all threads."""
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from registry.artifacts.signature import Signature
from registry.telemetry import CACHE_EVICTIONS


@dataclass(frozen=True, eq=False)
class ServableModel:
    """A loaded version, ready to predict."""

    model: str
    version: int
    sha256: str
    task: str
    signature: Signature
    estimator: Any
    takes_frame: bool = False  # numeric rows must still reach it as a DataFrame (named columns)
    predictor: Any = None  # what predict calls, made once at load (registry.serving.predictors); None: the estimator


class _Loading:
    """A load in progress that other threads asking for the same key wait on."""

    def __init__(self):
        self.done = threading.Event()
        self.result: ServableModel | None = None
        self.error: BaseException | None = None


class ModelCache:
    """LRU of at most ``capacity`` loaded versions.

    The lock guards only the dictionaries; loads run outside it, so a slow load never blocks
    requests for other versions, and concurrent requests for one version share a single load.
    """

    def __init__(self, capacity: int, on_change: Callable[[], None] = lambda: None):
        self.capacity = max(1, capacity)
        self._on_change = on_change  # called, outside the lock, whenever an entry came or went
        self._entries: OrderedDict[Hashable, ServableModel] = OrderedDict()
        self._loading: dict[Hashable, _Loading] = {}
        self._lock = threading.Lock()

    def peek(self, key: Hashable) -> ServableModel | None:
        """The cached model for ``key`` without loading it (and marked recently used)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def get(self, key: Hashable, load: Callable[[], ServableModel]) -> ServableModel:
        """The model for ``key``, calling ``load`` once if no thread has it yet."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            pending = self._loading.get(key)
            owner = pending is None
            if owner:
                pending = self._loading[key] = _Loading()
        if owner:
            self._load(key, load, pending)
        else:
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def discard(self, key: Hashable) -> None:
        """Drop ``key``'s model, if cached (it serves nothing here any more)."""
        with self._lock:
            dropped = self._entries.pop(key, None) is not None
        if dropped:
            self._on_change()

    def keys(self) -> set[Hashable]:
        """The keys of the cached models."""
        with self._lock:
            return set(self._entries)

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
                self._evict_over_capacity()
        pending.done.set()
        if pending.result is not None:
            self._on_change()

    def _evict_over_capacity(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            CACHE_EVICTIONS.inc()
