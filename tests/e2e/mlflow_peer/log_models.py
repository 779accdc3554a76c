"""Log a fixed scenario of scikit-learn models into MLflow and write down what was logged.

Not a test module: a script run with the MLflow venv's interpreter (.venv-mlflow, requirements-mlflow.txt),
against a tracking server (bench/harness/mlflow_server.py) or a ``file:`` store::

    .venv-mlflow/bin/python tests/e2e/mlflow_peer/log_models.py --tracking-uri URI --out manifest.json

Every version is logged in a run of its own with ``mlflow.sklearn.log_model``, in each of the three file
formats, as bare estimators and as Pipelines; then registry metadata (descriptions, tags, aliases, legacy
stages) is set. The manifest records all of it, with the predictions MLflow's own ``pyfunc`` makes on five
fixed rows per version.
"""
import argparse
import json
import os
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

TRAIN_ROWS = 80
PREDICT_ROWS = 5
PIP_REQUIREMENTS = ["scikit-learn==1.9.1"]


@dataclass
class Data:
    """Training features and targets, and the rows pyfunc predicts on (same columns, other draws)."""

    X: pd.DataFrame | np.ndarray
    y: pd.Series | np.ndarray
    rows: pd.DataFrame | np.ndarray

    @property
    def columns(self) -> list[str] | None:
        """The feature names, or None for a bare array."""
        return list(self.X.columns) if isinstance(self.X, pd.DataFrame) else None


@dataclass
class Version:
    """One model version: what to fit, how to save it, and what MLflow holds about it."""

    kind: str
    estimator: BaseEstimator
    data: Data
    format: str | None  # None: log_model's default (skops)
    params: dict
    stage: str = "None"
    description: str = ""
    tags: dict = field(default_factory=dict)
    skops_trusted_types: list[str] | None = None


@dataclass
class Model:
    """A registered model: its versions in order, and its own metadata."""

    name: str
    versions: list[Version]
    description: str = ""
    tags: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)  # alias -> version number


def features(seed: int, rows: int, columns: list[str] | None) -> pd.DataFrame | np.ndarray:
    """Uniform features in [0, 10): a DataFrame with ``columns``, or a bare array of 4 columns without."""
    values = np.random.RandomState(seed).uniform(0, 10, size=(rows, len(columns) if columns else 4))
    return pd.DataFrame(values, columns=columns) if columns else values


def house_prices() -> Data:
    """A regression: a linear price with noise, on columns a, b, c."""
    X = features(1, TRAIN_ROWS, ["a", "b", "c"])
    noise = np.random.RandomState(2).normal(0, 0.5, TRAIN_ROWS)
    y = pd.Series(3.0 * X["a"] - 2.0 * X["b"] + 0.5 * X["c"] + 10.0 + noise, name="price")
    return Data(X, y, features(3, PREDICT_ROWS, ["a", "b", "c"]))


def price_bands() -> Data:
    """A classification into "low", "mid" and "high" on four numeric columns."""
    columns = ["income", "debt", "age", "tenure"]
    X = features(4, TRAIN_ROWS, columns)
    score = X["income"] - X["debt"] + 0.2 * X["tenure"]
    y = pd.Series(np.select([score < -2, score < 2], ["low", "mid"], "high"), name="band")
    return Data(X, y, features(5, PREDICT_ROWS, columns))


def tensor_classes() -> Data:
    """A classification of a bare array of 4 columns (no names) into 0, 1, 2."""
    X = features(6, TRAIN_ROWS, None)
    y = np.digitize(X[:, 0] + X[:, 1], [7.0, 13.0])
    return Data(X, y, features(7, PREDICT_ROWS, None))


