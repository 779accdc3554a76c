"""What the dashboard's pages show as a person reads them (issue 47): durations in people's units,
compare saying what was and was not recorded, and only the actions that can succeed."""
from datetime import timedelta

import numpy as np
from sqlalchemy import select

from registry.db import db
from registry.monitoring.tables import LoggedPrediction
from tests.helpers import ADMIN_TOKEN


def test_the_label_delay_is_a_duration_not_a_floats_digits(app, client, housing, admin):
    assert client.patch("/models/housing", json={"prediction_log": {"sample": 1}}, headers=admin).status_code == 200
    app.extensions["model_registry"].prediction_log.refresh()
    answered = client.post("/models/housing/predict", json={"instances": np.ones((2, 3)).tolist()}, headers={"X-Request-ID": "late"})
    assert app.extensions["model_registry"].prediction_log.flush()
    feedback = {"items": [{"request_id": "late", "label": answered.get_json()["predictions"]}]}
    assert client.post("/models/housing/feedback", json=feedback, headers=admin).get_json()["applied"] == 1
    with app.app_context():  # labelled 7.38701 s after the answer
        logged = db.session.execute(select(LoggedPrediction).where(LoggedPrediction.request_id == "late")).scalar_one()
        logged.labelled_at = logged.at + timedelta(seconds=7.38701)
        db.session.commit()

    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)

    assert "<dt>Label delay (median)</dt><dd>7.4 s</dd>" in page
