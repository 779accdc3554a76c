"""The prediction routes' table (api/prediction_routes.py) is the app's: each route is answered with its rule and
endpoint by the dispatcher and by no Flask view, every route that predicts is in it, and the request line the worker's
queue order matches names the model of each of them and of no other route."""
import pytest

from api.prediction_routes import ROUTES, model_of, url_map

ENDPOINTS = {route.endpoint for route in ROUTES}


def _rules(app):
    """Every rule the app answers: Flask's, and the dispatcher's."""
    return [*app.url_map.iter_rules(), *url_map(app.url_map.converters).iter_rules()]


def test_each_route_of_the_table_is_the_dispatchers_with_its_rule_and_post_and_none_is_flasks(app):
    registered = {rule.endpoint: rule for rule in _rules(app)}
    for route in ROUTES:
        assert registered[route.endpoint].rule == route.rule
        assert "POST" in registered[route.endpoint].methods
    assert not ENDPOINTS & {rule.endpoint for rule in app.url_map.iter_rules()}
    assert not {rule.rule for rule in app.url_map.iter_rules()} & {route.rule for route in ROUTES}


def test_every_route_that_predicts_is_in_the_table(app):
    predicting = {rule.endpoint for rule in _rules(app)
                  if "POST" in rule.methods and rule.rule.rsplit("/", 1)[-1] in ("predict", "infer")}
    assert predicting == ENDPOINTS


@pytest.mark.parametrize("version", ["3", "production"])
def test_the_request_line_of_each_route_and_only_those_names_the_model(app, version):
    for rule in _rules(app):
        if "<" not in rule.rule or "POST" not in rule.methods:
            continue
        path = rule.rule
        for placeholder in rule.arguments:
            path = path.replace(f"<{placeholder}>", "hot.v1" if placeholder == "name" else version)
            path = path.replace(f"<int:{placeholder}>", "3").replace(f"<path:{placeholder}>", "a/b")
        expected = "hot.v1" if rule.endpoint in ENDPOINTS else None
        assert model_of(f"POST {path} HTTP/1.1\r\n".encode()) == expected, rule.rule
