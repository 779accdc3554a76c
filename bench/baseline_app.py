"""The floor to compare the registry with: a Flask app that only parses rows, predicts with a cached model, answers.

``BASELINE_MODELS="logistic=/path/a.joblib;forest=/path/b.joblib"`` names the models, loaded once at import
(gunicorn preloads the app, so workers share them). Serve it exactly like the registry:
``gunicorn -c bench/baseline_gunicorn.conf.py bench.baseline_app:app``.
"""
import os

import joblib
import numpy as np
from flask import Flask, jsonify, request


def create_app(model_paths: dict[str, str]) -> Flask:
    """An app with one predict route per cached model and a readiness probe."""
    models = {name: joblib.load(path) for name, path in model_paths.items()}
    app = Flask(__name__)

    @app.post("/models/<name>/predict")
    def predict(name):
        """``{"instances": [[...], ...]}`` in, ``{"predictions": [...]}`` out; nothing checked."""
        rows = np.asarray(request.get_json()["instances"], dtype=np.float64)
        return jsonify(model=name, predictions=models[name].predict(rows).tolist())

    @app.post("/floor/predict")
    def floor():
        """The floor of Flask and gunicorn: the same JSON parsed, a constant answered (no model at all)."""
        request.get_json()
        return jsonify(model="floor", predictions=[0])

    @app.get("/readyz")
    def ready():
        """Always ready once imported: the models are loaded at start."""
        return {"status": "ok"}

    return app


def _paths_from_env() -> dict[str, str]:
    pairs = (item.split("=", 1) for item in os.environ.get("BASELINE_MODELS", "").split(";") if item)
    return {name: path for name, path in pairs}


app = create_app(_paths_from_env())
