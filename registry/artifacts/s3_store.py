"""The artifact store in S3-compatible object storage (AWS S3, MinIO, SeaweedFS, R2, GCS's S3 API).

Objects live under ``<prefix>/sha256/<aa>/<sha256>``. The client is obstore (docs/scaling.md says
why): uploads stream from a file in parts, downloads stream into one, so no artifact is ever held
in memory for its transfer. Every request that writes carries the sha256 of its bytes
(``x-amz-checksum-sha256``, for each part of a multipart upload), which the store checks before it
keeps them: a write is never read back to be verified. After a failure to reach the store, calls fail at once for a few
seconds instead of each waiting for its own timeouts (no retry storm while the store is down).
"""
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store as ObstoreS3

from registry.artifacts.store import (
    CHUNK_BYTES,
    REPAIR,
    ArtifactStore,
    HashingReader,
    Pace,
    StoredFile,
    is_artifact_name,
    key_for,
    sha256_of,
)
from registry.errors import ArtifactCorrupted, ArtifactMissing, StoreUnavailable

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # a multipart upload sends parts of this size, PARALLEL_PARTS at a time
PARALLEL_PARTS = 4
# An intact object younger than this is kept as it is by a new upload of the same bytes; an older one is
# written again, so that `artifacts gc` (which keeps what is younger than its grace period) leaves it.
REWRITE_AFTER_SECONDS = 600.0
# After the store could not be reached, calls fail at once for this long; readiness probes still try.
PAUSE_AFTER_FAILURE_SECONDS = 5.0
_STATUS = re.compile(r"status code: (\d{3}[^:]*)")
_RETRIES = {
    "max_retries": 2,
    "retry_timeout": timedelta(seconds=10),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
}
# A readiness check asks once and gives up soon: it runs off the request threads within a deadline
# (registry/serving/probes.py), and a check stuck on a stalled store would hold off the next one.
PROBE_CONNECT_SECONDS = 1.0
PROBE_READ_SECONDS = 2.0


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to reach it (the standard ``AWS_*`` variables; None: the client's own
    lookup of the environment, instance profile or web identity)."""

    url: str  # s3://bucket/prefix
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None
    connect_timeout_seconds: float = 2.0
    read_timeout_seconds: float = 15.0


def parse_s3_url(url: str) -> tuple[str, str]:
    """The bucket and the prefix (without slashes at its ends) of ``s3://bucket/prefix``."""
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not bucket:
        raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
    return bucket, prefix.strip("/")


def obstore_config(settings: S3Settings) -> dict:
    """obstore's S3 configuration for ``settings``: path-style requests, the settings given, and a sha256
    checksum on every write, so that the store refuses bytes that do not hash to it (BadDigest)."""
    config = {"virtual_hosted_style_request": False, "checksum_algorithm": "sha256"}
    for name in ("endpoint", "access_key_id", "secret_access_key", "region"):
        if getattr(settings, name):
            config[name] = getattr(settings, name)
    return config


