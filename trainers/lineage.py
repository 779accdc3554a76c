"""Where a model came from: the data's hash and shape, the code's commit, the library versions."""
from __future__ import annotations

import subprocess

import pandas as pd
import sklearn

from trainers import __version__
from trainers.datasets import Dataset, from_frame


def git_commit() -> str | None:
    """The commit checked out in the current directory, or None outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def holdout_dataset(dataset: Dataset, features: pd.DataFrame, y: pd.Series) -> dict:
    """The held-out rows as an evaluation dataset: named after the data, hashed by their content.

    The same data, seed and split give the same rows and so the same sha256: retrains on them
    score versions on one dataset, which the registry then compares.
    """
    rows = from_frame(pd.concat([features, y], axis=1), f"{dataset.source} (hold-out)")
    return {"name": rows.source, "sha256": rows.sha256, "rows": int(len(y))}


def collect(dataset: Dataset, target: str, params: dict, job_url: str | None = None) -> dict:
    """The lineage recorded with a version; keys without a value are left out."""
    lineage = {
        "dataset_sha256": dataset.sha256,
        "dataset": dataset.source,
        "rows": int(dataset.frame.shape[0]),
        "columns": int(dataset.frame.shape[1]),
        "target": target,
        "git_commit": git_commit(),
        "sklearn_version": sklearn.__version__,
        "trainer_version": __version__,
        "params": params,
        "job_url": job_url,
    }
    return {key: value for key, value in lineage.items() if value is not None}