def scenario() -> list[Model]:
    """The models logged, every version with its data, format and metadata."""
    prices, bands, classes = house_prices(), price_bands(), tensor_classes()
    return [
        Model("mlf-linear", description="Linear house prices", tags={"team": "pricing"}, aliases={"champion": 1},
              versions=[
                  Version("linear", LinearRegression(), prices, "cloudpickle", {"fit_intercept": True},
                          description="first try", tags={"owner": "ana"}),
                  Version("linear", make_pipeline(StandardScaler(), LinearRegression()), prices, None,
                          {"fit_intercept": True, "scaler": "standard"}, stage="Production"),
              ]),
        Model("mlf-logistic", aliases={"production": 2}, versions=[
            Version("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), bands, None,
                    {"max_iter": 500, "scaler": "standard"}),
            Version("logistic", LogisticRegression(max_iter=500), bands, "pickle", {"max_iter": 500, "C": 1.0}),
        ]),
        Model("mlf-tree", versions=[
            Version("tree", DecisionTreeClassifier(max_depth=4, random_state=0), classes, "pickle",
                    {"max_depth": 4, "criterion": "gini"}, stage="Staging"),
            Version("tree", make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=4, random_state=0)),
                    classes, None, {"max_depth": 4, "scaler": "standard"},
                    skops_trusted_types=["sklearn.tree._tree.Tree"]),
        ]),
        Model("mlf-forest", aliases={"champion": 2}, versions=[
            Version("forest", RandomForestRegressor(n_estimators=20, random_state=0), prices, "skops",
                    {"n_estimators": 20, "random_state": 0}, skops_trusted_types=["sklearn.tree._tree.Tree"]),
            Version("forest", make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=10, random_state=0)),
                    prices, "cloudpickle", {"n_estimators": 10, "scaler": "standard"}),
        ]),
        Model("mlf-knn", versions=[
            Version("knn", KNeighborsRegressor(n_neighbors=5), prices, None, {"n_neighbors": 5, "weights": "uniform"},
                    skops_trusted_types=["sklearn.metrics._dist_metrics.EuclideanDistance64",
                                         "sklearn.neighbors._kd_tree.KDTree"]),
        ]),
    ]


def log_version(client: MlflowClient, name: str, number: int, version: Version) -> dict:
    """Fit, log and register one version in a run of its own; its manifest entry (without pyfunc's answers)."""
    data = version.data
    model = version.estimator.fit(data.X, data.y)
    score_name = "accuracy" if version.kind in ("logistic", "tree") else "r2"
    with mlflow.start_run(run_name=f"{name}-v{number}") as run:
        for key, value in version.params.items():
            mlflow.log_param(key, value)
        mlflow.log_metric(score_name, model.score(data.X, data.y))
        mlflow.log_metric("train_rows", len(data.X))
        # Named requirements spare MLflow inferring them in a subprocess per version (most of the script's time);
        # the import never reads them.
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name, input_example=data.X[:3],
                                 serialization_format=version.format, skops_trusted_types=version.skops_trusted_types,
                                 pip_requirements=PIP_REQUIREMENTS)
    logged = client.get_run(run.info.run_id).data
    return {
        "kind": version.kind,
        "format": version.format or "skops",
        "pipeline": isinstance(model, Pipeline),
        "stage": version.stage,
        "description": version.description,
        "tags": version.tags,
        "params": logged.params,
        "metrics": logged.metrics,
        "columns": data.columns,
        "rows": np.asarray(data.rows).tolist(),
    }


def log_model(client: MlflowClient, model: Model, name: str) -> dict:
    """Log every version of ``model`` as ``name`` and set its metadata; its manifest entry."""
    versions = {}
    for number, version in enumerate(model.versions, start=1):
        versions[str(number)] = log_version(client, name, number, version)
        if version.description:
            client.update_model_version(name, str(number), description=version.description)
        for key, value in version.tags.items():
            client.set_model_version_tag(name, str(number), key, value)
        if version.stage != "None":
            client.transition_model_version_stage(name, str(number), version.stage)
        predictions = mlflow.pyfunc.load_model(f"models:/{name}/{number}").predict(version.data.rows)
        versions[str(number)]["pyfunc"] = np.asarray(predictions).tolist()
    if model.description:
        client.update_registered_model(name, description=model.description)
    for key, value in model.tags.items():
        client.set_registered_model_tag(name, key, value)
    for alias, number in model.aliases.items():
        client.set_registered_model_alias(name, alias, str(number))
    return {"description": model.description, "tags": model.tags, "aliases": model.aliases, "versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="an MLflow server's URL or a file: URI")
    parser.add_argument("--out", required=True, help="where to write the manifest (JSON)")
    parser.add_argument("--prefix", default="", help="put before every model's name (e.g. local-)")
    args = parser.parse_args()
    if args.tracking_uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.17 refuses the deprecated file store otherwise
    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    manifest = {"models": {args.prefix + model.name: log_model(client, model, args.prefix + model.name)
                           for model in scenario()}}
    with open(args.out, "w") as out:
        json.dump(manifest, out, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