class S3Store(ArtifactStore):
    """Artifacts as objects in one bucket, under one prefix."""

    def __init__(self, settings: S3Settings):
        bucket, prefix = parse_s3_url(settings.url)
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = obstore_config(settings)

        def client(retries: dict, **timeouts: timedelta) -> ObstoreS3:
            return ObstoreS3(bucket, prefix=prefix or None, config=config,
                             client_options={"allow_http": True, **timeouts}, retry_config=retries)

        self._client = client(
            _RETRIES,
            connect_timeout=timedelta(seconds=settings.connect_timeout_seconds),
            read_timeout=timedelta(seconds=settings.read_timeout_seconds),
            timeout=timedelta(hours=1),  # a whole transfer; stalls are caught by read_timeout
        )
        # The readiness probe's own client: one attempt, answered or given up within a few seconds.
        self._probe_client = client(
            {"max_retries": 0},
            connect_timeout=timedelta(seconds=PROBE_CONNECT_SECONDS),
            timeout=timedelta(seconds=PROBE_CONNECT_SECONDS + PROBE_READ_SECONDS),
        )
        self._paused_until = 0.0
        self._paused_error: StoreUnavailable | None = None
        self._lock = threading.Lock()

    def put_file(self, source: BinaryIO, sha256: str, size: int) -> None:
        """Upload ``source`` in parts (one request when small), each part checked by the store against its
        sha256 as it arrives, and ``source`` hashed as it is read: the object is what was read, which
        must hash to ``sha256`` (else it is deleted again), with no read-back."""
        key = key_for(sha256)
        existing = self._head(key)
        if existing is not None and existing["size"] == size and _age(existing) < REWRITE_AFTER_SECONDS:
            if self.check(sha256) == "ok":
                return
        source.seek(0)
        sent = HashingReader(source)
        self._call(
            "written", obstore.put, self._client, key, sent, chunk_size=PART_BYTES, max_concurrency=PARALLEL_PARTS,
            attributes={"Content-Type": "application/octet-stream"},
        )
        if sent.result() != (sha256, size):
            self._call("written", obstore.delete, self._client, key)
            raise ValueError(f"the bytes to store are not the {size} bytes hashing to {sha256}")

    def get(self, sha256: str) -> bytes:
        """The object's bytes, after checking they hash to ``sha256``."""
        result = self._get(sha256)
        data = bytes(self._call("read", result.bytes))
        if sha256_of(data) != sha256:
            raise ArtifactCorrupted(f"the stored artifact {sha256} no longer matches its sha256; {REPAIR}")
        return data

    def download(self, sha256: str, target: BinaryIO) -> str:
        """Stream the object into ``target``; the sha256 of what arrived (the caller compares it)."""
        result = self._get(sha256)
        digest = hashlib.sha256()

        def copy():
            for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                digest.update(chunk)
                target.write(chunk)

        self._call("read", copy)
        return digest.hexdigest()

    def _get(self, sha256: str):
        try:
            return self._call("read", obstore.get, self._client, key_for(sha256))
        except FileNotFoundError:
            raise ArtifactMissing(f"the stored artifact {sha256} is missing from {self.location}; {REPAIR}") from None

    def check(self, sha256: str, pace: Pace | None = None) -> str:
        """``ok``, ``damaged`` or ``missing``, streaming the object through a hash."""
        _check_not_forked()
        try:
            result = obstore.get(self._client, key_for(sha256))
            digest = hashlib.sha256()
            for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                digest.update(chunk)
                if pace is not None:
                    pace(len(chunk))
        except FileNotFoundError:
            return "missing"
        except BaseError as exc:
            raise self._unavailable("read", exc) from None
        return "ok" if digest.hexdigest() == sha256 else "damaged"

    def stamp(self, sha256: str) -> tuple | None:
        """The object's ETag, size and modification time (None when absent or unreachable)."""
        try:
            meta = self._head(key_for(sha256))
        except StoreUnavailable:
            return None
        return None if meta is None else (meta["e_tag"], meta["size"], meta["last_modified"])

    def files(self) -> Iterator[StoredFile]:
        """Every object under the prefix named by a digest, on its shelf or misplaced (unfinished multipart
        uploads are not listed: the bucket's lifecycle rule AbortIncompleteMultipartUpload removes them;
        docs/scaling.md)."""
        pages = self._call("listed", obstore.list, self._client, prefix="sha256/", chunk_size=1000)
        for page in self._call("listed", list, pages):
            for meta in page:
                parts = meta["path"].split("/")
                if len(parts) == 3 and is_artifact_name(parts[2]):
                    yield StoredFile(meta["path"], parts[2], meta["size"], meta["last_modified"].timestamp())

    def remove_if_older(self, found: StoredFile, cutoff: float) -> bool:
        """Delete the object unless it was written after ``cutoff`` (its time looked at again now)."""
        if found.sha256 is None:
            return False
        key = found.key if found.misplaced else key_for(found.sha256)
        meta = self._head(key)
        if meta is None or meta["last_modified"].timestamp() > cutoff:
            return False
        self._call("written", obstore.delete, self._client, key)
        return True

    def free_bytes(self) -> int | None:
        """Object stores have no volume to fill (a quota shows as failed uploads)."""
        return None

    def problem(self) -> str | None:
        """None when a listing of the prefix answers; probes even while calls are paused, once, within
        a few seconds."""
        _check_not_forked()
        try:
            next(iter(obstore.list(self._probe_client, prefix="sha256/", chunk_size=1)), None)
        except BaseError as exc:
            error = self._unavailable("read", exc)
            return error.detail
        with self._lock:
            self._paused_until = 0.0
        return None

    def _head(self, key: str) -> dict | None:
        try:
            return self._call("read", obstore.head, self._client, key)
        except FileNotFoundError:
            return None

    def _call(self, verb: str, function, *args, **kwargs):
        """Call the client; its failures become StoreUnavailable (NotFound stays FileNotFoundError)."""
        _check_not_forked()
        with self._lock:
            if time.monotonic() < self._paused_until and self._paused_error is not None:
                raise StoreUnavailable(self._paused_error.detail)
        try:
            return function(*args, **kwargs)
        except FileNotFoundError:
            raise
        except BaseError as exc:
            raise self._unavailable(verb, exc) from None

    def _unavailable(self, verb: str, exc: BaseError) -> StoreUnavailable:
        first_line = str(exc).split("\n", 1)[0]
        log.warning("artifact store %s could not be %s: %s", self.location, verb, first_line)
        damaged = "<Code>BadDigest</Code>" in str(exc)
        if damaged:
            reason = "the bytes it received did not match their sha256, so it kept nothing: they were damaged on the way"
        elif isinstance(exc, (PermissionDeniedError, UnauthenticatedError)):
            reason = "it refused the credentials; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy"
        elif status := _STATUS.search(first_line):
            reason = f"it answered {status.group(1).strip()}"
        else:
            reason = "it did not answer; check AWS_ENDPOINT_URL and the network"
        error = StoreUnavailable(
            f"the artifact store {self.location} cannot be {verb} right now ({reason}); nothing was changed. "
            "Retry after the time in Retry-After"
        )
        if not damaged:  # the store answered, and is there for the next call
            with self._lock:
                self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
                self._paused_error = error
        return error


class _Forks:
    """obstore runs its requests on a runtime of threads that a fork does not copy: in a child of a process
    that used it, every call would hang. Such a call fails at once instead, saying why."""

    used_in: int | None = None  # the process that used the client first


def _check_not_forked() -> None:
    pid = os.getpid()
    if _Forks.used_in is None:
        _Forks.used_in = pid
    elif _Forks.used_in != pid:
        raise RuntimeError(
            "the S3 client was used before this process was forked, and cannot be used after: "
            "a process that forks (gunicorn's master) must not reach the object store first"
        )


def _age(meta: dict) -> float:
    return time.time() - meta["last_modified"].timestamp()
