"""Where the prediction log's old rows go (``PREDICTION_LOG_EXPORT``): a directory, or a prefix in an
S3-compatible bucket reached with the artifact store's settings (``AWS_ENDPOINT_URL`` and the rest).

A lake holds whole files only. On a directory a file is written beside its place under a name that
starts with a dot (which Parquet readers skip), synced, and renamed into place; in a bucket one PUT
writes it, carrying the sha256 of its bytes, which the store checks before it keeps them.
"""
from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from registry.artifacts.s3_store import S3Settings, obstore_config, parse_s3_url


MANIFEST = "_manifest.json"  # per model: what each file holds (the leading _ keeps Parquet readers off it)


class LakeUnavailable(Exception):
    """The lake could not be written or read now (the export is tried again at its next turn)."""


class Lake:
    """Files under one root, by keys of ``/``-separated parts."""

    location: str

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` as ``key`` whole, or leave what was there."""
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        """The bytes of ``key``; None when there is no such file."""
        raise NotImplementedError

    def url(self, key: str = "") -> str:
        """Where ``key`` is, as a reader names it (the root when empty)."""
        return f"{self.location}/{key}" if key else self.location


class DirectoryLake(Lake):
    """A directory of this machine (or a mount)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.location = str(self.root)

    def put(self, key: str, data: bytes) -> None:
        """Write to a hidden temporary file beside the target, sync it, rename it into place, sync the folder."""
        final = self.root / key
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            folder = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise LakeUnavailable(f"{final} could not be written ({exc.strerror or exc})") from None

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when absent."""
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeUnavailable(f"{self.root / key} could not be read ({exc.strerror or exc})") from None


class BucketLake(Lake):
    """A prefix in an S3-compatible bucket (obstore, as the artifact store)."""

    def __init__(self, settings: S3Settings):
        from obstore.store import S3Store  # imported here: a directory lake needs no S3 client

        bucket, prefix = parse_s3_url(settings.url)
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = obstore_config(settings)  # a PUT's bytes are checked by the store against their sha256
        self._client = S3Store(
            bucket, prefix=prefix or None, config=config,
            client_options={"allow_http": True, "connect_timeout": timedelta(seconds=settings.connect_timeout_seconds),
                            "timeout": timedelta(minutes=5)},
            retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=10)},
        )

    def put(self, key: str, data: bytes) -> None:
        """One PUT with the sha256 of ``data``: the object is all of it, or the old one stays."""
        import obstore
        from obstore.exceptions import BaseError

        try:
            obstore.put(self._client, key, data, attributes={"Content-Type": _content_type(key)})
        except BaseError as exc:
            raise LakeUnavailable(f"{self.url(key)} could not be written ({str(exc).splitlines()[0]})") from None

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when absent."""
        import obstore
        from obstore.exceptions import BaseError

        try:
            return bytes(obstore.get(self._client, key).bytes())
        except FileNotFoundError:
            return None
        except BaseError as exc:
            raise LakeUnavailable(f"{self.url(key)} could not be read ({str(exc).splitlines()[0]})") from None


def location_of(where: str) -> str:
    """How the lake ``where`` names is shown (``s3://bucket/prefix``, or the directory's absolute path);
    ValueError for anything else."""
    if where.startswith("s3://"):
        bucket, prefix = parse_s3_url(where)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if "://" in where:
        raise ValueError(f"PREDICTION_LOG_EXPORT={where}: {where.partition('://')[0]}:// is not a place the "
                         "prediction log can export to; give a directory or s3://bucket/prefix")
    return str(Path(where).absolute())


def open_lake(where: str, s3: S3Settings) -> Lake:
    """The lake ``where`` names: ``s3://bucket/prefix`` (reached with ``s3``'s endpoint and credentials) or a directory."""
    location_of(where)
    if where.startswith("s3://"):
        return BucketLake(S3Settings(**{**s3.__dict__, "url": where}))
    return DirectoryLake(where)


def _content_type(key: str) -> str:
    return "application/json" if key.endswith(".json") else "application/vnd.apache.parquet"
