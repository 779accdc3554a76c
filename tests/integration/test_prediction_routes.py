"""The prediction routes' table (api/prediction_routes.py) is the app's: each route is registered with its rule and
endpoint, every route that predicts is in it, and the request line the worker's queue order matches names the model
of each of them and of no other route."""
import pytest

from api.prediction_routes import ENDPOINTS, FAST_ENDPOINTS, ROUTES, model_of


def test_each_route_of_the_table_is_the_apps_with_its_rule_and_post(app):
    registered = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    for route in ROUTES:
        assert registered[route.endpoint].rule == route.rule
        assert "POST" in registered[route.endpoint].methods
    assert FAST_ENDPOINTS < ENDPOINTS


def test_every_route_that_predicts_is_in_the_table(app):
    predicting = {rule.endpoint for rule in app.url_map.iter_rules()
                  if "POST" in rule.methods and rule.rule.rsplit("/", 1)[-1] in ("predict", "infer")}
    assert predicting == ENDPOINTS


@pytest.mark.parametrize("version", ["3", "production"])
def test_the_request_line_of_each_route_and_only_those_names_the_model(app, version):
    for rule in app.url_map.iter_rules():
        if "<" not in rule.rule or "POST" not in rule.methods:
            continue
        path = rule.rule
        for placeholder in rule.arguments:
            path = path.replace(f"<{placeholder}>", "hot.v1" if placeholder == "name" else version)
            path = path.replace(f"<int:{placeholder}>", "3").replace(f"<path:{placeholder}>", "a/b")
        expected = "hot.v1" if rule.endpoint in ENDPOINTS else None
        assert model_of(f"POST {path} HTTP/1.1\r\n".encode()) == expected, rule.rule
