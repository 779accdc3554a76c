"""ModelCache: one load per key shared by every thread, loads that never block other keys, LRU."""
import threading

import pytest
from prometheus_client import REGISTRY

import registry.serving.cache
from registry.serving.cache import ModelCache

WAIT = 10  # seconds; only bounds waiting on an Event, so a broken cache fails instead of hanging
THREADS = 16


class Model:
    """Stands for a loaded model of ``size_bytes``; identity tells loads apart."""

    def __init__(self, key, size_bytes=100):
        self.key = key
        self.size_bytes = size_bytes


class Loader:
    """A load function that counts its calls and, when gated, waits to be released."""

    def __init__(self, key, gated=False, error: Exception | None = None, size_bytes=100):
        self.key = key
        self.size_bytes = size_bytes
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()
        self.error = error

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT), "never released"
        if self.error is not None:
            raise self.error
        return Model(self.key, self.size_bytes)


@pytest.fixture
def parked(monkeypatch):
    """A semaphore released each time a thread starts waiting for a load another thread runs.

    This is the one seam into the cache's internals: it lets a test know, without sleeping, that
    every thread is inside ``get`` before the load it waits for finishes.
    """
    semaphore = threading.Semaphore(0)

    class ObservedEvent(threading.Event):
        def wait(self, timeout=None):
            semaphore.release()
            return super().wait(timeout)

    class ObservedLoading(registry.serving.cache._Loading):
        def __init__(self):
            super().__init__()
            self.done = ObservedEvent()

    monkeypatch.setattr(registry.serving.cache, "_Loading", ObservedLoading)
    return semaphore


def run_threads(count, target) -> tuple[list, list, list]:
    """Start ``count`` threads running ``target()``; return them and the lists they fill."""
    results, errors = [], []

    def run():
        try:
            results.append(target())
        except Exception as exc:  # collected for the test to look at
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def join_all(threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()


def wait_parked(parked, count):
    for _ in range(count):
        assert parked.acquire(timeout=WAIT), "a thread never reached the wait for the shared load"


def counted(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def evictions() -> float:
    return counted("registry_model_cache_evictions_total")


def test_concurrent_gets_of_one_key_share_a_single_load(parked):
    cache = ModelCache(10_000)
    load = Loader("a", gated=True)

    threads, results, errors = run_threads(THREADS, lambda: cache.get("a", load))
    assert load.started.wait(WAIT)
    wait_parked(parked, THREADS - 1)  # everyone but the loader waits for its load
    load.release.set()
    join_all(threads)

    assert errors == []
    assert load.calls == 1
    assert len(results) == THREADS
    assert all(result is results[0] for result in results)
    assert cache.get("a", Loader("a")) is results[0]
    assert len(cache) == 1


def test_a_slow_load_does_not_block_gets_of_other_keys():
    cache = ModelCache(10_000)
    b = cache.get("b", Loader("b"))
    slow = Loader("a", gated=True)
    threads, results, errors = run_threads(1, lambda: cache.get("a", slow))
    assert slow.started.wait(WAIT)

    # The load of "a" is in progress: a cached key, a peek and a new key's load all go past it.
    fast, fast_results, _ = run_threads(
        1, lambda: (cache.get("b", Loader("never")), cache.peek("b"), cache.peek("a"), cache.get("c", Loader("c")))
    )
    join_all(fast)
    cached, peeked, pending, loaded = fast_results[0]
    assert cached is b and peeked is b
    assert pending is None  # not there until its load finishes
    assert loaded.key == "c"
    assert threads[0].is_alive()

    slow.release.set()
    join_all(threads)
    assert errors == []
    assert cache.peek("a") is results[0]


def test_a_failing_load_raises_to_every_waiter_and_is_not_cached(parked):
    cache = ModelCache(10_000)
    failure = OSError("artifact unreadable")
    load = Loader("a", gated=True, error=failure)

    threads, results, errors = run_threads(THREADS, lambda: cache.get("a", load))
    assert load.started.wait(WAIT)
    wait_parked(parked, THREADS - 1)
    load.release.set()
    join_all(threads)

    assert results == []
    assert len(errors) == THREADS
    assert all(error is failure for error in errors)
    assert load.calls == 1
    assert cache.peek("a") is None
    assert len(cache) == 0

    retry = Loader("a")
    assert cache.get("a", retry).key == "a"  # the next get loads again
    assert retry.calls == 1
    assert cache.peek("a") is not None


def test_the_least_recently_used_entries_are_evicted_to_fit_the_byte_budget():
    cache = ModelCache(budget_bytes=250)
    before = evictions()
    a = cache.get("a", Loader("a"))
    cache.get("b", Loader("b"))
    assert cache.get("a", Loader("never")) is a  # "a" is now the most recently used

    cache.get("c", Loader("c"))

    assert len(cache) == 2 and cache.held_bytes == 200
    assert cache.peek("b") is None
    assert cache.peek("a") is a
    assert cache.peek("c").key == "c"
    assert evictions() == before + 1

    cache.peek("a")  # a peek counts as a use too: "c" goes next
    reload = Loader("b")
    cache.get("b", reload)
    assert reload.calls == 1
    assert cache.peek("c") is None
    assert evictions() == before + 2

    cache.get("big", Loader("big", size_bytes=240))  # one large version makes room for itself

    assert cache.keys() == {"big"} and cache.held_bytes == 240


def test_the_version_just_loaded_is_kept_even_when_it_alone_is_over_the_budget():
    cache = ModelCache(budget_bytes=0)
    model = cache.get("a", Loader("a"))
    assert cache.peek("a") is model
    assert len(cache) == 1


def test_pinned_versions_are_never_evicted_and_a_budget_they_exceed_is_reported(caplog):
    pinned = {"p1", "p2"}
    cache = ModelCache(budget_bytes=150, pinned=lambda: pinned)
    for key in ("p1", "p2"):
        cache.get(key, Loader(key))

    cache.get("other", Loader("other"))
    cache.get("another", Loader("another"))

    assert cache.keys() == {"p1", "p2", "another"}  # "other" went; the pinned ones stay over the budget
    assert cache.pinned_over_budget == 50
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # said once, not per load
    assert "raise MODEL_MEMORY_MB" in caplog.records[0].message

    pinned.clear()
    cache.get("last", Loader("last"))
    assert cache.keys() == {"last"} and cache.pinned_over_budget == 0


def test_hits_and_misses_are_counted():
    cache = ModelCache(budget_bytes=10_000)
    hits, misses = counted("registry_model_cache_hits_total"), counted("registry_model_cache_misses_total")

    cache.get("a", Loader("a"))
    cache.get("a", Loader("never"))
    cache.peek("a")  # how a request by version number finds it loaded
    assert cache.peek("b") is None  # not loaded: the caller loads it through get, which counts the miss

    assert counted("registry_model_cache_misses_total") == misses + 1
    assert counted("registry_model_cache_hits_total") == hits + 2
