"""The agreement gate on rows no caller chose: both arms of a rollout score the rows kept of a
version's drift reference (or its input example), so that the live mirrored rows, which callers
choose, cannot alone carry the gate. Worked out once per pair of versions and rows in a process."""
from __future__ import annotations

import hashlib
import json

import numpy as np
from sqlalchemy import select

from registry.autopilot import gates
from registry.db import db, end_read
from registry.errors import InvalidInput
from registry.facts import VersionInfo
from registry.serving.inputs import rows_from_json
from registry.serving.running import run_model
from registry.serving.runtime import Runtime
from registry.serving.shadow import compare
from registry.tables import ModelVersion, RegisteredModel

# Answers already worked out, by (model, versions, rows' digest, settings); cleared when full.
_ANSWERS: dict[tuple, gates.Verdict | None] = {}
_ANSWERS_MAX = 256


def reference_agreement(runtime: Runtime, *, model: str, canary_version: int, primary_version: int, task: str,
                        rows: tuple[list, ...], settings: dict | None) -> gates.Verdict | None:
    """Both versions scored on ``rows``, judged as the agreement gate (``settings``) judges mirrored
    rows; None without an agreement gate, without rows, or when the rows do not fit a version."""
    if not settings or not rows:
        return None
    digest = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()
    key = (model, canary_version, primary_version, digest, json.dumps(settings, sort_keys=True))
    if key not in _ANSWERS:
        if len(_ANSWERS) >= _ANSWERS_MAX:
            _ANSWERS.clear()
        _ANSWERS[key] = _scored(runtime, model, (canary_version, primary_version), task, list(rows), settings)
    return _ANSWERS[key]


def _scored(runtime: Runtime, model: str, versions: tuple[int, int], task: str, rows: list,
            settings: dict) -> gates.Verdict | None:
    infos = [VersionInfo.of(_version(model, number)) for number in versions]
    end_read()  # loading may take a while: hold no snapshot meanwhile
    answers = []
    for info in infos:
        servable = runtime.models.load(info)
        try:
            parsed = rows_from_json({"instances": rows}, servable.signature, len(rows))
        except InvalidInput:  # a forced canary whose signature the rows do not fit: the live rows alone judge
            return None
        answers.append(run_model(servable, parsed, False).predictions)
    canary, primary = answers
    agreed, diffs = compare(task, primary, canary)
    if "min" in settings:
        return gates.agreement(agreed, len(rows), minimum=settings["min"], min_rows=1)
    array = np.asarray(diffs, dtype=float)
    return gates.mean_difference(float(array.sum()), float((array ** 2).sum()), len(rows),
                                 maximum=settings["max_mean_abs_diff"], min_rows=1)


def _version(model: str, number: int) -> ModelVersion:
    return db.session.execute(
        select(ModelVersion).join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(RegisteredModel.name == model, ModelVersion.number == number)).scalar_one()
