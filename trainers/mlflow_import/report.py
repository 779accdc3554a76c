"""The import's summary as lines for a person (``--json`` prints ImportSummary.to_dict instead)."""
from __future__ import annotations

from trainers.mlflow_import.importer import (
    EXISTING,
    IMPORTED,
    SKIPPED,
    WOULD_IMPORT,
    AliasOutcome,
    ImportSummary,
    VersionOutcome,
)


def format_summary(summary: ImportSummary) -> str:
    """One block per model (its versions, aliases and notes), then the totals."""
    lines = [f"{'dry run: nothing changed; ' if summary.dry_run else ''}MLflow {summary.source} -> {summary.registry}"]
    for model in summary.models:
        lines.append(model.mlflow_name if model.name in ("", model.mlflow_name) else f"{model.mlflow_name} -> {model.name}")
        lines.extend(f"  v{outcome.version}: {_version_line(outcome)}" for outcome in model.versions)
        lines.extend(f"  {outcome.alias} -> MLflow v{outcome.version}: {_alias_line(outcome)}" for outcome in model.aliases)
        lines.extend(f"  note: {note}" for note in model.notes)
    lines.append(f"imported {summary.count(IMPORTED)}, already here {summary.count(EXISTING)}, "
                 f"skipped {summary.count(SKIPPED)}" + (f", would import {summary.count(WOULD_IMPORT)}" if summary.dry_run else ""))
    return "\n".join(lines)


def _version_line(outcome: VersionOutcome) -> str:
    here = f" as v{outcome.registry_version}" if outcome.registry_version else ""
    return f"{outcome.action}{here}" + (f" ({outcome.reason})" if outcome.reason else "")


def _alias_line(outcome: AliasOutcome) -> str:
    here = f" v{outcome.registry_version}" if outcome.registry_version else ""
    return f"{outcome.action}{here}, from the {outcome.origin}" + (f" ({outcome.reason})" if outcome.reason else "")
