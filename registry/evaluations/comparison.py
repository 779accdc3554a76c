"""Comparing versions of one model side by side: metrics, params, signature and lineage."""
from dataclasses import dataclass

from registry.errors import InvalidInput
from registry.lookups import find_model, find_version
from registry.tables import ModelVersion

MAX_COMPARED = 8
# Metrics where a smaller value is the better one: errors and losses, by the words their names use.
LOWER_IS_BETTER_WORDS = ("loss", "error", "mae", "mse", "rmse", "mape", "brier", "deviance")


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
        params=differences([flat(v.params) for v in versions]),
        signature=differences([_signature_facts(v) for v in versions]),
        lineage=differences([flat(v.lineage) for v in versions]),
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


def flat(mapping: dict, prefix: str = "") -> dict:
    """A nested mapping as one level with dotted keys (``{"mlflow": {"run_id": …}}`` → ``mlflow.run_id``)."""
    found = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            found.update(flat(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (errors, losses); scores such as r2 and accuracy are not."""
    words = metric.lower().replace("-", "_").split("_")
    return any(word in LOWER_IS_BETTER_WORDS for word in words) or metric.lower().endswith("loss")


def best_values(rows: list[dict], metric_names: list[str]) -> dict[str, float]:
    """The best value of each metric among ``rows`` (each a version's metrics), by the metric's direction."""
    best = {}
    for name in metric_names:
        values = [row[name] for row in rows if isinstance(row.get(name), (int, float)) and not isinstance(row.get(name), bool)]
        if values:
            best[name] = min(values) if lower_is_better(name) else max(values)
    return best


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
