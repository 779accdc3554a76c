"""The monitoring page says why drift is not judged, from the same detail the JSON gives (issue 47,
item 4): a sent reference below DRIFT_MIN_REFERENCE_ROWS is named with its rows and what to send."""
import numpy as np


def test_a_reference_too_small_to_judge_is_named_on_the_page_with_what_to_send(app, client, housing, admin):
    assert client.patch("/models/housing", json={"prediction_log": {"sample": 1}}, headers=admin).status_code == 200
    app.extensions["model_registry"].prediction_log.refresh()
    rng = np.random.default_rng(2)
    tiny = {"source": "evaluation", "instances": rng.normal(size=(3, 3)).tolist()}
    assert client.put("/models/housing/versions/1/reference", json=tiny, headers=admin).status_code == 200
    for _ in range(3):
        assert client.post("/models/housing/predict", json={"instances": (rng.normal(size=(50, 3)) + 2).tolist()}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()

    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)

    assert 'data-column="x0"' not in page  # no drift chart against three rows
    assert "has 3 rows, too few to judge drift against (DRIFT_MIN_REFERENCE_ROWS is 100)" in page
    assert "PUT the rows it was trained or evaluated on to /models/housing/versions/1/reference, at least 100" in page
