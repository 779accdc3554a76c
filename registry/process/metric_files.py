"""Metrics of a host's processes, added up across them through one small file per process.

prometheus_client's multiprocess mode writes every series a process ever touched into a file that only
grows, and each scrape parses all of it: under churn of versions that became megabytes and hundreds of
milliseconds. Here each process keeps its values in memory, as a single process does, and
:class:`Flusher` writes the series it has now to the process's own file about once a second (a scrape
writes its own process's first). :func:`collect` adds up the files.

A series a process lets go of (:func:`retain`) stays in its file while some live process still holds
that version, so a counter's sum never goes down while the series is shown. A dead process's file
(:func:`retire`) keeps its counters and histograms, so totals survive a worker's death, and loses its
gauges, which only live processes report.
"""
import glob
import marshal
import os
import threading
import weakref
from collections import defaultdict

import prometheus_client.values
from prometheus_client.metrics_core import Metric

from registry.process.loop import Loop

# A flush writes <pid>.metrics; a dead process's file becomes dead-<pid>.metrics.
SUFFIX = ".metrics"
DEAD = "dead-"
LOADED = "registry_model_loaded"  # the gauge that says which versions a process holds
FLUSH_SECONDS = 1.0
_CUMULATIVE = ("counter", "histogram", "summary")

_lock = threading.Lock()
_values: "weakref.WeakSet[SharedValue]" = weakref.WeakSet()
# (model, version) -> {(family, sample): value}: counts of series this process let go of.
_retained: dict[tuple[str, str], dict[tuple, float]] = {}
_written: dict[str, bytes] = {}  # path -> what this process last wrote there
_flushing = threading.Lock()  # one flush at a time per process: they share the temporary file


class SharedValue:
    """The value of one series, kept in memory and written to this process's file by :func:`flush`.

    prometheus_client builds one per series (``values.ValueClass``) once :func:`install` ran.
    """

    __slots__ = ("_value", "_timestamp", "family", "sample", "version", "retained", "__weakref__")

    def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode="", **_):
        self._value = 0.0
        self._timestamp = 0.0
        self.family = (metric_name, typ, multiprocess_mode.removeprefix("live"), help_text)
        labels = dict(zip(labelnames, labelvalues))
        self.sample = (name, tuple(sorted(labels.items())))
        self.version = (labels["model"], labels["version"]) if "model" in labels and "version" in labels else None
        self.retained = False  # its count moved to _retained: the series is being removed
        with _lock:
            _values.add(self)

    def inc(self, amount):
        with _lock:
            self._value += amount

    def set(self, value, timestamp=None):
        with _lock:
            self._value = value
            self._timestamp = timestamp or 0.0

    def set_exemplar(self, exemplar):
        """Exemplars are not shared across processes."""

    def get(self):
        return self._value

    def get_exemplar(self):
        return None


def install() -> None:
    """Build every metric from now on with :class:`SharedValue` (the values :func:`flush` writes)."""
    prometheus_client.values.ValueClass = SharedValue


def _zero_counts_after_fork() -> None:
    # The parent's counts are in the parent's file; a forked child starts its own from zero.
    # Gauges keep their values: the child holds what the parent held.
    for value in list(_values):
        if value.family[1] in _CUMULATIVE:
            value._value = 0.0
    _retained.clear()
    _written.clear()


os.register_at_fork(after_in_child=_zero_counts_after_fork)


def retain(model: str, version: str) -> None:
    """This process lets ``version`` go: keep its counts in this process's file while any live
    process holds the version (they are added to the counts of a later series of it here)."""
    with _lock:
        kept = _retained.get((model, version), {})
        for value in list(_values):
            if value.version == (model, version) and value.family[1] in _CUMULATIVE and not value.retained:
                key = (value.family, value.sample)
                kept[key] = kept.get(key, 0.0) + value._value
                value.retained = True
        if kept:
            _retained[(model, version)] = kept


def _snapshot() -> dict:
    """{family: [(name, labels, value, timestamp)]} of this process: its series plus what it retained."""
    sums: dict[tuple, list] = {}
    with _lock:
        for value in list(_values):
            if not value.retained:
                sums[(value.family, value.sample)] = [value._value, value._timestamp]
        retained = [kept for kept in _retained.values()]
    for kept in retained:
        for key, count in kept.items():
            sums.setdefault(key, [0.0, 0.0])[0] += count
    families: dict[tuple, list] = defaultdict(list)
    for (family, (name, labels)), (value, timestamp) in sums.items():
        families[family].append((name, labels, value, timestamp))
    return dict(families)


