"""Naming a boosted classifier's classes after its upload: an XGBoost or LightGBM file holds only their
numbers, so the classes it answers are ``0 … k-1`` until its version names them (docs/python-client.md)."""
from registry.artifacts.signature import NAMED_BY_SIGNATURE
from registry.errors import Conflict, InvalidInput
from registry.tables import ModelVersion


def name_classes(version: ModelVersion, classes: list) -> bool:
    """Give ``version`` the class names ``classes`` (in the model's order); True when they changed.

    Only an XGBoost or LightGBM classifier's classes can be named, as many as it has, distinct strings or
    integers; and only once: names given (at upload or before) stay, so that an answer keeps one meaning.
    Naming the numbers keeps every answer's meaning (class ``i`` is the ``i``-th name), so it is allowed
    whenever, also after the version answered. Raises InvalidInput or Conflict naming what is wrong.
    """
    label = f"version {version.number} of {version.model.name!r}"
    if version.framework not in NAMED_BY_SIGNATURE:
        raise InvalidInput(f"{label} is a {version.framework} model: its classes are those it was fitted on "
                           "(classes_), held in its file; leave classes out")
    current = (version.signature or {}).get("classes")
    if current is None:
        raise InvalidInput(f"{label} is a regressor: it has no classes; leave classes out")
    _check(classes, len(current), label)
    if classes == current:
        return False
    if current != list(range(len(current))):
        raise Conflict(f"{label} names its classes already ({', '.join(map(repr, current))}); a version's class "
                       "names are given once, so that its answers keep one meaning: upload the model again "
                       "(a new file) with the names in its metadata")
    version.signature = {**version.signature, "classes": list(classes)}
    return True


def _check(classes: list, count: int, label: str) -> None:
    """As many distinct strings or integers as the model has classes (what its file's reader accepts)."""
    if len(classes) != count:
        raise InvalidInput(f"{label} has {count} classes; give {count} names, in the model's order "
                           f"(the names of 0 … {count - 1}), not {len(classes)}")
    if not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
        raise InvalidInput("classes must be strings or integers")
    if len(set(map(repr, classes))) != count:
        raise InvalidInput("classes must be distinct: each names one class of the model")
