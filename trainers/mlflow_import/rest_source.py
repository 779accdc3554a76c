"""An MLflow tracking server read through its own REST API (``/api/2.0/mlflow``) and artifact proxy.

Auth as MLflow's own clients do: ``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (basic); ``MLFLOW_TRACKING_INSECURE_TLS=true`` skips certificate checks.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import requests
from registry_client.transport import connection_failure

from trainers.errors import TrainerError
from trainers.mlflow_import.bounds import DEFAULT_MAX_UPLOAD_MB, MB, over_limit, read_capped, relative_path
from trainers.mlflow_import.records import SourceModel, SourceRun, SourceVersion, Unimportable

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PAGE = 100
TIMEOUT = 60.0
MAX_ANSWER_BYTES = 16 * MB  # one page of the REST API's JSON answers
CHUNK = 64 * 1024


class MlflowError(TrainerError):
    """The tracking server cannot be reached, refused us, or has no model by a name we were given."""


@dataclass(frozen=True)
class Reply:
    """An answer of the tracking server, its body read within a limit."""

    status: int
    reason: str
    content: bytes

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


class RestSource:
    """The registered models of the MLflow tracking server at ``uri``; no file larger than ``max_bytes`` is read."""

    def __init__(self, uri: str, max_bytes: int = DEFAULT_MAX_UPLOAD_MB * MB):
        self.uri = uri.rstrip("/")
        self.max_bytes = max_bytes
        self._session = requests.Session()
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self._session.auth = (user, password)
        self._session.verify = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() != "true"

    def models(self, names: list[str] | None) -> list[SourceModel]:
        """The named registered models (an unknown name is an error), or every one."""
        if names:
            return [_model(self._get(f"{API}/registered-models/get", {"name": name})["registered_model"])
                    for name in names]
        return [_model(item) for item in self._pages(f"{API}/registered-models/search", {}, "registered_models")]

    def versions(self, model: str) -> list[SourceVersion]:
        """Every version of a registered model, oldest first."""
        params = {"filter": f"name='{_quoted(model)}'"}
        items = self._pages(f"{API}/model-versions/search", params, "model_versions")
        versions = [self._version(item) for item in items if item.get("name") == model]
        return sorted(versions, key=lambda version: version.version)

    def run(self, run_id: str) -> SourceRun | None:
        """The run a version came from; None when it was deleted."""
        response = self._request(f"{API}/runs/get", {"run_id": run_id})
        if response.status == 404:
            return None
        run = _body(response, "runs/get")["run"]
        data = run.get("data") or {}
        return SourceRun(
            run_id=run_id,
            experiment_id=(run.get("info") or {}).get("experiment_id"),
            metrics={item["key"]: item["value"] for item in data.get("metrics") or []},
            params={item["key"]: item["value"] for item in data.get("params") or []},
            tags={item["key"]: item["value"] for item in data.get("tags") or []},
        )

    def read(self, version: SourceVersion, name: str) -> bytes:
        """A file of the version's model folder, through the server's artifact proxy, streamed and refused
        (OverLimit) once it passes ``max_bytes``. The folder and the name are relative paths inside it."""
        folder = self._folder(version)
        name = relative_path(name, "file")
        what = f"{name} of {version.model} v{version.version}"
        response = self._request(f"{ARTIFACTS}/{quote(folder)}/{quote(name)}", {}, self.max_bytes, what)
        if response.status == 404:
            raise Unimportable(f"its model folder has no {name}")
        if not response.ok:
            raise MlflowError(f"MLflow answered {response.status} reading {what}: {_message(response)}")
        return response.content

    def _folder(self, version: SourceVersion) -> str:
        """The version's model folder in the artifact proxy: a relative path, never one that climbs out."""
        location = version.location
        parts = urlsplit(location)
        if parts.scheme != "mlflow-artifacts":
            raise Unimportable(
                f"its files are at {location}, which the tracking server does not serve: start it with "
                "--serve-artifacts, or import from the mlruns/ folder"
            )
        if parts.query or parts.fragment:
            raise Unimportable(f"its model folder {location!r} is not a path in the tracking server's artifacts")
        return relative_path(unquote(parts.path).strip("/"), "model folder")

    def _version(self, item: dict) -> SourceVersion:
        name, number = item["name"], int(item["version"])
        location = self._get(f"{API}/model-versions/get-download-uri", {"name": name, "version": str(number)})
        return SourceVersion(
            model=name, version=number, location=location.get("artifact_uri") or item.get("source", ""),
            run_id=item.get("run_id") or None, description=item.get("description") or "",
            tags={tag["key"]: tag["value"] for tag in item.get("tags") or []},
            stage=item.get("current_stage") or "None", status=item.get("status") or "READY",
            created_ms=item.get("creation_timestamp"),
        )

    def _pages(self, path: str, params: dict, key: str) -> list[dict]:
        items, token = [], None
        while True:
            body = self._get(path, {**params, "max_results": PAGE, **({"page_token": token} if token else {})})
            items.extend(body.get(key) or [])
            token = body.get("next_page_token")
            if not token:
                return items

    def _get(self, path: str, params: dict) -> dict:
        response = self._request(path, params)
        if response.status == 404:
            raise MlflowError(f"MLflow at {self.uri}: {_message(response)}")
        return _body(response, path)

    def _request(self, path: str, params: dict, limit: int = MAX_ANSWER_BYTES, what: str = "") -> Reply:
        """GET ``path``, its body streamed and refused (OverLimit) past ``limit`` bytes."""
        try:
            with self._session.get(self.uri + path, params=params, timeout=TIMEOUT, stream=True) as response:
                what = what or f"MLflow's answer to {path}"
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise over_limit(what, limit)
                content = read_capped(response.iter_content(CHUNK), limit, what)
                return Reply(response.status_code, response.reason or "", content)
        except requests.RequestException as exc:
            raise MlflowError(f"cannot reach MLflow at {self.uri}: {connection_failure(exc)}") from exc


def _model(item: dict) -> SourceModel:
    return SourceModel(
        name=item["name"], description=item.get("description") or "",
        tags={tag["key"]: tag["value"] for tag in item.get("tags") or []},
        aliases={alias["alias"]: int(alias["version"]) for alias in item.get("aliases") or []},
    )


def _body(response: Reply, what: str) -> dict:
    if response.status in (401, 403):
        raise MlflowError(f"MLflow refused the credentials ({response.status}): set MLFLOW_TRACKING_TOKEN, "
                                "or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    body = _json(response)
    if not response.ok or not isinstance(body, dict):
        raise MlflowError(f"MLflow answered {response.status} to {what}: {_message(response)}; "
                                "is --tracking-uri an MLflow tracking server?")
    return body


def _json(response: Reply):
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _message(response: Reply) -> str:
    body = _json(response)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:500] if message else f"{response.status} {response.reason}"


def _quoted(name: str) -> str:
    """A name inside a single-quoted MLflow filter string."""
    return name.replace("\\", "\\\\").replace("'", "\\'")
