"""A small HTTP client of the registry API (see API.md), with one-line errors for every failure."""
from __future__ import annotations

import hashlib
import json
import socket
from urllib.parse import quote

import pandas as pd
import requests

from trainers import progress
from trainers.errors import RegistryRequestFailed, RegistryUnreachable, TokenRejected

DEFAULT_TIMEOUT = 60.0
CHUNK_BYTES = 1 << 16


class RegistryClient:
    """Calls the registry at ``base_url`` with a bearer token (when given)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def get_version(self, model: str, ref: str | int) -> dict | None:
        """The version a number or alias names, or None when the model or alias does not exist."""
        response = self._send("GET", _path(model, "versions", ref))
        if response.status_code == 404:
            return None
        return _json(self._checked(response))

    def download_artifact(self, model: str, version: dict) -> bytes:
        """The artifact of a version (from :meth:`get_version`), checked against its sha256."""
        path = _path(model, "versions", version["version"], "artifact")
        response = self._checked(self._send("GET", path, stream=True))
        size = int(response.headers.get("Content-Length", 0)) or None
        chunks = []
        with progress.transfer(size, f"download v{version['version']}") as bar:
            for chunk in response.iter_content(CHUNK_BYTES):
                chunks.append(chunk)
                bar.update(len(chunk))
        content = b"".join(chunks)
        expected = version.get("sha256")
        if expected and hashlib.sha256(content).hexdigest() != expected:
            raise RegistryRequestFailed(
                response.status_code,
                f"the artifact of v{version['version']} does not match its sha256",
            )
        return content

    def upload_version(self, model: str, artifact: bytes, metadata: dict, filename: str) -> dict:
        """Upload an artifact with its metadata; returns the new version (or the existing one
        when the registry already holds these bytes)."""
        files = {"artifact": (filename, artifact, "application/octet-stream")}
        data = {"metadata": json.dumps(metadata)}
        response = self._send("POST", _path(model, "versions"), files=files, data=data)
        return _json(self._checked(response))

    def promote(self, model: str, version: int, alias: str, reason: str) -> dict:
        """Point ``alias`` at ``version``, recording ``reason`` in the model's history."""
        body = {"alias": alias, "reason": reason}
        response = self._send("POST", _path(model, "versions", version, "promote"), json=body)
        return _json(self._checked(response))

    def record_evaluation(self, model: str, version: int, dataset: dict, metrics: dict, note: str) -> dict:
        """Record ``version``'s ``metrics`` on ``dataset`` (``{"name", "sha256", "rows"}``)."""
        body = {"dataset": dataset, "metrics": metrics, "note": note}
        response = self._send("POST", _path(model, "versions", version, "evaluations"), json=body)
        return _json(self._checked(response))

    def set_reference(self, model: str, version: int, source: str, rows: pd.DataFrame) -> dict:
        """Send the rows ``version`` was trained or evaluated on (``source``, up to 10,000 rows): the
        registry judges its drift against them."""
        split = json.loads(rows.to_json(orient="split", index=False))
        body = {"source": source, "dataframe_split": {"columns": [str(c) for c in split["columns"]], "data": split["data"]}}
        response = self._send("PUT", _path(model, "versions", version, "reference"), json=body)
        return _json(self._checked(response))

    def start_rollout(self, model: str, alias: str, canary: dict, reason: str, sticky_header: str | None = None,
                      plan: dict | None = None) -> dict:
        """Send ``canary`` (``{"version", "percent"}``) a share of ``alias``'s traffic; with ``plan``
        (canary ``{"version"}`` only) the registry walks it through the plan's steps by itself."""
        body = {"canary": canary, "reason": reason}
        if sticky_header:
            body["sticky_header"] = sticky_header
        if plan is not None:
            body["plan"] = plan
        response = self._send("PUT", _path(model, "aliases", alias, "rollout"), json=body)
        return _json(self._checked(response))

    def get_rollout(self, model: str, alias: str) -> dict | None:
        """The alias's rollout with its live figures, or None when none is active."""
        response = self._send("GET", _path(model, "aliases", alias, "rollout"))
        if response.status_code == 404:
            return None
        return _json(self._checked(response))

    def complete_rollout(self, model: str, alias: str, reason: str) -> dict:
        """Promote the canary to the alias and end the rollout."""
        response = self._send("POST", _path(model, "aliases", alias, "rollout", "promote"), json={"reason": reason})
        return _json(self._checked(response))

    def abort_rollout(self, model: str, alias: str, reason: str) -> None:
        """Send all of the alias's traffic back to its primary version."""
        self._checked(self._send("DELETE", _path(model, "aliases", alias, "rollout"), json={"reason": reason}))

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self._session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.Timeout as exc:
            raise RegistryUnreachable(
                f"the registry at {self.base_url} did not answer within {self.timeout:g} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise RegistryUnreachable(
                f"cannot reach the registry at {self.base_url}: {_connection_failure(exc)}"
            ) from exc

    def _checked(self, response: requests.Response) -> requests.Response:
        if response.ok:
            return response
        detail = _problem_detail(response)
        if response.status_code == 401:
            raise TokenRejected(f"token rejected by the registry (401): {detail}")
        if response.status_code == 403:
            raise TokenRejected(
                f"token rejected: it lacks the role for this operation (403): {detail}"
            )
        raise RegistryRequestFailed(response.status_code, detail)


def _json(response: requests.Response) -> dict:
    """The JSON object of a successful answer; anything else means --registry is not a registry."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RegistryRequestFailed(
            response.status_code, f"expected a JSON object from {response.url}; is it a registry?"
        )
    return body


def _path(model: str, *parts: str | int) -> str:
    return "/models/" + "/".join(quote(str(part), safe="") for part in (model, *parts))


def _problem_detail(response: requests.Response) -> str:
    """The ``detail`` (else ``title``) of a problem+json body, else the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("detail") or body.get("title")):
        return " ".join(str(body.get("detail") or body["title"]).split())
    return f"{response.status_code} {response.reason}"


def _connection_failure(exc: BaseException) -> str:
    """Name the cause of a connection error: refused, unknown host, or whatever the OS said."""
    seen = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused (is the server running?)"
        if isinstance(current, socket.gaierror):
            return "host name does not resolve"
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return "connection failed"