def _held(snapshots) -> set[tuple[str, str]]:
    held = set()
    for families in snapshots:
        for family, samples in families.items():
            if family[0] == LOADED:
                held.update((dict(labels)["model"], dict(labels)["version"]) for _, labels, value, _ in samples if value > 0)
    return held


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            return marshal.loads(file.read())  # marshal.load(file) reads it a few bytes at a time
    except (FileNotFoundError, EOFError, ValueError, TypeError):
        return {}  # retired or being replaced between the glob and the read; the next scrape has it


def _live_files(directory: str) -> list[str]:
    return [path for path in glob.glob(os.path.join(directory, "*" + SUFFIX))
            if not os.path.basename(path).startswith(DEAD)]


def flush(directory: str) -> None:
    """Write this process's series to its file in ``directory`` (when they changed since the last write)."""
    with _flushing:
        _flush(directory)


def _flush(directory: str) -> None:
    own = os.path.join(directory, f"{os.getpid()}{SUFFIX}")
    if _retained:
        snapshot = _snapshot()
        held = _held([snapshot] + [_read(path) for path in _live_files(directory) if path != own])
        with _lock:
            for version in [version for version in _retained if version not in held]:
                del _retained[version]
    data = marshal.dumps(_snapshot())
    if data == _written.get(own):
        return
    temporary = os.path.join(directory, f".{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, own)  # a scrape reads the old file or the new one, never half of one
    _written[own] = data


def retire(directory: str, pid: int) -> None:
    """Process ``pid`` died: its counts stay in the sums, its gauges leave them."""
    path = os.path.join(directory, f"{pid}{SUFFIX}")
    families = _read(path)
    kept = {family: samples for family, samples in families.items() if family[1] in _CUMULATIVE}
    if kept:
        temporary = os.path.join(directory, f".{DEAD}{pid}.tmp")
        with open(temporary, "wb") as file:
            marshal.dump(kept, file)
        os.replace(temporary, os.path.join(directory, f"{DEAD}{pid}{SUFFIX}"))
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def collect(directory: str) -> list[Metric]:
    """Every family of every process's file in ``directory``, added up as Prometheus expects."""
    merged: dict[tuple, dict[tuple, list]] = defaultdict(dict)
    for path in glob.glob(os.path.join(directory, "*" + SUFFIX)):
        for family, samples in _read(path).items():
            into = merged[family]
            mode = family[2]
            for name, labels, value, timestamp in samples:
                key = (name, labels)
                current = into.get(key)
                if current is None:
                    into[key] = [value, timestamp]
                elif family[1] != "gauge" or mode == "sum":
                    current[0] += value
                elif mode == "mostrecent":
                    if timestamp > current[1]:
                        into[key] = [value, timestamp]
                elif mode == "min":
                    current[0] = min(current[0], value)
                else:  # max, and the modes that would label by process, which no metric here uses
                    current[0] = max(current[0], value)
    return [_family(family, samples) for family, samples in merged.items()]


def _family(family: tuple, samples: dict[tuple, list]) -> Metric:
    metric_name, typ, _, help_text = family
    metric = Metric(metric_name, help_text, typ)
    if typ != "histogram":
        for (name, labels), (value, _) in samples.items():
            metric.add_sample(name, dict(labels), value)
        return metric
    buckets: dict[tuple, list] = defaultdict(list)
    for (name, labels), (value, _) in samples.items():
        if name.endswith("_bucket"):
            bound = dict(labels)["le"]
            buckets[tuple(pair for pair in labels if pair[0] != "le")].append((float(bound), bound, value))
        else:
            metric.add_sample(name, dict(labels), value)
    for labels, counts in buckets.items():
        total = 0.0
        for _, bound, count in sorted(counts):
            total += count
            metric.add_sample(f"{metric_name}_bucket", {**dict(labels), "le": bound}, total)
        metric.add_sample(f"{metric_name}_count", dict(labels), total)
    return metric


class Flusher:
    """A loop of one process that flushes to ``directory`` every ``interval`` seconds until stopped."""

    def __init__(self, directory: str, interval: float = FLUSH_SECONDS):
        self._directory = directory
        self._loop = Loop("metric-files", interval, lambda: flush(directory))

    def start(self) -> "Flusher":
        """Start flushing; returns self."""
        self._loop.start()
        return self

    def stop(self) -> None:
        """Stop, and flush one last time."""
        self._loop.stop(timeout=5)
        flush(self._directory)
