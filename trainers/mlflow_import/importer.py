"""Importing an MLflow model registry: every scikit-learn version, in version order, then the aliases.

Idempotent: each imported version carries the tags ``mlflow.model`` and ``mlflow.version``, so a second
run finds what the first imported and uploads nothing again. An alias is set only where the registry
has none yet or where it should move to a version this run imported; an alias someone moved in this
registry since is left alone (and reported).
"""
from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from registry_client import RegistryClient, RegistryError, TokenRejected, Version

from trainers import progress
from trainers.mlflow_import.mlmodel import SklearnModel, example_rows, read_mlmodel
from trainers.mlflow_import.records import SourceModel, SourceRun, SourceVersion, Unimportable

log = logging.getLogger("trainers")

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
STAGE_ALIASES = {"Production": "production", "Staging": "staging"}
REFUSALS = frozenset({409, 410, 413, 415, 422})

IMPORTED, EXISTING, SKIPPED, WOULD_IMPORT = "imported", "existing", "skipped", "would import"
SET, UNCHANGED, KEPT, WOULD_SET = "set", "unchanged", "kept", "would set"


class Source(Protocol):
    """What the import reads: a tracking server (RestSource) or a file store (LocalSource)."""

    uri: str

    def models(self, names: list[str] | None) -> list[SourceModel]: ...
    def versions(self, model: str) -> list[SourceVersion]: ...
    def run(self, run_id: str) -> SourceRun | None: ...
    def read(self, version: SourceVersion, name: str) -> bytes: ...


@dataclass
class VersionOutcome:
    """What became of one MLflow version: imported, already there, skipped (with why), or would be."""

    version: int
    action: str
    registry_version: int | None = None
    reason: str = ""


@dataclass
class AliasOutcome:
    """What became of one MLflow alias (or legacy stage, as ``origin`` says)."""

    alias: str
    version: int
    origin: str
    action: str
    registry_version: int | None = None
    reason: str = ""


