"""Metrics of a host's processes, added up across them through one small file per process.

prometheus_client's multiprocess mode writes every series a process ever touched into a file that only
grows, and each scrape parses all of it: under churn of versions that became megabytes and hundreds of
milliseconds. Here each process keeps its metrics in prometheus_client's own ``REGISTRY``, as a single
process does, and :class:`Flusher` writes what ``REGISTRY.collect()`` yields to the process's own file
about once a second (a scrape writes its own process's first). :class:`SharedFiles`, a ``Collector``,
adds up the files.

A series a process lets go of (:func:`retain`) stays in its file while some live process still holds
that version, so a counter's sum never goes down while the series is shown. A dead process's file
(:func:`retire`) keeps its counters and histograms, so totals survive a worker's death, and loses its
gauges, which only live processes report (summed, the most recent, or the largest: :func:`across_processes`).
"""
import glob
import marshal
import os
import threading
import time
import weakref
from collections import defaultdict

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from registry.process.loop import Loop

# A flush writes <pid>.metrics; a dead process's file becomes dead-<pid>.metrics.
SUFFIX = ".metrics"
DEAD = "dead-"
LOADED = "registry_model_loaded"  # the gauge that says which versions a process holds
FLUSH_SECONDS = 1.0
_CUMULATIVE = ("counter", "histogram", "summary")
# The families of prometheus_client's default collectors describe one process: not shared, not added up.
_OWN = {metric.name for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR) for metric in collector.collect()}

_lock = threading.Lock()  # a collection, and a retain with the removal of what it retained
_modes: dict[str, str] = {}  # gauge family -> "sum" or "mostrecent" across processes ("max" else)
_stamps: dict[tuple, tuple[float, float]] = {}  # mostrecent gauge series -> (value, when it was first seen)
_sources: "weakref.WeakSet[CollectorRegistry]" = weakref.WeakSet()  # the registries this process flushes
# {(family, sample): value} each registry held at the last fork: a forked child counts from zero.
_baselines: "weakref.WeakKeyDictionary[CollectorRegistry, dict]" = weakref.WeakKeyDictionary()
_at_fork: dict = {}
# (model, version) -> {(family, sample): value}: counts of series this process let go of.
_retained: dict[tuple[str, str], dict[tuple, float]] = {}
_written: dict[str, bytes] = {}  # path -> what this process last wrote there
_flushing = threading.Lock()  # one flush at a time per process: they share the temporary file


def across_processes(sum=(), mostrecent=()) -> None:  # noqa: A002 - the names of the modes
    """Add up these gauges over live processes (``sum``) or show the value set last (``mostrecent``);
    every other gauge shows the largest value of a live process."""
    for mode, gauges in (("sum", sum), ("mostrecent", mostrecent)):
        for gauge in gauges:
            for family in gauge.describe():
                _modes[family.name] = mode


def _samples(registry: CollectorRegistry) -> dict[tuple, float]:
    """{(family, (sample name, labels)): value} of ``registry`` now (``_created`` left out: not a sum)."""
    found = {}
    for metric in registry.collect():
        if metric.name in _OWN:
            continue
        mode = _modes.get(metric.name, "max") if metric.type == "gauge" else ""
        family = (metric.name, metric.type, mode, metric.documentation)
        for sample in metric.samples:
            if not sample.name.endswith("_created"):
                found[(family, (sample.name, tuple(sorted(sample.labels.items()))))] = sample.value
    return found


def _before_fork() -> None:
    # Neither lock may be held by another thread as the child is made: it would never be let go there.
    _flushing.acquire()
    _lock.acquire()
    _at_fork.update({registry: _samples(registry) for registry in list(_sources)})


def _after_fork_in_parent() -> None:
    _at_fork.clear()
    _lock.release()
    _flushing.release()


def _count_from_zero_in_child() -> None:
    # The parent's counts are in the parent's file; a forked child subtracts them from its own.
    # Gauges keep their values: the child holds what the parent held.
    for registry, samples in _at_fork.items():
        _baselines[registry] = {key: value for key, value in samples.items() if key[0][1] in _CUMULATIVE}
    _at_fork.clear()
    _retained.clear()
    _written.clear()
    _lock.release()
    _flushing.release()


os.register_at_fork(before=_before_fork, after_in_child=_count_from_zero_in_child,
                    after_in_parent=_after_fork_in_parent)


