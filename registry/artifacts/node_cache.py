"""This machine's copies of artifacts kept in object storage, shared by all its workers.

``root/sha256/<aa>/<sha256>`` like the local store: a file is only ever renamed into place after its
bytes were checked against its name, so what is there is complete, and stays valid across restarts.
One worker fills a missing file while the others wait for it (a lock file per digest), so each
artifact crosses the network once per machine. Over the byte budget, the least recently used files
go first, never one that an alias or a rollout serves. Nothing in it is reached through a symbolic link
(``registry.artifacts.no_follow``): a link where a copy, a shelf or a lock belongs is removed, never followed.
"""
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from registry.artifacts.disk_budget import Entry, over_budget
from registry.artifacts.no_follow import ensure_directory, locked, read_regular, touch_regular
from registry.artifacts.s3_store import S3Store
from registry.artifacts.store import REPAIR, ArtifactStore, Pace, StoredFile, is_artifact_name, key_for, sha256_of
from registry.errors import ArtifactCorrupted, NotFetchedYet, StoreUnavailable
from registry.telemetry import ARTIFACT_CACHE_EVICTIONS, ARTIFACT_CACHE_FILLS

log = logging.getLogger(__name__)

INCOMING_PREFIX = ".incoming-"


class NodeCache:
    """Content-addressed files under ``root``, at most ``budget_bytes`` of them but for what ``serving()`` names."""

    def __init__(self, root: str | os.PathLike, *, budget_bytes: int, serving: Callable[[], set[str]] = set):
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self._serving = serving

    def path_for(self, sha256: str) -> Path:
        """Where the copy of this digest is (or will be)."""
        return self.root / key_for(sha256)

    def fetch(self, sha256: str, download: Callable[[BinaryIO], str]) -> Path:
        """The path of the copy, filled first by ``download`` (which writes the bytes and returns their
        sha256) unless a copy is there already. Raises ArtifactCorrupted when the bytes do not match."""
        path = self.path_for(sha256)
        if _used(path):
            return path
        with self._locked(f"{sha256}.lock"):
            if _used(path):  # another worker filled it while this one waited
                return path
            self._fill(path, sha256, download)
        ARTIFACT_CACHE_FILLS.inc()
        self.evict(keep={sha256})
        return path

    def _fill(self, path: Path, sha256: str, download: Callable[[BinaryIO], str]) -> None:
        ensure_directory(path.parent.parent)
        ensure_directory(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=INCOMING_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                digest = download(f)
            if digest != sha256:
                raise ArtifactCorrupted(f"the stored artifact {sha256} no longer matches its sha256; {REPAIR}")
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def drop(self, sha256: str) -> None:
        """Forget a copy (found damaged on this disk): the next fetch downloads it again."""
        self.path_for(sha256).unlink(missing_ok=True)

    def evict(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove the least recently used copies until the cache fits its budget; never what ``keep``
        holds or what an alias or rollout serves. Returns the digests removed."""
        with self._locked("evict.lock"):
            copies = [Entry(c.sha256, c.size, c.modified) for c in self._copies()]
            try:
                going = over_budget(copies, self.budget_bytes, lambda: set(keep) | self._serving())
            except Exception:  # the database is down: evicting blind could drop what serves
                log.warning("node cache over budget (%d bytes), not evicting: what serves cannot be read now",
                            sum(c.size for c in copies))
                return []
            for copy in going:
                self.path_for(copy.sha256).unlink(missing_ok=True)
                ARTIFACT_CACHE_EVICTIONS.inc()
        return [copy.sha256 for copy in going]

    def used_bytes(self) -> int:
        """What the copies take on disk now."""
        return sum(c.size for c in self._copies())

    def _copies(self) -> Iterator[StoredFile]:
        shelves = self.root / "sha256"
        if not shelves.is_dir() or shelves.is_symlink():
            return
        for shelf in os.scandir(shelves):
            if not shelf.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shelf.path):
                if is_artifact_name(entry.name):
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield StoredFile(key_for(entry.name), entry.name, stat.st_size, stat.st_mtime)

    def _locked(self, name: str) -> AbstractContextManager:
        ensure_directory(self.root)
        return locked(self.root / "locks", name)


class CachedStore(ArtifactStore):
    """An S3 store read through this machine's node cache; writes, checks and listings go to the store."""

    def __init__(self, remote: S3Store, cache: NodeCache):
        self.remote = remote
        self.cache = cache
        self.location = remote.location
        self._cached_only = False

    @contextmanager
    def cached_only(self) -> Iterator[None]:
        """Serve only copies already in the node cache meanwhile: the S3 client may not be used in a
        process that forks afterwards (docs/scaling.md), so gunicorn's master warms from the cache alone."""
        self._cached_only = True
        try:
            yield
        finally:
            self._cached_only = False

    def put_file(self, source: BinaryIO, sha256: str, size: int) -> None:
        """Upload to the object store (verified there)."""
        self.remote.put_file(source, sha256, size)

    def get(self, sha256: str) -> bytes:
        """The bytes from the node cache, filled from the store first if needed; a copy that rotted on
        this disk is dropped and downloaded again."""
        for attempt in (1, 2):
            path = self.cache.fetch(sha256, self._downloader(sha256))
            try:
                data = read_regular(path)
            except FileNotFoundError:  # evicted by another worker between fetch and read
                continue
            except OSError as exc:
                if path.is_symlink():  # a link put in the copy's place after the fetch: never followed
                    self.cache.drop(sha256)
                    continue
                raise StoreUnavailable(
                    f"the node cache cannot be read right now ({os.strerror(exc.errno or 0)}); an operator must "
                    "check ARTIFACT_CACHE_DIR (its disk and permissions); then retry"
                ) from exc
            if sha256_of(data) == sha256:
                return data
            log.warning("node cache copy of %s was damaged on this disk; downloading it again", sha256)
            self.cache.drop(sha256)
        return self.remote.get(sha256)

    def _downloader(self, sha256: str) -> Callable[[BinaryIO], str]:
        def download(target: BinaryIO) -> str:
            if self._cached_only:
                raise NotFetchedYet(
                    f"the artifact {sha256} is not in this machine's node cache yet; the workers fetch it"
                )
            return self.remote.download(sha256, target)
        return download

    def check(self, sha256: str, pace: Pace | None = None) -> str:
        """The object in the store, re-hashed (the node cache is only a copy)."""
        return self.remote.check(sha256, pace)

    def stamp(self, sha256: str) -> tuple | None:
        """The local copy's identity: a load that failed is tried again once a copy arrives or changes."""
        try:
            stat = os.lstat(self.cache.path_for(sha256))
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def files(self) -> Iterator[StoredFile]:
        """What the object store holds."""
        return self.remote.files()

    def remove_if_older(self, found: StoredFile, cutoff: float) -> bool:
        """Delete from the object store (a copy left in a node cache is never served without a version)."""
        return self.remote.remove_if_older(found, cutoff)

    def free_bytes(self) -> int | None:
        """Object stores have no volume to fill."""
        return None

    def problem(self) -> str | None:
        """Whether the object store answers."""
        return self.remote.problem()


def _used(path: Path) -> bool:
    """True when the copy is there, marked as just used (its modification time orders the evictions);
    a link in its place is removed, so that the copy is fetched into a file of its own."""
    return touch_regular(path)
