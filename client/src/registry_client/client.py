"""RegistryClient: one typed method per route a script needs (docs/python-client.md)."""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry_client import batch, engines
from registry_client.errors import RegistryError
from registry_client.records import (
    ApprovalRequest,
    BatchRun,
    Evaluation,
    Event,
    FeedbackResult,
    Inference,
    Model,
    Move,
    NewToken,
    NewWebhook,
    Policy,
    Prediction,
    Rollout,
    Token,
    Version,
    Webhook,
)
from registry_client.transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT, Transport, body_of, path

URL_VARIABLE = "REGISTRY_URL"
TOKEN_VARIABLE = "REGISTRY_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_ALIAS = "production"
PER_PAGE = 500
CHUNK_BYTES = 1 << 16


class RegistryClient:
    """A client of one registry.

    ``url`` defaults to ``$REGISTRY_URL`` (else ``http://127.0.0.1:8000``) and ``token`` to
    ``$REGISTRY_TOKEN`` (reads and predictions need none unless the registry requires it). Every
    request waits at most ``timeout`` seconds; a 503 or 429 is tried again up to ``retries`` times
    after the ``Retry-After`` the registry names. Every failure raises
    :class:`~registry_client.RegistryError` (its ``status`` and ``problem`` say what the registry
    answered).
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES):
        url = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
        token = token if token is not None else (os.environ.get(TOKEN_VARIABLE, "").strip() or None)
        self._http = Transport(url, token, timeout, retries)

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return self._http.base_url

    # Models

    def models(self) -> Iterator[Model]:
        """Every registered model, by name (pages are fetched as the iteration goes)."""
        for item in self._pages(path("models")):
            yield Model.from_json(item)

    def model(self, name: str) -> Model:
        """One model with its alias map and version count."""
        return Model.from_json(self._http.json("GET", path("models", name)))

    def find_model(self, name: str) -> Model | None:
        """Like :meth:`model`, but None when there is no such model."""
        response = self._http.send("GET", path("models", name), allow=(404,))
        return None if response.status_code == 404 else Model.from_json(body_of(response))

    def update_model(self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None,
                     prediction_log_sample: float | None = None, prediction_log: dict | None = None,
                     reason: str = "") -> Model:
        """Change a model's description, tags (replaced whole) or prediction log (admin): its share
        (``prediction_log_sample``), or any of ``prediction_log``'s ``sample``, ``max_mb`` and ``explain``;
        ``reason`` kept in the ledger's ``model_update`` entry."""
        body = _given(description=description, tags=tags, reason=reason or None)
        if prediction_log_sample is not None or prediction_log is not None:
            body["prediction_log"] = {**(prediction_log or {}), **_given(sample=prediction_log_sample)}
        return Model.from_json(self._http.json("PATCH", path("models", name), json=body))

    # Versions

    def upload(self, model: str, artifact: str | Path | bytes | Any, *, description: str | None = None,
               intended_use: str | None = None, limitations: str | None = None,
               metrics: dict[str, float] | None = None, params: dict | None = None, tags: dict[str, str] | None = None,
               lineage: dict | None = None, feature_names: list[str] | None = None,
               input_example: list | None = None, classes: list | None = None,
               filename: str | None = None) -> Version:
        """Upload a version: ``artifact`` is a file's path, its bytes, or a fitted estimator (sent as its
        joblib file: that needs joblib installed where the client runs).

        ``classes`` name an XGBoost or LightGBM classifier's classes in the model's order (its file holds
        only their numbers: it answers ``0 … k-1`` without them); a scikit-learn model's are its own.
        Sending bytes the model already holds answers the existing version (safe to retry).
        """
        content, name = _artifact_bytes(artifact, filename, model)
        metadata = _given(description=description, intended_use=intended_use, limitations=limitations,
                          metrics=metrics, params=params, tags=tags, lineage=lineage, feature_names=feature_names,
                          input_example=input_example, classes=_plain(classes) if classes is not None else None)
        files = {"artifact": (name, content, "application/octet-stream")}
        body = self._http.json("POST", path("models", model, "versions"), files=files,
                               data={"metadata": json.dumps(metadata)})
        return Version.from_json(body)

    def versions(self, model: str, *, include_archived: bool = False, sort: str | None = None) -> Iterator[Version]:
        """Every version of a model, newest first (or by ``sort``, e.g. ``"-metrics.r2"``)."""
        params = {"include_archived": str(include_archived).lower(), **_given(sort=sort)}
        for item in self._pages(path("models", model, "versions"), params):
            yield Version.from_json(item)

    def version(self, model: str, ref: int | str) -> Version:
        """The version a number or alias names (RegistryError 404 when there is none)."""
        return Version.from_json(self._http.json("GET", path("models", model, "versions", ref)))

    def find_version(self, model: str, ref: int | str) -> Version | None:
        """Like :meth:`version`, but None when the model, version or alias does not exist."""
        response = self._http.send("GET", path("models", model, "versions", ref), allow=(404,))
        return None if response.status_code == 404 else Version.from_json(body_of(response))

    def update_version(self, model: str, version: int, *, description: str | None = None,
                       tags: dict[str, str] | None = None, intended_use: str | None = None,
                       limitations: str | None = None, classes: list | None = None, reason: str = "") -> Version:
        """Change a version's description, tags (replaced whole) or model card (``intended_use``,
        ``limitations``), or name an XGBoost or LightGBM classifier's ``classes`` while it answers
        ``0 … k-1`` (once: names given stay); its metrics and lineage stay. ``reason`` is kept in the ledger's
        ``card_update`` (and ``classes``) entries."""
        body = _given(description=description, tags=tags, intended_use=intended_use, limitations=limitations,
                      classes=_plain(classes) if classes is not None else None, reason=reason or None)
        return Version.from_json(self._http.json("PATCH", path("models", model, "versions", version), json=body))

    def archive(self, model: str, version: int) -> Version:
        """Archive a version (admin): it stops being served; its number is never reused."""
        return Version.from_json(self._http.json("DELETE", path("models", model, "versions", version)))

    def download(self, model: str, ref: int | str, *, progress: Callable[[int, int | None], None] | None = None) -> bytes:
        """The artifact of a version, checked against its sha256; ``progress(received, size)`` is called
        after every chunk (``size`` is None when the registry did not say it)."""
        version = self.version(model, ref)
        response = self._http.send("GET", path("models", model, "versions", version.version, "artifact"), stream=True)
        size = int(response.headers.get("Content-Length", 0)) or None
        content = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            content += chunk
            if progress is not None:
                progress(len(content), size)
        if hashlib.sha256(content).hexdigest() != version.sha256:
            raise RegistryError(f"the artifact of v{version.version} does not match its sha256", response.status_code)
        return bytes(content)

    # Aliases

    def aliases(self, model: str) -> dict[str, int]:
        """The model's alias map, ``{"production": 3, …}``."""
        return self._http.json("GET", path("models", model, "aliases"))

    def promote(self, model: str, version: int, alias: str = DEFAULT_ALIAS, reason: str = "",
                force: bool = False) -> Move:
        """Point ``alias`` at ``version`` once it has loaded and answered its input example."""
        body = {"alias": alias, "reason": reason, "force": force}
        return Move.from_json(self._http.json("POST", path("models", model, "versions", version, "promote"), json=body))

    def rollback(self, model: str, alias: str = DEFAULT_ALIAS, to_version: int | None = None,
                 reason: str = "") -> Move:
        """Undo the alias's latest promote (or jump back to ``to_version``, a version it held before)."""
        body = {"alias": alias, "to_version": to_version, "reason": reason}
        return Move.from_json(self._http.json("POST", path("models", model, "rollback"), json=body))

    def delete_alias(self, model: str, alias: str, reason: str = "") -> None:
        """Remove an alias (recorded in the history, with ``reason``)."""
        self._http.send("DELETE", path("models", model, "aliases", alias), params={"reason": reason})

    def history(self, model: str, alias: str | None = None) -> Iterator[Event]:
        """The model's history, newest first; only ``alias``'s events when given."""
        for item in self._pages(path("models", model, "history"), _given(alias=alias)):
            yield Event.from_json(item)

    # Protected aliases (docs/governance.md)

    def set_policy(self, model: str, alias: str, policy: dict, reason: str = "") -> Policy:
        """Protect ``alias`` with ``policy`` (``movers``, ``approvals``, ``require``, ``freeze``,
        ``request_hours``), or replace its policy (admin). A move it refuses raises a RegistryError
        of status 409 whose ``problem["missing"]`` lists each unmet rule."""
        return Policy.from_json(self._http.json("PUT", _protected(model, alias, "policy"),
                                                json={**policy, "reason": reason}))

    def policy(self, model: str, alias: str) -> Policy | None:
        """The alias's policy; None when it is not protected (a RegistryError of 404 when there is no such model)."""
        response = self._http.send("GET", _protected(model, alias, "policy"), allow=(404,))
        if response.status_code == 404:
            self.model(model)  # raises when the model is what is missing
            return None
        return Policy.from_json(body_of(response))

    def policies(self, model: str) -> Iterator[Policy]:
        """Every policy of the model's aliases, by alias name (only its protected aliases)."""
        for item in self._pages(path("models", model, "policies"), {}):
            yield Policy.from_json(item)

    def delete_policy(self, model: str, alias: str, reason: str = "") -> None:
        """Lift the alias's policy (admin)."""
        self._http.send("DELETE", _protected(model, alias, "policy"), params={"reason": reason})

    def request_approval(self, model: str, alias: str, version: int, reason: str = "",
                         rollout: dict | None = None) -> ApprovalRequest:
        """Ask for ``alias`` to point at ``version``, or with ``rollout`` (``{"plan": …}`` or ``{"percent": …}``,
        and ``sticky_header``) for a canary of it that the last approval starts; others than the requester and
        the uploader approve."""
        body = {"version": version, "reason": reason, **_given(rollout=rollout)}
        return ApprovalRequest.from_json(self._http.json("POST", _protected(model, alias, "requests"), json=body))

    def approval_requests(self, model: str, alias: str, state: str | None = None) -> Iterator[ApprovalRequest]:
        """The alias's approval requests, newest first; ``state`` (open, done, rejected, expired) filters."""
        for item in self._pages(_protected(model, alias, "requests"), _given(state=state)):
            yield ApprovalRequest.from_json(item)

    def approval_request(self, model: str, alias: str, request_id: int) -> ApprovalRequest:
        """One request: its approvals, and what its move still lacks."""
        return ApprovalRequest.from_json(self._http.json("GET", _protected(model, alias, "requests", request_id)))

    def approve(self, model: str, alias: str, request_id: int, reason: str = "") -> ApprovalRequest:
        """Approve a request; the approval that completes it moves the alias (``state`` is then ``done``)."""
        return ApprovalRequest.from_json(self._http.json("POST", _protected(model, alias, "requests", request_id, "approve"),
                                                         json={"reason": reason}))

    def reject(self, model: str, alias: str, request_id: int, reason: str) -> ApprovalRequest:
        """Reject a request, with a reason (its requester may withdraw it so)."""
        return ApprovalRequest.from_json(self._http.json("POST", _protected(model, alias, "requests", request_id, "reject"),
                                                         json={"reason": reason}))

    def break_glass(self, model: str, alias: str, version: int, reason: str, force: bool = False) -> Move:
        """Move a protected alias past its policy in an emergency (admin, with a reason): loud in the
        history, the webhooks and the dashboard."""
        body = {"version": version, "reason": reason, "force": force}
        return Move.from_json(self._http.json("POST", _protected(model, alias, "break-glass"), json=body))

    # Rollouts

    def start_rollout(self, model: str, alias: str = DEFAULT_ALIAS, *, canary: dict | None = None,
                      shadow: dict | None = None, plan: dict | None = None, sticky_header: str | None = None,
                      reason: str = "", force: bool = False) -> Rollout:
        """Start (or change) a rollout: ``canary={"version": 4, "percent": 10}`` and/or ``shadow``; with
        ``plan`` (canary ``{"version"}`` only) the registry walks it through the plan's steps by itself."""
        body = {"reason": reason, "force": force,
                **_given(canary=canary, shadow=shadow, plan=plan, sticky_header=sticky_header)}
        return Rollout.from_json(self._http.json("PUT", _rollout(model, alias), json=body))

    def rollout(self, model: str, alias: str = DEFAULT_ALIAS) -> Rollout | None:
        """The alias's rollout with its live figures, or None when none is active."""
        response = self._http.send("GET", _rollout(model, alias), allow=(404,))
        return None if response.status_code == 404 else Rollout.from_json(body_of(response))

    def complete_rollout(self, model: str, alias: str = DEFAULT_ALIAS, reason: str = "") -> Move:
        """Promote the canary to the alias and end the rollout."""
        return Move.from_json(self._http.json("POST", _rollout(model, alias, "promote"), json={"reason": reason}))

    def abort_rollout(self, model: str, alias: str = DEFAULT_ALIAS, reason: str = "") -> None:
        """Send all of the alias's traffic back to its primary version."""
        self._http.send("DELETE", _rollout(model, alias), json={"reason": reason})

    def pause_rollout(self, model: str, alias: str = DEFAULT_ALIAS, reason: str = "") -> Rollout:
        """Hold a planned rollout at its step."""
        return Rollout.from_json(self._http.json("POST", _rollout(model, alias, "pause"), json={"reason": reason}))

    def resume_rollout(self, model: str, alias: str = DEFAULT_ALIAS, reason: str = "") -> Rollout:
        """Let a paused or halted planned rollout walk on."""
        return Rollout.from_json(self._http.json("POST", _rollout(model, alias, "resume"), json={"reason": reason}))

    def advance_rollout(self, model: str, alias: str = DEFAULT_ALIAS, reason: str = "") -> Rollout:
        """Move a planned rollout to its next step now, whatever its gates say."""
        return Rollout.from_json(self._http.json("POST", _rollout(model, alias, "advance"), json={"reason": reason}))

    # Evaluations and monitoring

    def record_evaluation(self, model: str, version: int, dataset: dict, metrics: dict[str, float],
                          note: str = "") -> Evaluation:
        """Record ``version``'s ``metrics`` on ``dataset`` (``{"name", "sha256", "rows"}``)."""
        body = {"dataset": dataset, "metrics": metrics, "note": note}
        return Evaluation.from_json(
            self._http.json("POST", path("models", model, "versions", version, "evaluations"), json=body))

    def evaluations(self, model: str, version: int) -> Iterator[Evaluation]:
        """A version's evaluations, newest first."""
        for item in self._pages(path("models", model, "versions", version, "evaluations")):
            yield Evaluation.from_json(item)

    def dataset_evaluations(self, model: str, dataset_sha256: str, sort: str | None = None) -> Iterator[Evaluation]:
        """Every version of ``model`` scored on one dataset (``sort`` e.g. ``"-metrics.r2"``)."""
        params = {"dataset": dataset_sha256, **_given(sort=sort)}
        for item in self._pages(path("models", model, "evaluations"), params):
            yield Evaluation.from_json(item)

    def set_reference(self, model: str, version: int, source: str, rows: Any) -> dict:
        """The rows ``version`` was trained or evaluated on (``source``; up to 10,000, in any shape
        :meth:`predict` takes): the registry judges its drift against them."""
        body = {"source": source, **_instances(rows)}
        return self._http.json("PUT", path("models", model, "versions", version, "reference"), json=body)

    def send_feedback(self, model: str, labels: dict[str, Any]) -> FeedbackResult:
        """The true labels of logged predictions, by request id."""
        items = [{"request_id": request_id, "label": label} for request_id, label in labels.items()]
        return FeedbackResult.from_json(self._http.json("POST", path("models", model, "feedback"), json={"items": items}))

    def monitoring(self, model: str, version: int) -> dict:
        """A version's live quality and drift over the recent window, as answered."""
        return self._http.json("GET", path("models", model, "versions", version, "monitoring"))

    # Predictions

    # Batch scoring (docs/batch-scoring.md): needs the ``batch`` extra, and dask or pyspark for their engines

    def plan_batch(self, model: str, ref: int | str = DEFAULT_ALIAS, *, cache_dir: str | None = None) -> batch.Plan:
        """Resolve ``ref`` now, once: every partition of a job scored with this plan uses that version
        (each machine keeps the artifact in ``cache_dir``, else ``$REGISTRY_CACHE_DIR``, else ~/.cache)."""
        return batch.plan(self._http, model, ref, cache_dir=cache_dir)

    def predict_dask(self, ddf: Any, model: str, ref: int | str | batch.Plan = DEFAULT_ALIAS, *,
                     proba: bool = False, keep: list[str] | None = None) -> Any:
        """``ddf`` (a Dask DataFrame) with its scores beside it (``keep``: only those of its columns named):
        ``prediction``, a ``probability_<class>`` per class with ``proba``, and ``model_version``; lazy, over
        ``map_partitions``."""
        return engines.dask_scores(ddf, self._planned(model, ref), proba=proba, keep=keep)

    def spark_udf(self, spark: Any, model: str, ref: int | str | batch.Plan = DEFAULT_ALIAS, *,
                  proba: bool = False) -> Any:
        """A Spark column of each row's score by the version ``ref`` names now (with ``proba``, a struct of
        ``prediction`` and ``probabilities``); its metadata names the version: ``df.withColumn("score", …)``."""
        return engines.spark_column(spark, self._planned(model, ref), proba=proba)

    def predict_spark(self, df: Any, model: str, ref: int | str | batch.Plan = DEFAULT_ALIAS, *,
                      proba: bool = False, keep: list[str] | None = None) -> Any:
        """``df`` (a Spark DataFrame) with its scores after its columns (``keep``: only those named), as
        :meth:`predict_dask` gives them, over ``mapInArrow``: the cheaper way for a frame of little more than
        the features (see :func:`~registry_client.engines.spark_scores`)."""
        return engines.spark_scores(df, self._planned(model, ref), proba=proba, keep=keep)

    def record_batch_run(self, job: batch.Plan, *, engine: str, inputs: list[str], outputs: list[str], rows: int,
                         status: str, started_at: datetime, finished_at: datetime, detail: str = "") -> BatchRun:
        """Record a finished job scored by ``job``'s version (ci or admin)."""
        body = {"alias": job.alias, "engine": engine, "inputs": inputs, "outputs": outputs, "rows": rows,
                "status": status, "detail": detail[:2000], "started_at": _iso(started_at),
                "finished_at": _iso(finished_at)}
        return BatchRun.from_json(
            self._http.json("POST", path("models", job.model, "versions", job.version, "batch-runs"), json=body))

    def batch_runs(self, model: str, ref: int | str) -> Iterator[BatchRun]:
        """A version's batch runs, newest first."""
        for item in self._pages(path("models", model, "versions", ref, "batch-runs")):
            yield BatchRun.from_json(item)

    def _planned(self, model: str, ref: int | str | batch.Plan) -> batch.Plan:
        return ref if isinstance(ref, batch.Plan) else self.plan_batch(model, ref)

    def predict(self, model: str, rows: Any, ref: int | str = DEFAULT_ALIAS, *, proba: bool = False,
                explain: bool | str = False, request_id: str | None = None) -> Prediction:
        """Predict ``rows`` with a version or alias: a pandas DataFrame (by column name), a list of
        dicts (by feature name) or a list of lists (in signature order). ``explain``: each row's
        attributions per input column too (``Prediction.explanations``; at most MAX_EXPLAIN_ROWS rows),
        ``True`` in the version's own space, or a space's name (``"margin"``) to be refused in any other."""
        asked = {"explain": {"space": explain} if isinstance(explain, str) else True} if explain else {}
        body = {**_instances(rows), **({"return_proba": True} if proba else {}), **asked}
        headers = {"X-Request-ID": request_id} if request_id else {}
        response = self._http.send("POST", path("models", model, ref, "predict"), json=body, headers=headers)
        return Prediction.from_json({**body_of(response), "request_id": response.headers.get("X-Request-ID"),
                                     "route": response.headers.get("X-Model-Route")})

    def infer(self, model: str, rows: Any, version: int | str | None = None, *,
              outputs: list[str] | None = None) -> Inference:
        """An Open Inference Protocol (V2) call: a DataFrame is sent as one tensor per column (as
        MLServer's pandas codec does), a list of lists as one FP64 tensor; ``outputs`` e.g. ``["predict_proba"]``."""
        parts = ["v2", "models", model] + (["versions", version] if version is not None else []) + ["infer"]
        body = {"inputs": _tensors(rows), **({"outputs": [{"name": name} for name in outputs]} if outputs else {})}
        return Inference.from_json(self._http.json("POST", path(*parts), json=body))

    # Tokens

    def create_token(self, name: str, role: str, *, owner: str | None = None, scopes: list[dict] | None = None,
                     reason: str = "") -> NewToken:
        """A new API token (admin) of ``owner`` (default: its name), limited to ``scopes`` when given (each
        ``{"models": [...], "rights": [...]}``), ``reason`` kept in the ledger; its secret is only in this answer."""
        body = {"name": name, "role": role, **_given(owner=owner, scopes=scopes, reason=reason or None)}
        return NewToken.from_json(self._http.json("POST", path("tokens"), json=body))

    def tokens(self) -> Iterator[Token]:
        """Every token's name, role and times (admin)."""
        for item in self._pages(path("tokens")):
            yield Token.from_json(item)

    def revoke_token(self, name: str, reason: str = "") -> None:
        """Revoke a token (admin), ``reason`` kept in the ledger: it stops working at once everywhere."""
        self._http.send("DELETE", path("tokens", name), params={"reason": reason} if reason else None)

    # Webhooks (docs/webhooks.md)

    def webhooks(self) -> Iterator[Webhook]:
        """Every webhook subscription, oldest first, without its secret (admin)."""
        for item in self._pages(path("webhooks")):
            yield Webhook.from_json(item)

    def create_webhook(self, url: str, events: list[str], description: str = "", secret: str | None = None,
                       reason: str = "") -> NewWebhook:
        """Subscribe ``url`` to ``events`` (or ``["*"]``) (admin), signed with ``secret`` (``whsec_…``) or else
        one the registry makes, ``reason`` kept in the ledger; the signing secret is only in this answer."""
        body = {"url": url, "events": events, "description": description, **_given(secret=secret, reason=reason or None)}
        return NewWebhook.from_json(self._http.json("POST", path("webhooks"), json=body))

    def update_webhook(self, webhook_id: int, *, url: str | None = None, events: list[str] | None = None,
                       description: str | None = None, active: bool | None = None, reason: str = "") -> Webhook:
        """Change a subscription's url, events, description or active flag (admin), ``reason`` kept in the ledger."""
        body = _given(url=url, events=events, description=description, active=active, reason=reason or None)
        return Webhook.from_json(self._http.json("PATCH", path("webhooks", webhook_id), json=body))

    def delete_webhook(self, webhook_id: int, reason: str = "") -> None:
        """Remove a subscription and its delivery log (admin), ``reason`` kept in the ledger."""
        self._http.send("DELETE", path("webhooks", webhook_id), params={"reason": reason} if reason else None)

    def _pages(self, url_path: str, params: dict | None = None) -> Iterator[dict]:
        page = 1
        while True:
            body = self._http.json("GET", url_path, params={**(params or {}), "page": page, "per_page": PER_PAGE})
            yield from body["items"]
            if page * body["per_page"] >= body["total"] or not body["items"]:
                return
            page += 1


