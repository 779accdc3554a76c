"""A process that serves compiled models (forests, boosted models, linear ones) from their served forms
never imports scikit-learn (nor pandas, requests or the parts of SciPy it would bring): a second of every
worker's start that no request needs.
A two-class logistic regression brings SciPy's special functions (expit) when it loads, so that no
request for probabilities pays for their import."""
import json
import subprocess
import sys
import textwrap

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from api.settings import settings_of
from config import BASE_DIR
from tests.helpers import classification_data, upload_ok

HEAVY = ["sklearn", "pandas", "requests", "scipy.sparse", "scipy.linalg", "scipy.optimize", "scipy.stats"]

SERVE = textwrap.dedent("""
    import json, sys
    from api import create_app

    settings = json.loads(sys.argv[1])
    app = create_app()  # its settings from the environment, as a worker's
    imported_at_start = sorted(name for name in {HEAVY} if name in sys.modules)
    client = app.test_client()
    answers = {{}}
    for ref in ("forest/production", "logistic/production", "three/1", "boosted/production", "staged/production"):
        response = client.post(f"/models/{{ref}}/predict", json={{"instances": settings["rows"]}})
        assert response.status_code == 200, response.get_json()
        answers[ref] = response.get_json()["predictions"]
    imported_to_predict = sorted(name for name in {HEAVY} if name in sys.modules)
    expit_loaded = "scipy.special" in sys.modules
    probabilities = {{}}
    for ref in ("forest/production", "logistic/production", "three/1", "boosted/production", "staged/production"):
        body = {{"instances": settings["rows"], "return_proba": True}}
        probabilities[ref] = client.post(f"/models/{{ref}}/predict", json=body).get_json()["probabilities"]
    print(json.dumps({{"start": imported_at_start, "expit_loaded": expit_loaded, "predict": imported_to_predict,
                      "answers": answers, "probabilities": probabilities,
                      "then": sorted(n for n in {HEAVY} if n in sys.modules)}}))
""").format(HEAVY=HEAVY)


def test_serving_compiled_forms_imports_no_scikit_learn(build_app, tmp_path, ci):
    X, y = classification_data()
    three = np.digitize(X[:, 0], [-0.5, 0.5])
    models = {
        "forest": RandomForestClassifier(20, random_state=0).fit(X, y),
        "logistic": LogisticRegression().fit(X, y),
        "three": LogisticRegression().fit(X, three),  # three classes: softmax
        "boosted": HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y),
        "staged": GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, three),
    }
    root = tmp_path / "artifacts-0"
    app = build_app(artifact_root=root)
    client = app.test_client()
    for name, model in models.items():
        upload_ok(client, ci, name, model)
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
        assert client.post(f"/models/{name}/1/predict", json={"instances": X[:1].tolist()}).status_code == 200  # forms made

    given = settings_of(app)
    environ = {"DATABASE_URL": given.storage.database_url, "ARTIFACT_ROOT": given.storage.artifact_root,
               "ADMIN_TOKEN": given.access.admin_token, "SECRET_KEY": given.access.secret_key, "MONITOR_SECONDS": "0",
               "ROLLOUT_TICK_SECONDS": "0", "WEBHOOK_DELIVER_IN_WORKERS": "false",
               "ARTIFACT_CACHE_DIR": str(given.storage.cache_dir), "WATCH_ALIASES": "true"}  # a worker, warming
    settings = {"rows": X[:20].tolist()}
    result = subprocess.run([sys.executable, "-c", SERVE, json.dumps(settings)], cwd=BASE_DIR, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **environ})
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout.strip().splitlines()[-1])

    assert served["start"] == [] and served["predict"] == [] and served["then"] == []  # probabilities too
    assert served["expit_loaded"]  # with the two-class logistic regression, before any request for probabilities
    for name, ref in (("forest", "forest/production"), ("logistic", "logistic/production"), ("three", "three/1"),
                      ("boosted", "boosted/production"), ("staged", "staged/production")):
        assert served["answers"][ref] == models[name].predict(X[:20]).tolist()
        assert np.array_equal(served["probabilities"][ref], models[name].predict_proba(X[:20]))
