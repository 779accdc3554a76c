"""An MLflow file store (an ``mlruns/`` folder) read directly, also when it was copied from another machine."""
from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from trainers.errors import TrainerError
from trainers.mlflow_import.bounds import DEFAULT_MAX_UPLOAD_MB, MB, read_capped, relative_path
from trainers.mlflow_import.records import SourceModel, SourceRun, SourceVersion, Unimportable

# The part of an artifact path that is the same in every copy of a store: <experiment>/<run or model>/artifacts/…
STORE_RELATIVE = re.compile(r"/(\d+/(?:models/m-[0-9a-f]+|[0-9a-f]{32})/artifacts(?:/.*)?)$")


class LocalStoreError(TrainerError):
    """The folder is not an MLflow file store, or a file the import needs cannot be read."""


class LocalSource:
    """The registered models of the MLflow file store at ``root`` (the folder that holds ``models/``); no file
    larger than ``max_bytes`` is read."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_UPLOAD_MB * MB):
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self.uri = self.root.as_uri()
        if not (self.root / "models").is_dir():
            raise LocalStoreError(f"{root} holds no models/ folder: it is not an MLflow file store with registered models")

    def models(self, names: list[str] | None) -> list[SourceModel]:
        """The named registered models (an unknown name is an error), or every one."""
        folders = sorted(path.parent for path in (self.root / "models").glob("*/meta.yaml"))
        by_name = {meta["name"]: folder for folder in folders if (meta := _yaml(folder / "meta.yaml"))}
        missing = [name for name in names or [] if name not in by_name]
        if missing:
            raise LocalStoreError(f"{self.root} has no registered model named {', '.join(map(repr, missing))}")
        return [self._model(name, by_name[name]) for name in (names or sorted(by_name))]

    def versions(self, model: str) -> list[SourceVersion]:
        """Every version of a registered model, oldest first."""
        folder = self._folder_of(model)
        versions = [self._version(path.parent) for path in folder.glob("version-*/meta.yaml")]
        return sorted(versions, key=lambda version: version.version)

    def run(self, run_id: str) -> SourceRun | None:
        """The run a version came from (latest value of each metric); None when it is not in the store."""
        folder = next((path for path in self.root.glob(f"*/{run_id}") if (path / "meta.yaml").is_file()), None)
        if folder is None:
            return None
        return SourceRun(
            run_id=run_id, experiment_id=folder.parent.name, metrics=_metrics(folder / "metrics"),
            params=_texts(folder / "params"), tags=_texts(folder / "tags"),
        )

    def read(self, version: SourceVersion, name: str) -> bytes:
        """A file of the version's model folder, never one a symlink leads out of it to, read in chunks and
        refused (OverLimit) once it passes ``max_bytes``."""
        folder = self._artifacts(version).resolve()
        path = (folder / relative_path(name, "file")).resolve()
        if not path.is_relative_to(folder):
            raise Unimportable(f"its {name} leads out of its model folder")
        what = f"{name} of {version.model} v{version.version}"
        try:
            with path.open("rb") as file:
                return read_capped(iter(lambda: file.read(1024 * 1024), b""), self.max_bytes, what)
        except FileNotFoundError:
            raise Unimportable(f"its model folder has no {name}") from None
        except OSError as exc:
            raise LocalStoreError(f"cannot read {path}: {exc.strerror}") from None

    def _artifacts(self, version: SourceVersion) -> Path:
        """The version's model folder: where the store says, else the same place inside this copy of the store."""
        location = version.location
        if location.startswith("runs:/"):
            run_id, _, inner = location[len("runs:/"):].partition("/")
            run = self.run(run_id)
            if run is None:
                raise Unimportable(f"its run {run_id} is not in {self.root}")
            return self.root / str(run.experiment_id) / run_id / "artifacts" / inner
        parts = urlsplit(location)
        if parts.scheme not in ("", "file"):
            raise Unimportable(f"its files are at {location}, outside this file store")
        path = Path(unquote(parts.path))
        if path.is_dir():
            return path
        relative = STORE_RELATIVE.search(path.as_posix())
        if relative is None:
            raise Unimportable(f"its model folder {path} does not exist")
        return self.root / relative.group(1)

    def _model(self, name: str, folder: Path) -> SourceModel:
        meta = _yaml(folder / "meta.yaml")
        aliases = {path.name: path.read_text().strip() for path in (folder / "aliases").glob("*")} \
            or dict(meta.get("aliases") or {})
        return SourceModel(
            name=name, description=meta.get("description") or "", tags=_texts(folder / "tags"),
            aliases={alias: int(version) for alias, version in aliases.items()},
        )

    def _version(self, folder: Path) -> SourceVersion:
        meta = _yaml(folder / "meta.yaml")
        return SourceVersion(
            model=meta["name"], version=int(meta["version"]),
            location=meta.get("storage_location") or meta.get("source") or "",
            run_id=meta.get("run_id") or None, description=meta.get("description") or "",
            tags=_texts(folder / "tags"), stage=meta.get("current_stage") or "None",
            status=meta.get("status") or "READY", created_ms=meta.get("creation_timestamp"),
        )

    def _folder_of(self, model: str) -> Path:
        for path in (self.root / "models").glob("*/meta.yaml"):
            if _yaml(path).get("name") == model:
                return path.parent
        raise LocalStoreError(f"{self.root} has no registered model named {model!r}")


def _yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LocalStoreError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return loaded if isinstance(loaded, dict) else {}


def _texts(folder: Path) -> dict[str, str]:
    """A folder of one-value files (tags, params), nested keys included (``mlflow.source.git.commit``)."""
    return {str(path.relative_to(folder)): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _metrics(folder: Path) -> dict[str, float]:
    """Each metric's latest value (highest step, then latest time), as MLflow reports it; NaN and ±inf dropped."""
    latest = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        points = []
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                step = int(fields[2]) if len(fields) > 2 else 0
                points.append((step, int(fields[0]), float(fields[1])))
        if points:
            value = max(points)[2]
            if math.isfinite(value):
                latest[str(path.relative_to(folder))] = value
    return latest
