"""Serialising a fitted pipeline with joblib, to a file or to bytes for upload."""
from __future__ import annotations

import io
from pathlib import Path

import joblib
from sklearn.pipeline import Pipeline


def to_bytes(pipeline: Pipeline) -> bytes:
    """The joblib file of a pipeline, uncompressed (the registry's safe loader reads it as is)."""
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def save(pipeline: Pipeline, path: str | Path) -> Path:
    """Write the pipeline's joblib file, creating the parent directory; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(pipeline))
    return path
