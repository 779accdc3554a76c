"""Whether a version may take an alias's traffic: ready, loaded, scored, and compatible with what it serves.

Promote, rollback and rollouts admit versions by the same rules, in the same two halves: before
their transaction, :func:`admit` loads the version and scores it (slow, and nothing is locked);
inside it, under the model's lock, :func:`ready_version` checks it again, since another request
may have archived it meanwhile. The runtime serves the change once it commits.
"""
from registry.errors import InvalidInput, VersionArchived
from registry.facts import VersionInfo
from registry.lookups import find_version
from registry.serving.cache import ServableModel
from registry.serving.inputs import rows_from_records
from registry.serving.running import run_model
from registry.serving.server import ModelServer
from registry.tables import ModelVersion, RegisteredModel


def ready_version(model: RegisteredModel, number: int) -> ModelVersion:
    """Version ``number`` of ``model``; 404 when unknown, 410 when archived."""
    version = find_version(model, number)
    if version.status == "archived":
        raise VersionArchived(f"version {number} of {model.name!r} is archived and cannot serve")
    return version


def admit(models: ModelServer, version: ModelVersion, *, refused_as: str = "promoted") -> ServableModel:
    """Load a ready version and score it on its input example, before an alias may send it traffic."""
    servable = models.load(VersionInfo.of(version))
    smoke_test(servable, version.input_example, refused_as)
    return servable


def smoke_test(servable: ServableModel, input_example: list | None, refused_as: str = "promoted") -> None:
    """Predict on the stored input example (or a made-up row) before an alias may point here."""
    rows = input_example or [_made_up_row(servable)]
    try:
        run_model(servable, rows_from_records(rows, servable.signature, len(rows)), return_proba=False)
    except InvalidInput as exc:
        raise InvalidInput(
            f"version {servable.version} of {servable.model!r} failed its smoke test and was not {refused_as}: {exc.detail}"
        ) from None


def _made_up_row(servable: ServableModel) -> list:
    """For every encoded column a category the model was fitted on, else 0.0 (or "" for text).

    scikit-learn's encoders refuse unknown categories by default, so an arbitrary string would
    fail a version that serves real rows perfectly well.
    """
    known = servable.known_categories
    return [known.get(i, 0.0 if f.numeric else "") for i, f in enumerate(servable.signature.features)]


def incompatibilities(current: ModelVersion, candidate: ModelVersion) -> list[str]:
    """How a candidate's inputs or task differ from what the alias serves now (empty: none)."""
    problems = []
    if current.task != candidate.task:
        problems.append(f"task {candidate.task} vs {current.task}")
    old, new = current.signature["features"], candidate.signature["features"]
    if [f["name"] for f in old] != [f["name"] for f in new]:
        problems.append(
            f"features {[f['name'] for f in new]} vs {[f['name'] for f in old]}"
        )
    elif [f["dtype"] for f in old] != [f["dtype"] for f in new]:
        problems.append("feature dtypes differ")
    return problems
