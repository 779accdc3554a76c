"""Training data: reading a CSV (or taking a DataFrame) with the sha256 that identifies it."""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn import datasets as bundled

from trainers.errors import ConfigurationError, UnreadableData, first_line

# scikit-learn ships these inside the package; loading them never downloads anything.
EXAMPLES = {
    "diabetes": "regression",
    "breast_cancer": "classification",
    "iris": "classification",
    "wine": "classification",
}


@dataclass(frozen=True)
class Dataset:
    """A table of features plus target, where it came from, and the sha256 of its content."""

    frame: pd.DataFrame
    sha256: str
    source: str


def load_csv(path: str | Path) -> Dataset:
    """Read a CSV file; its sha256 is that of the file's bytes."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UnreadableData(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not content.strip():
        raise UnreadableData(f"{path} is empty")
    try:
        frame = pd.read_csv(io.BytesIO(content), encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableData(f"{path} does not parse as CSV: {first_line(exc)}") from exc
    if frame.empty:
        raise UnreadableData(f"{path} has a header but no rows")
    return Dataset(frame=frame, sha256=hashlib.sha256(content).hexdigest(), source=path.name)


def from_frame(frame: pd.DataFrame, source: str = "dataframe") -> Dataset:
    """Wrap a DataFrame; its sha256 is that of a canonical CSV rendering (no index, LF endings)."""
    if frame.empty:
        raise UnreadableData(f"{source} has no rows")
    canonical = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return Dataset(frame=frame, sha256=hashlib.sha256(canonical).hexdigest(), source=source)


def example_frame(name: str, rows: int | None = None) -> pd.DataFrame:
    """One of scikit-learn's bundled datasets as a DataFrame with a ``target`` column."""
    if name not in EXAMPLES:
        raise ConfigurationError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    if name == "diabetes":
        bunch = bundled.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.frame
    else:
        bunch = getattr(bundled, f"load_{name}")(as_frame=True)
        frame = bunch.frame.copy()
        # Class names rather than 0/1/2 make the task unmistakably classification.
        frame["target"] = bunch.target_names[bunch.target.to_numpy()]
    return frame.head(rows) if rows is not None else frame


def export_example(name: str, path: str | Path, rows: int | None = None) -> int:
    """Write a bundled dataset to ``path`` as CSV; returns the number of rows written."""
    frame = example_frame(name, rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return len(frame)