def _counts(registry: CollectorRegistry) -> dict[tuple, float]:
    """What ``registry`` holds, counted since this process started (or was forked)."""
    samples = _samples(registry)
    baseline = _baselines.get(registry)
    if baseline:
        for key, value in samples.items():
            samples[key] = value - baseline.get(key, 0.0)
    return samples


def retain(model: str, version: str, drop, *, registry: CollectorRegistry = REGISTRY) -> None:
    """This process lets ``version`` go: ``drop()`` removes its series from ``registry``, and their counts
    stay in this process's file while any live process holds the version (added to the counts of a later
    series of it here). Without a flush so far (no shared files), only ``drop()``."""
    with _lock:
        if registry in _sources:
            kept = _retained.get((model, version), {})
            baseline = _baselines.get(registry, {})
            for key, value in _counts(registry).items():
                labels = dict(key[1][1])
                if key[0][1] in _CUMULATIVE and (labels.get("model"), labels.get("version")) == (model, version):
                    kept[key] = kept.get(key, 0.0) + value
                    baseline.pop(key, None)  # a later series of it starts from zero, not from the parent's count
            if kept:
                _retained[(model, version)] = kept
        drop()


def _snapshot(registry: CollectorRegistry) -> dict:
    """{family: [(name, labels, value, timestamp)]} of this process: its series plus what it retained."""
    with _lock:
        counts = _counts(registry)
        for kept in _retained.values():
            for key, count in kept.items():
                counts[key] = counts.get(key, 0.0) + count
    now = time.time()
    families: dict[tuple, list] = defaultdict(list)
    for key, value in counts.items():
        family, (name, labels) = key
        timestamp = 0.0
        if family[2] == "mostrecent":  # prometheus_client keeps no time of a set: the first flush that saw it
            seen = _stamps.get(key)
            timestamp = seen[1] if seen and seen[0] == value else now
            _stamps[key] = (value, timestamp)
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


def flush(directory: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Write this process's series of ``registry`` to its file in ``directory`` (when they changed since
    the last write)."""
    with _flushing:
        _sources.add(registry)
        _flush(directory, registry)


def _flush(directory: str, registry: CollectorRegistry) -> None:
    own = os.path.join(directory, f"{os.getpid()}{SUFFIX}")
    if _retained:
        held = _held([_snapshot(registry)] + [_read(path) for path in _live_files(directory) if path != own])
        with _lock:
            for version in [version for version in _retained if version not in held]:
                del _retained[version]
    data = marshal.dumps(_snapshot(registry))
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


class SharedFiles(Collector):
    """A collector: the metrics every process of this host shared in ``directory``, added up."""

    def __init__(self, directory: str):
        self._directory = directory

    def collect(self) -> list[Metric]:
        """Every family of every process's file, added up as Prometheus expects."""
        merged: dict[tuple, dict[tuple, list]] = defaultdict(dict)
        for path in glob.glob(os.path.join(self._directory, "*" + SUFFIX)):
            for family, samples in _read(path).items():
                into = merged[family]
                mode = family[2]
                for name, labels, value, timestamp in samples:
                    key = (name, labels)
                    current = into.get(key)
                    if current is None:
                        into[key] = [value, timestamp]
                    elif family[1] != "gauge" or mode == "sum":
                        current[0] += value  # cumulative buckets of every process add up to cumulative ones
                    elif mode == "mostrecent":
                        if timestamp > current[1]:
                            into[key] = [value, timestamp]
                    else:
                        current[0] = max(current[0], value)
        families = []
        for (metric_name, typ, _, help_text), samples in merged.items():
            metric = Metric(metric_name, help_text, typ)
            for (name, labels), (value, _) in samples.items():
                metric.add_sample(name, dict(labels), value)
            families.append(metric)
        return families


class Flusher:
    """A loop of one process that flushes to ``directory`` every ``interval`` seconds until stopped."""

    def __init__(self, directory: str, interval: float = FLUSH_SECONDS):
        self._directory = directory
        self._loop = Loop("metric-files", interval, lambda: flush(directory))

    def start(self) -> "Flusher":
        """Flush, then start flushing; returns self."""
        flush(self._directory)
        self._loop.start()
        return self

    def stop(self) -> None:
        """Stop, and flush one last time."""
        self._loop.stop(timeout=5)
        flush(self._directory)
