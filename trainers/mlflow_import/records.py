"""What an MLflow model registry holds, as the import reads it (from a tracking server or an mlruns/ folder)."""
from __future__ import annotations

from dataclasses import dataclass, field


class Unimportable(Exception):
    """A version this registry cannot take; ``str(error)`` says why. The import skips it and goes on."""


@dataclass(frozen=True)
class SourceModel:
    """A registered model: its words and its aliases (alias → version number)."""

    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceVersion:
    """One version of a registered model; ``location`` is where its model files are (an artifact URI)."""

    model: str
    version: int
    location: str
    run_id: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    stage: str = "None"
    status: str = "READY"
    created_ms: int | None = None


@dataclass(frozen=True)
class SourceRun:
    """The run a version came from: its latest metric values, params and tags."""

    run_id: str
    experiment_id: str | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
