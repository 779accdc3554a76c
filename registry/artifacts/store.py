"""The artifact store: immutable blobs named by their sha256, never by user input.

Two kinds implement it: a local directory (``registry.artifacts.local_store``, the default) and
S3-compatible object storage (``registry.artifacts.s3_store``), which a node cache fronts
(``registry.artifacts.node_cache``). Everything above sees only digests and bytes.
"""
import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 1024 * 1024
REPAIR = "it is not served: re-upload the original file to repair it, or restore the store from a backup"
Pace = Callable[[int], None]  # called with each chunk's size by a long read (registry.artifacts.pacing)


@dataclass(frozen=True)
class StoredFile:
    """A file found in the store: an artifact (named by its sha256) or an unfinished upload."""

    key: str  # where it is, relative to the store's root: sha256/<aa>/<sha256>
    sha256: str | None  # None for an unfinished upload (a temp file that was never renamed)
    size: int
    modified: float  # seconds since the epoch

    @property
    def misplaced(self) -> bool:
        """An artifact's name away from its digest's place: nothing ever reads it there."""
        return self.sha256 is not None and self.key != key_for(self.sha256)


def sha256_of(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class HashingReader(io.RawIOBase):
    """``source`` as a writer reads it, hashed on the way: bytes read front to back are hashed once
    (a part read again for a retry is not hashed twice), so :meth:`result` is the sha256 and size of
    what the writer was given, with no read of its own."""

    def __init__(self, source: BinaryIO):
        super().__init__()
        self._source = source
        self._digest = hashlib.sha256()
        self._hashed = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Read from ``source``, hashing what was not read before."""
        at = self._source.tell()
        data = self._source.read(size)
        if at <= self._hashed < at + len(data):
            self._digest.update(data[self._hashed - at:])
            self._hashed = at + len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move in ``source``."""
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        """Where ``source`` is."""
        return self._source.tell()

    def result(self) -> tuple[str, int]:
        """The hex sha256 and size of the bytes read from the start without a gap."""
        return self._digest.hexdigest(), self._hashed


def paced_digest(source: BinaryIO, pace: Pace) -> str:
    """The hex sha256 of what is left in ``source``, read in chunks, ``pace`` called after each."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        pace(len(chunk))
    return digest.hexdigest()


def checked_digest(sha256: str) -> str:
    """``sha256`` if it is a lowercase hex sha256 digest; anything else (a path, say) is refused."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError("not a sha256 hex digest")
    return sha256


def key_for(sha256: str) -> str:
    """Where an artifact lives relative to the store's root."""
    return f"sha256/{checked_digest(sha256)[:2]}/{sha256}"


def is_artifact_name(name: str) -> bool:
    """True for the name of a stored artifact (a sha256 digest)."""
    return bool(_SHA256.fullmatch(name))


class ArtifactStore(ABC):
    """Content-addressed blobs: written whole or not at all, verified against their sha256 on read."""

    #: What an operator recognises the store by (a directory, or ``s3://bucket/prefix``); in messages.
    location: str

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256."""
        digest = sha256_of(data)
        self.put_file(io.BytesIO(data), digest, len(data))
        return digest

    def cached_only(self) -> AbstractContextManager:
        """Within this block, read only what is on this machine (no network: a process about to fork)."""
        return nullcontext()

    @abstractmethod
    def put_file(self, source: BinaryIO, sha256: str, size: int) -> None:
        """Store what ``source`` holds from its start (``size`` bytes hashing to ``sha256``) without holding
        it in memory.

        When this returns, the stored bytes are in place and were checked against ``sha256``; a crash
        meanwhile leaves the old state or an unreferenced whole file, never a half-written artifact.
        Bytes already stored are kept if intact (and marked as just used, so a concurrent
        ``artifacts gc`` leaves them), else written again: uploading the original bytes repairs a store.
        """

    @abstractmethod
    def get(self, sha256: str) -> bytes:
        """The stored bytes, after checking they still hash to ``sha256`` (ArtifactCorrupted if not)."""

    @abstractmethod
    def check(self, sha256: str, pace: Pace | None = None) -> str:
        """``ok``, ``damaged`` or ``missing``: the stored bytes re-hashed without holding them in memory
        (``pace`` called with each chunk's size: a background scrub's rate limit)."""

    @abstractmethod
    def stamp(self, sha256: str) -> tuple | None:
        """What changes when the stored bytes are replaced (None when absent); cheap, reads no content."""

    @abstractmethod
    def files(self) -> Iterator[StoredFile]:
        """Every artifact and unfinished upload in the store, as found now."""

    @abstractmethod
    def remove_if_older(self, found: StoredFile, cutoff: float) -> bool:
        """Delete ``found`` unless it was written or touched after ``cutoff`` (looked at again now)."""

    @abstractmethod
    def free_bytes(self) -> int | None:
        """Bytes a writer may still use (None where the store has no such limit, or it is unknown)."""

    @abstractmethod
    def problem(self) -> str | None:
        """Why the store cannot be used right now (readiness detail), or None when it can."""