def _given(**values) -> dict:
    """The keyword arguments that are not None."""
    return {name: value for name, value in values.items() if value is not None}


def _protected(model: str, alias: str, *parts: str | int) -> str:
    return path("models", model, "aliases", alias, *parts)


def _rollout(model: str, alias: str, *action: str) -> str:
    return path("models", model, "aliases", alias, "rollout", *action)


def _artifact_bytes(artifact, filename: str | None, model: str) -> tuple[bytes, str]:
    if isinstance(artifact, bytes):
        return artifact, filename or f"{model}.joblib"
    if isinstance(artifact, (str, Path)):
        file = Path(artifact)
        return file.read_bytes(), filename or file.name
    try:
        import joblib
    except ImportError:
        raise TypeError("an estimator is sent as its joblib file, and joblib is not installed here: "
                        "install it, or pass the file's path or bytes") from None
    buffer = io.BytesIO()
    joblib.dump(artifact, buffer)
    return buffer.getvalue(), filename or f"{model}.joblib"


def _instances(rows) -> dict:
    if _is_frame(rows):
        return {"dataframe_split": _split(rows)}
    return {"instances": _plain(rows)}


def _tensors(rows) -> list[dict]:
    if _is_frame(rows):
        split = _split(rows)
        tensors = []
        for index, column in enumerate(split["columns"]):
            data = [row[index] for row in split["data"]]
            datatype = "BYTES" if any(isinstance(value, str) for value in data) else "FP64"
            tensors.append({"name": column, "shape": [len(data), 1], "datatype": datatype, "data": data})
        return tensors
    matrix = _plain(rows)
    width = len(matrix[0]) if matrix else 0
    return [{"name": "input-0", "shape": [len(matrix), width], "datatype": "FP64", "data": matrix}]


def _is_frame(rows) -> bool:
    return hasattr(rows, "itertuples") and hasattr(rows, "columns")


def _split(frame) -> dict:
    """A DataFrame as ``{"columns", "data"}`` with every float exact (``to_json`` keeps only 10 digits)."""
    data = [[_scalar(value) for value in row] for row in frame.itertuples(index=False, name=None)]
    return {"columns": [str(column) for column in frame.columns], "data": data}


def _scalar(value):
    """A cell as JSON: numpy scalars as Python ones, NaN, NA and NaT as null."""
    import pandas as pd  # a frame was passed: pandas is there

    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _plain(rows) -> list:
    """Rows as JSON-ready lists (numpy arrays and scalars included)."""
    return rows.tolist() if hasattr(rows, "tolist") else [row.tolist() if hasattr(row, "tolist") else row for row in rows]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
