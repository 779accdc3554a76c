"""Which artifact store ``ARTIFACT_ROOT`` names: a directory, or ``s3://bucket/prefix`` behind a node cache."""
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from registry.artifacts.local_store import LocalStore
from registry.artifacts.node_cache import CachedStore, NodeCache
from registry.artifacts.s3_store import S3Settings, S3Store
from registry.artifacts.store import ArtifactStore


class UnknownStore(ValueError):
    """``ARTIFACT_ROOT`` is a URL of a kind this release cannot store artifacts in."""


def is_url(root: str) -> bool:
    """True for ``scheme://…`` (any scheme), rather than a directory."""
    scheme, separator, _ = root.partition("://")
    return bool(separator) and scheme.isidentifier()


def open_store(root: str, *, s3: S3Settings | None = None, cache_dir: Path, cache_bytes: int,
               serving: Callable[[], set[str]] = set) -> ArtifactStore:
    """The store at ``root``: a directory as it is, an ``s3://`` URL through a node cache in ``cache_dir``.

    ``s3`` carries the endpoint and credentials (its ``url`` is replaced by ``root``); ``serving``
    names the digests the node cache must never evict.
    """
    if not is_url(root):
        return LocalStore(root)
    if not root.startswith("s3://"):
        raise UnknownStore(
            f"ARTIFACT_ROOT={root}: {root.partition('://')[0]}:// is not a store this release can use; "
            "set it to a directory or to s3://bucket/prefix (any S3-compatible store: docs/scaling.md)"
        )
    settings = replace(s3, url=root) if s3 is not None else S3Settings(url=root)
    try:
        remote = S3Store(settings)
    except ValueError as exc:
        raise UnknownStore(f"ARTIFACT_ROOT={root}: {exc}; name a bucket: s3://bucket/prefix") from None
    return CachedStore(remote, NodeCache(cache_dir, budget_bytes=cache_bytes, serving=serving))
