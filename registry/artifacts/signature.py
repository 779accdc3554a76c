"""What a model takes and gives: its feature names and dtypes, and its classes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

NUMERIC_DTYPES = frozenset({"float64", "float32", "int64", "int32", "bool"})
# The frameworks whose files hold no class labels, only their numbers: the signature names what is served.
NAMED_BY_SIGNATURE = ("xgboost", "lightgbm")


@dataclass(frozen=True)
class Feature:
    """One input column: its name and the dtype the model expects (``float64``, ``object``…)."""

    name: str
    dtype: str

    @property
    def numeric(self) -> bool:
        """True when the column takes numbers (rather than categories given as strings)."""
        return self.dtype in NUMERIC_DTYPES


@dataclass(frozen=True)
class Signature:
    """The ordered input columns of a model and, for classifiers, its classes; ``missing``: the model
    takes a missing number (NaN) as its library defines it, so a request may send one."""

    features: tuple[Feature, ...]
    classes: tuple | None = None
    missing: bool = False

    @cached_property
    def names(self) -> list[str]:
        """Feature names in the order the model takes them."""
        return [f.name for f in self.features]

    @cached_property
    def all_numeric(self) -> bool:
        """True when every column is numeric, so rows can go to the model as one float array."""
        return all(f.numeric for f in self.features)

    def to_dict(self) -> dict:
        """The JSON shape stored in the database and returned by the API."""
        shape = {
            "features": [{"name": f.name, "dtype": f.dtype} for f in self.features],
            "classes": list(self.classes) if self.classes is not None else None,
        }
        return shape | ({"missing_values": True} if self.missing else {})

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        """Rebuild a signature from :meth:`to_dict`'s shape."""
        classes = data.get("classes")
        return cls(
            features=tuple(Feature(f["name"], f["dtype"]) for f in data["features"]),
            classes=tuple(classes) if classes is not None else None,
            missing=bool(data.get("missing_values", False)),
        )


@dataclass(frozen=True)
class ModelDescription:
    """What introspection of a fitted estimator found at upload."""

    kind: str  # linear | logistic | tree | forest | boosting
    task: str  # regression | classification
    estimator: str  # class path of the final estimator, e.g. sklearn.ensemble.RandomForestRegressor
    steps: list[str] | None  # class paths of every Pipeline step, None when not a Pipeline
    signature: Signature
    sklearn_version: str | None  # the version the artifact was pickled with, when it says
    framework: str = "scikit-learn"  # the library the model comes from: scikit-learn, xgboost, lightgbm
