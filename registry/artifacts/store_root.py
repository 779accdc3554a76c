"""Which artifact store ``ARTIFACT_ROOT`` names: a directory, or ``s3://bucket/prefix`` behind a node cache."""
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from registry.artifacts.local_store import LocalStore
from registry.artifacts.node_cache import CachedStore, NodeCache
from registry.artifacts.s3_store import S3Settings, S3Store, parse_s3_url
from registry.artifacts.store import ArtifactStore


class UnknownStore(ValueError):
    """``ARTIFACT_ROOT`` is a URL of a kind this release cannot store artifacts in."""


def is_url(root: str) -> bool:
    """True for ``scheme://…`` (any scheme), rather than a directory."""
    scheme, separator, _ = root.partition("://")
    return bool(separator) and scheme.isidentifier()


def check_root(root: str) -> None:
    """Raise :class:`UnknownStore` when ``root`` is a URL of a kind this release cannot use, or an
    ``s3://`` URL without a bucket; nothing is reached (a container's entrypoint checks before it starts)."""
    if not is_url(root):
        return
    if not root.startswith("s3://"):
        raise UnknownStore(
            f"ARTIFACT_ROOT={root}: {root.partition('://')[0]}:// is not a store this release can use; "
            "set it to a directory or to s3://bucket/prefix (any S3-compatible store: docs/scaling.md)"
        )
    try:
        parse_s3_url(root)
    except ValueError as exc:
        raise UnknownStore(f"ARTIFACT_ROOT={root}: {exc}; name a bucket: s3://bucket/prefix") from None


def open_store(root: str, *, s3: S3Settings | None = None, cache_dir: Path, cache_bytes: int,
               serving: Callable[[], set[str]] = set) -> ArtifactStore:
    """The store at ``root``: a directory as it is, an ``s3://`` URL through a node cache in ``cache_dir``.

    ``s3`` carries the endpoint and credentials (its ``url`` is replaced by ``root``); ``serving``
    names the digests the node cache must never evict.
    """
    check_root(root)
    if not is_url(root):
        return LocalStore(root)
    settings = replace(s3, url=root) if s3 is not None else S3Settings(url=root)
    return CachedStore(S3Store(settings), NodeCache(cache_dir, budget_bytes=cache_bytes, serving=serving))
