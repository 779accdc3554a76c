"""Serialising a fitted model: a pipeline as its joblib file, an XGBoost or LightGBM model as the library's own
model file; to a file or to bytes for upload."""
from __future__ import annotations

import io
from pathlib import Path

import joblib
from sklearn.pipeline import Pipeline

from trainers.boosted import BoostedModel


def to_bytes(pipeline: Pipeline | BoostedModel, suffix: str = "") -> bytes:
    """The file of a fitted model: a pipeline's joblib file, uncompressed (the registry's safe loader reads it
    as is), or a boosted model's own file (``suffix`` ``.ubj``: XGBoost's UBJSON)."""
    if isinstance(pipeline, BoostedModel):
        return pipeline.model_file(suffix)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def save(pipeline: Pipeline | BoostedModel, path: str | Path) -> Path:
    """Write the model's file, creating the parent directory; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(pipeline, path.suffix.lower()))
    return path