@dataclass
class ModelOutcome:
    """One registered model's import."""

    mlflow_name: str
    name: str
    versions: list[VersionOutcome] = field(default_factory=list)
    aliases: list[AliasOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportSummary:
    """The whole import, as ``--json`` prints it."""

    source: str
    registry: str
    dry_run: bool
    models: list[ModelOutcome]

    def count(self, action: str) -> int:
        """How many versions had this outcome."""
        return sum(outcome.action == action for model in self.models for outcome in model.versions)

    def to_dict(self) -> dict:
        """The JSON summary: the totals, then each model's versions, aliases and notes."""
        totals = {action: self.count(action) for action in (IMPORTED, EXISTING, SKIPPED, WOULD_IMPORT)}
        return {**asdict(self), "totals": totals}


def import_registry(source: Source, client: RegistryClient, names: list[str] | None, dry_run: bool) -> ImportSummary:
    """Import the named registered models of ``source`` (every one when ``names`` is empty) into the registry."""
    models = source.models(names or None)
    importer = _Importer(source, client, dry_run)
    return ImportSummary(source=_without_credentials(source.uri), registry=client.url, dry_run=dry_run,
                         models=[importer.model(model) for model in models])


def registry_name(mlflow_name: str) -> str:
    """This registry's name for an MLflow model: accents dropped, other characters it does not allow become ``-``."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", mlflow_name) if not unicodedata.combining(c))
    name = NOT_NAME.sub("-", plain).strip("-._")[:128]
    if not name:
        raise Unimportable(f"{mlflow_name!r} has no letter or digit to name a model by")
    return name


class _Importer:
    def __init__(self, source: Source, client: RegistryClient, dry_run: bool):
        self.source, self.client, self.dry_run = source, client, dry_run

    def model(self, model: SourceModel) -> ModelOutcome:
        try:
            name = registry_name(model.name)
        except Unimportable as exc:
            return ModelOutcome(model.name, "", notes=[f"skipped: {exc}"])
        outcome = ModelOutcome(model.name, name)
        if name != model.name:
            outcome.notes.append(f"imported as {name!r}: this registry's names allow letters, digits, '.', '_' and '-'")
        versions = self.source.versions(model.name)
        imported = self._imported(name, model.name)
        for version in progress.iterate(versions, len(versions), f"import {model.name}"):
            outcome.versions.append(self._version(name, model.name, version, imported))
        outcome.aliases = self._aliases(name, model, versions, outcome.versions)
        outcome.notes.extend(self._describe(name, model, outcome.versions))
        return outcome

    def _imported(self, name: str, mlflow_name: str) -> dict[int, Version]:
        """The versions an earlier run imported from this MLflow model, by MLflow version."""
        try:
            versions = list(self.client.versions(name, include_archived=True))
        except RegistryError as exc:
            if exc.status == 404:
                return {}
            raise
        return {int(version.tags["mlflow.version"]): version for version in versions
                if version.tags.get("mlflow.model") == mlflow_name and version.tags.get("mlflow.version", "").isdigit()}

    def _version(self, name: str, mlflow_name: str, version: SourceVersion,
                 imported: dict[int, Version]) -> VersionOutcome:
        if version.version in imported:
            return VersionOutcome(version.version, EXISTING, imported[version.version].version, "imported before")
        if version.status != "READY":
            return VersionOutcome(version.version, SKIPPED, reason=f"MLflow lists it as {version.status}")
        try:
            sklearn = read_mlmodel(self.source.read(version, "MLmodel"))
            content = self.source.read(version, sklearn.file)
        except Unimportable as exc:
            log.warning("%s v%s skipped: %s", mlflow_name, version.version, exc)
            return VersionOutcome(version.version, SKIPPED, reason=str(exc))
        if self.dry_run:
            return VersionOutcome(version.version, WOULD_IMPORT, reason=f"{sklearn.serialization_format} file {sklearn.file}")
        metadata = self._metadata(mlflow_name, version, sklearn)
        try:
            uploaded = self.client.upload(name, content, filename=sklearn.file.rsplit("/", 1)[-1], **metadata)
        except RegistryError as exc:
            if exc.status not in REFUSALS:
                raise
            log.warning("%s v%s skipped: the registry refused it: %s", mlflow_name, version.version, exc.detail)
            return VersionOutcome(version.version, SKIPPED, reason=f"the registry refused it: {exc.detail}")
        if uploaded.tags.get("mlflow.version") != str(version.version):
            return VersionOutcome(version.version, EXISTING, uploaded.version,
                                  f"the same file as v{uploaded.version} here (MLflow v{uploaded.tags.get('mlflow.version', '?')})")
        log.info("%s v%s imported as %s v%s", mlflow_name, version.version, name, uploaded.version)
        return VersionOutcome(version.version, IMPORTED, uploaded.version)

    def _metadata(self, mlflow_name: str, version: SourceVersion, sklearn: SklearnModel) -> dict:
        run = self.source.run(version.run_id) if version.run_id else None
        tags = {**version.tags, "mlflow.model": mlflow_name, "mlflow.version": str(version.version)}
        if version.stage not in ("None", ""):
            tags["mlflow.stage"] = version.stage
        lineage = {"imported_from": "mlflow", "mlflow": {
            "tracking_uri": _without_credentials(self.source.uri), "model": mlflow_name, "version": version.version,
            "run_id": version.run_id, "experiment_id": run.experiment_id if run else None, "source": version.location,
            "serialization_format": sklearn.serialization_format, "sklearn_version": sklearn.sklearn_version,
            "created_at": _iso(version.created_ms),
        }}
        if run and run.tags.get("mlflow.source.git.commit"):
            lineage["git_commit"] = run.tags["mlflow.source.git.commit"]
        example = None
        if sklearn.example_file:
            try:
                example = example_rows(self.source.read(version, sklearn.example_file), sklearn.feature_names)
            except Unimportable:
                example = None
        return {
            "description": version.description or None,
            "metrics": {key: value for key, value in (run.metrics if run else {}).items()
                        if isinstance(value, (int, float)) and math.isfinite(value)},
            "params": dict(run.params) if run else {},
            "tags": tags,
            "lineage": lineage,
            "feature_names": sklearn.feature_names,
            "input_example": example,
        }

    def _aliases(self, name: str, model: SourceModel, versions: list[SourceVersion],
                 outcomes: list[VersionOutcome]) -> list[AliasOutcome]:
        wanted = [(alias, version, f"alias {alias}") for alias, version in model.aliases.items()]
        for stage, alias in STAGE_ALIASES.items():
            in_stage = [version.version for version in versions if version.stage == stage]
            if in_stage and alias not in {wanted_alias.lower() for wanted_alias, _, _ in wanted}:
                wanted.append((alias, max(in_stage), f"legacy stage {stage}"))
        by_version = {outcome.version: outcome for outcome in outcomes}
        current = self._current_aliases(name)
        return [self._alias(name, alias, version, origin, by_version.get(version), current)
                for alias, version, origin in sorted(wanted, key=lambda item: item[1])]

    def _alias(self, name: str, mlflow_alias: str, version: int, origin: str, outcome: VersionOutcome | None,
               current: dict[str, int]) -> AliasOutcome:
        alias = mlflow_alias.lower()
        result = AliasOutcome(alias, version, origin, SKIPPED)
        if not ALIAS.fullmatch(alias) or alias == "latest":
            result.reason = "not an alias name here: a lowercase letter, then letters, digits, '_' or '-'"
        elif outcome is None or outcome.action == SKIPPED:
            result.reason = f"MLflow v{version} was not imported"
        elif outcome.action == WOULD_IMPORT:
            result.action = WOULD_SET
        else:
            result.registry_version = outcome.registry_version
            self._move(name, result, outcome, current.get(alias))
        return result

    def _move(self, name: str, result: AliasOutcome, outcome: VersionOutcome, now: int | None) -> None:
        if now == outcome.registry_version:
            result.action = UNCHANGED
        elif now is not None and outcome.action != IMPORTED:
            result.action, result.reason = KEPT, f"{result.alias} here points at v{now}, moved since the last import"
        elif self.dry_run:
            result.action = WOULD_SET
        else:
            try:
                self.client.promote(name, outcome.registry_version, result.alias, reason=f"imported from MLflow ({result.origin})")
                result.action = SET
            except RegistryError as exc:
                if exc.status not in REFUSALS:
                    raise
                result.reason = f"the registry refused the promote: {exc.detail}"

    def _current_aliases(self, name: str) -> dict[str, int]:
        try:
            return self.client.aliases(name)
        except RegistryError as exc:
            if exc.status == 404:
                return {}
            raise

    def _describe(self, name: str, model: SourceModel, outcomes: list[VersionOutcome]) -> list[str]:
        """Give the registry's model MLflow's description and tags where it has none of its own."""
        if not any(outcome.registry_version for outcome in outcomes) or not (model.description or model.tags):
            return []
        existing = self.client.model(name)
        description = model.description if model.description and not existing.description else None
        tags = {**model.tags, **existing.tags} if set(model.tags) - set(existing.tags) else None
        if description is None and tags is None:
            return []
        if self.dry_run:
            return ["would set the model's description and tags"]
        try:
            self.client.update_model(name, description=description, tags=tags,
                                     reason="imported from MLflow (its description and tags)")
        except TokenRejected as exc:
            if exc.status != 403:
                raise
            return ["the model's description and tags were not set: that needs an admin token"]
        return []


def _iso(milliseconds: int | None) -> str | None:
    if milliseconds is None:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return uri
