"""Comparing versions of one model side by side: metrics, params, signature and lineage."""
from dataclasses import dataclass

from registry.errors import InvalidInput
from registry.lookups import find_model, find_version
from registry.tables import ModelVersion

MAX_COMPARED = 8


@dataclass(frozen=True)
class Difference:
    """One key whose value is not the same in every compared version (values in version order)."""

    key: str
    values: list


@dataclass(frozen=True)
class Comparison:
    """Versions of one model, and where they differ."""

    model: str
    versions: list[ModelVersion]
    metric_names: list[str]
    params: list[Difference]
    signature: list[Difference]
    lineage: list[Difference]
    kinds: list[Difference]


def compare_versions(name: str, numbers: list[int]) -> Comparison:
    """Two to eight versions of ``name`` with their metrics and every difference between them."""
    unique = list(dict.fromkeys(numbers))
    if not 2 <= len(unique) <= MAX_COMPARED:
        raise InvalidInput(f"compare between 2 and {MAX_COMPARED} different versions; got {len(unique)}")
    model = find_model(name)
    versions = [find_version(model, number) for number in unique]
    return Comparison(
        model=name,
        versions=versions,
        metric_names=sorted({key for v in versions for key in v.metrics}),
        params=differences([v.params for v in versions]),
        signature=differences([_signature_facts(v) for v in versions]),
        lineage=differences([v.lineage for v in versions]),
        kinds=differences([_model_facts(v) for v in versions]),
    )


def differences(mappings: list[dict]) -> list[Difference]:
    """The keys (sorted) whose values are not all equal across ``mappings``; absent keys are None."""
    keys = sorted({key for mapping in mappings for key in mapping})
    found = []
    for key in keys:
        values = [mapping.get(key) for mapping in mappings]
        if any(value != values[0] for value in values[1:]):
            found.append(Difference(key, values))
    return found


def _signature_facts(version: ModelVersion) -> dict:
    features = version.signature.get("features", [])
    facts = {f"feature {f['name']}": f["dtype"] for f in features}
    facts["feature order"] = ", ".join(f["name"] for f in features)
    facts["classes"] = version.signature.get("classes")
    return facts


def _model_facts(version: ModelVersion) -> dict:
    return {
        "kind": version.kind,
        "task": version.task,
        "estimator": version.estimator,
        "steps": ", ".join(version.steps or []),
        "scikit-learn": version.sklearn_version,
    }
