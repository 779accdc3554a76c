"""``python -m trainers import-mlflow``: an MLflow model registry's scikit-learn versions, imported."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainers.mlflow_import.bounds import DEFAULT_MAX_UPLOAD_MB, MB
from trainers.mlflow_import.importer import ImportSummary, import_registry
from trainers.mlflow_import.local_source import LocalSource
from trainers.mlflow_import.rest_source import RestSource

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "ImportSummary", "import_registry", "open_source"]


def open_source(tracking_uri: str, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> RestSource | LocalSource:
    """The MLflow registry at a tracking server's ``http(s)://`` URL, or in a local ``mlruns`` folder
    (a path or a ``file:`` URI), reading no file over ``max_upload_mb``. ValueError names what else MLflow
    URIs may be and why they are not read."""
    max_bytes = max_upload_mb * MB
    scheme = urlsplit(tracking_uri).scheme
    if scheme in ("http", "https"):
        return RestSource(tracking_uri, max_bytes)
    if scheme == "file":
        return LocalSource(Path(unquote(urlsplit(tracking_uri).path)), max_bytes)
    if scheme and len(scheme) > 1:
        raise ValueError(f"{tracking_uri!r}: give the tracking server's http(s):// URL (which reads any backend store) "
                         "or the path of an mlruns folder")
    return LocalSource(Path(tracking_uri), max_bytes)
