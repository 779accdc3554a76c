"""``python -m trainers import-mlflow``: an MLflow model registry's scikit-learn versions, imported."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainers.mlflow_import.importer import ImportSummary, import_registry
from trainers.mlflow_import.local_source import LocalSource
from trainers.mlflow_import.rest_source import RestSource

__all__ = ["ImportSummary", "import_registry", "open_source"]


def open_source(tracking_uri: str) -> RestSource | LocalSource:
    """The MLflow registry at a tracking server's ``http(s)://`` URL, or in a local ``mlruns`` folder
    (a path or a ``file:`` URI). ValueError names what else MLflow URIs may be and why they are not read."""
    scheme = urlsplit(tracking_uri).scheme
    if scheme in ("http", "https"):
        return RestSource(tracking_uri)
    if scheme == "file":
        return LocalSource(Path(unquote(urlsplit(tracking_uri).path)))
    if scheme and len(scheme) > 1:
        raise ValueError(f"{tracking_uri!r}: give the tracking server's http(s):// URL (which reads any backend store) "
                         "or the path of an mlruns folder")
    return LocalSource(Path(tracking_uri))
