"""The node cache: filled once per machine whatever the number of workers, checked on fill, kept
across restarts, and held to its byte budget by evicting the least recently used copies but never
one that an alias or a rollout serves."""
import hashlib
import multiprocessing
import os
import time

import pytest

from registry.artifacts.node_cache import NodeCache
from registry.errors import ArtifactCorrupted

BLOB = {name: name.encode() * 1000 for name in ("a", "b", "c", "d")}  # 1,000 bytes each
DIGEST = {name: hashlib.sha256(data).hexdigest() for name, data in BLOB.items()}


def downloader(data: bytes, log=None, pause: float = 0.0):
    """A download that writes ``data``, noting each call in ``log`` (a file: it works across processes)."""
    def download(target):
        if log is not None:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(pause)
        target.write(data)
        return hashlib.sha256(data).hexdigest()
    return download


def fetch(cache, name, **kwargs):
    return cache.fetch(DIGEST[name], downloader(BLOB[name], **kwargs))


def _fetch_in_child(root, log, queue):
    cache = NodeCache(root, budget_bytes=10**6)
    path = cache.fetch(DIGEST["a"], downloader(BLOB["a"], log=log, pause=0.3))
    queue.put(path.read_bytes() == BLOB["a"])


def test_workers_fetching_one_artifact_at_once_download_it_once(tmp_path):
    log = tmp_path / "downloads.log"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_fetch_in_child, args=(tmp_path / "cache", log, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    assert results == [True] * 4
    assert len(log.read_text().splitlines()) == 1


def test_a_copy_is_kept_across_restarts(tmp_path):
    log = tmp_path / "downloads.log"
    fetch(NodeCache(tmp_path / "cache", budget_bytes=10**6), "a", log=log)

    path = fetch(NodeCache(tmp_path / "cache", budget_bytes=10**6), "a", log=log)

    assert path.read_bytes() == BLOB["a"]
    assert len(log.read_text().splitlines()) == 1


def test_bytes_that_do_not_match_their_digest_are_refused_and_leave_nothing(tmp_path):
    cache = NodeCache(tmp_path / "cache", budget_bytes=10**6)

    with pytest.raises(ArtifactCorrupted, match="no longer matches its sha256"):
        cache.fetch(DIGEST["a"], downloader(b"tampered"))

    assert [p for p in (tmp_path / "cache" / "sha256").rglob("*") if p.is_file()] == []


def test_a_failed_download_leaves_no_partial_file(tmp_path):
    cache = NodeCache(tmp_path / "cache", budget_bytes=10**6)

    def broken(target):
        target.write(b"half")
        raise OSError("connection reset")

    with pytest.raises(OSError):
        cache.fetch(DIGEST["a"], broken)

    assert [p for p in (tmp_path / "cache" / "sha256").rglob("*") if p.is_file()] == []


def test_over_budget_the_least_recently_used_copies_go_first(tmp_path):
    cache = NodeCache(tmp_path / "cache", budget_bytes=2_500)
    for name in ("a", "b"):
        fetch(cache, name)
        time.sleep(0.01)
    fetch(cache, "a")  # used again: b is now the least recently used
    time.sleep(0.01)

    fetch(cache, "c")

    assert _held(tmp_path) == {DIGEST["a"], DIGEST["c"]}
    assert cache.used_bytes() == 2_000


def test_what_an_alias_or_rollout_serves_is_never_evicted_even_over_budget(tmp_path):
    cache = NodeCache(tmp_path / "cache", budget_bytes=1_500, serving=lambda: {DIGEST["a"], DIGEST["b"]})
    for name in ("a", "b", "c"):
        fetch(cache, name)
        time.sleep(0.01)

    assert _held(tmp_path) == {DIGEST["a"], DIGEST["b"], DIGEST["c"]}  # c was just fetched: kept for its caller

    fetch(cache, "d")

    assert _held(tmp_path) == {DIGEST["a"], DIGEST["b"], DIGEST["d"]}


def test_when_what_serves_cannot_be_read_nothing_is_evicted(tmp_path):
    def database_down():
        raise ConnectionError("database down")

    cache = NodeCache(tmp_path / "cache", budget_bytes=1_500, serving=database_down)
    for name in ("a", "b", "c"):
        fetch(cache, name)

    assert _held(tmp_path) == {DIGEST["a"], DIGEST["b"], DIGEST["c"]}


def _held(tmp_path) -> set[str]:
    return {p.name for p in (tmp_path / "cache" / "sha256").rglob("*") if p.is_file()}


def test_a_link_in_the_cache_is_never_followed_its_target_neither_touched_nor_read(tmp_path):
    outside = tmp_path / "passwd"
    outside.write_bytes(BLOB["a"])  # even bytes that match: a link is not the cache's copy
    os.utime(outside, (1_000_000, 1_000_000))
    cache = NodeCache(tmp_path / "cache", budget_bytes=10**6)
    link = cache.path_for(DIGEST["a"])
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    log = tmp_path / "downloads.log"

    path = fetch(cache, "a", log=log)

    assert os.stat(outside).st_mtime == 1_000_000  # not touched through the link
    assert not path.is_symlink() and path.read_bytes() == BLOB["a"]
    assert len(log.read_text().splitlines()) == 1  # downloaded into a file of its own


def test_links_in_place_of_a_shelf_or_a_lock_lead_nowhere(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = NodeCache(tmp_path / "cache", budget_bytes=10**6)
    (tmp_path / "cache" / "sha256").mkdir(parents=True)
    cache.path_for(DIGEST["b"]).parent.symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "cache" / "locks").mkdir()
    (tmp_path / "cache" / "locks" / f"{DIGEST['b']}.lock").symlink_to(tmp_path / "victim")

    path = fetch(cache, "b")

    assert path.read_bytes() == BLOB["b"] and not path.parent.is_symlink()
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "victim").exists()


def test_the_store_reads_a_regular_copy_only(tmp_path):
    from registry.artifacts.node_cache import CachedStore

    cache = NodeCache(tmp_path / "cache", budget_bytes=10**6)
    fetch(cache, "c")
    copy = cache.path_for(DIGEST["c"])
    copy.unlink()
    copy.symlink_to("/dev/zero")  # a read through it would never end

    class Remote:
        location = "s3://bucket"

        def download(self, sha256, target):
            target.write(BLOB["c"])
            return DIGEST["c"]

    assert CachedStore(Remote(), cache).get(DIGEST["c"]) == BLOB["c"]
    assert not copy.is_symlink()
